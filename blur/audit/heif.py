"""HEIF/HEIC, inspected through libheif (pillow-heif): thumbnails, depth and auxiliary images (gain
maps, portrait and skin mattes), EXIF, XMP, other metadata items and ICC profiles, of every top-level
image."""

from __future__ import annotations

import io
from typing import Any

from blur.audit.embedded import icc_finding, xmp_findings
from blur.audit.exif import exif_findings
from blur.audit.model import Category, Finding
from blur.errors import MediaReadError
from blur.media.heif_layout import read_layout


def _image_findings(info: dict[str, Any], where: str) -> list[Finding]:
    findings: list[Finding] = []
    exif = info.get("exif")
    if exif:
        findings += exif_findings(bytes(exif), where) or [
            Finding(Category.metadata, "EXIF item", f"{len(exif)} bytes", where)
        ]
    xmp = info.get("xmp")
    if xmp:
        findings += xmp_findings(bytes(xmp), where)
    for item in info.get("metadata") or []:
        kind = item.get("type", "?") if isinstance(item, dict) else "?"
        findings.append(Finding(Category.metadata, f"metadata item '{kind}'", where=where))
    icc = info.get("icc_profile")
    if icc:
        findings.append(icc_finding(bytes(icc), where))
    return findings


def _hidden_images(data: bytes) -> list[Finding]:
    """Thumbnails, depth maps, mattes and gain maps, from the item references themselves: what pillow-heif
    lists depends on options a decoder elsewhere in the process may have turned off."""
    try:
        layout = read_layout(io.BytesIO(data), len(data))
    except MediaReadError as exc:
        return [Finding(Category.error, "HEIF item tables could not be read", str(exc))]
    findings: list[Finding] = []
    if layout.thumbnails:
        findings.append(Finding(Category.hidden, "thumbnail image(s)", str(layout.thumbnails)))
    depth = [a for a in layout.auxiliary if "depth" in a.lower() or a.endswith("auxid:2")]
    if depth:
        findings.append(Finding(Category.hidden, "depth image(s)", ", ".join(depth)))
    others = [a for a in layout.auxiliary if a not in depth]
    if others:
        findings.append(Finding(Category.hidden, "auxiliary image(s) (gain map, mattes)", ", ".join(sorted(others))))
    return findings


def heif_findings(data: bytes) -> list[Finding]:
    """Everything in a HEIF file besides one primary image's pixels."""
    import pillow_heif  # noqa: PLC0415 - libheif only when a HEIF is audited

    try:
        heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=False)
    except Exception as exc:  # noqa: BLE001 - libheif raises several types on hostile data
        return [Finding(Category.error, "HEIF structure could not be read", f"{type(exc).__name__}: {exc}")]
    # Several top-level images (a burst, a stereo pair) are pictures a viewer shows: the face check
    # reads every one, so only what comes with them is reported.
    findings = _hidden_images(data)
    for index, image in enumerate(heif):
        where = "primary image" if image.info.get("primary") else f"image {index}"
        findings += _image_findings(dict(image.info), where)
    return findings
