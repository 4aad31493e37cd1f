"""Detector registry: backend name -> loader. Loaders import their runtime lazily."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from blur.config import DetectorConfig
from blur.detect.base import Detector


def _load_centerface(cfg: DetectorConfig) -> Detector:
    from blur.detect.centerface import CenterFaceDetector  # noqa: PLC0415 - runtime imported lazily

    return CenterFaceDetector(cfg)


def _load_mediapipe(cfg: DetectorConfig) -> Detector:
    from blur.detect.mediapipe import MediaPipeDetector  # noqa: PLC0415 - runtime imported lazily

    return MediaPipeDetector(cfg)


BACKENDS: Mapping[str, Callable[[DetectorConfig], Detector]] = {
    "centerface": _load_centerface,
    "mediapipe": _load_mediapipe,
}


def load_detector(cfg: DetectorConfig) -> Detector:
    """Build the detector that `cfg.backend` names.

    Raises:
        ValueError: the name is not a registered backend.
        BackendUnavailableError: its runtime is not installed.
        ModelError: its model is missing or fails its checksum.
    """
    try:
        loader = BACKENDS[cfg.backend]
    except KeyError:
        names = ", ".join(sorted(BACKENDS))
        msg = f"unknown detector backend {cfg.backend!r}; choose one of: {names}"
        raise ValueError(msg) from None
    return loader(cfg)


__all__ = ["BACKENDS", "Detector", "load_detector"]
