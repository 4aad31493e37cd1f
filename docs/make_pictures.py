"""Make the README's picture from blur's built-in sample, never from benchmark data.

    python docs/make_pictures.py          # from the repository root, in blur's virtual environment

It runs `blur sample` and `blur anonymize` in a temporary folder, with this checkout's code
(`python -m blur` from the repository root), and writes `docs/img/sample-before-after.jpg`: the
sample's crowd picture before and after, side by side and labelled. The sample is built from
scikit-image's public-domain astronaut portrait, so the picture may be committed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "img" / "sample-before-after.jpg"
CROWD = Path("crowd") / "astronauts_crowd.jpg"

PANEL_WIDTH = 900
"""Width of each half, in pixels."""
GAP = 16
LABEL_HEIGHT = 44
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
MAX_BYTES = 200_000


def blur(*args: str) -> None:
    """Run `python -m blur ARGS` on this checkout's code; stop on failure."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, "-m", "blur", *args], cwd=ROOT, env=env, check=True)


def content_box(image: Image.Image, tolerance: int = 24, margin: int = 6) -> tuple[int, int, int, int]:
    """The part of the sample's crowd picture that holds the portraits (the rest is plain background)."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    background = pixels[-1, -1]
    ys, xs = np.nonzero(np.abs(pixels - background).max(axis=2) > tolerance)
    height, width = pixels.shape[:2]
    return (
        max(0, int(xs.min()) - margin),
        max(0, int(ys.min()) - margin),
        min(width, int(xs.max()) + 1 + margin),
        min(height, int(ys.max()) + 1 + margin),
    )


def panel(image: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """`box` of `image`, scaled to `PANEL_WIDTH`."""
    crop = image.convert("RGB").crop(box)
    height = round(crop.height * PANEL_WIDTH / crop.width)
    return crop.resize((PANEL_WIDTH, height), Image.Resampling.LANCZOS)


def side_by_side(before: Image.Image, after: Image.Image) -> Image.Image:
    """The two panels next to each other, each with its label above it."""
    font = ImageFont.load_default(size=26)
    sheet = Image.new("RGB", (2 * PANEL_WIDTH + GAP, LABEL_HEIGHT + before.height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for x, picture, label in (
        (0, before, "Before: the sample's crowd picture"),
        (PANEL_WIDTH + GAP, after, "After: blur anonymize (every face filled)"),
    ):
        draw.text((x + 4, 8), label, fill=INK, font=font)
        sheet.paste(picture, (x, LABEL_HEIGHT))
    return sheet


def save_small(sheet: Image.Image, path: Path) -> int:
    """Save as JPEG at the best quality that stays within `MAX_BYTES`; return the size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for quality in range(88, 40, -4):
        sheet.save(path, "JPEG", quality=quality, optimize=True)
        size = path.stat().st_size
        if size <= MAX_BYTES:
            return size
    msg = f"{path}: still over {MAX_BYTES} bytes at the lowest quality tried"
    raise SystemExit(msg)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="blur-pictures-") as tmp:
        sample, out = Path(tmp) / "sample", Path(tmp) / "out"
        blur("sample", str(sample))
        blur("anonymize", str(sample), "-o", str(out), "--quiet")
        with Image.open(sample / CROWD) as before, Image.open(out / CROWD) as after:
            box = content_box(before)
            sheet = side_by_side(panel(before, box), panel(after, box))
    size = save_small(sheet, OUT)
    print(f"wrote {OUT.relative_to(ROOT)} ({sheet.width}×{sheet.height}, {size:,} bytes)")


if __name__ == "__main__":
    main()
