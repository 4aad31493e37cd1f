"""Frozen settings objects passed from the CLI down to the library."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

DEFAULT_MASK_SCALE = 1.4
"""Mask size over the detector box: an ellipse this size covers the whole box plus forehead, chin and ears."""


class MaskMode(str, Enum):
    """How a masked region looks. Every mode fills first, so none can be reversed."""

    fill = "fill"
    pixelate = "pixelate"
    blur = "blur"


class Sensitivity(str, Enum):
    """How readily a face is reported on photos: `high` masks more of the picture to miss fewer faces."""

    normal = "normal"
    high = "high"


class MaskShape(str, Enum):
    """Outline of each mask."""

    ellipse = "ellipse"
    box = "box"


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """What detector to build and how to run it.

    Attributes:
        backend: registry name, e.g. "centerface" or "mediapipe".
        threshold: minimum score of a kept detection; None picks the backend's tuned default.
        model_path: a user-supplied model file instead of the packaged one.
        providers: ONNX Runtime execution providers in order of preference; empty means the best available.
        threads: intra-op threads for the runtime; 0 lets the runtime decide.
        multiscale: run the extra passes that find small faces (CenterFace).
        sensitivity: which tuned photo plan runs (CenterFace multi-scale): `normal`, or `high`, which
            finds more faces and changes more of the picture; an explicit threshold overrides it.
    """

    backend: str = "centerface"
    threshold: float | None = None
    model_path: Path | None = None
    providers: tuple[str, ...] = ()
    threads: int = 0
    multiscale: bool = True
    sensitivity: Sensitivity = Sensitivity.normal


@dataclass(frozen=True, slots=True)
class MaskConfig:
    """How detections become masked pixels.

    Attributes:
        mode: the look of the mask; the region is always filled first.
        shape: ellipse (default) or box.
        scale: how much larger than the detector's box the mask is, to reach forehead, chin and ears.
        colour: RGB fill colour.
    """

    mode: MaskMode = MaskMode.fill
    shape: MaskShape = MaskShape.ellipse
    scale: float = DEFAULT_MASK_SCALE
    colour: tuple[int, int, int] = (0, 0, 0)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything one `blur anonymize` run needs besides the paths."""

    detector: DetectorConfig = field(default_factory=DetectorConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    verify: bool = True
    jpeg_quality: int = 92
    video_crf: int = 18
    keep_audio: bool = True
    overwrite: bool = False


def settings_dict(settings: Settings) -> dict[str, Any]:
    """`settings` as JSON-ready data (what `settings_from_dict` reads back)."""
    data = asdict(settings)
    data["detector"]["model_path"] = None if settings.detector.model_path is None else str(settings.detector.model_path)
    data["detector"]["providers"] = list(settings.detector.providers)
    data["mask"]["mode"] = settings.mask.mode.value
    data["mask"]["shape"] = settings.mask.shape.value
    data["mask"]["colour"] = list(settings.mask.colour)
    return data


def settings_from_dict(data: Any) -> Settings:
    """The settings a batch recorded (a report or the batch record), to re-render with exactly them.

    Raises:
        ValueError: the data is not complete settings of this version of blur.
    """
    try:
        det, mask = data["detector"], data["mask"]
        detector = DetectorConfig(
            backend=str(det["backend"]),
            threshold=None if det["threshold"] is None else float(det["threshold"]),
            model_path=None if det["model_path"] is None else Path(det["model_path"]),
            providers=tuple(str(p) for p in det["providers"]),
            threads=int(det["threads"]),
            multiscale=bool(det["multiscale"]),
        )
        red, green, blue = (int(c) for c in mask["colour"])
        return Settings(
            detector=detector,
            mask=MaskConfig(MaskMode(mask["mode"]), MaskShape(mask["shape"]), float(mask["scale"]), (red, green, blue)),
            verify=bool(data["verify"]),
            jpeg_quality=int(data["jpeg_quality"]),
            video_crf=int(data["video_crf"]),
            keep_audio=bool(data["keep_audio"]),
            overwrite=bool(data.get("overwrite", False)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        msg = f"the recorded settings are incomplete or malformed ({type(exc).__name__}: {exc})"
        raise ValueError(msg) from exc
