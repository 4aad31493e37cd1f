"""What a file is, by its content first and its extension second."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from blur.fsio import open_regular
from blur.media.bmff import image_format


class Kind(str, Enum):
    """Broad media family."""

    image = "image"
    video = "video"
    unsupported = "unsupported"


IMAGE_EXTENSIONS: dict[str, str] = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".jfif": "JPEG",
    ".png": "PNG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".heic": "HEIF",
    ".heif": "HEIF",
    ".hif": "HEIF",
    ".avif": "AVIF",
    ".avifs": "AVIF",
    ".gif": "GIF",
    ".apng": "PNG",
}
VIDEO_EXTENSIONS: dict[str, str] = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
    ".avi": "avi",
}

_QUICKTIME_BRANDS = {b"qt  "}
HEAD_BYTES = 4096
"""Bytes read to identify a file: enough for an ISO-BMFF `ftyp` box and, usually, the item table."""
IMAGE_FAMILIES = ({"HEIF", "AVIF"},)
"""Formats one extension may stand for: AVIF is a HEIF profile (an AV1 picture in a `.heif` is valid)."""


@dataclass(frozen=True, slots=True)
class Sniffed:
    """What the content of a file says it is: its kind and container/format name."""

    kind: Kind
    format: str


def sniff_bytes(head: bytes) -> Sniffed:
    """Identify a file from its first bytes (32 are enough but for ISO-BMFF images that name no codec
    in their brands: then the item table decides, within `HEAD_BYTES`)."""
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed(Kind.image, "JPEG")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed(Kind.image, "PNG")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Sniffed(Kind.image, "WEBP")
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return Sniffed(Kind.video, "avi")
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return Sniffed(Kind.image, "TIFF")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return Sniffed(Kind.image, "GIF")
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return Sniffed(Kind.video, "webm" if b"webm" in head[:64] else "matroska")
    if head[4:8] == b"ftyp":
        image = image_format(head)
        if image == "RAW":
            return Sniffed(Kind.unsupported, "")
        if image is not None:
            return Sniffed(Kind.image, image)
        if head[8:12] in _QUICKTIME_BRANDS:
            return Sniffed(Kind.video, "mov")
        return Sniffed(Kind.video, "mp4")
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip"):
        return Sniffed(Kind.video, "mov")
    return Sniffed(Kind.unsupported, "")


def sniff(path: Path) -> Sniffed:
    """Identify a file from its content (a regular file only: links, FIFOs and devices raise OSError)."""
    with open_regular(path) as fh:
        return sniff_bytes(fh.read(HEAD_BYTES))


def extension_kind(path: Path) -> Sniffed:
    """What the file's extension claims it is."""
    ext = path.suffix.lower()
    if ext in IMAGE_EXTENSIONS:
        return Sniffed(Kind.image, IMAGE_EXTENSIONS[ext])
    if ext in VIDEO_EXTENSIONS:
        return Sniffed(Kind.video, VIDEO_EXTENSIONS[ext])
    return Sniffed(Kind.unsupported, "")


def formats_agree(claimed: Sniffed, actual: Sniffed) -> bool:
    """Whether the extension and the content name the same format (ISO-BMFF video brands are interchangeable)."""
    if claimed.kind is not actual.kind:
        return False
    if claimed.kind is Kind.video:
        bmff = {"mp4", "mov"}
        ebml = {"matroska", "webm"}
        return claimed.format == actual.format or (
            {claimed.format, actual.format} <= bmff or {claimed.format, actual.format} <= ebml
        )
    return claimed.format == actual.format or any({claimed.format, actual.format} <= f for f in IMAGE_FAMILIES)
