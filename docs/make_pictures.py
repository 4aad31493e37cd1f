"""Make the README's pictures from blur's built-in sample, never from benchmark data.

    python docs/make_pictures.py          # from the repository root, in blur's virtual environment

It runs `blur sample` and `blur anonymize` in a temporary folder, with this checkout's code
(`python -m blur` from the repository root), and writes

- `docs/img/sample-before-after.jpg`: the sample's crowd picture before and after, side by side and
  labelled;
- `docs/img/review.png`: `blur review` on that batch in headless Debian Chromium (`/usr/bin/chromium`,
  never a downloaded browser), the crowd picture open with a face clicked to keep and a region added.

The sample is built from scikit-image's public-domain astronaut portrait, so the pictures may be
committed. The state folder of the temporary batch lives in the temporary folder too.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's blur, whatever is installed

from blur.sample import crowd  # noqa: E402

OUT = ROOT / "docs" / "img" / "sample-before-after.jpg"
REVIEW = ROOT / "docs" / "img" / "review.png"
REVIEW_MAX_BYTES = 300_000
CHROMIUM = "/usr/bin/chromium"
CROWD = Path("crowd") / "astronauts_crowd.jpg"

PANEL_WIDTH = 900
"""Width of each half, in pixels."""
GAP = 16
LABEL_HEIGHT = 44
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
MAX_BYTES = 200_000


def _env(state: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    if state is not None:
        env["XDG_STATE_HOME"] = str(state)
    return env


def blur(*args: str, state: Path | None = None, cwd: Path = ROOT) -> None:
    """Run `python -m blur ARGS` on this checkout's code (in `cwd`); stop on failure."""
    subprocess.run([sys.executable, "-m", "blur", *args], cwd=cwd, env=_env(state), check=True)


def name_tag() -> tuple[float, float, float, float]:
    """The name tag on the suit of the sample crowd's largest portrait, in the crowd picture's pixels."""
    x1, y1, x2, _ = max(crowd()[1], key=lambda b: b[2] - b[0])
    k = (x2 - x1) / 100  # the portrait's face is 100 px wide at 512 px
    left, top = x1 - 175 * k, y1 - 54 * k
    return left + 268 * k, top + 328 * k, left + 328 * k, top + 384 * k


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


def review_screenshot(out: Path, state: Path) -> bytes:
    """`blur review` on the batch in `out`: the crowd picture, the largest face kept and a region added on a
    name tag (not applied)."""
    argv = [sys.executable, "-m", "blur", "review", str(out), "--no-browser"]
    server = subprocess.Popen(argv, cwd=out.parent, env=_env(state), stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 820})
            page.goto(url)
            page.wait_for_selector("body[data-state=ready]")
            page.locator("#file-list li", has_text="astronauts_crowd.jpg").locator("button").click()
            page.wait_for_selector('#stage[data-picture="ready"] [data-kind="detected"]')
            masks = page.locator('[data-region][data-kind="detected"]')
            widths = [masks.nth(i).bounding_box()["width"] for i in range(masks.count())]
            masks.nth(widths.index(max(widths))).click()
            left, top, shown = page.eval_on_selector(
                "#overlay", "e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.width]; }"
            )
            scale = shown / 1600
            page.keyboard.press("a")
            # The name tag on the largest portrait's suit: a region the detector cannot know about.
            tx1, ty1, tx2, ty2 = name_tag()
            page.mouse.move(left + tx1 * scale, top + ty1 * scale)
            page.mouse.down()
            page.mouse.move(left + tx2 * scale, top + ty2 * scale, steps=4)
            page.mouse.up()
            page.keyboard.press("Escape")
            page.wait_for_timeout(500)
            shot: bytes = page.screenshot()
            browser.close()
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=20)
    return shot


def save_png(shot: bytes, path: Path) -> int:
    """Save the screenshot as PNG within `REVIEW_MAX_BYTES` (fewer colours when needed); return the size."""
    with Image.open(io.BytesIO(shot)) as image:
        picture = image.convert("RGB")
    for colours in (None, 256, 128, 64):
        out = picture if colours is None else picture.quantize(colours, dither=Image.Dither.NONE)
        out.save(path, "PNG", optimize=True)
        size = path.stat().st_size
        if size <= REVIEW_MAX_BYTES:
            return size
    msg = f"{path}: still over {REVIEW_MAX_BYTES} bytes with 64 colours"
    raise SystemExit(msg)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="blur-pictures-") as tmp:
        sample, out, state = Path(tmp) / "sample", Path(tmp) / "out", Path(tmp) / "state"
        blur("sample", str(sample))
        # Relative paths, so the page shows sample/crowd/... rather than a temporary folder's name.
        blur("anonymize", "sample", "-o", "out", "--quiet", state=state, cwd=Path(tmp))
        with Image.open(sample / CROWD) as before, Image.open(out / CROWD) as after:
            box = content_box(before)
            sheet = side_by_side(panel(before, box), panel(after, box))
        shot = review_screenshot(out, state)
    size = save_small(sheet, OUT)
    print(f"wrote {OUT.relative_to(ROOT)} ({sheet.width}×{sheet.height}, {size:,} bytes)")
    size = save_png(shot, REVIEW)
    print(f"wrote {REVIEW.relative_to(ROOT)} ({size:,} bytes)")


if __name__ == "__main__":
    main()
