"""Shared helpers for the photo benchmark: WIDER-style ground truth, pixel diffs, face buckets.

Benchmark code only. Nothing under ``blur/`` or ``tests/`` imports this module.

Ground truth is the JSON layout of ``../shared/benchdata/gt/*.json``: a list of
``{"image": <path relative to the data root>, "width": W, "height": H,
"faces": [[x, y, w, h, blur, expression, illumination, invalid, occlusion, pose], ...]}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

BoolMask = npt.NDArray[np.bool_]
Image = npt.NDArray[np.uint8]

#: A pixel counts as changed when any channel differs by at least this much (0-255 scale).
CHANGE_THRESHOLD = 8
#: Face-size buckets by ``s = max(w, h)`` in pixels: (label, lower bound inclusive, upper bound exclusive).
BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("<10 px", 0.0, 10.0),
    ("10-20 px", 10.0, 20.0),
    ("20-40 px", 20.0, 40.0),
    ("40-80 px", 40.0, 80.0),
    (">=80 px", 80.0, float("inf")),
)
#: GT boxes are enlarged this much about their centre to approximate the whole head for "damage".
HEAD_SCALE = 1.5


@dataclass(frozen=True)
class Face:
    """One labelled face: box in pixels of its photo plus the WIDER attribute flags."""

    x: float
    y: float
    w: float
    h: float
    blur: int = 0
    expression: int = 0
    illumination: int = 0
    occlusion: int = 0
    pose: int = 0

    @property
    def size(self) -> float:
        """``max(w, h)``, the size used for buckets."""
        return max(self.w, self.h)

    def scaled(self, factor: float, factor_y: float | None = None) -> Face:
        """The box in a resized copy of its photo (``factor_y``: a different vertical factor)."""
        fy = factor if factor_y is None else factor_y
        return Face(
            self.x * factor,
            self.y * fy,
            self.w * factor,
            self.h * fy,
            self.blur,
            self.expression,
            self.illumination,
            self.occlusion,
            self.pose,
        )


@dataclass(frozen=True)
class Photo:
    """One annotated photo: absolute path, the size the GT refers to, its valid faces."""

    path: Path
    width: int
    height: int
    faces: tuple[Face, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        return self.path.stem


def parse_face(row: Sequence[float]) -> Face | None:
    """One WIDER row ``[x, y, w, h, blur, expression, illumination, invalid, occlusion, pose]``.

    Returns ``None`` for rows to skip: flagged invalid, or with an empty box.
    """
    if len(row) < 4:
        return None
    x, y, w, h = (float(v) for v in row[:4])
    flags = [int(v) for v in row[4:10]] + [0] * (10 - min(len(row), 10))
    blur, expression, illumination, invalid, occlusion, pose = flags[:6]
    if invalid == 1 or w <= 0 or h <= 0:
        return None
    return Face(x, y, w, h, blur, expression, illumination, occlusion, pose)


def is_gt_list(data: object) -> bool:
    """True if ``data`` looks like a WIDER-style GT list (and not, say, a provenance file)."""
    return (
        isinstance(data, list)
        and len(data) > 0
        and all(isinstance(e, dict) and "image" in e and "faces" in e for e in data)
    )


def load_gt(gt_json: Path, root: Path) -> list[Photo]:
    """Load one GT file; image paths in it are relative to ``root``."""
    data = json.loads(gt_json.read_text())
    if not is_gt_list(data):
        raise ValueError(f"{gt_json}: not a WIDER-style GT list")
    photos: list[Photo] = []
    for entry in data:
        faces = tuple(f for f in (parse_face(r) for r in entry["faces"]) if f is not None)
        photos.append(
            Photo(
                path=(root / entry["image"]).resolve(),
                width=int(entry.get("width", 0)),
                height=int(entry.get("height", 0)),
                faces=faces,
            )
        )
    return photos


def gt_files(root: Path) -> list[Path]:
    """The GT lists of a WIDER-style root: ``root/gt/*.json`` minus ``*.provenance.json``."""
    gt_dir = root / "gt"
    if not gt_dir.is_dir():
        return []
    return sorted(p for p in gt_dir.glob("*.json") if not p.name.endswith(".provenance.json"))


def bucket_of(size: float) -> str:
    """Bucket label for a face of size ``max(w, h)``."""
    for label, lo, hi in BUCKETS:
        if lo <= size < hi:
            return label
    return BUCKETS[-1][0]


def changed_mask(before: Image, after: Image, threshold: int = CHANGE_THRESHOLD) -> BoolMask:
    """Pixels where any channel differs by at least ``threshold``; both images must match in shape."""
    if before.shape != after.shape:
        raise ValueError(f"shape mismatch: {before.shape} vs {after.shape}")
    diff = cv2.absdiff(before, after)
    if diff.ndim == 3:
        diff = diff.max(axis=2)
    return np.asarray(diff >= threshold)


def clip_box(x: float, y: float, w: float, h: float, width: int, height: int) -> tuple[int, int, int, int]:
    """Box to integer pixel bounds ``(x0, y0, x1, y1)`` clipped to the image (may be empty)."""
    x0 = max(0, min(width, int(np.floor(x))))
    y0 = max(0, min(height, int(np.floor(y))))
    x1 = max(0, min(width, int(np.ceil(x + w))))
    y1 = max(0, min(height, int(np.ceil(y + h))))
    return x0, y0, x1, y1


def changed_fraction(changed: BoolMask, face: Face) -> float | None:
    """Share of pixels inside the face's GT box that changed; ``None`` if the box lies outside."""
    height, width = changed.shape[:2]
    x0, y0, x1, y1 = clip_box(face.x, face.y, face.w, face.h, width, height)
    if x1 <= x0 or y1 <= y0:
        return None
    return float(changed[y0:y1, x0:x1].mean())


def face_obscured(changed: BoolMask, face: Face, min_fraction: float = 0.5) -> bool:
    """A face counts as obscured when at least ``min_fraction`` of its GT box changed."""
    frac = changed_fraction(changed, face)
    return frac is not None and frac >= min_fraction


def head_mask(faces: Iterable[Face], width: int, height: int, scale: float = HEAD_SCALE) -> BoolMask:
    """Union of the GT boxes enlarged ``scale`` times about their centres (the "face" region)."""
    mask = np.zeros((height, width), dtype=np.bool_)
    for f in faces:
        cx, cy = f.x + f.w / 2.0, f.y + f.h / 2.0
        w, h = f.w * scale, f.h * scale
        x0, y0, x1, y1 = clip_box(cx - w / 2.0, cy - h / 2.0, w, h, width, height)
        mask[y0:y1, x0:x1] = True
    return mask


def damage_counts(changed: BoolMask, faces: Iterable[Face]) -> tuple[int, int]:
    """``(changed non-face pixels, non-face pixels)``, face = :func:`head_mask`."""
    height, width = changed.shape[:2]
    background = ~head_mask(faces, width, height)
    return int(np.count_nonzero(changed & background)), int(np.count_nonzero(background))


#: JPEG quality of the web-size copies (what a site or messaging app typically re-encodes at).
WEB_JPEG_QUALITY = 90


def web_copy(img: Image, long_side: int, quality: int = WEB_JPEG_QUALITY) -> tuple[Image, float, float]:
    """A web-size copy of a photo: longest side ``long_side`` (``cv2.INTER_AREA``; never enlarged), then a
    JPEG encode and decode at ``quality``, as a site or messaging app would serve it.

    Returns the decoded copy and the horizontal and vertical scale factors (for the GT boxes).
    """
    h, w = img.shape[:2]
    s = min(1.0, long_side / max(h, w))
    size = (max(1, round(w * s)), max(1, round(h * s)))
    small = img if size == (w, h) else np.asarray(cv2.resize(img, size, interpolation=cv2.INTER_AREA), np.uint8)
    ok, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
    return np.asarray(decoded, np.uint8), size[0] / w, size[1] / h


def read_image(path: Path) -> Image | None:
    """Decode as 8-bit BGR without applying any EXIF orientation; ``None`` if unreadable."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None or img.dtype != np.uint8:
        return None
    return np.asarray(img, dtype=np.uint8)


def exif_orientation(path: Path) -> int:
    """EXIF orientation tag (1 = upright, also returned when there is no tag)."""
    try:
        from PIL import Image as PILImage
    except ImportError:  # pragma: no cover - Pillow ships with the benchmark's tools
        return 1
    try:
        with PILImage.open(path) as im:
            return int(im.getexif().get(0x0112, 1) or 1)
    except (OSError, ValueError):
        return 1
