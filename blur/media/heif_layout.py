"""A HEIF or AVIF file's item tables, read from its boxes without decoding anything.

What blur needs before it decodes a picture: the primary image's size and rotation (`ispe`,
`irot`), the top-level images (what is not a thumbnail, an auxiliary image or a grid tile), the
auxiliary images that will be dropped (depth, mattes, gain maps), where each item's bytes lie (for
the audit's EXIF and XMP items), and whether the file ends before the data its boxes and item
locations declare (a truncated file).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import BinaryIO

from blur.errors import MediaReadError
from blur.media.bmff import Box, Extent, Item, boxes_in, brands_of, infe_items, read_uint, top_boxes

IMAGE_ITEM_TYPES = frozenset({b"hvc1", b"av01", b"grid", b"iden", b"iovl", b"jpeg", b"avc1", b"unci", b"vvc1", b"j2k1"})


@dataclass(frozen=True, slots=True)
class HeifLayout:
    """What a HEIF/AVIF file holds, from its boxes alone.

    Attributes:
        brands: the major brand followed by the compatible brands.
        primary: the primary item's id (0 when there is none).
        items: every item by id.
        top_level: ids of the images a viewer shows (not thumbnails, auxiliary images or grid tiles).
        auxiliary: aux type names of the auxiliary images, other than alpha planes.
        thumbnails: how many thumbnail images.
        declared_end: the largest end of a top-level box or item extent (bytes).
        file_size: the bytes present.
    """

    brands: tuple[bytes, ...]
    primary: int
    items: dict[int, Item]
    top_level: tuple[int, ...]
    auxiliary: tuple[str, ...]
    thumbnails: int
    declared_end: int
    file_size: int
    has_track: bool = False
    idat_at: int = -1
    """File offset of the `idat` box's payload (items stored with construction method 1), or -1."""
    boxes: tuple[bytes, ...] = ()
    """The types of the top-level boxes, in order."""

    @property
    def truncated(self) -> bool:
        """Whether the file ends before the data its boxes declare."""
        return self.declared_end > self.file_size

    def upright_size(self, ident: int) -> tuple[int, int] | None:
        """An image item's width and height once its rotation is applied (None when it declares none)."""
        item = self.items.get(ident)
        if item is None or item.size is None:
            return None
        w, h = item.size
        return (h, w) if item.rotation % 2 else (w, h)


def item_bytes(data: bytes, layout: HeifLayout, ident: int) -> bytes:
    """An item's bytes from the whole file `data` (empty where an extent lies outside it)."""
    item = layout.items.get(ident)
    parts: list[bytes] = []
    for method, offset, length in item.extents if item else ():
        start = offset if method == 0 else layout.idat_at + offset if method == 1 and layout.idat_at >= 0 else -1
        end = len(data) if length == 0 else start + length
        if 0 <= start <= end <= len(data):
            parts.append(data[start:end])
    return b"".join(parts)


def _properties(data: bytes, ipco: Box) -> list[tuple[bytes, object]]:
    """The property boxes of `ipco`, in order (1-based indices in `ipma`), with the values blur reads."""
    props: list[tuple[bytes, object]] = []
    for box in boxes_in(data, ipco.payload, ipco.end):
        value: object = None
        if box.kind == b"ispe" and box.end >= box.payload + 12:
            value = (read_uint(data, box.payload + 4, 4), read_uint(data, box.payload + 8, 4))
        elif box.kind == b"irot" and box.end > box.payload:
            value = data[box.payload] & 3
        elif box.kind == b"colr" and data[box.payload : box.payload + 4] in (b"prof", b"rICC"):
            value = data[box.payload + 4 : box.end]
        elif box.kind == b"auxC" and box.end > box.payload + 4:
            value = data[box.payload + 4 : box.end].split(b"\0", 1)[0].decode("latin-1")
        props.append((box.kind, value))
    return props


def _associations(data: bytes, ipma: Box) -> dict[int, list[int]]:
    version, flags = data[ipma.payload], read_uint(data, ipma.payload + 1, 3)
    count = read_uint(data, ipma.payload + 4, 4)
    pos = ipma.payload + 8
    out: dict[int, list[int]] = {}
    for _ in range(min(count, 1 << 16)):
        id_size = 2 if version < 1 else 4
        ident = read_uint(data, pos, id_size)
        n = read_uint(data, pos + id_size, 1)
        pos += id_size + 1
        wide = 2 if flags & 1 else 1
        mask = 0x7FFF if wide == 2 else 0x7F
        out[ident] = [read_uint(data, pos + i * wide, wide) & mask for i in range(n)]
        pos += n * wide
    return out


def _references(data: bytes, iref: Box) -> list[tuple[bytes, int, list[int]]]:
    version = data[iref.payload]
    id_size = 2 if version == 0 else 4
    refs: list[tuple[bytes, int, list[int]]] = []
    for box in boxes_in(data, iref.payload + 4, iref.end):
        source = read_uint(data, box.payload, id_size)
        count = read_uint(data, box.payload + id_size, 2)
        first = box.payload + id_size + 2
        targets = [read_uint(data, first + i * id_size, id_size) for i in range(min(count, 1 << 16))]
        refs.append((box.kind, source, targets))
    return refs


