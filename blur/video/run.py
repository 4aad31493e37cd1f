"""One video's run: the decode, detect and encode threads around the main thread's window and tracker.

    decode thread ──(queue)──> main thread: detect, track, mask ──(queue)──> encode thread

The decode thread prepares each frame (`blur.video.prepare`). The main thread takes each frame's
faces (`blur.video.detection`), feeds the tracker, holds a lookahead window of frames and masks a
frame only once no later detection can change its boxes (`TrackerConfig.horizon` frames). The
encode thread encodes and muxes, copying audio in between. Memory is bounded by the queues plus the
window, never the whole video.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from blur.corrections import Corrections, split_kept
from blur.media.planes import DecodedFrame, Planes
from blur.media.video_read import AudioChunk, VideoInfo
from blur.types import Detections
from blur.video.detection import FrameDetection
from blur.video.masking import entries, mask_frame
from blur.video.options import VideoOptions, threshold_of, tracker_config
from blur.video.prepare import Prepare, Prepared, prepare_shots
from blur.video.record import DetectionLog, VideoRecord
from blur.video.replay import ReplayDetection
from blur.video.samples import FrameSamples
from blur.video.threads import END, Failure, Worker, put, queued
from blur.video.tracking import Tracker

if TYPE_CHECKING:
    from av.video.frame import VideoFrame

    from blur.engine import Engine

Progress = Callable[[int, int | None], None]
"""Called with (frames written, total frames or None)."""


class FrameSink(Protocol):
    """Where the encode thread puts the masked frames: a `VideoWriter`, or a sink that keeps none."""

    @property
    def frames_written(self) -> int: ...

    def write_frame(self, planes: Planes, pts: int, duration: int) -> None: ...

    def write_audio(self, chunk: AudioChunk) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


@dataclass(slots=True)
class Pending:
    """A frame in the lookahead window, with the audio read after it."""

    frame: DecodedFrame
    audio: list[AudioChunk] = field(default_factory=list)


class Run:
    """One video's pipeline: the threads, the window and the tracker.

    About 175 lines, over the usual 150: it is the state the three threads and the main loop share
    (queues, stop flag, window, tracker, counters) and their hand-offs, each a short method; the work
    itself lives in `prepare`, `detection`, `tracking` and `masking`.
    """

    def __init__(
        self,
        source: Path,
        info: VideoInfo,
        items: Iterator[VideoFrame | AudioChunk],
        engine: Engine,
        options: VideoOptions,
        corrections: Corrections | None = None,
        replay: VideoRecord | None = None,
    ) -> None:
        """`replay`: re-render with these recorded detections instead of running the detector."""
        self.source = source
        self.corrections = corrections or Corrections()
        self.first_pts: int | None = None
        self.samples = FrameSamples()
        self.info = info
        self.items = items
        self.engine = engine
        self.options = options
        high = threshold_of(engine.detector)
        self.tracker = Tracker(tracker_config(options, high, float(info.rate)))
        self.prepare = Prepare(source, info, options)
        self.log = DetectionLog()
        self.detection: FrameDetection | ReplayDetection = (
            ReplayDetection(replay, source)
            if replay is not None
            else FrameDetection(engine, info, options, self.tracker, self.prepare.plan)
        )
        self.parallel = self.detection.parallel
        self.stop = threading.Event()
        self.decoded: queue.Queue[Any] = queue.Queue(options.queue)
        self.detected: queue.Queue[Any] = queue.Queue(options.queue)
        self.encoded: queue.Queue[Any] = queue.Queue(options.queue)
        self.window: deque[Pending] = deque()
        self.emitted = 0
        self.faces = 0
        self.peak_window = 0
        self.on_boxes: Callable[[int, Detections], None] | None = None
        """Told each frame's final boxes as it is masked (split videos collect them)."""
        self.on_track: Callable[[int, Detections, bool], None] | None = None
        """Told what the tracker is fed for each frame: its faces (keep regions dropped) and whether a
        shot starts there (split videos track the whole video from these)."""

    def decode_loop(self, first: list[VideoFrame | AudioChunk]) -> None:
        """Decode thread: prepare frames (starting their full fine pass where due), pass audio through,
        then an end marker."""
        try:
            for item in prepare_shots(self._chain(first), self.prepare):
                if self.stop.is_set():
                    return
                if isinstance(item, Prepared):
                    item.fine_job = self.detection.start_full(item)
                put(self.decoded, item, self.stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            put(self.decoded, Failure(exc), self.stop)
            return
        put(self.decoded, END, self.stop)

    def detect_loop(self) -> None:
        """Detect thread (parallel detection): the coarse pass, every item passed on in its order."""
        try:
            for item in self.detection.with_coarse(queued(self.decoded, self.stop, None)):
                put(self.detected, item, self.stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            put(self.detected, Failure(exc), self.stop)

    def _chain(self, first: list[VideoFrame | AudioChunk]) -> Iterator[VideoFrame | AudioChunk]:
        yield from first
        yield from self.items

    def encode_loop(self, writer: FrameSink) -> None:
        """Encode thread: write frames and audio until the end marker, then finish the file."""
        while True:
            try:
                item = self.encoded.get(timeout=0.1)
            except queue.Empty:
                if self.stop.is_set():
                    return
                continue
            if item is END:
                writer.close()
                return
            if isinstance(item, AudioChunk):
                writer.write_audio(item)
            else:
                writer.write_frame(item.planes, item.pts, item.duration)

    def main_loop(self, encoder: Worker, progress: Progress | None) -> None:
        """Main thread: detect (or take the detect thread's results), track, and release final frames."""
        if self.parallel:
            items = queued(self.detected, self.stop, encoder)
        else:
            items = self.detection.with_coarse(queued(self.decoded, self.stop, encoder))
        for item in items:
            if item is END:
                break
            if isinstance(item, Failure):
                raise item.exc
            if isinstance(item, AudioChunk):
                self._audio(item, encoder)
                continue
            if not isinstance(item, Prepared) or item.coarse is None:
                msg = f"unexpected item from the detection stage: {type(item).__name__}"
                raise TypeError(msg)
            self.window.append(Pending(item.frame))
            self.peak_window = max(self.peak_window, len(self.window))
            self._track(item, self.detection.fine(item, item.coarse))
            self._emit(encoder, progress)
        self.tracker.finish()
        self._emit(encoder, progress)
        put(self.encoded, END, self.stop, encoder)

    def _audio(self, chunk: AudioChunk, encoder: Worker) -> None:
        if self.window:
            self.window[-1].audio.append(chunk)
        else:
            put(self.encoded, chunk, self.stop, encoder)

    def _track(self, prepared: Prepared, found: Detections) -> None:
        """Record one frame's faces, drop kept regions and feed the rest to the tracker."""
        seconds = self._seconds(prepared.frame)
        self.log.found(prepared.frame.index, seconds, found, cut=prepared.cut)
        if self.corrections.keep:
            found, kept = split_kept(found, self.corrections.at(seconds)[1])
            if len(kept):
                self.samples.offer("kept", prepared.frame.index, seconds, entries(kept, kept=True))
        if self.on_track is not None:
            self.on_track(prepared.frame.index, found, prepared.cut)
        self.tracker.update(prepared.frame.index, found, cut=prepared.cut)

    def _seconds(self, frame: DecodedFrame) -> float:
        """The frame's time in seconds from the first frame: the clock sidecar time ranges use."""
        if self.first_pts is None:
            self.first_pts = frame.pts
        return float((frame.pts - self.first_pts) * self.info.time_base)

    def _emit(self, encoder: Worker, progress: Progress | None) -> None:
        final = self.tracker.final_until()
        while self.window and self.window[0].frame.index < final:
            pending = self.window.popleft()
            frame = pending.frame
            boxes, idents = self.tracker.boxes_by_track(frame.index)
            self.log.masked(frame.index, boxes, idents)
            if self.on_boxes is not None:
                self.on_boxes(frame.index, boxes)
            seconds = self._seconds(frame)
            for ident, entry in zip(idents, entries(boxes), strict=True):
                self.samples.offer(str(ident), frame.index, seconds, [entry])
            masked = self._mask(frame.planes, boxes, frame.index, seconds)
            self.faces += len(boxes)
            put(self.encoded, replace(frame, planes=masked), self.stop, encoder)
            for chunk in pending.audio:
                put(self.encoded, chunk, self.stop, encoder)
            self.emitted += 1
            self.tracker.release(frame.index + 1)
            if progress is not None:
                progress(self.emitted, self.info.frames)

    def _mask(self, planes: Planes, boxes: Detections, index: int, seconds: float) -> Planes:
        """The frame with its track boxes and the sidecar's add regions active at `seconds` masked."""
        add = self.corrections.at(seconds)[0] if self.corrections.add else None
        if len(boxes) == 0 and (add is None or len(add) == 0):
            return planes
        ellipse = None
        if add is not None and len(add):
            added = Detections.from_arrays(add, np.ones(len(add), np.float32))
            self.samples.offer("added", index, seconds, entries(added, added=True))
            ellipse = self.corrections.ellipses_at(seconds)
        return mask_frame(planes, boxes, add, self.engine.settings.mask, self.info.colour[0], ellipse)
