"""Anonymize one video: decode, detect on every frame, track, mask, encode, in overlapping threads.

    decode thread ──(queue)──> main thread: detect, track, mask ──(queue)──> encode thread

The decode thread demuxes and decodes (FFmpeg releases the GIL), turns each frame into upright RGB,
makes the copies the detector sees (a coarse one of every frame, a fine one of every few frames)
and flags scene cuts. The main thread runs the detector (ONNX Runtime releases the GIL) on batches
of frames, feeds the tracker, holds a lookahead window of frames and masks a frame only once no
later detection can change its boxes (`TrackerConfig.horizon` frames). The encode thread converts,
encodes and muxes, copying audio in between. Memory is bounded by the queues plus the window,
never the whole video.

Small faces are found by a fine pass (`FineSchedule`): over the whole frame on a fixed grid of
frames, and, while it keeps finding faces the coarse pass misses, in windows around those faces on
the frames in between. The weak small faces a fine pass finds are searched again, upscaled, in small
windows around them (`CONFIRM_SIDE`): far-away faces score too low at their own size to start a track.

On a machine with many cores (`parallel_detection`), detection leaves the main thread: a detect
thread runs the coarse pass ahead, and a small pool runs the full fine passes as frames are decoded
(those on the fixed grid, and those between while faces are all over the frame). The main thread
keeps the schedule in frame order, runs the small focused passes and takes a full pass's result
where the schedule says it is due, so the output is the same as with one thread: the pool uses
cores that ONNX Runtime cannot keep busy on one image (16 cores run a 1080p pass only about 4.5
times faster than 2).

Any failure (decode error, truncated input, encoder error, frame count mismatch, failed
verification) raises, so `atomic_output` deletes the partial file and nothing is published.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import numpy.typing as npt

from blur.anonymize.filters import anonymize
from blur.anonymize.mask import Piece, add_regions, build_mask, mask_pieces, region_pieces
from blur.config import MaskConfig, MaskMode
from blur.corrections import Corrections, load_corrections, split_kept
from blur.detect import Detector, load_detector
from blur.errors import BlurError, MediaReadError, MediaWriteError
from blur.fsio import atomic_output
from blur.media.video import (
    AudioChunk,
    AudioMode,
    DecodedFrame,
    OutputPlan,
    Planes,
    VideoInfo,
    VideoWriter,
    audio_stream,
    choose_audio,
    declared_picture,
    decode_frames,
    detector_copy,
    encode_spec,
    open_input,
    planes_to_rgb,
    probe,
    rgb_to_planes,
    to_planes,
    verify_output,
    yuv_of,
)
from blur.report import FileResult, Status
from blur.temporal import CutConfig, CutDetector, FrameSamples, Tracker, TrackerConfig
from blur.types import Detections, Frame, Mask, iou_matrix, nms

if TYPE_CHECKING:
    from av.video.frame import VideoFrame

    from blur.discover import Job
    from blur.pipeline import Engine

Progress = Callable[[int, int | None], None]
"""Called with (frames written, total frames or None)."""

DEFAULT_THRESHOLD = 0.3
"""Track-starting score when the detector does not say its own threshold."""

MERGE_IOU = 0.3
"""Coarse and fine detections of one face overlapping this much are merged."""

LOW_FRACTION = 1 / 3
"""Weak detections down to this share of the threshold may continue an existing track (ByteTrack)."""

FOCUS_WINDOW = 256
"""Smallest side of a focused pass's window, in fine-copy pixels (windows grow in steps of this)."""
FOCUS_MARGIN = 48
"""A target face is searched for this far around its last box (at least its own size): motion
between two fine passes."""
FOCUS_MAX_SHARE = 0.5
"""Where the windows around the targets add up to more than this share of the frame, a full pass
runs instead."""
FOUND_AGAIN_IOU = 0.1
"""A focused pass found a target again where one of its faces overlaps the target's box by more than this."""

CONFIRM_SIDE = 16
"""Weak fine-pass faces (between the tracker's low and high scores) up to this size, in fine-copy
pixels, are searched again at `CONFIRM_SCALE` times the size: CenterFace scores faces of 7-13 px low
at their own size (0.15-0.28 on the overhead clip's faces that leaked) and 0.42-0.62 at twice it."""
CONFIRM_WINDOW = 64
"""Side of the window around each weak small face that is searched again, in fine-copy pixels."""
CONFIRM_SCALE = 2
"""How much the windows around weak small faces are enlarged before they are searched again."""

Window = tuple[int, int, int, int]
"""x0, y0, x1, y1 in fine-copy pixels."""


