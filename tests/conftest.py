"""Shared fixtures: real faces from scikit-image, a real detector loaded once, a CLI runner."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from blur.config import DetectorConfig, Settings
from blur.engine import Engine, build_engine
from blur.sample import astronaut
from blur.types import Detections, Frame

ASTRO_FACE = (175, 54, 275, 180)
"""The astronaut's face (x1, y1, x2, y2) in scikit-image's 512×512 portrait."""


def face_oval(box: tuple[int, int, int, int], shape: tuple[int, ...]) -> np.ndarray:
    """The face itself: the ellipse inscribed in a labelled face box, as a boolean mask of `shape[:2]`.
    The box's corners are hair, neck and background; a face is oval."""
    x1, y1, x2, y2 = box
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    cx, cy, ax, ay = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
    return np.asarray(((xx + 0.5 - cx) / ax) ** 2 + ((yy + 0.5 - cy) / ay) ** 2 <= 1.0)


def oval_filled(pixels: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    """Whether every pixel of the face oval of `box` is the black fill."""
    return bool((pixels[face_oval(box, pixels.shape)] == 0).all())


@pytest.fixture(scope="session", autouse=True)
def private_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point the user state directory at a temporary folder for the whole session (module fixtures
    included, and the subprocesses tests start): tests never write into the real home."""
    home = tmp_path_factory.mktemp("state-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_STATE_HOME", str(home))
        yield home


@pytest.fixture(scope="session")
def astro() -> Frame:
    """The public-domain astronaut portrait, RGB."""
    return astronaut()


@pytest.fixture(scope="session")
def engine() -> Engine:
    """The default CenterFace engine, built once for the session."""
    return build_engine(Settings())


@pytest.fixture(scope="session")
def plain_engine() -> Engine:
    """CenterFace, single pass, no verification: a cheap re-detector for checking outputs."""
    return build_engine(Settings(detector=DetectorConfig(multiscale=False, threshold=0.3), verify=False))


@pytest.fixture
def runner() -> CliRunner:
    """Typer's CLI runner."""
    return CliRunner()


def sha256(path: Path) -> str:
    """Hash a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_hashes(root: Path) -> dict[str, str]:
    """Hash every regular file under `root`."""
    return {str(p.relative_to(root)): sha256(p) for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def faces_in(engine: Engine, frame: Frame, box: tuple[int, int, int, int], min_iou: float = 0.2) -> Detections:
    """Detections of `engine` that overlap `box`."""
    from blur.types import iou_matrix

    dets = engine.detector.detect(frame)
    if len(dets) == 0:
        return dets
    ious = iou_matrix(dets.xyxy, np.array([box], np.float32))[:, 0]
    return dets[ious >= min_iou]


def ssim_gray(a: Frame, b: Frame) -> float:
    """Structural similarity of two RGB crops, on grey levels."""
    from skimage.metrics import structural_similarity

    ga = a.astype(np.float64).mean(axis=2)
    gb = b.astype(np.float64).mean(axis=2)
    return float(structural_similarity(ga, gb, data_range=255.0))


@pytest.fixture
def no_partials() -> Iterator[list[Path]]:
    """Collect output folders; after the test, assert no temporary file was left in any of them."""
    folders: list[Path] = []
    yield folders
    for folder in folders:
        leftovers = [p for p in folder.rglob("*") if "blur-partial" in p.name]
        assert not leftovers, f"partial files left behind: {leftovers}"
