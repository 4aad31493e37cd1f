"""ISO-BMFF (HEIF, AVIF, MP4) boxes and brands, read from the bytes without decoding anything.

The `ftyp` brands (and, where they name no codec, the item types) tell an AVIF from a HEIF from a
video; `blur.media.heif_layout` reads the rest of a HEIF or AVIF's item tables. Every size and
offset is checked against the data; nothing is allocated from a declared size.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

from blur.errors import MediaReadError

MAX_META_BYTES = 16 << 20
"""A `meta` box larger than this is refused: item tables and properties are a few kilobytes."""

MAX_TOP_BOXES = 4096

AVIF_BRANDS = frozenset({b"avif", b"avis", b"avio", b"MA1B", b"MA1A"})

HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"jpeg", b"avci"})

STRUCTURAL_IMAGE_BRANDS = frozenset({b"mif1", b"mif2", b"mif3", b"msf1", b"miaf", b"MiHA", b"MiHB", b"MiHE", b"MiAn"})
"""Brands that say "a HEIF image or image sequence" without naming the codec."""

RAW_BRANDS = frozenset({b"crx "})
"""Camera raw files in ISO-BMFF (Canon CR3): neither a photo blur can decode nor a video."""

Extent = tuple[int, int, int]
"""Where an item's bytes lie: construction method (0: in the file, 1: in `idat`), offset, length."""


@dataclass(frozen=True, slots=True)
class Box:
    """One box: its type, where it starts, where its payload starts and where it ends (may lie past EOF)."""

    kind: bytes
    start: int
    payload: int
    end: int


@dataclass(frozen=True, slots=True)
class Item:
    """One HEIF item: its type, whether it is hidden, and its properties that blur reads."""

    ident: int
    kind: bytes
    hidden: bool = False
    size: tuple[int, int] | None = None
    rotation: int = 0
    aux_type: str = ""
    icc: bytes = b""
    extents: tuple[Extent, ...] = ()


def read_uint(data: bytes, at: int, size: int) -> int:
    """A big-endian unsigned field of `size` bytes (0 reads as 0), refusing to read past the data."""
    if size == 0:
        return 0
    if at + size > len(data):
        msg = "box field runs past the end of its box"
        raise ValueError(msg)
    return int.from_bytes(data[at : at + size], "big")


def boxes_in(data: bytes, start: int = 0, end: int | None = None) -> list[Box]:
    """The boxes laid out one after another in `data[start:end]` (the last may end past the data)."""
    end = len(data) if end is None else end
    found: list[Box] = []
    pos = start
    while pos + 8 <= end and len(found) < MAX_TOP_BOXES:
        size, kind = struct.unpack_from(">I4s", data, pos)
        payload = pos + 8
        if size == 1:
            if pos + 16 > end:
                break
            size = read_uint(data, pos + 8, 8)
            payload = pos + 16
        elif size == 0:
            size = end - pos
        if size < payload - pos:
            msg = f"box '{kind.decode('latin-1')}' at byte {pos} declares an impossible size {size}"
            raise ValueError(msg)
        found.append(Box(kind, pos, payload, pos + size))
        pos += size
    return found


def brands_of(head: bytes) -> tuple[bytes, ...]:
    """The major and compatible brands of an `ftyp` box at the start of `head` (empty when there is none)."""
    if len(head) < 16 or head[4:8] != b"ftyp":
        return ()
    size = min(struct.unpack_from(">I", head, 0)[0], len(head))
    major = head[8:12]
    compatible = [head[i : i + 4] for i in range(16, size - 3, 4)]
    return (major, *compatible)


def _item_types(head: bytes) -> set[bytes]:
    """Item types named in the `iinf` box of `head`, as far as `head` reaches (for sniffing)."""
    try:
        top = boxes_in(head)
        meta = next((b for b in top if b.kind == b"meta"), None)
        if meta is None:
            return set()
        for child in boxes_in(head, meta.payload + 4, min(meta.end, len(head))):
            if child.kind == b"iinf":
                return {item.kind for item in infe_items(head, child, min(child.end, len(head)))}
    except (ValueError, struct.error):
        return set()
    return set()


def image_format(head: bytes) -> str | None:
    """ "AVIF" or "HEIF" for an ISO-BMFF image, "RAW" for a camera raw, None for anything else (video).

    The major brand decides when it names a codec; otherwise the compatible brands, then the item
    types of the first bytes. A file that names only structural image brands (`mif1`, `msf1`) and
    no codec is taken as HEIF, whose decoder then says what it is.
    """
    brands = brands_of(head)
    if not brands:
        return None
    major, listed = brands[0], set(brands)
    if major in RAW_BRANDS:
        return "RAW"
    if major in AVIF_BRANDS:
        return "AVIF"
    if major in HEIF_BRANDS:
        return "HEIF"
    if major == b"qt  ":
        return None
    if not listed & (STRUCTURAL_IMAGE_BRANDS | AVIF_BRANDS | HEIF_BRANDS):
        return None
    if listed & AVIF_BRANDS and not listed & HEIF_BRANDS:
        return "AVIF"
    if listed & HEIF_BRANDS:
        return "HEIF"
    types = _item_types(head)
    if b"av01" in types and b"hvc1" not in types:
        return "AVIF"
    return "HEIF"


def infe_items(data: bytes, iinf: Box, end: int) -> list[Item]:
    version = data[iinf.payload]
    count_size = 2 if version == 0 else 4
    first = iinf.payload + 4 + count_size
    items: list[Item] = []
    for infe in boxes_in(data, first, min(iinf.end, end)):
        if infe.kind != b"infe" or infe.end > end:
            continue
        v = data[infe.payload]
        flags = read_uint(data, infe.payload + 1, 3)
        if v < 2:
            continue
        id_size = 2 if v == 2 else 4
        ident = read_uint(data, infe.payload + 4, id_size)
        at = infe.payload + 4 + id_size + 2
        items.append(Item(ident, data[at : at + 4], hidden=bool(flags & 1)))
    return items


def top_boxes(fh: BinaryIO, file_size: int) -> list[tuple[Box, bytes]]:
    """Top-level boxes with the bytes of `ftyp` and `meta` (others are skipped, not read)."""
    found: list[tuple[Box, bytes]] = []
    pos = 0
    while pos + 8 <= file_size and len(found) < MAX_TOP_BOXES:
        fh.seek(pos)
        header = fh.read(16)
        size, kind = struct.unpack_from(">I4s", header, 0)
        payload = pos + 8
        if size == 1 and len(header) >= 16:
            size = int.from_bytes(header[8:16], "big")
            payload = pos + 16
        elif size == 0:
            size = file_size - pos
        if size < payload - pos:
            msg = f"box at byte {pos} declares an impossible size {size}"
            raise MediaReadError(msg)
        box = Box(kind, pos, payload, pos + size)
        data = b""
        if kind in (b"ftyp", b"meta"):
            if size > MAX_META_BYTES:
                msg = f"'{kind.decode('latin-1')}' box of {size} bytes is larger than any real one"
                raise MediaReadError(msg)
            fh.seek(pos)
            data = fh.read(size)
        found.append((box, data))
        pos += size
    return found
