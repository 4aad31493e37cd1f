"""What each photo encoder can hold, checked from the input's header before any pixel is decoded.

blur writes a photo back in its own format, so an input that its own format's encoder cannot hold is
either written in a form that fits (a HEIF grid of tiles, as cameras write large pictures; a
BigTIFF) or refused at once with the reason, never after a minute of decoding and detecting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from blur.errors import UnsupportedMediaError

MAX_SIDE: dict[str, int] = {
    "JPEG": 65_500,  # libjpeg's JPEG_MAX_DIMENSION
    "WEBP": 16_383,  # the VP8/VP8L headers hold 14 bits
    "GIF": 65_535,  # 16-bit logical screen
    "PNG": 2**31 - 1,
    "TIFF": 2**32 - 1,
    "HEIF": 2**31 - 1,
    "AVIF": 32_768,  # libavif refuses to decode wider or taller pictures (measured: 40000 px encodes, never decodes)
}
"""Longest side each encoder writes (and common decoders read back)."""

X265_MAX_LUMA = 142_606_336
"""x265 refuses pictures with more luma samples than this ("Image too large for x265"): above it a
HEIF is written as a grid of tiles, each encoded on its own."""

HEIF_TILES = (512, 1024, 2048, 4096)
"""Tile sizes tried for a HEIF grid, smallest first (512 is what phones write)."""

HEIF_MAX_ITEMS = 1000
"""libheif refuses to read files with more items than this (tiles, grids, metadata) by default."""

HEIF_MAX_GRID_SIDE = 256
"""A grid item stores its columns and rows in one byte each."""

CLASSIC_TIFF_BYTES = 3 << 30
"""Classic TIFF offsets are 32-bit (4 GiB); above this estimate a BigTIFF is written."""

LZW_WORST = 1.5
"""LZW can grow incompressible data; the size estimate allows for it."""


@dataclass(frozen=True, slots=True)
class EncodePlan:
    """The form an output takes: `heif_tile` > 0 writes HEIF pictures above the x265 limit as grids of
    tiles of that side; `big_tiff` writes a BigTIFF."""

    heif_tile: int = 0
    big_tiff: bool = False


def _refuse(path: Path, reason: str) -> UnsupportedMediaError:
    return UnsupportedMediaError(f"{path}: {reason}; refused before decoding")


def _heif_tile(path: Path, sizes: Sequence[tuple[int, int]], alpha: bool) -> int:
    """The smallest tile side whose grids, over every picture of the file, stay within libheif's limits."""
    large = [(w, h) for w, h in sizes if w * h > X265_MAX_LUMA]
    if not large:
        return 0
    if alpha:
        w, h = large[0]
        reason = (
            f"HEIF with transparency cannot hold {w}x{h} ({w * h / 1e6:.0f} MP): x265 encodes at most "
            f"{X265_MAX_LUMA / 1e6:.1f} MP in one picture and libheif keeps no transparency on a grid of tiles"
        )
        raise _refuse(path, reason)
    for tile in HEIF_TILES:
        # pillow-heif tiles every picture larger than the tile in either direction, not only the large ones.
        grids = [(math.ceil(w / tile), math.ceil(h / tile)) for w, h in sizes if max(w, h) > tile]
        items = sum(c * r + 1 for c, r in grids) + len(sizes) - len(grids)
        if items <= HEIF_MAX_ITEMS and all(max(c, r) <= HEIF_MAX_GRID_SIDE for c, r in grids):
            return tile
    w, h = large[0]
    raise _refuse(path, f"HEIF cannot hold {len(sizes)} picture(s) of up to {w}x{h} even as grids of tiles")


def plan_output(path: Path, fmt: str, sizes: Sequence[tuple[int, int]], *, alpha: bool = False) -> EncodePlan:
    """How `fmt` can hold pictures of `sizes` (every frame, page or image of one file), or why it cannot.

    Raises:
        UnsupportedMediaError: the format's encoder cannot hold a picture this large, in any form.
    """
    limit = MAX_SIDE.get(fmt)
    if limit is not None:
        for w, h in sizes:
            if max(w, h) > limit:
                raise _refuse(path, f"{fmt} cannot hold a {w}x{h} picture (at most {limit} pixels a side)")
    if fmt == "HEIF":
        return EncodePlan(heif_tile=_heif_tile(path, sizes, alpha))
    if fmt == "TIFF":
        raw = sum(w * h * (4 if alpha else 3) for w, h in sizes)
        return EncodePlan(big_tiff=raw * LZW_WORST > CLASSIC_TIFF_BYTES)
    return EncodePlan()
