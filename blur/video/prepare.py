"""Decode-thread work on each frame: upright 4:2:0 planes, strictly increasing timestamps, the
detector's copies and the scene-cut flag."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from blur.errors import MediaReadError
from blur.media.planes import DecodedFrame, detector_copy, to_planes
from blur.media.video_read import AudioChunk, VideoInfo
from blur.types import Detections, Frame
from blur.video.cuts import CutDetector
from blur.video.options import VideoOptions
from blur.video.schedule import detection_plan

if TYPE_CHECKING:
    from av.video.frame import VideoFrame


@dataclass(slots=True)
class Prepared:
    """A decoded frame ready for detection: the detector's copies and whether a shot starts here."""

    frame: DecodedFrame
    small: Frame
    fine: Frame | None
    cut: bool
    coarse: Detections | None = None
    """The coarse pass's faces in frame pixels, once detected."""
    fine_job: Future[list[Detections]] | None = None
    """The full fine pass, started as the frame was decoded (parallel detection)."""
    last: bool = False
    """The last frame of its shot (before a cut, or the clip's last): a full fine pass whatever the
    schedule says, as the first frame of a shot gets (`cut`)."""


class Timeline:
    """Gives every frame a strictly increasing pts and a positive duration."""

    def __init__(self, info: VideoInfo) -> None:
        self.step = max(1, round(1 / (info.rate * info.time_base)))
        self.last: int | None = None
        self.adjusted = 0

    def place(self, frame: VideoFrame) -> tuple[int, int]:
        pts = frame.pts
        if pts is None:
            pts = 0 if self.last is None else self.last + self.step
            self.adjusted += self.last is not None
        elif self.last is not None and pts <= self.last:
            pts = self.last + 1
            self.adjusted += 1
        self.last = pts
        return pts, frame.duration if frame.duration and frame.duration > 0 else self.step


class Prepare:
    """Decode-thread work on each frame: upright 4:2:0 planes, timestamps, detector copies, cut flag."""

    def __init__(self, source: Path, info: VideoInfo, options: VideoOptions) -> None:
        self.source = source
        self.info = info
        self.timeline = Timeline(info)
        self.plan = detection_plan(info.width, info.height, options)
        self.cuts = CutDetector(options.cut)
        self.count = 0

    def __call__(self, frame: VideoFrame) -> Prepared:
        """Prepare the next frame in order; the first frame of a shot always gets a fine copy."""
        turns = self.info.quarter_turns
        planes = to_planes(frame, turns, self.info.colour[0])
        if (planes.width, planes.height) != (self.info.width, self.info.height):
            size = f"{planes.width}x{planes.height}, not {self.info.width}x{self.info.height}"
            msg = f"{self.source}: frame {self.count} is {size}; videos that change size are not supported"
            raise MediaReadError(msg)
        pts, duration = self.timeline.place(frame)
        small = detector_copy(frame, self.plan.coarse, turns)
        cut = self.cuts(small)
        wanted = self.plan.fine and (cut or self.plan.wants_fine(self.count))
        fine = detector_copy(frame, self.plan.fine, turns) if wanted and self.plan.fine else None
        prepared = Prepared(DecodedFrame(self.count, planes, pts, duration), small, fine, cut)
        self.count += 1
        return prepared

    def end_shot(self, prepared: Prepared, frame: VideoFrame) -> None:
        """Mark `prepared` (made from `frame`) as the last frame of its shot, with a fine copy."""
        prepared.last = True
        if prepared.fine is None and self.plan.fine is not None:
            prepared.fine = detector_copy(frame, self.plan.fine, self.info.quarter_turns)


def prepare_shots(items: Iterable[VideoFrame | AudioChunk], prepare: Prepare) -> Iterator[Prepared | AudioChunk]:
    """Every item in order, frames prepared. Each prepared frame is held back until the next one is
    prepared (with the audio read after it), so the last frame of a shot (the next frame starts a new
    shot, or there is none) is known as such and gets a fine copy (`Prepare.end_shot`)."""
    held: tuple[VideoFrame, Prepared] | None = None
    after: list[AudioChunk] = []
    for item in items:
        if isinstance(item, AudioChunk):
            if held is None:
                yield item
            else:
                after.append(item)
            continue
        prepared = prepare(item)
        if held is not None:
            if prepared.cut:
                prepare.end_shot(held[1], held[0])
            yield held[1]
            yield from after
        held, after = (item, prepared), []
    if held is not None:
        prepare.end_shot(held[1], held[0])
        yield held[1]
        yield from after
