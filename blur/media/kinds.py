"""What a file is, by its content first and its extension second."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from blur.fsio import open_regular


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
}
VIDEO_EXTENSIONS: dict[str, str] = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
    ".avi": "avi",
}

_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"}
_QUICKTIME_BRANDS = {b"qt  "}


@dataclass(frozen=True, slots=True)
class Sniffed:
    """What the content of a file says it is: its kind and container/format name."""

    kind: Kind
    format: str


def sniff_bytes(head: bytes) -> Sniffed:
    """Identify a file from its first bytes (at least 32 are needed)."""
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed(Kind.image, "JPEG")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed(Kind.image, "PNG")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Sniffed(Kind.image, "WEBP")
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return Sniffed(Kind.video, "avi")
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return Sniffed(Kind.image, "TIFF")
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return Sniffed(Kind.video, "webm" if b"webm" in head[:64] else "matroska")
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _HEIF_BRANDS:
            return Sniffed(Kind.image, "HEIF")
        if brand in _QUICKTIME_BRANDS:
            return Sniffed(Kind.video, "mov")
        return Sniffed(Kind.video, "mp4")
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip"):
        return Sniffed(Kind.video, "mov")
    return Sniffed(Kind.unsupported, "")


def sniff(path: Path) -> Sniffed:
    """Identify a file from its content (a regular file only: links, FIFOs and devices raise OSError)."""
    with open_regular(path) as fh:
        return sniff_bytes(fh.read(64))


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
    return claimed.format == actual.format
