"""Pictures that hold several frames, pages or images: animated GIF, APNG, animated WebP and AVIF,
multi-page TIFF, multi-image HEIF. Every frame is decoded whole and upright, as a viewer shows it.

Animations are read as the viewer composites them (each frame the full canvas after disposal and
blending), with each frame's duration and the loop count, so they can be written back frame for
frame. Pages (TIFF) and images (HEIF) are read each at its own size; a HEIF keeps which image is
the primary one. Everything is held in memory: `MAX_SEQUENCE_PIXELS` bounds it, checked from the
header before any frame is decoded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from blur.errors import MediaReadError, UnsupportedMediaError
from blur.media.image import PhotoHeader, decode_errors, open_picture, upright_pixels
from blur.types import Frame

MAX_SEQUENCE_PIXELS = 400_000_000
"""Frames of one animated or multi-page picture are all held in memory: at most this many pixels
over all of them (1.2 GB as RGB), checked from the header."""

ANIMATED_FORMATS = frozenset({"GIF", "PNG", "WEBP", "AVIF"})
"""Formats whose frames form one timeline (with durations and a loop count)."""


@dataclass(frozen=True, slots=True)
class Picture:
    """One frame, page or image: upright RGB, an optional alpha plane, and how long it shows (ms)."""

    rgb: Frame
    alpha: np.ndarray | None = None
    duration: float = 0.0


@dataclass(frozen=True, slots=True)
class Pictures:
    """Every frame of an animation, or every page or image of a file.

    Attributes:
        format: the container's format (GIF, PNG for APNG, WEBP, AVIF, TIFF, HEIF).
        frames: the pictures in file order.
        timeline: the frames are one animation (durations apply), not independent pages or images.
        loop: plays of the animation as the file declares it (0: forever); None when it declares
            nothing (a GIF with no loop extension plays once).
        primary: index of the primary image of a HEIF.
        default_image: APNG only: frame 0 is the still picture non-animating viewers show, outside
            the animation.
        notes: what was dropped or changed, for the report.
    """

    format: str
    frames: tuple[Picture, ...]
    timeline: bool
    loop: int | None = None
    primary: int = 0
    default_image: bool = False
    notes: tuple[str, ...] = field(default=())


def check_sequence_memory(path: Path, header: PhotoHeader) -> None:
    """Refuse, from the header, a picture whose frames would not fit in memory together.

    Raises:
        UnsupportedMediaError: more than `MAX_SEQUENCE_PIXELS` over all frames.
    """
    total = sum(w * h for w, h in header.sizes)
    if total > MAX_SEQUENCE_PIXELS:
        what = "frames" if header.format in ANIMATED_FORMATS else "pages or images"
        msg = (
            f"{path}: {header.frames} {what} of {header.sizes[0][0]}x{header.sizes[0][1]} are {total / 1e6:.0f} MP "
            f"in all, above the {MAX_SEQUENCE_PIXELS / 1e6:.0f} MP blur holds in memory at once; refused before "
            "decoding (convert an animation to a video first, e.g. with ffmpeg, and anonymize that)"
        )
        raise UnsupportedMediaError(msg)


def _loop(image: Image.Image, fmt: str) -> int | None:
    loop = image.info.get("loop")
    if fmt == "GIF":
        return int(loop) if isinstance(loop, int) else None
    return int(loop) if isinstance(loop, int) else 0


def _frame(image: Image.Image, fmt: str, notes: list[str]) -> Picture:
    image.load()
    rgb, alpha = upright_pixels(image, notes)
    duration = image.info.get("duration", 0) if fmt in ANIMATED_FORMATS else 0
    return Picture(rgb, alpha, float(duration or 0))


def read_pictures(path: Path, header: PhotoHeader) -> Pictures:
    """Decode every frame, page or image of a multi-frame picture (`header` from `probe_photo`).

    Raises:
        MediaReadError: unreadable, truncated or corrupt, or frames that change size in an animation.
        UnsupportedMediaError: too many pixels over all frames to hold in memory.
    """
    check_sequence_memory(path, header)
    fmt = header.format
    notes: list[str] = list(header.notes)
    frames: list[Picture] = []
    with decode_errors(path, fmt) as caught, open_picture(path, fmt) as image:
        loop = _loop(image, fmt)
        primary = image.tell() if fmt == "HEIF" else 0
        default_image = bool(getattr(image, "default_image", False)) if fmt == "PNG" else False
        for index in range(header.frames):
            image.seek(index)
            frames.append(_frame(image, fmt, notes))
    timeline = fmt in ANIMATED_FORMATS
    if timeline and len({f.rgb.shape for f in frames}) > 1:
        msg = f"{path}: the frames of this animation differ in size"
        raise MediaReadError(msg)
    heard = [f"decoder warning: {w.message}" for w in caught if not issubclass(w.category, DeprecationWarning)]
    notes = list(dict.fromkeys(notes + heard))
    return Pictures(fmt, tuple(frames), timeline, loop, primary, default_image, tuple(notes))
