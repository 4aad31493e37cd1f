"""Pictures for the review app: a downscaled preview of each picture, and full-resolution crops on zoom.

A 45 MP photo is never sent to the page whole: the page gets a preview no larger than
`PREVIEW_SIDE`, then, when zoomed in, crops of the part in view at the resolution it is shown at
(never more than `MAX_CROP_PIXELS`). Photos come from the output file (or, with the original toggle,
from the original, upright); video frames from `blur.review.frames`. Decoded pictures are kept a
few at a time.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from blur.errors import MediaReadError
from blur.media.image import read_photo
from blur.media.kinds import Kind, sniff
from blur.types import Frame

PREVIEW_SIDE = 2048
"""Long side of the preview the page shows at fit-to-window and low zoom."""

MAX_CROP_PIXELS = 4_000_000
"""Most pixels one crop may hold: about a 4K screen's worth, never a whole large picture."""

JPEG_QUALITY = 88


@dataclass(frozen=True, slots=True)
class CropRequest:
    """A part of a picture (x, y, width, height in its pixels) wanted `out_width` pixels wide."""

    x: int
    y: int
    width: int
    height: int
    out_width: int


def encode_jpeg(rgb: Frame) -> bytes:
    """A JPEG of `rgb` for the page (no metadata)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def downscale(rgb: Frame, side: int) -> Frame:
    """`rgb` with its long side at most `side` pixels (area interpolation); the same array if smaller."""
    h, w = rgb.shape[:2]
    factor = side / max(h, w)
    if factor >= 1.0:
        return rgb
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), np.uint8)


def crop(rgb: Frame, request: CropRequest) -> Frame:
    """The requested part, clamped to the picture, scaled to the width asked (never up, never more
    than `MAX_CROP_PIXELS`).

    Raises:
        ValueError: the part lies outside the picture.
    """
    h, w = rgb.shape[:2]
    x0, y0 = max(0, request.x), max(0, request.y)
    x1, y1 = min(w, request.x + request.width), min(h, request.y + request.height)
    if x1 <= x0 or y1 <= y0:
        msg = "the crop lies outside the picture"
        raise ValueError(msg)
    part = rgb[y0:y1, x0:x1]
    cw, ch = x1 - x0, y1 - y0
    scale = min(1.0, max(1, request.out_width) / cw, (MAX_CROP_PIXELS / (cw * ch)) ** 0.5)
    if scale >= 1.0:
        return np.ascontiguousarray(part)
    size = (max(1, round(cw * scale)), max(1, round(ch * scale)))
    return np.asarray(cv2.resize(part, size, interpolation=cv2.INTER_AREA), np.uint8)


def photo_size(path: Path) -> tuple[int, int]:
    """Width and height of an output photo, from its header (outputs carry no orientation).

    Raises:
        MediaReadError: it is not a readable photo.
    """
    try:
        sniffed = sniff(path)
        if sniffed.kind is not Kind.image:
            msg = f"{path}: not a photo"
            raise MediaReadError(msg)
        if sniffed.format in ("JPEG", "PNG", "WEBP", "TIFF"):
            with Image.open(path, formats=[sniffed.format]) as image:
                return int(image.size[0]), int(image.size[1])
    except OSError as exc:
        msg = f"{path}: cannot read: {exc.strerror or exc}"
        raise MediaReadError(msg) from exc
    rgb = read_photo(path, sniffed.format).rgb
    return int(rgb.shape[1]), int(rgb.shape[0])


class PictureCache:
    """Decoded pictures by key, the most recent few only (a 45 MP picture is 136 MB of RGB)."""

    def __init__(self, capacity: int = 3) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple[object, ...], Frame] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[object, ...], load: Callable[[], Frame]) -> Frame:
        """The picture under `key`, decoded by `load` when it is not held."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        rgb = load()
        with self._lock:
            self._items[key] = rgb
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return rgb


def read_upright(path: Path) -> Frame:
    """A photo's pixels, upright (EXIF orientation applied), as the pipeline sees them.

    Raises:
        BlurError: it cannot be read.
    """
    try:
        sniffed = sniff(path)
    except OSError as exc:
        msg = f"{path}: cannot read: {exc.strerror or exc}"
        raise MediaReadError(msg) from exc
    return read_photo(path, sniffed.format).rgb
