"""Pictures for the review page, always decoded from files: the OUTPUT (or, on request, the original).

Browser-friendly outputs (JPEG, PNG, WebP) are linked by relative URL; others (TIFF, HEIF) and video
frames become small JPEGs embedded as base64, made from the output file itself, so the page can only
show what will be published.
"""

from __future__ import annotations

import base64
import io
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import cv2
import numpy as np
from PIL import Image

from blur.errors import MediaReadError
from blur.media.image import read_photo
from blur.media.kinds import Kind, sniff
from blur.types import Frame

BROWSER_FORMATS = frozenset({"JPEG", "PNG", "WEBP"})


@dataclass(frozen=True, slots=True)
class Picture:
    """An image for a card: its `src` (relative URL or data URI) and the pixel size boxes refer to."""

    src: str
    width: int
    height: int


def relative_url(target: Path, page: Path) -> str:
    """A URL for `target` relative to the page's folder, with every byte of odd names percent-encoded."""
    rel = os.path.relpath(os.path.abspath(target), os.path.abspath(page.parent))
    return "/".join(quote(os.fsencode(part), safe="") for part in Path(rel).parts)


def data_uri(rgb: Frame, side: int) -> str:
    """A downscaled JPEG of `rgb` as a data URI."""
    h, w = rgb.shape[:2]
    factor = min(1.0, side / max(h, w))
    small = rgb
    if factor < 1.0:
        size = (max(1, round(w * factor)), max(1, round(h * factor)))
        small = np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(small)).save(buffer, "JPEG", quality=82)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def photo_picture(path: Path, page: Path, side: int) -> Picture:
    """The output photo as a card picture: linked when a browser shows the format, embedded otherwise.

    Raises:
        MediaReadError: the file cannot be read or is not a photo.
    """
    try:
        sniffed = sniff(path)
    except OSError as exc:
        msg = f"{path}: cannot read: {exc.strerror or exc}"
        raise MediaReadError(msg) from exc
    if sniffed.kind is not Kind.image:
        msg = f"{path}: not a photo"
        raise MediaReadError(msg)
    if sniffed.format in BROWSER_FORMATS:
        with Image.open(path, formats=[sniffed.format]) as image:  # header only: the size
            width, height = image.size
        return Picture(relative_url(path, page), width, height)
    photo = read_photo(path, sniffed.format)
    h, w = photo.rgb.shape[:2]
    return Picture(data_uri(photo.rgb, side), w, h)


def original_picture(path: Path, side: int) -> Picture:
    """The ORIGINAL photo, upright, embedded (only for `--html-with-originals`).

    Raises:
        MediaReadError: it cannot be read.
    """
    sniffed = sniff(path)
    photo = read_photo(path, sniffed.format)
    h, w = photo.rgb.shape[:2]
    return Picture(data_uri(photo.rgb, side), w, h)


def video_frames(path: Path, indices: list[int] | None, count: int, side: int) -> list[tuple[int, float, Picture]]:
    """Frames of the OUTPUT video: those at `indices`, or `count` evenly spaced ones when None.

    Returns:
        (frame index, time in seconds, picture) for each frame found.

    Raises:
        BlurError: the video cannot be opened or decoded.
    """
    from blur.media.planes import to_rgb  # noqa: PLC0415 - PyAV only for videos
    from blur.media.video_read import open_input, video_stream  # noqa: PLC0415

    sniffed = sniff(path)
    with open_input(path, sniffed.format) as container:
        stream = video_stream(path, container)
        total = stream.frames or 0
        if indices is None:
            total = total or _count_frames(path, sniffed.format)
            indices = sorted({round(i * (total - 1) / max(1, count - 1)) for i in range(count)}) if total else [0]
        wanted = set(indices)
        found: list[tuple[int, float, Picture]] = []
        for index, frame in enumerate(container.decode(stream)):
            if index in wanted:
                rgb = to_rgb(frame)
                found.append(
                    (index, float(frame.time or 0.0), Picture(data_uri(rgb, side), rgb.shape[1], rgb.shape[0]))
                )
            if index >= max(wanted):
                break
    return found


def _count_frames(path: Path, fmt: str) -> int:
    from blur.media.video_read import open_input, video_stream  # noqa: PLC0415

    with open_input(path, fmt) as container:
        stream = video_stream(path, container)
        return sum(1 for packet in container.demux(stream) if packet.size)
