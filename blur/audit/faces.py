"""Faces still visible: a fresh detection on the decoded pixels, as a viewer would see them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from blur.audit.model import Category, Finding
from blur.detect import Detector
from blur.errors import BlurError
from blur.media.image import read_photo
from blur.types import Detections, Frame


@dataclass(frozen=True, slots=True)
class FaceCheck:
    """The detector and the score from which a detection counts as a visible face."""

    detector: Detector
    threshold: float
    every: int = 1

    def faces(self, frame: Frame) -> Detections:
        """Detections at or above the threshold."""
        dets = self.detector.detect(frame)
        return dets[dets.score >= self.threshold]


def box_text(box: tuple[float, float, float, float]) -> str:
    """A box as `x1,y1-x2,y2` in whole pixels."""
    x1, y1, x2, y2 = (round(v) for v in box)
    return f"{x1},{y1}-{x2},{y2}"


def face_findings(dets: Detections, where: str = "") -> list[Finding]:
    """One finding per detection, with its box and score."""
    findings = []
    for (x1, y1, x2, y2), score in zip(dets.xyxy.tolist(), dets.score.tolist(), strict=True):
        box = (float(x1), float(y1), float(x2), float(y2))
        place = f"{where}, box {box_text(box)}" if where else f"box {box_text(box)}"
        findings.append(Finding(Category.face, "face still visible", f"score {score:.2f}", place, box, float(score)))
    return findings


def photo_faces(path: Path, fmt: str, check: FaceCheck) -> list[Finding]:
    """Faces a detector still finds in the upright picture (RGB under any transparency included)."""
    try:
        photo = read_photo(path, fmt)
    except BlurError as exc:
        return [Finding(Category.error, "pixels could not be decoded", str(exc))]
    return face_findings(check.faces(photo.rgb))
