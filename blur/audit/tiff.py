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
TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}


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
        codes = {3: "H", 4: "I", 13: "I"}
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
    """Every directory reachable from the header, in walk order."""

    order: str
    ifds: tuple[Ifd, ...]


def _entry(data: bytes, order: str, at: int) -> Entry | None:
    tag, typ, count = struct.unpack_from(f"{order}HHI", data, at)
    size = TYPE_SIZES.get(typ)
    if size is None:
        return Entry(tag, typ, count, b"", at + 8)
    length = size * count
    if length <= 4:
        return Entry(tag, typ, count, data[at + 8 : at + 8 + length], at + 8)
    (offset,) = struct.unpack_from(f"{order}I", data, at + 8)
    value = data[offset : offset + length] if offset + length <= len(data) else b""
    return Entry(tag, typ, count, value, offset)


def _read_ifd(data: bytes, order: str, name: str, offset: int) -> tuple[Ifd, int]:
    if offset + 2 > len(data):
        msg = f"{name} directory at offset {offset} lies outside the data"
        raise TiffError(msg)
    (count,) = struct.unpack_from(f"{order}H", data, offset)
    if count > MAX_ENTRIES or offset + 2 + 12 * count > len(data):
        msg = f"{name} directory at offset {offset} declares {count} entries that do not fit"
        raise TiffError(msg)
    ifd = Ifd(name, offset)
    for i in range(count):
        entry = _entry(data, order, offset + 2 + 12 * i)
        if entry is not None:
            ifd.entries[entry.tag] = entry
    end = offset + 2 + 12 * count
    nxt = struct.unpack_from(f"{order}I", data, end)[0] if end + 4 <= len(data) else 0
    return ifd, nxt


def parse_tiff(data: bytes) -> TiffStructure:
    """Walk the header, the main directory chain and every EXIF, GPS, interop and sub-image directory.

    Raises:
        TiffError: not a TIFF header, BigTIFF, or a directory that does not fit or loops.
    """
    if data[:4] == b"II*\x00":
        order = "<"
    elif data[:4] == b"MM\x00*":
        order = ">"
    elif data[:4] in (b"II+\x00", b"MM\x00+"):
        msg = "BigTIFF structure is not audited"
        raise TiffError(msg)
    else:
        msg = "no TIFF header"
        raise TiffError(msg)
    if len(data) < 8:
        msg = "TIFF header cut short"
        raise TiffError(msg)
    (first,) = struct.unpack_from(f"{order}I", data, 4)
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
        ifd, nxt = _read_ifd(data, order, name, offset)
        ifds.append(ifd)
        for tag, child in IFD_POINTERS.items():
            if tag in ifd.entries:
                pending.extend((child, off) for off in ifd.entries[tag].ints(order))
        if name.startswith("IFD") and nxt:
            chain += 1
            pending.append((f"IFD{chain}", nxt))
    return TiffStructure(order, tuple(ifds))
