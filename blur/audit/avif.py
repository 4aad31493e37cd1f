"""AVIF (and any ISO-BMFF image), walked box by box (`blur.media.bmff`): EXIF and XMP items, ICC
profiles, thumbnails, auxiliary images (depth, mattes, gain maps) and unknown top-level boxes.

Several top-level images and an image sequence's frames are pictures a viewer shows: the face
check reads every one of them, so they are not reported here.
"""

from __future__ import annotations

import io
import struct

from blur.audit.embedded import icc_finding, signature_findings, xmp_findings
from blur.audit.exif import exif_findings
from blur.audit.model import Category, Finding
from blur.errors import MediaReadError
from blur.media.bmff import Item
from blur.media.heif_layout import HeifLayout, item_bytes, read_layout
from blur.textsafe import excerpt

PICTURE_BOXES = frozenset({b"ftyp", b"meta", b"mdat", b"free", b"skip", b"moov"})
"""Top-level boxes of a picture: its type, item tables, coded data, padding and (sequences) the track."""


def _item_findings(data: bytes, layout: HeifLayout, item: Item) -> list[Finding]:
    where = f"item {item.ident} ('{excerpt(item.kind.decode('latin-1'))}')"
    findings: list[Finding] = []
    if item.kind == b"Exif":
        payload = item_bytes(data, layout, item.ident)
        skip = struct.unpack(">I", payload[:4])[0] + 4 if len(payload) >= 4 else 0
        findings += exif_findings(payload[skip:], where) or [
            Finding(Category.metadata, "EXIF item", f"{len(payload)} bytes", where)
        ]
    elif item.kind == b"mime":
        payload = item_bytes(data, layout, item.ident)
        findings += xmp_findings(payload, where) if b"xmpmeta" in payload or b"xap" in payload else []
        findings += [] if findings else [Finding(Category.metadata, "metadata item (mime)", excerpt(payload), where)]
    elif item.kind == b"uri ":
        findings.append(Finding(Category.metadata, "metadata item (uri)", where=where))
    if item.icc:
        findings.append(icc_finding(item.icc, where))
    return findings


def avif_findings(data: bytes) -> list[Finding]:
    """Everything in an AVIF besides its pictures' pixels and technical properties."""
    try:
        layout = read_layout(io.BytesIO(data), len(data))
    except MediaReadError as exc:
        return [Finding(Category.error, "AVIF structure could not be read", str(exc))]
    if layout.truncated:
        detail = f"the data ends at byte {layout.file_size} of {layout.declared_end}"
        return [Finding(Category.error, "truncated AVIF", detail)]
    findings: list[Finding] = []
    for item in layout.items.values():
        findings += _item_findings(data, layout, item)
    if layout.thumbnails:
        findings.append(Finding(Category.hidden, "thumbnail image(s)", str(layout.thumbnails)))
    if layout.auxiliary:
        findings.append(
            Finding(Category.hidden, "auxiliary image(s) (depth, mattes, gain map)", ", ".join(layout.auxiliary))
        )
    for kind in layout.boxes:
        if kind not in PICTURE_BOXES:
            name = excerpt(kind.decode("latin-1"))
            findings.append(Finding(Category.metadata, f"top-level box '{name}'", where="file"))
    tail = data[layout.declared_end :]
    if tail:
        findings.append(Finding(Category.hidden, "data after the last box", f"{len(tail)} bytes"))
        findings += signature_findings(tail, layout.declared_end, "after the last box")
    return findings