@dataclass(frozen=True, slots=True)
class VideoOptions:
    """How videos are processed. Defaults are measured, not guessed (benchmarks/video.py, --sweep).

    Attributes:
        detect_side: every frame is searched downscaled so its long side is at most this (faces from
            about 25 px at 1080p up; CenterFace finds mid-size and large faces at least as well
            downscaled, and 640 costs a seventh of 1920).
        fine_side: some frames are also searched at up to this long side, for the smaller faces;
            the tracker fills the frames in between (0 disables it). Full-length sweep of the real
            clips (`benchmarks/video.py --sweep`): 640 alone leaked 337 of 341 frames of the overhead
            720p clip and 3 of 105 of the 1080p street clip; 640 + 1920 every 4th, 8th, 9th or 15th
            frame leaked 0 on the street clip.
        fine_every: frames between two fine passes; 0 picks it from the cost (see `detection_plan`).
            Overhead 720p clip, 640 + 1280 every 2nd frame leaked 8, every 4th 15, 8th 34, 15th 176.
        adaptive_fine: run the fine pass at twice that rate for `dense_hold_seconds` after it finds
            a confident face the coarse pass missed in the same frame (small faces in view): overhead
            clip 15 -> 8 leaked frames at 6.6 instead of 8.8 fps; street clip still 0.
        focus: the extra passes of `adaptive_fine` search only windows around the faces that only
            the fine passes found, not the whole frame (`FineSchedule`). 1080p street clip: about 4
            windows of 256 px per extra pass instead of the whole frame, 24 % less CPU on 16 cores,
            the same leaked frames (0) and 7 % more face boxes masked; the overhead clip's faces are
            everywhere, so its extra passes stay full ones.
        batch: frames per detector call (ONNX Runtime runs equal-size frames as one batch).
        parallel: detection off the main thread (see the module notes): None decides from the
            machine (`parallel_detection`); the output is the same either way.
        queue: frames buffered between threads (each way).
        max_gap_seconds: how long a track survives without a detection; shorter gaps are filled.
        pad_seconds: how long a track is masked before its first and after its last detection.
            On the synthetic clips 0.5 s was the shortest pad with no leaked face-frame whatever the
            other settings (0.33 s leaked 2-25, 0.2 s 6-53); on the real clips it also leaked least.
        grow: relative mask growth per frame away from a detection (no measured effect; a margin
            for curved motion across gaps).
        low_fraction: weak detections down to this share of the threshold continue tracks (real
            clips: 6 instead of 9 and 12 instead of 14 leaked frames with it).
        cut: scene-cut thresholds.
    """

    detect_side: int = 640
    fine_side: int = 1920
    fine_every: int = 0
    adaptive_fine: bool = True
    focus: bool = True
    dense_hold_seconds: float = 1.0
    batch: int = 4
    parallel: bool | None = None
    queue: int = 8
    max_gap_seconds: float = 1.0
    pad_seconds: float = 0.5
    grow: float = 0.02
    low_fraction: float = LOW_FRACTION
    cut: CutConfig = field(default_factory=CutConfig)


@dataclass(frozen=True, slots=True)
class VideoStats:
    """What one processed video came to (`peak_window`: most frames held in the lookahead window at once)."""

    frames: int
    faces: int
    tracks: int
    audio: AudioMode
    notes: tuple[str, ...]
    peak_window: int = 0
    samples: tuple[dict[str, Any], ...] = ()
    """A few frames per track (and of kept and added regions) with their boxes, for the review page."""


PARALLEL_MIN_CORES = 8
"""Below this many cores the extra detection threads only compete with the codec threads (2 cores:
5-10 % slower); from it up they overlap (16 cores, 1080p street clip: see README, Video)."""

FINE_WORKERS = 2

MEMORY_SHARE = 0.5
"""The largest share of the machine's memory one video's frames may take (`check_memory`)."""
UNKNOWN_MEMORY = 4 * 2**30
"""The memory assumed where the system does not say how much it has."""
CODEC_FACTOR = 2
"""The decoder's and encoder's own picture buffers (reference and lookahead frames) come to about as
much again as the frames the pipeline holds: peak RSS 1.05 GB on the 1080p street clip and 2.0 GB on
it scaled to 4K, where the pipeline holds 0.18 and 0.72 GB of frames."""


def held_frames(options: VideoOptions, rate: float) -> int:
    """How many decoded frames a video at `rate` fps may hold in memory at once: the lookahead window
    (the tracker's horizon, about a second of frames, plus a detector batch), the queues between the
    threads and the frame each thread is working on."""
    horizon = tracker_config(options, DEFAULT_THRESHOLD, rate).horizon
    return horizon + options.batch + 3 * options.queue + 3


def frame_memory(width: int, height: int, rate: float, options: VideoOptions) -> int:
    """Bytes of picture data a width×height video at `rate` fps needs at once (4:2:0, 1.5 bytes a pixel)."""
    return CODEC_FACTOR * held_frames(options, rate) * width * height * 3 // 2


