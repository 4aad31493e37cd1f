"""Metadata blocks that several containers share: XMP, Photoshop resources, ICC profiles, and
signatures of images or videos hidden inside other data."""

from __future__ import annotations

import re
import struct

from blur.audit.model import Category, Finding
from blur.textsafe import excerpt

SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG image"),
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"ftyp", "MP4/HEIF media"),
    (b"PK\x03\x04", "ZIP archive"),
    (b"SEFT", "Samsung trailer (may hold a motion-photo video)"),
)

_XMP_NOTABLE: tuple[tuple[str, str], ...] = (
    ("GPS", "GPS position"),
    ("History", "edit history"),
    ("DocumentAncestors", "IDs of pasted-in documents"),
    ("OriginalDocumentID", "original document ID"),
    ("DocumentID", "document ID"),
    ("DerivedFrom", "source document reference"),
    ("creator", "creator"),
    ("SerialNumber", "serial number"),
    ("BodySerial", "serial number"),
    ("Location", "location"),
    ("City", "location"),
    ("CreateDate", "dates"),
    ("DateTimeOriginal", "dates"),
    ("CreatorTool", "software"),
)
_XMP_HIDDEN: tuple[tuple[str, str], ...] = (
    ("Thumbnails", "XMP thumbnail (base64 image of the original)"),
    ("GImg:image", "XMP thumbnail (base64 image of the original)"),
    ("MicroVideo", "motion photo: XMP points at a video appended to the file"),
    ("MotionPhoto", "motion photo: XMP points at a video appended to the file"),
    ("Container:Directory", "XMP container directory (images or video appended to the file)"),
    ("GainMap", "gain map image (a second copy of the scene)"),
)
_IRB_NAMES = {
    0x0404: "IPTC",
    0x040F: "ICC profile",
    0x0422: "EXIF",
    0x0424: "XMP",
    0x0425: "IPTC digest",
    0x03ED: "resolution",
    0x0BB7: "clipping path",
}
_IRB_THUMBNAILS = {0x0409, 0x040C}


def signatures(data: bytes, start: int = 0) -> list[tuple[int, str]]:
    """Offsets (from `start`) and kinds of every embedded image, video or archive signature in `data`."""
    found: list[tuple[int, str]] = []
    for magic, kind in SIGNATURES:
        at = data.find(magic)
        while at >= 0:
            if magic != b"ftyp" or at >= 4:
                found.append((start + (at - 4 if magic == b"ftyp" else at), kind))
            at = data.find(magic, at + 1)
    return sorted(found)


def signature_findings(data: bytes, start: int, where: str) -> list[Finding]:
    """A hidden-image finding per embedded signature in `data` (which begins at file offset `start`)."""
    return [
        Finding(Category.hidden, f"embedded {kind}", where=f"{where}, offset {offset}")
        for offset, kind in signatures(data, start)
    ]


def xmp_findings(packet: bytes, where: str) -> list[Finding]:
    """One metadata finding naming what the XMP packet holds, plus one per hidden image it carries."""
    text = packet.decode("utf-8", "replace")
    notable = sorted({label for key, label in _XMP_NOTABLE if key in text})
    detail = ", ".join(notable) if notable else excerpt(re.sub(r"\s+", " ", text), 60)
    findings = [Finding(Category.metadata, f"XMP packet ({len(packet)} bytes)", detail, where)]
    hidden = sorted({label for key, label in _XMP_HIDDEN if key in text})
    findings += [Finding(Category.hidden, label, where=where) for label in hidden]
    return findings


def irb_findings(data: bytes, where: str) -> list[Finding]:
    """Photoshop image resources: a metadata finding listing them, and a hidden one per thumbnail."""
    names: list[str] = []
    findings: list[Finding] = []
    pos = 0
    while pos + 12 <= len(data) and data[pos : pos + 4] in (b"8BIM", b"MeSa", b"PHUT", b"AgHg", b"DCSR"):
        (rid,) = struct.unpack_from(">H", data, pos + 4)
        name_len = data[pos + 6]
        name_size = name_len + 1 + ((name_len + 1) % 2)
        size_at = pos + 6 + name_size
        if size_at + 4 > len(data):
            break
        (size,) = struct.unpack_from(">I", data, size_at)
        body = data[size_at + 4 : size_at + 4 + size]
        if rid in _IRB_THUMBNAILS:
            findings.append(Finding(Category.hidden, "Photoshop thumbnail resource", f"{size} bytes", where))
        elif rid == 0x0424:
            findings += xmp_findings(body, f"{where} (XMP resource)")
        names.append(_IRB_NAMES.get(rid, f"resource 0x{rid:04x}"))
        pos = size_at + 4 + size + (size % 2)
    detail = ", ".join(dict.fromkeys(names)) or "unparsed"
    return [Finding(Category.metadata, "Photoshop resources (IRB)", detail, where), *findings]


def _icc_text(profile: bytes, signature: bytes) -> str:
    count = struct.unpack_from(">I", profile, 128)[0] if len(profile) >= 132 else 0
    for i in range(min(count, 256)):
        at = 132 + 12 * i
        if at + 12 > len(profile):
            break
        sig, offset, size = struct.unpack_from(">4sII", profile, at)
        if sig != signature:
            continue
        body = profile[offset : offset + min(size, 4096)]
        if body[:4] == b"desc" and len(body) >= 12:
            (n,) = struct.unpack_from(">I", body, 8)
            return excerpt(body[12 : 12 + n], 60)
        if body[:4] == b"mluc" and len(body) >= 28:
            length, start = struct.unpack_from(">II", body, 20)
            return excerpt(body[start : start + length].decode("utf-16-be", "replace"), 60)
        if body[:4] == b"text":
            return excerpt(body[8:], 60)
    return ""


def icc_finding(profile: bytes, where: str) -> Finding:
    """The ICC profile with its description, copyright and creation date (free text that can identify)."""
    parts = []
    for label, sig in (("description", b"desc"), ("copyright", b"cprt")):
        text = _icc_text(profile, sig)
        if text:
            parts.append(f"{label} '{text}'")
    if len(profile) >= 36:
        year, month, day, hour, minute, _ = struct.unpack_from(">6H", profile, 24)
        if year:
            parts.append(f"created {year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}")
    return Finding(Category.metadata, f"ICC profile ({len(profile)} bytes)", "; ".join(parts), where)
