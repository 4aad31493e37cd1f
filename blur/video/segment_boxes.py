"""The boxes of a split video: what each detection pass returns, the whole video's tracking done by
the client from every pass's faces, and the union each encode pass masks. Pure computation on boxes.

A segment's own tracker starts at its overlap and does not know the tracks that began before it; a
track that lives on weak detections (a face turned away, far off) is then lost where a whole-file
run keeps it. So the client tracks the whole video itself, in frame order, from the faces every
pass fed its tracker in its own frames (`WholeTracks`: the same tracker, the same inputs as a
whole-file run), and each segment is masked with the union of that tracking and every pass's own
boxes over its frames (`union_boxes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from blur.types import Detections
from blur.video.options import VideoOptions, tracker_config
from blur.video.record import DetectionLog
from blur.video.segments import Boxes, Segment, SegmentPlan
from blur.video.tracking import Tracker


@dataclass(frozen=True, slots=True)
class FrameBoxes:
    """Boxes of several frames, packed: `counts[i]` boxes (and scores) of frame `frames[i]`, one after the other."""

    frames: tuple[int, ...] = ()
    counts: tuple[int, ...] = ()
    boxes: Boxes = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros(0, np.float32))

    @classmethod
    def pack(cls, per_frame: dict[int, Detections]) -> FrameBoxes:
        """Pack the frames that have any box."""
        frames = sorted(f for f, d in per_frame.items() if len(d))
        if not frames:
            return cls()
        return cls(
            tuple(frames),
            tuple(len(per_frame[f]) for f in frames),
            np.concatenate([per_frame[f].xyxy for f in frames]).astype(np.float32),
            np.concatenate([per_frame[f].score for f in frames]).astype(np.float32),
        )

    def by_frame(self) -> dict[int, Detections]:
        """The boxes of each frame that has any."""
        out: dict[int, Detections] = {}
        at = 0
        for frame, count in zip(self.frames, self.counts, strict=True):
            out[frame] = Detections.from_arrays(self.boxes[at : at + count], self.scores[at : at + count])
            at += count
        return out


@dataclass(frozen=True, slots=True)
class SegmentBoxes:
    """A detection pass's result.

    Attributes:
        tracked: the boxes its own tracker gave every frame it saw (the overlaps included).
        found: the faces it fed its tracker in the segment's own frames (keep regions dropped).
        logged: the same faces before keep regions took any out (what the review's record keeps).
        cuts: the segment's frames where a shot starts.
        high: the tracker's threshold (the detector's own).
    """

    index: int
    tracked: FrameBoxes
    found: FrameBoxes
    logged: FrameBoxes
    cuts: tuple[int, ...]
    high: float
    tracks: int
    samples: tuple[dict[str, Any], ...]
    seconds: float
    worker: str


class WholeTracks:
    """The whole video's tracking, done here from the detection passes' faces, in frame order: what a
    whole-file run's tracker does with the same faces. A track that started long before a segment
    (and lives on weak detections) is kept, where a pass's own tracker, started at its overlap,
    would not know it."""

    def __init__(self, plan: SegmentPlan, options: VideoOptions | None = None) -> None:
        self.plan = plan
        self.options = options or VideoOptions()
        self.tracker: Tracker | None = None
        self._passes: dict[int, SegmentBoxes] = {}
        self._next = 0
        self._final = 0
        self.boxes: dict[int, Boxes] = {}
        self.masked: list[tuple[Detections, list[int]]] = []
        """Every frame's boxes and the track each comes from, in frame order (for the review's record)."""
        self.cuts: list[int] = []

    def add(self, found: SegmentBoxes) -> None:
        """Take a detection pass's faces; track every segment whose turn has come."""
        self._passes[found.index] = found
        while self._next in self._passes:
            self._feed(self._passes.pop(self._next))
            self._next += 1
        if self._next == len(self.plan.segments) and self.tracker is not None:
            self.tracker.finish()
            self._collect()

    def _feed(self, found: SegmentBoxes) -> None:
        if self.tracker is None:
            rate = float(self.plan.info.rate)
            self.tracker = Tracker(tracker_config(self.options, found.high, rate))
        seg = self.plan.segments[found.index]
        faces, cuts = found.found.by_frame(), set(found.cuts)
        self.cuts += sorted(cuts)
        for frame in range(seg.start, seg.end):
            self.tracker.update(frame, faces.get(frame, Detections.empty()), cut=frame in cuts)
            self._collect()

    def _collect(self) -> None:
        assert self.tracker is not None
        for frame in range(self._final, self.tracker.final_until()):
            boxes, idents = self.tracker.boxes_by_track(frame)
            self.boxes[frame] = boxes.xyxy
            self.masked.append((boxes, idents))
            self.tracker.release(frame + 1)
        self._final = max(self._final, self.tracker.final_until())

    @property
    def final_until(self) -> int:
        """Frames below this have their final boxes."""
        return self._final

    @property
    def tracks(self) -> int:
        """Tracks started so far."""
        return 0 if self.tracker is None else self.tracker.total_tracks

    def take(self, segment: Segment) -> dict[int, Boxes]:
        """The final boxes of `segment`'s frames (forgotten here once taken)."""
        return {f: self.boxes.pop(f) for f in range(segment.start, segment.end) if f in self.boxes}


def union_boxes(
    segment: Segment, passes: list[SegmentBoxes], whole: dict[int, Boxes] | None = None
) -> dict[int, Boxes]:
    """The boxes to mask in `segment`'s frames: the whole video's tracking there, and every box any
    detection pass's own tracker gave them (exact repeats once)."""
    inside = range(segment.start, segment.end)
    merged: dict[int, list[Boxes]] = {f: [b] for f, b in (whole or {}).items() if len(b) and f in inside}
    for found in passes:
        for frame, dets in found.tracked.by_frame().items():
            if frame in inside:
                merged.setdefault(frame, []).append(dets.xyxy)
    return {frame: np.unique(np.concatenate(parts), axis=0).astype(np.float32) for frame, parts in merged.items()}


def detection_log(plan: SegmentPlan, passes: list[SegmentBoxes], whole: WholeTracks) -> DetectionLog:
    """The record a whole-file run keeps for the review app, from a split run: every frame's faces
    (before keep regions) from the pass that owns it, times, cuts, and the whole video's track boxes."""
    log = DetectionLog()
    faces: dict[int, Detections] = {}
    for found in passes:
        faces.update(found.logged.by_frame())
    cuts = set(whole.cuts)
    base = plan.info.time_base
    for frame, pts in enumerate(plan.pts):
        log.found(frame, float((pts - plan.pts[0]) * base), faces.get(frame, Detections.empty()), cut=frame in cuts)
    for frame, (boxes, idents) in enumerate(whole.masked):
        log.masked(frame, boxes, idents)
    return log
