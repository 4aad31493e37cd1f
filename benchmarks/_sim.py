"""Replay blur's photo detection plans from cached raw detections, for threshold and plan sweeps.

Benchmark code only. Nothing under ``blur/`` or ``tests/`` imports this module.

Running the network is the slow part of a sweep; filtering its boxes is not. So each distinct pass
(scale and tiles) of each photo runs once with a low floor threshold (``FLOOR``) and its boxes are
cached; a plan is then replayed exactly as ``CenterFaceDetector.detect`` runs it: per pass, the boxes
``Pass.keep`` keeps (thresholds by box size), then the passes joined, non-maximum suppression, clip.
NMS inside a pass is greedy by score, so filtering its output at a higher threshold gives what running
at that threshold gives.

A replayed plan is scored as ``photos.py`` scores a tool's output, for blur's default mask (black
fill, ellipse, scale 1.4): a pixel changes where the mask covers it and the input is not already
black (any channel >= 8). The second (verify) pass of ``blur anonymize`` is not replayed; the end-to-
end benchmark (``photos.py``) measures it.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import _wider as W
import cv2
import numpy as np
import numpy.typing as npt

from blur.anonymize.mask import build_mask
from blur.config import MaskConfig
from blur.detect.centerface import NMS_IOU, CenterFaceDetector
from blur.detect.multiscale import Pass
from blur.types import Detections, nms

FLOOR = 0.04
"""Cached boxes score at least this: the lowest threshold a sweep can ask for."""

Boxes = npt.NDArray[np.float32]
Plan = Sequence[Pass]
Planner = Callable[[int, int], Plan]


@dataclass
class SimPhoto:
    """One photo of a set as a tool sees it, with what scoring needs."""

    name: str
    width: int
    height: int
    faces: npt.NDArray[np.float64]
    """(N, 4) GT boxes x, y, w, h in this picture's pixels."""
    visible: npt.NDArray[np.bool_]
    """Pixels a black fill changes (any channel >= 8)."""
    head: npt.NDArray[np.bool_]
    """The face region of ``photos.py`` (GT boxes enlarged 1.5x); damage is counted outside it."""
    raw: dict[str, Detections] = field(default_factory=dict)
    """Cached boxes per pass key (see ``pass_key``), in this picture's pixels."""
    cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds the pass took (single run, for the plan's cost estimate)."""


def pass_key(p: Pass) -> str:
    """What makes two passes' raw boxes the same: scale and tiles (thresholds are applied later)."""
    return f"{p.scale:.5f}|{hash(p.tiles) if p.tiles else 0}|{len(p.tiles)}"


def load_images(key: str, photos: Sequence[W.Photo]) -> Iterable[tuple[W.Photo, W.Image, list[W.Face]]]:
    """The pictures of one size set (``416``, ``640``: web copies; ``1x``; ``4x``: INTER_CUBIC) in BGR."""
    for photo in photos:
        if W.exif_orientation(photo.path) != 1:
            continue
        img = W.read_image(photo.path)
        if img is None:
            continue
        faces = list(photo.faces)
        if key.endswith("x") and key != "1x":
            f = int(key[:-1])
            h, w = img.shape[:2]
            img = np.asarray(cv2.resize(img, (w * f, h * f), interpolation=cv2.INTER_CUBIC), np.uint8)
            faces = [face.scaled(f) for face in faces]
        elif key.isdigit():
            img, sx, sy = W.web_copy(img, int(key))
            faces = [face.scaled(sx, sy) for face in faces]
        h, w = img.shape[:2]
        faces = [fc for fc in faces if _inside(fc, w, h)]
        yield photo, img, faces


def _inside(face: W.Face, width: int, height: int) -> bool:
    x0, y0, x1, y1 = W.clip_box(face.x, face.y, face.w, face.h, width, height)
    return x1 > x0 and y1 > y0


class SimSet:
    """One size set's photos with their cached raw detections (pickled under ``cache_dir``)."""

    def __init__(self, key: str, photos: Sequence[W.Photo], cache_dir: Path, detector: CenterFaceDetector) -> None:
        self.key = key
        self.detector = detector
        self.cache_file = cache_dir / f"{key}_{len(photos)}.pkl"
        self.dirty = False
        cached: dict[str, tuple[dict[str, Detections], dict[str, float]]] = {}
        if self.cache_file.is_file():
            cached = pickle.loads(self.cache_file.read_bytes())
        self.photos: list[SimPhoto] = []
        self._rgb: dict[str, W.Image] = {}
        for photo, img, faces in load_images(key, photos):
            h, w = img.shape[:2]
            boxes = np.array([[f.x, f.y, f.w, f.h] for f in faces], np.float64).reshape(-1, 4)
            sp = SimPhoto(photo.name, w, h, boxes, img.max(axis=2) >= W.CHANGE_THRESHOLD, W.head_mask(faces, w, h))
            if photo.name in cached:
                sp.raw, sp.cpu = cached[photo.name]
            self.photos.append(sp)
            self._rgb[photo.name] = np.ascontiguousarray(img[:, :, ::-1])

    def ensure(self, planner: Planner) -> None:
        """Run (once) every pass that ``planner`` asks for on any photo of the set."""
        t0, ran = time.perf_counter(), 0
        for sp in self.photos:
            for p in planner(sp.width, sp.height):
                key = pass_key(p)
                if key in sp.raw:
                    continue
                c0 = time.process_time()
                raw = Pass(p.scale, FLOOR, p.tiles, p.batch)
                sp.raw[key] = self.detector._run_pass(self._rgb[sp.name], raw)
                sp.cpu[key] = time.process_time() - c0
                ran += 1
                self.dirty = True
        if ran:
            print(f"[sim] {self.key}: {ran} passes run in {time.perf_counter() - t0:.0f} s", flush=True)
            self.save()

    def save(self) -> None:
        if not self.dirty:
            return
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        data = {sp.name: (sp.raw, sp.cpu) for sp in self.photos}
        self.cache_file.write_bytes(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
        self.dirty = False


def replay(sp: SimPhoto, plan: Plan) -> Detections:
    """What ``CenterFaceDetector.detect`` returns for this plan, from the cached boxes."""
    found = []
    for p in plan:
        dets = sp.raw[pass_key(p)]
        side = np.maximum(dets.xyxy[:, 2] - dets.xyxy[:, 0], dets.xyxy[:, 3] - dets.xyxy[:, 1])
        found.append(dets[p.keep(side, dets.score)])
    return nms(Detections.concat(found), NMS_IOU).clipped(sp.width, sp.height)


@dataclass
class Score:
    """Totals over a set for one plan."""

    hits: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    changed_bg: int = 0
    total_bg: int = 0
    cpu: float = 0.0
    photos: int = 0

    def add(self, group: str, hit: bool) -> None:
        self.counts[group] = self.counts.get(group, 0) + 1
        self.hits[group] = self.hits.get(group, 0) + int(hit)

    def recall(self, group: str) -> float:
        n = self.counts.get(group, 0)
        return self.hits.get(group, 0) / n if n else float("nan")

    @property
    def damage(self) -> float:
        return self.changed_bg / self.total_bg if self.total_bg else 0.0

    @property
    def cpu_per_photo(self) -> float:
        return self.cpu / max(1, self.photos)


MASK = MaskConfig()


def score_photo(sp: SimPhoto, dets: Detections, total: Score) -> None:
    """Add one photo's recall and damage for ``dets`` masked with blur's default mask."""
    changed = build_mask(dets, sp.height, sp.width, MASK) & sp.visible
    background = ~sp.head
    total.changed_bg += int(np.count_nonzero(changed & background))
    total.total_bg += int(np.count_nonzero(background))
    total.photos += 1
    if not len(sp.faces):
        return
    integral = cv2.integral(changed.astype(np.uint8))
    for x, y, w, h in sp.faces:
        x0, y0, x1, y1 = W.clip_box(x, y, w, h, sp.width, sp.height)
        area = (x1 - x0) * (y1 - y0)
        inside = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
        size = max(w, h)
        hit = area > 0 and inside / area >= 0.5
        total.add("all", hit)
        total.add(W.bucket_of(size), hit)
        if size >= 10:
            total.add(">=10 px", hit)


def evaluate(sim: SimSet, planner: Planner, photos: Sequence[SimPhoto] | None = None) -> Score:
    """Replay ``planner``'s plan on every photo (or the given subset) and score it."""
    total = Score()
    for sp in photos if photos is not None else sim.photos:
        plan = planner(sp.width, sp.height)
        score_photo(sp, replay(sp, plan), total)
        total.cpu += sum(sp.cpu.get(pass_key(p), 0.0) for p in plan)
    return total
