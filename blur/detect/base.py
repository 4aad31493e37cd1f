"""The detector protocol that every backend implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from blur.types import Detections, Frame


@runtime_checkable
class Detector(Protocol):
    """Finds faces in RGB frames. Implementations hold their model for the whole process."""

    name: str

    def detect(self, frame: Frame) -> Detections:
        """Return the faces in one H×W×3 RGB frame, in its pixel coordinates."""
        ...

    def detect_batch(self, frames: list[Frame]) -> list[Detections]:
        """Return the faces of several frames of equal size, in order."""
        ...
