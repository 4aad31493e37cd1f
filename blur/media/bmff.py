"""ISO-BMFF (HEIF, AVIF, MP4) structure, read from the bytes without decoding anything.

What blur needs before it decodes a HEIF or AVIF picture: the brands of the `ftyp` box (image or
video), the item types (HEVC or AV1), the primary image's size and rotation (`ispe`, `irot`), the
top-level images (what is not a thumbnail, an auxiliary image or a grid tile), the auxiliary images
that will be dropped (depth, mattes, gain maps), and whether the file ends before the data its
boxes and item locations declare (a truncated file). Every size and offset is checked against the
data; nothing is allocated from a declared size.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import BinaryIO

from blur.errors import MediaReadError

MAX_META_BYTES = 16 << 20
"""A `meta` box larger than this is refused: item tables and properties are a few kilobytes."""

MAX_TOP_BOXES = 4096

IMAGE_ITEM_TYPES = frozenset({b"hvc1", b"av01", b"grid", b"iden", b"iovl", b"jpeg", b"avc1", b"unci", b"vvc1", b"j2k1"})

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


def _u(data: bytes, at: int, size: int) -> int:
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
            size = _u(data, pos + 8, 8)
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
                return {item.kind for item in _infe_items(head, child, min(child.end, len(head)))}
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


def _infe_items(data: bytes, iinf: Box, end: int) -> list[Item]:
    version = data[iinf.payload]
    count_size = 2 if version == 0 else 4
    first = iinf.payload + 4 + count_size
    items: list[Item] = []
    for infe in boxes_in(data, first, min(iinf.end, end)):
        if infe.kind != b"infe" or infe.end > end:
            continue
        v = data[infe.payload]
        flags = _u(data, infe.payload + 1, 3)
        if v < 2:
            continue
        id_size = 2 if v == 2 else 4
        ident = _u(data, infe.payload + 4, id_size)
        at = infe.payload + 4 + id_size + 2
        items.append(Item(ident, data[at : at + 4], hidden=bool(flags & 1)))
    return items


def _properties(data: bytes, ipco: Box) -> list[tuple[bytes, object]]:
    """The property boxes of `ipco`, in order (1-based indices in `ipma`), with the values blur reads."""
    props: list[tuple[bytes, object]] = []
    for box in boxes_in(data, ipco.payload, ipco.end):
        value: object = None
        if box.kind == b"ispe" and box.end >= box.payload + 12:
            value = (_u(data, box.payload + 4, 4), _u(data, box.payload + 8, 4))
        elif box.kind == b"irot" and box.end > box.payload:
            value = data[box.payload] & 3
        elif box.kind == b"colr" and data[box.payload : box.payload + 4] in (b"prof", b"rICC"):
            value = data[box.payload + 4 : box.end]
        elif box.kind == b"auxC" and box.end > box.payload + 4:
            value = data[box.payload + 4 : box.end].split(b"\0", 1)[0].decode("latin-1")
        props.append((box.kind, value))
    return props


def _associations(data: bytes, ipma: Box) -> dict[int, list[int]]:
    version, flags = data[ipma.payload], _u(data, ipma.payload + 1, 3)
    count = _u(data, ipma.payload + 4, 4)
    pos = ipma.payload + 8
    out: dict[int, list[int]] = {}
    for _ in range(min(count, 1 << 16)):
        id_size = 2 if version < 1 else 4
        ident = _u(data, pos, id_size)
        n = _u(data, pos + id_size, 1)
        pos += id_size + 1
        wide = 2 if flags & 1 else 1
        mask = 0x7FFF if wide == 2 else 0x7F
        out[ident] = [_u(data, pos + i * wide, wide) & mask for i in range(n)]
        pos += n * wide
    return out


def _references(data: bytes, iref: Box) -> list[tuple[bytes, int, list[int]]]:
    version = data[iref.payload]
    id_size = 2 if version == 0 else 4
    refs: list[tuple[bytes, int, list[int]]] = []
    for box in boxes_in(data, iref.payload + 4, iref.end):
        source = _u(data, box.payload, id_size)
        count = _u(data, box.payload + id_size, 2)
        first = box.payload + id_size + 2
        targets = [_u(data, first + i * id_size, id_size) for i in range(min(count, 1 << 16))]
        refs.append((box.kind, source, targets))
    return refs


def _extents(data: bytes, iloc: Box) -> dict[int, list[Extent]]:
    """Every item's extents from the `iloc` box (an extent of length 0 runs to the end of the file)."""
    version = data[iloc.payload]
    sizes = data[iloc.payload + 4], data[iloc.payload + 5]
    offset_size, length_size, base_size = sizes[0] >> 4, sizes[0] & 15, sizes[1] >> 4
    index_size = sizes[1] & 15 if version in (1, 2) else 0
    count_size = 2 if version < 2 else 4
    count = _u(data, iloc.payload + 6, count_size)
    pos = iloc.payload + 6 + count_size
    found: dict[int, list[Extent]] = {}
    for _ in range(min(count, 1 << 16)):
        id_size = 2 if version < 2 else 4
        ident = _u(data, pos, id_size)
        pos += id_size
        method = 0
        if version in (1, 2):
            method = _u(data, pos, 2) & 15
            pos += 2
        pos += 2  # data reference index
        base = _u(data, pos, base_size)
        pos += base_size
        extents = _u(data, pos, 2)
        pos += 2
        spans = found.setdefault(ident, [])
        for _ in range(extents):
            pos += index_size
            offset = _u(data, pos, offset_size)
            length = _u(data, pos + offset_size, length_size)
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
            found.primary = _u(data, box.payload + 4, 2 if data[box.payload] == 0 else 4)
        elif box.kind == b"iinf":
            found.items = {item.ident: item for item in _infe_items(data, box, meta.end)}
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
    head = _top_boxes(fh, file_size)
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


def _top_boxes(fh: BinaryIO, file_size: int) -> list[tuple[Box, bytes]]:
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
