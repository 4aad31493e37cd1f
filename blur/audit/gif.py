"""GIF, walked block by block from the raw bytes.

Allowed: the screen descriptor and colour tables, images, graphic control extensions (timing,
transparency) and the NETSCAPE/ANIMEXTS loop extension. Comments, plain-text extensions, XMP, ICC
and other application extensions, and anything after the trailer are reported.
"""

from __future__ import annotations

from blur.audit.embedded import icc_finding, signature_findings, xmp_findings
from blur.audit.model import Category, Finding
from blur.textsafe import excerpt

LOOP_APPS = (b"NETSCAPE2.0", b"ANIMEXTS1.0")
XMP_APP = b"XMP DataXMP"
ICC_APP = b"ICCRGBG1012"
MAX_BLOCKS = 1 << 20


class _Cut(Exception):
    """The data ends inside a block."""


def _table(flags: int) -> int:
    """Bytes of the colour table a descriptor's flags declare."""
    return 3 << ((flags & 7) + 1) if flags & 0x80 else 0


def _sub_blocks(data: bytes, pos: int) -> tuple[bytes, int]:
    """The payload of a chain of sub-blocks starting at `pos`, and the offset after its terminator."""
    parts: list[bytes] = []
    for _ in range(MAX_BLOCKS):
        if pos >= len(data):
            raise _Cut
        size = data[pos]
        if size == 0:
            return b"".join(parts), pos + 1
        if pos + 1 + size > len(data):
            raise _Cut
        parts.append(data[pos + 1 : pos + 1 + size])
        pos += 1 + size
    raise _Cut


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    """The offset after a chain of sub-blocks (image data, never copied)."""
    for _ in range(1 << 24):
        if pos >= len(data):
            raise _Cut
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos
    raise _Cut


def _extension(label: int, payload: bytes, where: str) -> list[Finding]:
    if label == 0xF9:  # graphic control: delay, disposal, transparency
        return []
    if label == 0xFE:
        return [Finding(Category.metadata, "GIF comment", excerpt(payload), where)]
    if label == 0x01:
        text = payload[12:]
        return [Finding(Category.metadata, "GIF plain-text extension", excerpt(text), where)]
    if label != 0xFF:
        return [Finding(Category.metadata, f"unknown GIF extension 0x{label:02x}", f"{len(payload)} bytes", where)]
    app, body = payload[:11], payload[11:]
    if app in LOOP_APPS:
        return []
    if app == XMP_APP:
        return xmp_findings(body, where)
    if app == ICC_APP:
        return [icc_finding(body, where)]
    name = excerpt(app.decode("latin-1"), 40)
    found = [Finding(Category.metadata, f"GIF application extension '{name}'", f"{len(body)} bytes", where)]
    return found + signature_findings(body, 0, where)


def _after_trailer(data: bytes, at: int) -> list[Finding]:
    tail = data[at:]
    if not tail:
        return []
    found = [Finding(Category.hidden, "data after the GIF trailer", f"{len(tail)} bytes", f"offset {at}")]
    return found + signature_findings(tail, at, "after the GIF trailer")


def gif_findings(data: bytes) -> list[Finding]:
    """Every block beyond the pictures, their colour tables, timing and loop count; anything after the trailer."""
    if len(data) < 13 or data[:6] not in (b"GIF87a", b"GIF89a"):
        return [Finding(Category.error, "not a GIF", "no GIF header")]
    findings: list[Finding] = []
    pos = 13 + _table(data[10])
    try:
        for _ in range(MAX_BLOCKS):
            if pos >= len(data):
                raise _Cut
            marker = data[pos]
            if marker == 0x3B:
                return findings + _after_trailer(data, pos + 1)
            if marker == 0x21:
                if pos + 2 > len(data):
                    raise _Cut
                payload, end = _sub_blocks(data, pos + 2)
                findings += _extension(data[pos + 1], payload, f"extension at offset {pos}")
                pos = end
            elif marker == 0x2C:
                if pos + 10 > len(data):
                    raise _Cut
                pos = _skip_sub_blocks(data, pos + 10 + _table(data[pos + 9]) + 1)
            else:
                findings.append(Finding(Category.error, "corrupt GIF", f"unknown block 0x{marker:02x} at offset {pos}"))
                return findings
    except _Cut:
        findings.append(Finding(Category.error, "truncated GIF", f"the data ends inside a block (offset {pos})"))
        return findings
    findings.append(Finding(Category.error, "corrupt GIF", "too many blocks"))
    return findings
