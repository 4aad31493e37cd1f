"""Which resolutions and tiles a frame is searched at, chosen from its size."""

from __future__ import annotations

from dataclasses import dataclass, field

TILE = 640
OVERLAP = 96


@dataclass(frozen=True, slots=True)
class Pass:
    """One search of the frame at `scale`; with tiles, over those crops of the scaled frame."""

    scale: float
    tiles: tuple[tuple[int, int, int, int], ...] = field(default=())
    batch: int = 4


def tile_grid(width: int, height: int, tile: int = TILE, overlap: int = OVERLAP) -> tuple[tuple[int, int, int, int], ...]:
    """Overlapping tiles covering a width×height image; edge tiles are shifted inwards to keep full size."""

    def starts(length: int) -> list[int]:
        if length <= tile:
            return [0]
        step = tile - overlap
        out = list(range(0, length - tile, step))
        out.append(length - tile)
        return out

    return tuple(
        (x, y, min(x + tile, width), min(y + tile, height)) for y in starts(height) for x in starts(width)
    )


def plan_passes(width: int, height: int, *, multiscale: bool = True) -> list[Pass]:
    """Plan the passes for one frame size.

    A whole-image pass at native resolution (downscaled if very large) finds large faces. With
    `multiscale`, tiles of the frame upscaled 2× find faces under about 20 px.
    """
    long_side = max(width, height)
    whole = Pass(scale=min(1.0, 2048 / long_side))
    if not multiscale:
        return [whole]
    up = 2.0
    tiles = tile_grid(round(width * up), round(height * up))
    return [whole, Pass(scale=up, tiles=tiles)]