def memory_limit() -> int:
    """Bytes of picture data one video may take: `MEMORY_SHARE` of the machine's physical memory."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        total = 0
    return int(MEMORY_SHARE * (total if total > 0 else UNKNOWN_MEMORY))


def _fps(rate: float) -> str:
    """A frame rate as people write it: 30, 29.97, 1000000."""
    return f"{rate:.3f}".rstrip("0").rstrip(".")


def check_memory(source: Path, width: int, height: int, rate: float, options: VideoOptions) -> None:
    """Refuse a video whose frames, at the size and rate it declares, would not fit in memory.

    The lookahead must span a second of frames, so memory grows with frame size times frame rate
    (`frame_memory`: 1080p at 30 fps about 0.4 GB, 4K at 120 fps 3.8 GB, 8K at 30 fps or 1080p at
    960 fps 6.2 GB). Checked from the header before a frame is decoded, and again from the first
    decoded frame: a small file can declare 15000 px square frames (two of them took 5.3 GB) or a
    million frames a second, and would otherwise exhaust memory halfway through a batch.

    Raises:
        MediaReadError: the frames would need more than `memory_limit()`.
    """
    need = frame_memory(width, height, rate, options)
    limit = memory_limit()
    if need > limit:
        msg = (
            f"{source}: {width}x{height} at {_fps(rate)} fps would need about {need / 1e9:.1f} GB of memory for "
            f"its frames (the lookahead spans a second of frames); this machine allows {limit / 1e9:.1f} GB "
            "(half its memory), so the video is refused (a copy at a smaller size or frame rate, or a machine with "
            "more memory, would do)"
        )
        raise MediaReadError(msg)


def parallel_detection(options: VideoOptions, detector: Detector) -> bool:
    """Whether detection runs off the main thread: asked for, or on a machine with enough cores,
    and only with a detector that several threads may call at once."""
    if not getattr(detector, "thread_safe", False):
        return False
    if options.parallel is not None:
        return options.parallel
    return (os.cpu_count() or 1) >= PARALLEL_MIN_CORES


def threshold_of(detector: Detector) -> float:
    """The detector's own track-starting threshold."""
    value = getattr(detector, "threshold", None)
    return float(value) if isinstance(value, int | float) else DEFAULT_THRESHOLD


def tracker_config(options: VideoOptions, high: float, fps: float) -> TrackerConfig:
    """Tracker settings for a video at `fps` whose detector threshold is `high`."""
    return TrackerConfig(
        high=high,
        low=high * options.low_fraction,
        max_gap=max(1, math.ceil(options.max_gap_seconds * fps)),
        pad=max(1, math.ceil(options.pad_seconds * fps)),
        grow=options.grow,
    )


def video_detector(engine: Engine, low: float) -> Detector:
    """A single-pass detector for video frames reporting scores down to `low` (built per video)."""
    cfg = replace(engine.settings.detector, multiscale=False, threshold=low)
    return load_detector(cfg)


