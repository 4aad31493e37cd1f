"""The faces of each frame: the coarse pass on every frame, and the fine pass the schedule says is due.

Every frame is searched downscaled (the coarse pass, `batch` frames at a time). Some frames are also
searched at full size (the fine pass, `blur.video.schedule`): over the whole frame on a fixed grid of
frames, and in windows around the small faces only the fine pass finds on the frames between. The
weak small faces a fine pass finds are searched again, upscaled, in small windows around them
(`CONFIRM_SIDE`): far-away faces score too low at their own size to start a track.

With parallel detection (many cores), a detect thread runs the coarse pass ahead of the main thread,
and a small pool starts the full fine passes as frames are decoded; the main thread takes a full
pass's result where the schedule says it is due, so the output is the same as with one thread.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

import cv2
import numpy as np

from blur.media.video_read import VideoInfo
from blur.types import Detections, Frame, nms
from blur.video.options import FINE_WORKERS, VideoOptions, parallel_detection, video_detector
from blur.video.prepare import Prepared
from blur.video.schedule import (
    CONFIRM_SCALE,
    CONFIRM_SIDE,
    MERGE_IOU,
    DetectionPlan,
    FineSchedule,
    Window,
    best_iou,
    confirm_windows,
)
from blur.video.threads import END, Failure
from blur.video.tracking import Tracker

if TYPE_CHECKING:
    from blur.engine import Engine


class FrameDetection:
    """Runs the coarse and fine passes of one video and turns their faces into frame pixels."""

    def __init__(
        self, engine: Engine, info: VideoInfo, options: VideoOptions, tracker: Tracker, plan: DetectionPlan
    ) -> None:
        self.info = info
        self.options = options
        self.tracker = tracker
        self.plan = plan
        self.detector = video_detector(engine, tracker.cfg.low)
        self.parallel = parallel_detection(options, self.detector)
        # The detect thread gets its own detector object (they share the ONNX Runtime session).
        self.coarse_detector = video_detector(engine, tracker.cfg.low) if self.parallel else self.detector
        self.fine_pool = ThreadPoolExecutor(FINE_WORKERS, "blur-fine") if self.parallel else None
        hold = max(1, math.ceil(options.dense_hold_seconds * float(info.rate)))
        self.schedule = FineSchedule(plan, hold, tracker.cfg.high, focus=options.focus)
        self.wide = True
        """Whether the last frame between full passes that had a fine copy got a full pass (at the
        start, nothing is known yet: start them all until the schedule says otherwise)."""

    def start_full(self, prepared: Prepared) -> Future[list[Detections]] | None:
        """Start the full fine pass on a frame as it is decoded (parallel detection), where it will surely
        run or where it may (no focused passes, or the last pass between was a full one). Only the
        work's place depends on this, never the result."""
        if self.fine_pool is None or prepared.fine is None:
            return None
        edge = prepared.last or prepared.cut
        if not (self.plan.full(prepared.frame.index) or edge or not self.options.focus or self.wide):
            return None
        return self.fine_pool.submit(self.detector.detect_batch, [prepared.fine])

    def shutdown(self, *, cancel: bool = False) -> None:
        """Wait for the fine-pass pool (parallel detection), cancelling what has not started if asked."""
        if self.fine_pool is not None:
            self.fine_pool.shutdown(wait=True, cancel_futures=cancel)

    def with_coarse(self, items: Iterable[object]) -> Iterator[object]:
        """The same items in the same order, frames with their coarse detections (run `batch` at a time)."""
        held: list[object] = []
        frames: list[Prepared] = []
        for item in items:
            if isinstance(item, Failure):
                yield item  # the frames held back will not be needed
                return
            end = item is END
            if not end:
                held.append(item)
                if isinstance(item, Prepared):
                    frames.append(item)
            if end or len(frames) >= self.options.batch:
                self._coarse(frames)
                yield from held
                held, frames = [], []
            if end:
                yield item
                return

    def _coarse(self, frames: list[Prepared]) -> None:
        if not frames:
            return
        found = self.coarse_detector.detect_batch([p.small for p in frames])
        for prepared, dets in zip(frames, found, strict=True):
            prepared.coarse = self._to_frame(dets, prepared.small)

    def fine(self, prepared: Prepared, coarse: Detections) -> Detections:
        """The frame's coarse faces plus those of the fine pass the schedule says is due (if any)."""
        image, job = prepared.fine, prepared.fine_job
        prepared.fine = prepared.fine_job = None  # the copy is not needed any more
        index = prepared.frame.index
        if image is None:
            return coarse
        full = prepared.last or prepared.cut or self.schedule.full(index)
        windows = [] if full else self.schedule.focus_windows(index)
        # Faces all over the frame make the passes between full ones full too: start them as frames
        # are decoded, while that lasts.
        if not self.plan.full(index):
            self.wide = full
        if job is not None and not full:
            job.cancel()
        if not full and not windows:
            return coarse
        if full:
            dets = (job.result() if job is not None else self.detector.detect_batch([image]))[0]
        else:
            dets = self._in_windows(image, windows)
        to_fine = image.shape[1] / self.info.width, image.shape[0] / self.info.height
        dets = self._confirm_small(image, dets, index, to_fine)
        self.schedule.ran(index, coarse.scaled(*to_fine), dets, full=full)
        return nms(Detections.concat([coarse, self._to_frame(dets, image)]), MERGE_IOU)

    def _in_windows(self, image: Frame, windows: list[Window]) -> Detections:
        """Faces in `windows` of `image`, in the image's pixels (windows of one size share a batch)."""
        parts = []
        for size in sorted({(x1 - x0, y1 - y0) for x0, y0, x1, y1 in windows}):
            group = [w for w in windows if (w[2] - w[0], w[3] - w[1]) == size]
            found = self.detector.detect_batch([image[y0:y1, x0:x1] for x0, y0, x1, y1 in group])
            parts += [d.shifted(x0, y0) for d, (x0, y0, _, _) in zip(found, group, strict=True)]
        return Detections.concat(parts)

    def _confirm_small(self, image: Frame, dets: Detections, index: int, to_fine: tuple[float, float]) -> Detections:
        """`dets` (in the fine copy `image`, whose scale to the frame is `to_fine`) with their weak small
        faces searched again, upscaled, in windows around them: a face scoring at least the tracker's
        `high` there replaces the weak one (and can start a track)."""
        cfg = self.tracker.cfg
        side = np.maximum(dets.xyxy[:, 2] - dets.xyxy[:, 0], dets.xyxy[:, 3] - dets.xyxy[:, 1])
        weak = dets[(dets.score >= cfg.low) & (dets.score < cfg.high) & (side <= CONFIRM_SIDE)]
        if not len(weak):
            return dets
        # A weak face where a track is expected continues that track anyway.
        expected = self.tracker.expected(index) * np.array([*to_fine, *to_fine], np.float32)
        weak = weak[best_iou(weak.xyxy, expected) < MERGE_IOU]
        windows = confirm_windows(weak, image.shape[1], image.shape[0])
        if not windows:
            return dets
        crops = [
            np.asarray(
                cv2.resize(
                    image[y0:y1, x0:x1], None, fx=CONFIRM_SCALE, fy=CONFIRM_SCALE, interpolation=cv2.INTER_CUBIC
                ),
                np.uint8,
            )
            for x0, y0, x1, y1 in windows
        ]
        found = self.detector.detect_batch(crops)
        again = Detections.concat(
            [d.scaled(1 / CONFIRM_SCALE).shifted(x0, y0) for d, (x0, y0, _, _) in zip(found, windows, strict=True)]
        )
        again = again[again.score >= cfg.high]
        # Only where a weak face was: a face cut by a window's edge is not a new one.
        confirmed = again[best_iou(again.xyxy, weak.xyxy) >= MERGE_IOU]
        return dets if not len(confirmed) else nms(Detections.concat([dets, confirmed]), MERGE_IOU)

    def _to_frame(self, dets: Detections, image: Frame) -> Detections:
        """Detections in a detector copy -> full-frame coordinates."""
        sx, sy = self.info.width / image.shape[1], self.info.height / image.shape[0]
        return dets if (sx, sy) == (1.0, 1.0) else dets.scaled(sx, sy)
