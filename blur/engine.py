"""The detectors one process uses for a whole batch, built once: the detector and the second-pass verifier."""

from __future__ import annotations

from dataclasses import dataclass, replace

from blur.config import Settings
from blur.detect import Detector, load_detector

VERIFY_THRESHOLD = 0.5
"""Score at which the second pass treats a detection on the anonymized picture as a face still visible."""


@dataclass(frozen=True, slots=True)
class Engine:
    """The detectors one process uses for a whole batch, built once."""

    detector: Detector
    verifier: Detector | None
    settings: Settings


def build_engine(settings: Settings) -> Engine:
    """Load the detector (and the second-pass verifier) once for this process."""
    detector = load_detector(settings.detector)
    verifier = None
    if settings.verify:
        # A plain single pass with a firmer threshold: it looks for faces still plainly visible, not for
        # shapes the fill itself suggests (a black ellipse on a collar scores about 0.3).
        threshold = max(VERIFY_THRESHOLD, settings.detector.threshold or 0.0)
        verifier = load_detector(replace(settings.detector, multiscale=False, threshold=threshold))
    return Engine(detector, verifier, settings)
