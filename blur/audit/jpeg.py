"""JPEG, walked marker by marker from the raw bytes.

Allowed: the image itself (quantisation and Huffman tables, frame and scan headers, restart
intervals), APP0 JFIF without a thumbnail, APP14 Adobe (colour transform), and an EXIF block that holds
only orientation, resolution and colour space. Everything else is reported.
"""

from __future__ import annotations

import struct

from blur.audit.embedded import icc_finding, irb_findings, signature_findings, signatures, xmp_findings
from blur.audit.exif import exif_findings
from blur.audit.model import Category, Finding
from blur.textsafe import excerpt

_NO_LENGTH = {0x01, *range(0xD0, 0xD8)}
_IMAGE_MARKERS = {0xC4, 0xCC, 0xDA, 0xDB, 0xDD, 0xDC, 0xDF, *range(0xC0, 0xD0)}
_SOS, _EOI, _SOI, _COM = 0xDA, 0xD9, 0xD8, 0xFE


def _app0(payload: bytes, where: str) -> list[Finding]:
    if payload.startswith(b"JFIF\x00"):
        if len(payload) >= 14 and payload[12] and payload[13]:
            return [Finding(Category.hidden, "JFIF thumbnail", f"{payload[12]}x{payload[13]} pixels", where)]
        return []
    if payload.startswith(b"JFXX\x00"):
        return [Finding(Category.hidden, "JFXX thumbnail extension", f"{len(payload)} bytes", where)]
    return [Finding(Category.metadata, "APP0 segment", excerpt(payload[:16]), where)]


def _app1(payload: bytes, where: str) -> list[Finding]:
    if payload.startswith(b"Exif\x00"):
        return exif_findings(payload[6:], where)
    if payload.startswith(b"http://ns.adobe.com/xap/1.0/\x00"):
        return xmp_findings(payload[29:], where)
    if payload.startswith(b"http://ns.adobe.com/xmp/extension/\x00"):
        return [Finding(Category.metadata, "extended XMP", f"{len(payload)} bytes", where)]
    return [Finding(Category.metadata, "APP1 segment", excerpt(payload[:24]), where)]


def _app2(payload: bytes, where: str, icc: list[bytes]) -> list[Finding]:
    if payload.startswith(b"ICC_PROFILE\x00"):
        icc.append(payload[14:])
        return []
    if payload.startswith(b"MPF\x00"):
        return [
            Finding(Category.hidden, "MPF multi-picture index", "extra images are stored after the main image", where)
        ]
    return [Finding(Category.metadata, "APP2 segment", excerpt(payload[:16]), where)]


def _segment(marker: int, payload: bytes, where: str, icc: list[bytes]) -> list[Finding]:
    """Findings for one segment; image-structure segments yield none."""
    if marker in _IMAGE_MARKERS:
        return []
    if marker == 0xE0:
        return _app0(payload, where)
    if marker == 0xE1:
        return _app1(payload, where)
    if marker == 0xE2:
        return _app2(payload, where, icc)
    if marker == 0xEE and payload.startswith(b"Adobe"):
        return []
    if marker == 0xED and payload.startswith(b"Photoshop 3.0\x00"):
        return irb_findings(payload[14:], where)
    if marker == 0xEB and payload[:2] == b"JP":
        found = [Finding(Category.metadata, "JUMBF / C2PA manifest (APP11)", f"{len(payload)} bytes", where)]
        if b"thumbnail" in payload:
            found.append(Finding(Category.hidden, "C2PA thumbnail", where=where))
        return found
    if marker == _COM:
        return [Finding(Category.metadata, "comment (COM)", excerpt(payload), where)]
    if 0xE0 <= marker <= 0xEF:
        return [Finding(Category.metadata, f"APP{marker - 0xE0} segment", excerpt(payload[:24]), where)]
    return [Finding(Category.metadata, f"unknown marker 0x{marker:02X}", f"{len(payload)} bytes", where)]


def _skip_scan(data: bytes, at: int) -> int:
    """The offset of the first marker after entropy-coded data starting at `at`, or len(data)."""
    while True:
        j = data.find(b"\xff", at)
        if j < 0 or j + 1 >= len(data):
            return len(data)
        nxt = data[j + 1]
        if nxt == 0x00 or 0xD0 <= nxt <= 0xD7 or nxt == 0xFF:
            at = j + 1 if nxt == 0xFF else j + 2
            continue
        return j


def _trailer(data: bytes, at: int) -> list[Finding]:
    tail = data[at:]
    if not tail:
        return []
    kinds = sorted({kind for _, kind in signatures(tail)})
    what = "zero padding" if not tail.strip(b"\x00\xff") else ", ".join(kinds) or "unknown data"
    found = [Finding(Category.hidden, "data after the end of the image", f"{len(tail)} bytes: {what}", f"offset {at}")]
    return found + signature_findings(tail, at, "after the end of the image")[:8]


def _stray(data: bytes, pos: int, findings: list[Finding]) -> int:
    """Report bytes between segments (libjpeg skips them, so they can hide anything); return the next 0xFF."""
    nxt = data.find(b"\xff", pos)
    end = len(data) if nxt < 0 else nxt
    findings.append(Finding(Category.hidden, "stray data between segments", f"{end - pos} bytes", f"offset {pos}"))
    findings += signature_findings(data[pos:end], pos, "stray data")
    return end


def _step(data: bytes, pos: int, findings: list[Finding], icc: list[bytes]) -> int | None:
    """Handle the marker at `pos`; return where the next one starts, or None at the end of the file."""
    marker = data[pos + 1]
    if marker == 0xFF:
        return pos + 1
    if marker == _EOI:
        findings += _trailer(data, pos + 2)
        return None
    if marker == _SOI:
        findings.append(Finding(Category.hidden, "second start-of-image marker", where=f"offset {pos}"))
        return pos + 2
    if marker in _NO_LENGTH:
        return pos + 2
    (length,) = struct.unpack_from(">H", data, pos + 2) if pos + 4 <= len(data) else (0,)
    end = pos + 2 + length
    if length < 2 or end > len(data):
        findings.append(Finding(Category.error, "truncated or corrupt JPEG", f"segment 0x{marker:02X} at offset {pos}"))
        return None
    payload = data[pos + 4 : end]
    where = f"{_marker_name(marker)} at offset {pos}"
    findings += _segment(marker, payload, where, icc)
    if marker not in _IMAGE_MARKERS and marker != 0xE1 and not payload.startswith(b"MPF\x00"):
        findings += signature_findings(payload, pos + 4, where)
    return _skip_scan(data, end) if marker == _SOS else end


def jpeg_findings(data: bytes) -> list[Finding]:
    """Every segment, embedded image and trailing byte of a JPEG that is not part of the picture."""
    if not data.startswith(b"\xff\xd8"):
        return [Finding(Category.error, "not a JPEG", "no start-of-image marker")]
    findings: list[Finding] = []
    icc: list[bytes] = []
    pos: int | None = 2
    while pos is not None:
        if pos >= len(data) - 1:
            findings.append(Finding(Category.error, "truncated JPEG", "no end-of-image marker"))
            break
        pos = _stray(data, pos, findings) if data[pos] != 0xFF else _step(data, pos, findings, icc)
    if icc:
        findings.append(icc_finding(b"".join(icc), "APP2 ICC_PROFILE"))
    return findings


def _marker_name(marker: int) -> str:
    if 0xE0 <= marker <= 0xEF:
        return f"APP{marker - 0xE0}"
    return {_COM: "COM", _SOS: "SOS"}.get(marker, f"marker 0x{marker:02X}")