def _extents(data: bytes, iloc: Box) -> dict[int, list[Extent]]:
    """Every item's extents from the `iloc` box (an extent of length 0 runs to the end of the file)."""
    version = data[iloc.payload]
    sizes = data[iloc.payload + 4], data[iloc.payload + 5]
    offset_size, length_size, base_size = sizes[0] >> 4, sizes[0] & 15, sizes[1] >> 4
    index_size = sizes[1] & 15 if version in (1, 2) else 0
    count_size = 2 if version < 2 else 4
    count = read_uint(data, iloc.payload + 6, count_size)
    pos = iloc.payload + 6 + count_size
    found: dict[int, list[Extent]] = {}
    for _ in range(min(count, 1 << 16)):
        id_size = 2 if version < 2 else 4
        ident = read_uint(data, pos, id_size)
        pos += id_size
        method = 0
        if version in (1, 2):
            method = read_uint(data, pos, 2) & 15
            pos += 2
        pos += 2  # data reference index
        base = read_uint(data, pos, base_size)
        pos += base_size
        extents = read_uint(data, pos, 2)
        pos += 2
        spans = found.setdefault(ident, [])
        for _ in range(extents):
            pos += index_size
            offset = read_uint(data, pos, offset_size)
            length = read_uint(data, pos + offset_size, length_size)
            pos += offset_size + length_size
            spans.append((method, base + offset, length))
    return found


@dataclass(slots=True)
class _Meta:
    items: dict[int, Item] = field(default_factory=dict)
    primary: int = 0
    props: list[tuple[bytes, object]] = field(default_factory=list)
    links: dict[int, list[int]] = field(default_factory=dict)
    refs: list[tuple[bytes, int, list[int]]] = field(default_factory=list)
    extents: dict[int, list[Extent]] = field(default_factory=dict)
    idat: int = -1


def _read_meta(data: bytes, meta: Box) -> _Meta:
    found = _Meta()
    for box in boxes_in(data, meta.payload + 4, meta.end):
        if box.kind == b"pitm":
            found.primary = read_uint(data, box.payload + 4, 2 if data[box.payload] == 0 else 4)
        elif box.kind == b"iinf":
            found.items = {item.ident: item for item in infe_items(data, box, meta.end)}
        elif box.kind == b"iloc":
            found.extents = _extents(data, box)
        elif box.kind == b"idat":
            found.idat = box.payload
        elif box.kind == b"iref":
            found.refs = _references(data, box)
        elif box.kind == b"iprp":
            for child in boxes_in(data, box.payload, box.end):
                if child.kind == b"ipco":
                    found.props = _properties(data, child)
                elif child.kind == b"ipma":
                    found.links.update(_associations(data, child))
    return found


def _with_properties(found: _Meta) -> dict[int, Item]:
    items: dict[int, Item] = {}
    for ident, item in found.items.items():
        size, rotation, aux, icc = item.size, item.rotation, item.aux_type, item.icc
        for index in found.links.get(ident, []):
            if not 1 <= index <= len(found.props):
                continue
            kind, value = found.props[index - 1]
            if kind == b"ispe" and isinstance(value, tuple):
                size = (int(value[0]), int(value[1]))
            elif kind == b"irot" and isinstance(value, int):
                rotation = value
            elif kind == b"auxC" and isinstance(value, str):
                aux = value
            elif kind == b"colr" and isinstance(value, bytes):
                icc = value
        extents = tuple(found.extents.get(ident, ()))
        items[ident] = Item(ident, item.kind, item.hidden, size, rotation, aux, icc, extents)
    return items


def _is_alpha(aux_type: str) -> bool:
    return aux_type.endswith(("auxid:1", ":alpha"))


def read_layout(fh: BinaryIO, file_size: int) -> HeifLayout:
    """Walk the top-level boxes (reading only box headers and the `meta` box) and describe the file.

    Raises:
        MediaReadError: no `ftyp`/`meta`, an oversized `meta`, or boxes that do not parse.
    """
    head = top_boxes(fh, file_size)
    ftyp = next((b for b, _ in head if b.kind == b"ftyp"), None)
    meta = next(((b, d) for b, d in head if b.kind == b"meta"), None)
    if ftyp is None or meta is None:
        msg = "no HEIF image structure (ftyp and meta boxes)"
        raise MediaReadError(msg)
    box, data = meta
    top_end = max(b.end for b, _ in head)
    try:
        found = _read_meta(data, Box(box.kind, 0, box.payload - box.start, len(data)))
    except (ValueError, IndexError, struct.error) as exc:
        if top_end > file_size:  # the tables themselves are cut short: say so, not "do not parse"
            return HeifLayout(brands_of(head[0][1]), 0, {}, (), (), 0, top_end, file_size)
        msg = f"the HEIF item tables do not parse ({exc})"
        raise MediaReadError(msg) from exc
    items = _with_properties(found)
    hidden_ids: set[int] = set()
    auxiliary: list[str] = []
    thumbnails = 0
    for kind, source, targets in found.refs:
        if kind in (b"thmb", b"auxl"):
            hidden_ids.add(source)
            thumbnails += kind == b"thmb"
            aux = items[source].aux_type if source in items else ""
            if kind == b"auxl" and not _is_alpha(aux):
                auxiliary.append(aux or "unnamed auxiliary image")
        elif kind in (b"dimg", b"base"):
            hidden_ids.update(targets)
    if any(item.kind == b"tmap" for item in items.values()):
        auxiliary.append("gainmap (tmap)")
    top = tuple(
        ident
        for ident, item in sorted(items.items())
        if item.kind in IMAGE_ITEM_TYPES and not item.hidden and ident not in hidden_ids
    )
    return HeifLayout(
        brands_of(head[0][1]),
        found.primary,
        items,
        top,
        tuple(auxiliary),
        thumbnails,
        max([top_end] + [o + n for spans in found.extents.values() for m, o, n in spans if m == 0]),
        file_size,
        has_track=any(b.kind == b"moov" for b, _ in head),
        idat_at=box.start + found.idat if found.idat >= 0 else -1,
        boxes=tuple(b.kind for b, _ in head),
    )
