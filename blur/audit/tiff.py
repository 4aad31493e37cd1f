"""TIFF structure, parsed from raw bytes: the image file directories of TIFF files and EXIF blocks.

Every offset is checked against the data; loops and absurd entry counts end the walk with an error
instead of hanging or allocating.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from blur.audit.tags import IFD_POINTERS
from blur.errors import BlurError

MAX_IFDS = 256
MAX_ENTRIES = 4096
TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}


class TiffError(BlurError):
    """The TIFF structure is malformed, so it cannot be checked completely."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One tag of a directory, with its raw value bytes (empty when they lie outside the data)."""

    tag: int
    type: int
    count: int
    value: bytes
    value_at: int

    def ints(self, order: str) -> list[int]:
        """The value as unsigned integers (SHORT, LONG or IFD types), or [] for other types."""
        codes = {3: "H", 4: "I", 13: "I", 16: "Q", 18: "Q"}
        code = codes.get(self.type)
        if code is None or len(self.value) < self.count * TYPE_SIZES[self.type]:
            return []
        return list(struct.unpack(f"{order}{self.count}{code}", self.value[: self.count * TYPE_SIZES[self.type]]))


@dataclass(slots=True)
class Ifd:
    """One image file directory: its role, where it lies and its entries by tag."""

    name: str
    offset: int
    entries: dict[int, Entry] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TiffStructure:
    """Every directory reachable from the header, in walk order (`big`: a BigTIFF, 64-bit offsets)."""

    order: str
    ifds: tuple[Ifd, ...]
    big: bool = False


@dataclass(frozen=True, slots=True)
class _Layout:
    """Field sizes of classic TIFF (count 2, entry 12, offsets 4) and BigTIFF (8, 20, 8)."""

    order: str
    count: str = "H"
    entry: int = 12
    offset: str = "I"

    @property
    def width(self) -> int:
        return struct.calcsize(self.offset)


def _entry(data: bytes, lay: _Layout, at: int) -> Entry | None:
    tag, typ, count = struct.unpack_from(f"{lay.order}HH{lay.offset}", data, at)
    value_at = at + 4 + lay.width
    size = TYPE_SIZES.get(typ)
    if size is None:
        return Entry(tag, typ, count, b"", value_at)
    length = size * count
    if length <= lay.width:
        return Entry(tag, typ, count, data[value_at : value_at + length], value_at)
    (offset,) = struct.unpack_from(f"{lay.order}{lay.offset}", data, value_at)
    value = data[offset : offset + length] if offset + length <= len(data) else b""
    return Entry(tag, typ, count, value, offset)


def _read_ifd(data: bytes, lay: _Layout, name: str, offset: int) -> tuple[Ifd, int]:
    head = struct.calcsize(lay.count)
    if offset + head > len(data):
        msg = f"{name} directory at offset {offset} lies outside the data"
        raise TiffError(msg)
    (count,) = struct.unpack_from(f"{lay.order}{lay.count}", data, offset)
    if count > MAX_ENTRIES or offset + head + lay.entry * count > len(data):
        msg = f"{name} directory at offset {offset} declares {count} entries that do not fit"
        raise TiffError(msg)
    ifd = Ifd(name, offset)
    for i in range(count):
        entry = _entry(data, lay, offset + head + lay.entry * i)
        if entry is not None:
            ifd.entries[entry.tag] = entry
    end = offset + head + lay.entry * count
    nxt = struct.unpack_from(f"{lay.order}{lay.offset}", data, end)[0] if end + lay.width <= len(data) else 0
    return ifd, nxt


def parse_tiff(data: bytes) -> TiffStructure:
    """Walk the header, the main directory chain and every EXIF, GPS, interop and sub-image directory
    (classic TIFF and BigTIFF).

    Raises:
        TiffError: not a TIFF header, or a directory that does not fit or loops.
    """
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        lay = _Layout("<" if data[0] == ord("I") else ">")
        first_at = 4
    elif data[:4] in (b"II+\x00", b"MM\x00+"):
        lay = _Layout("<" if data[0] == ord("I") else ">", count="Q", entry=20, offset="Q")
        first_at = 8
        if len(data) < 16 or struct.unpack_from(f"{lay.order}HH", data, 4) != (8, 0):
            msg = "BigTIFF header cut short or not 8-byte offsets"
            raise TiffError(msg)
    else:
        msg = "no TIFF header"
        raise TiffError(msg)
    order = lay.order
    if len(data) < first_at + lay.width:
        msg = "TIFF header cut short"
        raise TiffError(msg)
    (first,) = struct.unpack_from(f"{order}{lay.offset}", data, first_at)
    pending: list[tuple[str, int]] = [("IFD0", first)]
    seen: set[int] = set()
    ifds: list[Ifd] = []
    chain = 0
    while pending:
        name, offset = pending.pop(0)
        if offset == 0:
            continue
        if offset in seen or len(ifds) >= MAX_IFDS:
            msg = f"{name} directory at offset {offset} loops back or there are too many directories"
            raise TiffError(msg)
        seen.add(offset)
        ifd, nxt = _read_ifd(data, lay, name, offset)
        ifds.append(ifd)
        for tag, child in IFD_POINTERS.items():
            if tag in ifd.entries:
                pending.extend((child, off) for off in ifd.entries[tag].ints(order))
        if name.startswith("IFD") and nxt:
            chain += 1
            pending.append((f"IFD{chain}", nxt))
    return TiffStructure(order, tuple(ifds), lay.width == 8)