def detect_size(width: int, height: int, side: int) -> tuple[int, int]:
    """Size of the detector's copy of a width×height frame: long side at most `side`."""
    scale = min(1.0, side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


@dataclass(frozen=True, slots=True)
class DetectionPlan:
    """Sizes the detector sees: a coarse copy of every frame, and a fine copy for the fine pass.

    The fine pass runs every `every` frames, or every `dense` frames while it keeps finding faces the
    coarse pass missed (small faces in view). Fine copies are made of every `dense`-th frame.
    """

    coarse: tuple[int, int]
    fine: tuple[int, int] | None
    every: int
    dense: int = 1

    def wants_fine(self, index: int) -> bool:
        """Whether frame `index` gets a fine copy (the fine pass may run on it)."""
        return self.fine is not None and index % self.dense == 0

    def full(self, index: int) -> bool:
        """Whether frame `index` gets a full fine pass whatever was found before."""
        return self.fine is not None and index % self.every == 0


def detection_plan(width: int, height: int, options: VideoOptions) -> DetectionPlan:
    """The coarse and fine detection sizes for a width×height video, and how often the fine pass runs.

    With `fine_every` 0 the fine pass runs as often as its cost allows it to equal the coarse
    passes' in between: every (fine pixels / coarse pixels) frames, so detection costs at most two
    coarse passes per frame (720p: every 4th frame; 1080p: every 9th, rounded up to a multiple of
    the dense interval). While it finds faces the coarse pass misses it runs twice as often.
    """
    coarse = detect_size(width, height, options.detect_side)
    fine = detect_size(width, height, options.fine_side) if options.fine_side else None
    if fine is None or fine[0] <= coarse[0]:
        return DetectionPlan(coarse, None, 1)
    every = max(1, options.fine_every or round(fine[0] * fine[1] / (coarse[0] * coarse[1])))
    dense = max(1, every // 2) if options.adaptive_fine else every
    return DetectionPlan(coarse, fine, -(-every // dense) * dense, dense)


class FineSchedule:
    """Which frames get a fine pass, and over what.

    A full pass runs on every `plan.every`-th frame. For `hold` frames after a pass finds a confident
    face (score >= `high`) that the coarse pass missed, every `plan.dense`-th frame in between gets a
    focused pass: a window around each target, or a full pass where the windows would cover more
    than `FOCUS_MAX_SHARE` of the frame (without `focus`, always a full pass).

    The targets are the faces the last pass found and the coarse pass missed (weak ones too: small
    faces score low) and, until the next full pass, the targets a focused pass did not find again.
    Boxes are in fine-copy pixels.
    """

    def __init__(self, plan: DetectionPlan, hold: int, high: float, *, focus: bool = True) -> None:
        self.plan = plan
        self.hold = hold
        self.high = high
        self.focus = focus
        self.dense_until = -1
        self.targets = np.zeros((0, 4), np.float32)
        self._size = plan.fine or (0, 0)

    def full(self, index: int) -> bool:
        """Whether frame `index` gets a full fine pass."""
        if self.plan.full(index):
            return True
        if not self.plan.wants_fine(index) or index > self.dense_until:
            return False
        return not self.focus or self._too_wide(self._windows())

    def focus_windows(self, index: int) -> list[Window]:
        """The windows a focused pass searches on frame `index` (none: no focused pass there)."""
        if not self.focus or not self.plan.wants_fine(index) or index > self.dense_until or self.plan.full(index):
            return []
        windows = self._windows()
        return [] if self._too_wide(windows) else windows

    def _too_wide(self, windows: list[Window]) -> bool:
        """Whether `windows` cover more than `FOCUS_MAX_SHARE` of the frame (a full pass is then cheaper)."""
        area = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in windows)
        return area > FOCUS_MAX_SHARE * self._size[0] * self._size[1]

    def _windows(self) -> list[Window]:
        """Windows holding every target with its margin: square, a multiple of `FOCUS_WINDOW`
        (within the frame), one per target that the windows before it do not already hold."""
        width, height = self._size
        windows: list[Window] = []
        for x0, y0, x1, y1 in self.targets.tolist():
            margin = max(FOCUS_MARGIN, x1 - x0, y1 - y0)
            ex0, ey0, ex1, ey1 = x0 - margin, y0 - margin, x1 + margin, y1 + margin
            if any(wx0 <= ex0 and wy0 <= ey0 and ex1 <= wx1 and ey1 <= wy1 for wx0, wy0, wx1, wy1 in windows):
                continue
            side = FOCUS_WINDOW * math.ceil(max(ex1 - ex0, ey1 - ey0) / FOCUS_WINDOW)
            windows.append(_centred((ex0, ey0, ex1, ey1), min(side, width), min(side, height), width, height))
        return windows

    def ran(self, index: int, coarse: Detections, fine: Detections, *, full: bool) -> None:
        """Record a fine pass on frame `index`: its faces and the coarse pass's, both in fine-copy pixels."""
        missed = missed_by(coarse, fine)
        if (missed.score >= self.high).any():
            self.dense_until = index + self.hold
        targets = [missed.xyxy]
        if not full:
            targets.append(self.targets[_best_iou(self.targets, fine.xyxy) <= FOUND_AGAIN_IOU])
        self.targets = np.concatenate(targets)


def _centred(box: tuple[float, float, float, float], w: int, h: int, width: int, height: int) -> Window:
    """A w×h window centred on `box`, moved inside a width×height image."""
    x0, y0, x1, y1 = box
    left = min(max(0, round((x0 + x1 - w) / 2)), width - w)
    top = min(max(0, round((y0 + y1 - h) / 2)), height - h)
    return left, top, left + w, top + h


def _best_iou(boxes: npt.NDArray[np.float32], others: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Each of `boxes`' largest IoU with any of `others` (0 where there are none)."""
    if len(boxes) == 0 or len(others) == 0:
        return np.zeros(len(boxes), np.float32)
    return np.asarray(iou_matrix(boxes, others).max(axis=1), np.float32)


def confirm_windows(weak: Detections, width: int, height: int) -> list[Window]:
    """Windows of `CONFIRM_WINDOW` px (or the whole image where it is smaller), one around each weak
    face that the windows before it do not already hold with a quarter window of margin (none
    needed at the image's edges)."""
    w, h = min(CONFIRM_WINDOW, width), min(CONFIRM_WINDOW, height)
    m = CONFIRM_WINDOW // 4

    def holds(window: Window, x0: float, y0: float, x1: float, y1: float) -> bool:
        wx0, wy0, wx1, wy1 = window
        return (
            (wx0 == 0 or wx0 + m <= x0)
            and (wy0 == 0 or wy0 + m <= y0)
            and (wx1 == width or x1 <= wx1 - m)
            and (wy1 == height or y1 <= wy1 - m)
        )

    windows: list[Window] = []
    for x0, y0, x1, y1 in weak.xyxy.tolist():
        if not any(holds(window, x0, y0, x1, y1) for window in windows):
            windows.append(_centred((x0, y0, x1, y1), w, h, width, height))
    return windows


def missed_by(coarse: Detections, fine: Detections) -> Detections:
    """The fine pass's faces that no coarse detection overlaps."""
    return fine[_best_iou(fine.xyxy, coarse.xyxy) < MERGE_IOU]


@dataclass(slots=True)
class _Prepared:
    """A decoded frame ready for detection: the detector's copies and whether a shot starts here."""

    frame: DecodedFrame
    small: Frame
    fine: Frame | None
    cut: bool
    coarse: Detections | None = None
    """The coarse pass's faces in frame pixels, once detected."""
    fine_job: Future[list[Detections]] | None = None
    """The full fine pass, started as the frame was decoded (parallel detection)."""


@dataclass(slots=True)
class _Pending:
    """A frame in the lookahead window, with the audio read after it."""

    frame: DecodedFrame
    audio: list[AudioChunk] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Failure:
    exc: BaseException


_END = object()


class _Timeline:
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


class _Prepare:
    """Decode-thread work on each frame: upright RGB, timestamps, detector copy, cut flag."""

    def __init__(self, source: Path, info: VideoInfo, options: VideoOptions) -> None:
        self.source = source
        self.info = info
        self.timeline = _Timeline(info)
        self.plan = detection_plan(info.width, info.height, options)
        self.cuts = CutDetector(options.cut)
        self.count = 0

    def __call__(self, frame: VideoFrame) -> _Prepared:
        turns = self.info.quarter_turns
        planes = to_planes(frame, turns, self.info.colour[0])
        if (planes.width, planes.height) != (self.info.width, self.info.height):
            size = f"{planes.width}x{planes.height}, not {self.info.width}x{self.info.height}"
            msg = f"{self.source}: frame {self.count} is {size}; videos that change size are not supported"
            raise MediaReadError(msg)
        pts, duration = self.timeline.place(frame)
        small = detector_copy(frame, self.plan.coarse, turns)
        fine = (
            detector_copy(frame, self.plan.fine, turns) if self.plan.fine and self.plan.wants_fine(self.count) else None
        )
        prepared = _Prepared(DecodedFrame(self.count, planes, pts, duration), small, fine, self.cuts(small))
        self.count += 1
        return prepared


class _Worker:
    """A daemon thread that records the exception it dies of."""

    def __init__(self, name: str, target: Callable[[], None]) -> None:
        self.error: BaseException | None = None
        self._target = target
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            self._target()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which re-raises it
            self.error = exc

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self._thread.join()


def _put(q: queue.Queue[Any], item: object, stop: threading.Event, peer: _Worker | None = None) -> None:
    """Put without blocking forever: give up when stopping or when the consumer died."""
    while not stop.is_set():
        if peer is not None and peer.error is not None:
            raise peer.error
        try:
            q.put(item, timeout=0.1)
        except queue.Full:
            continue
        return


class _Run:
    """One video's pipeline: the threads, the window and the tracker."""

    def __init__(
        self,
        source: Path,
        info: VideoInfo,
        items: Iterator[VideoFrame | AudioChunk],
        engine: Engine,
        options: VideoOptions,
        corrections: Corrections | None = None,
    ) -> None:
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
        self.detector = video_detector(engine, self.tracker.cfg.low)
        self.parallel = parallel_detection(options, self.detector)
        # The detect thread gets its own detector object (they share the ONNX Runtime session).
        self.coarse_detector = video_detector(engine, self.tracker.cfg.low) if self.parallel else self.detector
        self.fine_pool = ThreadPoolExecutor(FINE_WORKERS, "blur-fine") if self.parallel else None
        self.stop = threading.Event()
        self.decoded: queue.Queue[Any] = queue.Queue(options.queue)
        self.detected: queue.Queue[Any] = queue.Queue(options.queue)
        self.encoded: queue.Queue[Any] = queue.Queue(options.queue)
        self.window: deque[_Pending] = deque()
        self.emitted = 0
        self.faces = 0
        self.peak_window = 0
        self.prepare = _Prepare(source, info, options)
        hold = max(1, math.ceil(options.dense_hold_seconds * float(info.rate)))
        self.schedule = FineSchedule(self.prepare.plan, hold, self.tracker.cfg.high, focus=options.focus)
        self.wide = True
        """Whether the last frame between full passes that had a fine copy got a full pass (at the
        start, nothing is known yet: start them all until the schedule says otherwise)."""

    def decode_loop(self, first: list[VideoFrame | AudioChunk]) -> None:
        """Decode thread: prepare frames, pass audio through, then an end marker."""
        try:
            for item in self._chain(first):
                if self.stop.is_set():
                    return
                out = item if isinstance(item, AudioChunk) else self.prepare(item)
                if isinstance(out, _Prepared):
                    out.fine_job = self._start_full(out)
                _put(self.decoded, out, self.stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            _put(self.decoded, _Failure(exc), self.stop)
            return
        _put(self.decoded, _END, self.stop)

    def _start_full(self, prepared: _Prepared) -> Future[list[Detections]] | None:
        """Start the full fine pass on a frame as it is decoded (parallel detection), where it will surely
        run or where it may (no focused passes, or the last pass between was a full one). Only the
        work's place depends on this, never the result."""
        if self.fine_pool is None or prepared.fine is None:
            return None
        if not (self.prepare.plan.full(prepared.frame.index) or not self.options.focus or self.wide):
            return None
        return self.fine_pool.submit(self.detector.detect_batch, [prepared.fine])

    def detect_loop(self) -> None:
        """Detect thread (parallel detection): the coarse pass, every item passed on in its order."""
        try:
            for item in self._with_coarse(self._queued(self.decoded, None)):
                _put(self.detected, item, self.stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            _put(self.detected, _Failure(exc), self.stop)

    def _queued(self, q: queue.Queue[Any], peer: _Worker | None) -> Iterator[object]:
        """Items of `q` up to and including the end marker or a failure; stops early when the run stops."""
        while not self.stop.is_set():
            if peer is not None and peer.error is not None:
                raise peer.error
            try:
                item: object = q.get(timeout=0.1)
            except queue.Empty:
                continue
            yield item
            if item is _END or isinstance(item, _Failure):
                return

    def _with_coarse(self, items: Iterable[object]) -> Iterator[object]:
        """The same items in the same order, frames with their coarse detections (run `batch` at a time)."""
        held: list[object] = []
        frames: list[_Prepared] = []
        for item in items:
            if isinstance(item, _Failure):
                yield item  # the frames held back will not be needed
                return
            end = item is _END
            if not end:
                held.append(item)
                if isinstance(item, _Prepared):
                    frames.append(item)
            if end or len(frames) >= self.options.batch:
                self._coarse(frames)
                yield from held
                held, frames = [], []
            if end:
                yield item
                return

    def _coarse(self, frames: list[_Prepared]) -> None:
        if not frames:
            return
        found = self.coarse_detector.detect_batch([p.small for p in frames])
        for prepared, dets in zip(frames, found, strict=True):
            prepared.coarse = self._to_frame(dets, prepared.small)

    def _fine(self, prepared: _Prepared, coarse: Detections) -> Detections:
        """The frame's coarse faces plus those of the fine pass the schedule says is due (if any)."""
        image, job = prepared.fine, prepared.fine_job
        prepared.fine = prepared.fine_job = None  # the copy is not needed any more
        index = prepared.frame.index
        if image is None:
            return coarse
        full = self.schedule.full(index)
        windows = [] if full else self.schedule.focus_windows(index)
        # Faces all over the frame make the passes between full ones full too: start them as frames
        # are decoded, while that lasts.
        if not self.prepare.plan.full(index):
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

    def _chain(self, first: list[VideoFrame | AudioChunk]) -> Iterator[VideoFrame | AudioChunk]:
        yield from first
        yield from self.items

    def encode_loop(self, writer: VideoWriter) -> None:
        """Encode thread: write frames and audio until the end marker, then finish the file."""
        while True:
            try:
                item = self.encoded.get(timeout=0.1)
            except queue.Empty:
                if self.stop.is_set():
                    return
                continue
            if item is _END:
                writer.close()
                return
            if isinstance(item, AudioChunk):
                writer.write_audio(item)
            else:
                writer.write_frame(item.planes, item.pts, item.duration)

    def main_loop(self, encoder: _Worker, progress: Progress | None) -> None:
        """Main thread: detect (or take the detect thread's results), track, and release final frames."""
        if self.parallel:
            items = self._queued(self.detected, encoder)
        else:
            items = self._with_coarse(self._queued(self.decoded, encoder))
        for item in items:
            if item is _END:
                break
            if isinstance(item, _Failure):
                raise item.exc
            if isinstance(item, AudioChunk):
                self._audio(item, encoder)
                continue
            if not isinstance(item, _Prepared) or item.coarse is None:
                msg = f"unexpected item from the detection stage: {type(item).__name__}"
                raise TypeError(msg)
            self.window.append(_Pending(item.frame))
            self.peak_window = max(self.peak_window, len(self.window))
            self._track(item, self._fine(item, item.coarse))
            self._emit(encoder, progress)
        self.tracker.finish()
        self._emit(encoder, progress)
        _put(self.encoded, _END, self.stop, encoder)

    def _audio(self, chunk: AudioChunk, encoder: _Worker) -> None:
        if self.window:
            self.window[-1].audio.append(chunk)
        else:
            _put(self.encoded, chunk, self.stop, encoder)

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
        weak = weak[_best_iou(weak.xyxy, expected) < MERGE_IOU]
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
        confirmed = again[_best_iou(again.xyxy, weak.xyxy) >= MERGE_IOU]
        return dets if not len(confirmed) else nms(Detections.concat([dets, confirmed]), MERGE_IOU)

    def _track(self, prepared: _Prepared, found: Detections) -> None:
        """Drop kept regions and feed one frame's faces to the tracker."""
        if self.corrections.keep:
            seconds = self._seconds(prepared.frame)
            found, kept = split_kept(found, self.corrections.at(seconds)[1])
            if len(kept):
                self.samples.offer("kept", prepared.frame.index, seconds, _entries(kept, kept=True))
        self.tracker.update(prepared.frame.index, found, cut=prepared.cut)

    def _seconds(self, frame: DecodedFrame) -> float:
        """The frame's time in seconds from the first frame: the clock sidecar time ranges use."""
        if self.first_pts is None:
            self.first_pts = frame.pts
        return float((frame.pts - self.first_pts) * self.info.time_base)

    def _to_frame(self, dets: Detections, image: Frame) -> Detections:
        """Detections in a detector copy -> full-frame coordinates."""
        sx, sy = self.info.width / image.shape[1], self.info.height / image.shape[0]
        return dets if (sx, sy) == (1.0, 1.0) else dets.scaled(sx, sy)

    def _emit(self, encoder: _Worker, progress: Progress | None) -> None:
        final = self.tracker.final_until()
        while self.window and self.window[0].frame.index < final:
            pending = self.window.popleft()
            frame = pending.frame
            boxes, idents = self.tracker.boxes_by_track(frame.index)
            seconds = self._seconds(frame)
            for ident, entry in zip(idents, _entries(boxes), strict=True):
                self.samples.offer(str(ident), frame.index, seconds, [entry])
            masked = self._mask(frame.planes, boxes, frame.index, seconds)
            self.faces += len(boxes)
            _put(self.encoded, replace(frame, planes=masked), self.stop, encoder)
            for chunk in pending.audio:
                _put(self.encoded, chunk, self.stop, encoder)
            self.emitted += 1
            self.tracker.release(frame.index + 1)
            if progress is not None:
                progress(self.emitted, self.info.frames)

    def _mask(self, planes: Planes, boxes: Detections, index: int, seconds: float) -> Planes:
        add = self.corrections.at(seconds)[0] if self.corrections.add else None
        if len(boxes) == 0 and (add is None or len(add) == 0):
            return planes
        cfg = self.engine.settings.mask
        w, h = self.info.width, self.info.height
        boxes = boxes.clipped(w, h)
        if add is not None and len(add):
            added = Detections.from_arrays(add, np.ones(len(add), np.float32))
            self.samples.offer("added", index, seconds, _entries(added, added=True))
        if cfg.mode is not MaskMode.fill:
            mask = build_mask(boxes, h, w, cfg)
            return mask_planes(planes, mask if add is None else add_regions(mask, add), cfg, self.info.colour[0])
        # Each face is rasterised in its own window, not over the whole frame: a 1080p frame with 20
        # faces costs the faces' area (the full-frame mask took most of the main thread's time).
        pieces = mask_pieces(boxes, h, w, cfg, align=2)
        if add is not None:
            pieces += region_pieces(add, h, w, align=2)
        return fill_planes(planes, pieces, yuv_of(tuple(cfg.colour), self.info.colour[0]))


def _entries(dets: Detections, **flags: bool) -> list[dict[str, Any]]:
    """Detections as report entries (box in frame pixels, score), with `flags` set on each."""
    return [{**entry, **flags} for entry in dets.to_list()]


def fill_planes(planes: Planes, pieces: list[Piece], yuv: tuple[int, int, int]) -> Planes:
    """Paint a solid fill into the planes, in place, under each piece (windows on even coordinates):
    luma under the mask, and every chroma sample that any masked pixel shares (a chroma sample is
    filled when any of the 2x2 luma pixels it covers is masked). Returns `planes`."""
    fill_y, fill_u, fill_v = yuv
    for x0, y0, x1, y1, piece in pieces:
        np.putmask(planes.y[y0:y1, x0:x1], piece, fill_y)
        chroma = (piece[0::2, 0::2] | piece[1::2, 0::2]) | (piece[0::2, 1::2] | piece[1::2, 1::2])
        np.putmask(planes.u[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2], chroma, fill_u)
        np.putmask(planes.v[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2], chroma, fill_v)
    return planes


def mask_planes(planes: Planes, mask: Mask, cfg: MaskConfig, colorspace: int) -> Planes:
    """Anonymize the masked pixels of a 4:2:0 picture, returning new planes.

    A solid fill is painted straight into the planes (`fill_planes`). The other looks are computed
    in RGB by `blur.anonymize.filters`.
    """
    if cfg.mode is not MaskMode.fill:
        rgb = anonymize(planes_to_rgb(planes, colorspace), mask, cfg)
        return rgb_to_planes(rgb, colorspace)
    copy = Planes(planes.y.copy(), planes.u.copy(), planes.v.copy())
    return fill_planes(copy, [(0, 0, planes.width, planes.height, mask)], yuv_of(tuple(cfg.colour), colorspace))


def _first_frame(
    items: Iterator[VideoFrame | AudioChunk], source: Path
) -> tuple[VideoFrame, list[VideoFrame | AudioChunk]]:
    """Read up to the first video frame; return it and everything read so far (in order)."""
    read: list[VideoFrame | AudioChunk] = []
    for item in items:
        read.append(item)
        if not isinstance(item, AudioChunk):
            return item, read
    msg = f"{source}: no video frame could be decoded"
    raise MediaReadError(msg)


def anonymize_video(
    source: Path,
    dest: Path,
    fmt: str,
    engine: Engine,
    options: VideoOptions | None = None,
    progress: Progress | None = None,
    *,
    label: Path | None = None,
) -> VideoStats:
    """Write an anonymized copy of `source` (container `fmt`) to `dest`.

    `dest` is written in place: callers wrap it in `atomic_output`. `label` names the output in errors.

    Raises:
        BlurError: the input cannot be read completely, the output cannot be written, or the
            written file does not verify.
    """
    options = options or VideoOptions()
    label = label or dest
    settings = engine.settings
    with open_input(source, fmt) as container:
        width, height, rate = declared_picture(source, container)
        if rate is not None:
            check_memory(source, width, height, float(rate), options)
        mode = choose_audio(fmt, audio_stream(container), settings.keep_audio, source)
        items = decode_frames(source, container, mode)
        first, read = _first_frame(items, source)
        info = probe(source, container, first)
        check_memory(source, info.width, info.height, float(info.rate), options)
        corrections = load_corrections(source)
        corrections.check_fits(info.width, info.height, source)
        plan = OutputPlan(fmt, info, encode_spec(fmt, settings.video_crf), mode, audio_stream(container))
        writer = VideoWriter(dest, plan, label=label)
        run = _Run(source, info, items, engine, options, corrections)
        written = _drive(run, writer, read, progress)
    verify_output(dest, fmt, frames=written, audio=mode != "none", label=label)
    notes = list(info.notes)
    if run.prepare.timeline.adjusted:
        notes.append(f"{run.prepare.timeline.adjusted} frame timestamps were missing or out of order and were adjusted")
    if mode == "encode":
        notes.append("audio re-encoded: the container cannot hold the original codec")
    return VideoStats(
        written, run.faces, run.tracker.total_tracks, mode, tuple(notes), run.peak_window, tuple(run.samples.picks())
    )


def _drive(run: _Run, writer: VideoWriter, read: list[VideoFrame | AudioChunk], progress: Progress | None) -> int:
    """Run the pipeline's threads to completion; return the frames written, or raise and leave nothing usable.

    A run that ends early for any reason writes fewer frames than it decoded and is refused below.
    """
    workers = [_Worker("blur-decode", lambda: run.decode_loop(read))]
    if run.parallel:
        workers.append(_Worker("blur-detect", run.detect_loop))
    encoder = _Worker("blur-encode", lambda: run.encode_loop(writer))
    for worker in [*workers, encoder]:
        worker.start()
    try:
        run.main_loop(encoder, progress)
        encoder.join()
        if encoder.error is not None:
            raise encoder.error
    except BaseException:
        run.stop.set()
        for worker in [*workers, encoder]:
            worker.join()
        if run.fine_pool is not None:
            run.fine_pool.shutdown(wait=True, cancel_futures=True)
        writer.abort()
        raise
    for worker in workers:
        worker.join()
    if run.fine_pool is not None:
        run.fine_pool.shutdown(wait=True)
    decoded = run.prepare.count
    if writer.frames_written != decoded or run.emitted != decoded:
        msg = f"{run.source}: decoded {decoded} frames but wrote {writer.frames_written}; output discarded"
        raise MediaWriteError(msg)
    return decoded


def process_video(
    job: Job, engine: Engine, on_frames: Callable[[Job, int, int | None], None] | None = None
) -> FileResult:
    """Anonymize one video job; any failure leaves no output under the final name.

    Returns:
        A `FileResult` with frames written, face detections masked over all frames and tracks.
    """
    start = time.perf_counter()
    base = FileResult(source=str(job.source), status=Status.failed, kind="video")
    if job.output is None:
        return replace(base, reason=f"{job.source}: no output path")
    output = job.output
    progress: Progress | None = None
    if on_frames is not None:
        callback = on_frames

        def progress(done: int, total: int | None) -> None:
            callback(job, done, total)

    try:
        with atomic_output(output) as tmp:
            stats = anonymize_video(job.source, tmp, job.format, engine, None, progress, label=output)
    except BlurError as exc:
        return replace(base, reason=f"{exc}; no output written", seconds=time.perf_counter() - start)
    return replace(
        base,
        status=Status.ok,
        output=str(output),
        faces=stats.faces,
        frames=stats.frames,
        tracks=stats.tracks,
        notes=stats.notes,
        detections=stats.samples,
        seconds=time.perf_counter() - start,
    )
