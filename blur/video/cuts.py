"""Scene cuts: where a shot ends, every track ends, so boxes never jump between shots."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from blur.types import Frame


@dataclass(frozen=True, slots=True)
class CutConfig:
    """When two consecutive frames belong to different shots.

    Attributes:
        histogram: minimum half-L1 distance between the grey-level histograms (0 same, 1 disjoint).
        pixels: minimum mean absolute difference of the thumbnails, in grey levels.
        size: thumbnail width and height the measures are taken on.
    """

    histogram: float = 0.15
    pixels: float = 20.0
    size: tuple[int, int] = (64, 36)


@dataclass(frozen=True, slots=True)
class CutScore:
    """How different a frame is from the previous one."""

    histogram: float
    pixels: float


def thumbnail(frame: Frame, size: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """A small grey copy of an RGB frame."""
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    return np.asarray(cv2.resize(grey, size, interpolation=cv2.INTER_AREA), np.uint8)


def cut_score(previous: npt.NDArray[np.uint8], current: npt.NDArray[np.uint8]) -> CutScore:
    """Compare two grey thumbnails by histogram and by pixels."""
    bins = np.arange(0, 257, 16)
    hp = np.histogram(previous, bins)[0] / previous.size
    hc = np.histogram(current, bins)[0] / current.size
    pixels = float(np.abs(previous.astype(np.int16) - current.astype(np.int16)).mean())
    return CutScore(float(np.abs(hp - hc).sum() / 2), pixels)


class CutDetector:
    """Flags scene cuts: both the histogram and the pixels of a downscaled frame change abruptly.

    Requiring both keeps camera pans (pixels change, histogram does not) and lighting changes on a
    still scene from counting. A missed cut is harmless (tracks simply do not reset); a false cut ends
    tracks early, so the thresholds are conservative.
    """

    def __init__(self, cfg: CutConfig | None = None) -> None:
        self.cfg = cfg or CutConfig()
        self._previous: npt.NDArray[np.uint8] | None = None

    def __call__(self, frame: Frame) -> bool:
        """Whether `frame` starts a new shot (the first frame never does)."""
        thumb = thumbnail(frame, self.cfg.size)
        previous, self._previous = self._previous, thumb
        if previous is None:
            return False
        score = cut_score(previous, thumb)
        return score.histogram >= self.cfg.histogram and score.pixels >= self.cfg.pixels
