"""Which frames are searched at which size, and where: the coarse pass, full fine passes, focused
windows around small faces, and the second look at weak small faces. Pure computation on boxes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from blur.types import Detections, iou_matrix
from blur.video.options import VideoOptions

if TYPE_CHECKING:
    pass


MERGE_IOU = 0.3
"""Coarse and fine detections of one face overlapping this much are merged."""


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
            windows.append(centred((ex0, ey0, ex1, ey1), min(side, width), min(side, height), width, height))
        return windows

    def ran(self, index: int, coarse: Detections, fine: Detections, *, full: bool) -> None:
        """Record a fine pass on frame `index`: its faces and the coarse pass's, both in fine-copy pixels."""
        missed = missed_by(coarse, fine)
        if (missed.score >= self.high).any():
            self.dense_until = index + self.hold
        targets = [missed.xyxy]
        if not full:
            targets.append(self.targets[best_iou(self.targets, fine.xyxy) <= FOUND_AGAIN_IOU])
        self.targets = np.concatenate(targets)


def centred(box: tuple[float, float, float, float], w: int, h: int, width: int, height: int) -> Window:
    """A w×h window centred on `box`, moved inside a width×height image."""
    x0, y0, x1, y1 = box
    left = min(max(0, round((x0 + x1 - w) / 2)), width - w)
    top = min(max(0, round((y0 + y1 - h) / 2)), height - h)
    return left, top, left + w, top + h


def best_iou(boxes: npt.NDArray[np.float32], others: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
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
            windows.append(centred((x0, y0, x1, y1), w, h, width, height))
    return windows


def missed_by(coarse: Detections, fine: Detections) -> Detections:
    """The fine pass's faces that no coarse detection overlaps."""
    return fine[best_iou(fine.xyxy, coarse.xyxy) < MERGE_IOU]
