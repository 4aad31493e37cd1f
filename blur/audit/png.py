"""PNG, walked chunk by chunk from the raw bytes.

Allowed: the chunks that define the picture and how to display it (IHDR, PLTE, IDAT, IEND, tRNS,
gAMA, cHRM, sRGB, cICP, pHYs, sBIT, bKGD, hIST) and APNG's animation frames (acTL, fcTL, fdAT), which
the face check reads like the first picture. Text, EXIF, ICC, time stamps, animation frames,
unknown chunks and anything after IEND are reported.
"""

from __future__ import annotations

import struct
import zlib

from blur.audit.embedded import icc_finding, signature_findings, signatures, xmp_findings
from blur.audit.exif import exif_findings
from blur.audit.model import Category, Finding
from blur.textsafe import excerpt

SIGNATURE = b"\x89PNG\r\n\x1a\n"
ALLOWED = frozenset(
    {
        b"IHDR",
        b"PLTE",
        b"IDAT",
        b"IEND",
        b"tRNS",
        b"gAMA",
        b"cHRM",
        b"sRGB",
        b"cICP",
        b"pHYs",
        b"sBIT",
        b"bKGD",
        b"hIST",
    }
)
_ANIMATION = frozenset({b"acTL", b"fcTL", b"fdAT"})
_INFLATE_LIMIT = 1 << 20
"""Decompress at most this much of a text or profile chunk: enough to describe it, never a bomb."""


def _inflate(data: bytes) -> bytes:
    try:
        return zlib.decompressobj().decompress(data, _INFLATE_LIMIT)
    except zlib.error:
        return b""


def _text(kind: bytes, payload: bytes) -> tuple[str, bytes]:
    """Keyword and (decompressed) text of a tEXt, zTXt or iTXt chunk."""
    keyword, _, rest = payload.partition(b"\x00")
    if kind == b"zTXt":
        return keyword.decode("latin-1"), _inflate(rest[1:])
    if kind == b"iTXt":
        flag = rest[:1] == b"\x01"
        _lang, _, rest = rest[2:].partition(b"\x00")
        _translated, _, text = rest.partition(b"\x00")
        return keyword.decode("latin-1"), _inflate(text) if flag else text
    return keyword.decode("latin-1"), rest


def _chunk(kind: bytes, payload: bytes, where: str) -> list[Finding]:
    if kind in ALLOWED:
        return []
    if kind in (b"tEXt", b"zTXt", b"iTXt"):
        keyword, text = _text(kind, payload)
        if keyword == "XML:com.adobe.xmp":
            return xmp_findings(text, where)
        found = [Finding(Category.metadata, f"PNG text '{excerpt(keyword, 40)}'", excerpt(text), where)]
        return found + signature_findings(text, 0, f"{where} (decompressed)")
    if kind == b"eXIf":
        return exif_findings(payload, where) or [
            Finding(Category.metadata, "eXIf chunk", f"{len(payload)} bytes", where)
        ]
    if kind == b"iCCP":
        name, _, rest = payload.partition(b"\x00")
        icc = icc_finding(_inflate(rest[1:]), where)
        return [Finding(icc.category, icc.what, f"name '{excerpt(name, 40)}'; {icc.detail}", where)]
    if kind == b"tIME" and len(payload) == 7:
        year, month, day, hour, minute, second = struct.unpack(">HBBBBB", payload)
        stamp = f"{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d}"
        return [Finding(Category.metadata, "modification time (tIME)", stamp, where)]
    if kind in _ANIMATION:
        return []  # APNG frames are pictures a viewer shows: the face check reads every one
    if kind == b"caBX":
        return [Finding(Category.metadata, "C2PA manifest (caBX)", f"{len(payload)} bytes", where)]
    label = excerpt(kind.decode("latin-1"))
    found = [Finding(Category.metadata, f"chunk '{label}'", f"{len(payload)} bytes", where)]
    return found + signature_findings(payload, 0, where)


def _after_iend(data: bytes, at: int) -> list[Finding]:
    tail = data[at:]
    if not tail:
        return []
    kinds = {kind for _, kind in signatures(tail)}
    if b"IDAT" in tail or b"IEND" in tail:
        kinds.add("remains of an earlier PNG (aCropalypse-style tail)")
    what = ", ".join(sorted(kinds)) or "unknown data"
    return [Finding(Category.hidden, "data after IEND", f"{len(tail)} bytes: {what}", f"offset {at}")]


def png_findings(data: bytes) -> list[Finding]:
    """Every chunk beyond the picture's own, and anything after IEND."""
    if not data.startswith(SIGNATURE):
        return [Finding(Category.error, "not a PNG", "no PNG signature")]
    findings: list[Finding] = []
    pos = len(SIGNATURE)
    while True:
        if pos + 12 > len(data):
            findings.append(Finding(Category.error, "truncated PNG", f"no IEND chunk (stopped at offset {pos})"))
            return findings
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if not kind.isalpha() or end > len(data):
            findings.append(Finding(Category.error, "corrupt or truncated PNG", f"chunk at offset {pos}"))
            return findings
        where = f"chunk '{kind.decode('latin-1')}' at offset {pos}"
        findings += _chunk(kind, data[pos + 8 : pos + 8 + length], where)
        if kind == b"IEND":
            return findings + _after_iend(data, end)
        pos = end
