"""How videos are processed: the measured defaults, the tracker's settings and the video detector."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from blur.detect import Detector, load_detector
from blur.video.cuts import CutConfig
from blur.video.tracking import TrackerConfig

if TYPE_CHECKING:
    from blur.engine import Engine


DEFAULT_THRESHOLD = 0.3
"""Track-starting score when the detector does not say its own threshold."""


LOW_FRACTION = 1 / 3
"""Weak detections down to this share of the threshold may continue an existing track (ByteTrack)."""


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
        tail_seconds: in the last this-many seconds of a clip, a weak detection (below the track-starting
            threshold) that continued no track is masked anyway: no later frame can confirm or refute
            it (the safe side). The clip's last frame also always gets a full fine pass, as the first
            does, so a small face that is in view only at the very end is searched for at full size.
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
    tail_seconds: float = 0.5
    grow: float = 0.02
    low_fraction: float = LOW_FRACTION
    cut: CutConfig = field(default_factory=CutConfig)


PARALLEL_MIN_CORES = 8
"""Below this many cores the extra detection threads only compete with the codec threads (2 cores:
5-10 % slower); from it up they overlap (16 cores, 1080p street clip: see docs/video.md)."""


FINE_WORKERS = 2


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
        tail=math.ceil(options.tail_seconds * fps),
    )


def video_detector(engine: Engine, low: float) -> Detector:
    """A single-pass detector for video frames reporting scores down to `low` (built per video)."""
    cfg = replace(engine.settings.detector, multiscale=False, threshold=low)
    return load_detector(cfg)
