"""WebP, walked chunk by chunk from the RIFF container's raw bytes.

Allowed: VP8, VP8L, VP8X and ALPH (the picture and its alpha), and ANIM and ANMF (an animation's
frames, which the face check reads like a still picture; each frame's own chunks are checked too).
EXIF, XMP and ICC chunks, unknown chunks and bytes after the RIFF container are reported.
"""

from __future__ import annotations

import struct

from blur.audit.embedded import icc_finding, signature_findings, xmp_findings
from blur.audit.exif import exif_findings
from blur.audit.model import Category, Finding
from blur.textsafe import excerpt

ALLOWED = frozenset({b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM"})
FRAME_HEADER = 16
"""Bytes of an ANMF chunk before its frame's own chunks: offset, size, duration, flags."""


def _chunk(kind: bytes, payload: bytes, where: str, *, top: bool = True) -> list[Finding]:
    if kind in ALLOWED:
        return []
    if kind == b"EXIF":
        return exif_findings(payload, where) or [
            Finding(Category.metadata, "EXIF chunk", f"{len(payload)} bytes", where)
        ]
    if kind == b"XMP ":
        return xmp_findings(payload, where)
    if kind == b"ICCP":
        return [icc_finding(payload, where)]
    if kind == b"ANMF" and top:
        return _walk(payload, FRAME_HEADER, len(payload), f"{where}, ", top=False)
    name = excerpt(kind.decode("latin-1"))
    return [
        Finding(Category.metadata, f"chunk '{name}'", f"{len(payload)} bytes", where),
        *signature_findings(payload, 0, where),
    ]


def _walk(data: bytes, pos: int, end: int, prefix: str, *, top: bool) -> list[Finding]:
    """Findings of the chunks in `data[pos:end]` (a chunk overrunning its container is an error)."""
    findings: list[Finding] = []
    while pos + 8 <= end:
        kind, length = struct.unpack_from("<4sI", data, pos)
        chunk_end = pos + 8 + length
        if chunk_end > end:
            findings.append(
                Finding(Category.error, "corrupt WebP", f"{prefix}chunk at offset {pos} overruns its container")
            )
            return findings
        where = f"{prefix}chunk '{excerpt(kind.decode('latin-1'))}' at offset {pos}"
        findings += _chunk(kind, data[pos + 8 : chunk_end], where, top=top)
        pos = chunk_end + (length % 2)
    return findings


def webp_findings(data: bytes) -> list[Finding]:
    """Every chunk beyond the picture's own (in each animation frame too), and anything after the RIFF container."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return [Finding(Category.error, "not a WebP", "no RIFF/WEBP header")]
    (size,) = struct.unpack_from("<I", data, 4)
    riff_end = 8 + size
    findings: list[Finding] = []
    if riff_end > len(data):
        findings.append(
            Finding(Category.error, "truncated WebP", f"RIFF declares {size} bytes, {len(data) - 8} present")
        )
        riff_end = len(data)
    findings += _walk(data, 12, riff_end, "", top=True)
    tail = data[8 + size :] if 8 + size < len(data) else b""
    if tail:
        findings.append(
            Finding(Category.hidden, "data after the RIFF container", f"{len(tail)} bytes", f"offset {8 + size}")
        )
        findings += signature_findings(tail, 8 + size, "after the RIFF container")
    return findings
