"""Findings from TIFF structures: EXIF blocks inside other formats, and whole TIFF files."""

from __future__ import annotations

from collections.abc import Mapping

from blur.audit.embedded import icc_finding, irb_findings, signatures, xmp_findings
from blur.audit.model import Category, Finding
from blur.audit.tags import EMBEDDED_ALLOWED, IFD_POINTERS, TIFF_BASELINE, tag_name
from blur.audit.tiff import Entry, Ifd, TiffError, TiffStructure, parse_tiff
from blur.textsafe import excerpt

_EXIF_HEADER = b"Exif\x00\x00"
_THUMB_OFFSET, _THUMB_LENGTH = 0x0201, 0x0202
_NEW_SUBFILE_TYPE = 0x00FE


def _value_text(entry: Entry) -> str:
    if entry.type == 2 and entry.value:
        return excerpt(entry.value, 40)
    if entry.tag in (0x9C9B, 0x9C9C, 0x9C9D, 0x9C9E, 0x9C9F) and entry.value:
        return excerpt(entry.value.decode("utf-16-le", "replace"), 40)
    return ""


def _special(entry: Entry, where: str) -> list[Finding] | None:
    """Findings for tags that hold whole blocks of other metadata, or None for a plain tag."""
    if entry.tag == 0x927C:
        found = [
            Finding(Category.metadata, "maker note", f"{entry.count} bytes of vendor data (serials, counters)", where)
        ]
        if any(kind.endswith("image") for _, kind in signatures(entry.value)):
            found.append(Finding(Category.hidden, "preview image inside the maker note", where=where))
        return found
    if entry.tag == 0x02BC:
        return xmp_findings(entry.value, f"{where}, XMP tag")
    if entry.tag == 0x8649:
        return irb_findings(entry.value, f"{where}, Photoshop tag")
    if entry.tag == 0x8773:
        return [icc_finding(entry.value, f"{where}, ICC tag")]
    if entry.tag == 0x83BB:
        return [Finding(Category.metadata, "IPTC", f"{entry.count} bytes (by-line, caption, place)", where)]
    if entry.tag == 0x935C:
        return [Finding(Category.hidden, "Photoshop layer data", f"{len(entry.value)} bytes", where)]
    return None


def _plain_findings(ifd: Ifd, allowed: frozenset[int], where: str) -> list[Finding]:
    findings: list[Finding] = []
    names: list[str] = []
    for tag, entry in sorted(ifd.entries.items()):
        if tag in allowed or tag in IFD_POINTERS:
            continue
        special = _special(entry, f"{where} {ifd.name}")
        if special is not None:
            findings += special
            continue
        text = _value_text(entry)
        names.append(f"{tag_name(ifd.name, tag)}={text}" if text else tag_name(ifd.name, tag))
    if names:
        what = "EXIF GPS position" if ifd.name == "GPS" else f"EXIF/TIFF tags ({ifd.name})"
        findings.insert(0, Finding(Category.metadata, what, ", ".join(names), f"{where} {ifd.name}"))
    return findings


def _extra_image(ifd: Ifd, order: str, where: str, *, embedded: bool) -> Finding:
    if _THUMB_LENGTH in ifd.entries:
        length = ifd.entries[_THUMB_LENGTH].ints(order)
        size = f"{length[0]}-byte JPEG" if length else "JPEG"
    else:
        width = ifd.entries[0x0100].ints(order) if 0x0100 in ifd.entries else []
        height = ifd.entries[0x0101].ints(order) if 0x0101 in ifd.entries else []
        size = f"{width[0]}x{height[0]} image" if width and height else "image"
    if ifd.name == "SubIFD":
        what = "sub-image (SubIFDs: previews or alternate versions)"
    elif embedded:
        what = f"EXIF thumbnail ({ifd.name})"
    else:
        what = f"reduced-resolution copy ({ifd.name})"
    return Finding(Category.hidden, what, size, f"{where} {ifd.name}")


def structure_findings(
    structure: TiffStructure, allowed: Mapping[str, frozenset[int]], where: str, *, embedded: bool
) -> list[Finding]:
    """Report every directory beyond the pictures as a hidden image, and every tag not allowed.

    In a TIFF file the pages of the main chain are pictures (the face check reads every one) and
    their tags are checked like the first page's; sub-images, reduced-resolution copies and, in an
    EXIF block, every directory after the first (a thumbnail) are hidden images.
    """
    findings: list[Finding] = []
    for ifd in structure.ifds:
        extra = ifd.name.startswith("IFD") and ifd.name != "IFD0"
        page = extra and not embedded and not _reduced(ifd, structure.order)
        if ifd.name == "SubIFD" or (extra and not page):
            findings.append(_extra_image(ifd, structure.order, where, embedded=embedded))
            continue
        findings += _plain_findings(ifd, allowed.get("IFD0" if page else ifd.name, frozenset()), where)
    return findings


def _reduced(ifd: Ifd, order: str) -> bool:
    """Whether a directory is a reduced-resolution copy of another (NewSubfileType bit 0: a preview)."""
    kinds = ifd.entries[_NEW_SUBFILE_TYPE].ints(order) if _NEW_SUBFILE_TYPE in ifd.entries else []
    return bool(kinds and kinds[0] & 1)


def exif_findings(block: bytes, where: str) -> list[Finding]:
    """Findings for an EXIF block embedded in a JPEG, PNG, WebP or HEIF (the `Exif\\0\\0` header is optional)."""
    data = block[len(_EXIF_HEADER) :] if block.startswith(_EXIF_HEADER) else block
    try:
        structure = parse_tiff(data)
    except TiffError as exc:
        return [Finding(Category.metadata, f"EXIF block ({len(block)} bytes)", f"malformed: {exc}", where)]
    return structure_findings(structure, EMBEDDED_ALLOWED, where, embedded=True)


def tiff_findings(data: bytes) -> list[Finding]:
    """Findings for a whole TIFF file: tags beyond the baseline image tags, and every extra image."""
    try:
        structure = parse_tiff(data)
    except TiffError as exc:
        return [Finding(Category.error, "TIFF structure could not be read", str(exc))]
    allowed = {**EMBEDDED_ALLOWED, "IFD0": TIFF_BASELINE}
    return structure_findings(structure, allowed, "TIFF", embedded=False)
