"""Video benchmark: leaked faces and speed, blur vs deface, on synthetic clips and real clips.

Usage (from the repository root)::

    python benchmarks/video.py                         # every clip in ../shared/benchdata/videos, full length
    python benchmarks/video.py --max-frames 60         # first 60 frames of each clip (development)
    python benchmarks/video.py --sweep --max-frames 60 # also sweep tracker and detection-size settings
    python benchmarks/video.py --synthetic-only --sweep

Two measures of leaked faces:

1. Synthetic clips built from public-domain faces (scikit-image's astronaut and LFW subset) that move,
   change size, pass behind a pole, leave and come back, turn (squashed sprite), dim, blur with fast
   motion, and cross a scene cut. The ground truth is exact. A face-frame *leaks* when at least half
   of the face is in view, the video detector finds that face within +-15 frames, and in the output
   less than 90 % of the visible face box is covered by the fill and its SSIM against the clean frame
   is above 0.6. Target: 0.
2. Real clips (../shared/benchdata/videos). Reference faces per frame: CenterFace at 1x and at 2x
   (tiled) with a 0.6 threshold: faces a strong detector is confident about. A reference face is
   *hidden* in an output frame when at least 90 % of its box pixels changed (any channel by >= 25 of
   255) or its SSIM against the input is below 0.6; a frame leaks if any reference face is not hidden.
   Both blur and deface (`--keep-audio --backend opencv`, its default blur look) are scored the same way.

Speed: wall-clock frames per second of each tool's command line (start-up included), and the floor:
decoding and re-encoding the same clip with blur's codec settings and nothing else.

This is a measuring instrument, not a test: nothing in tests/ runs or imports it. Timings depend on
the load of the machine (the header prints the load average).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCHDATA = REPO_ROOT.parent / "shared" / "benchdata"
VIDEOS = BENCHDATA / "videos"
REF_THRESHOLD = 0.6
CHANGED = 25
COVERED = 0.9
SSIM_HIDDEN = 0.6
WINDOW = 15
MIN_VISIBLE = 0.5


def log(msg: str) -> None:
    print(f"[video] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- synthetic scenes


@dataclass(frozen=True)
class Face:
    """One face instance in one frame: its outline (a possibly rotated ellipse), box, and share in view."""

    ident: str
    box: tuple[float, float, float, float]
    visible: float
    outline: tuple[tuple[float, float], ...] = ()


@dataclass
class Scene:
    name: str
    frames: list[np.ndarray]
    faces: list[list[Face]]
    cuts: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class Pose:
    """Where and how a sprite is drawn in one frame."""

    ident: str
    sprite: str
    cx: float
    cy: float
    scale: float = 1.0
    squash: float = 1.0
    dim: float = 1.0
    blur: int = 0
    rot: float = 0.0


W, H, N = 640, 360, 150


def _sprites() -> dict[str, tuple[np.ndarray, tuple[int, int, int, int]]]:
    """Face sprites and the face box inside each: the astronaut's head and upscaled LFW faces."""
    from skimage import data

    astro = data.astronaut()
    head = np.ascontiguousarray(astro[10:240, 130:320])
    sprites = {"astro": (head, (45, 44, 145, 170))}
    lfw = data.lfw_subset()
    for i in range(8):
        grey = (lfw[i * 7] * 255).astype(np.uint8)
        big = cv2.resize(grey, (100, 100), interpolation=cv2.INTER_CUBIC)
        rgb = np.stack([big, (big * 0.92).astype(np.uint8), (big * 0.85).astype(np.uint8)], axis=-1)
        sprites[f"lfw{i}"] = (rgb, (0, 0, 100, 100))
    return sprites


def _backgrounds() -> list[np.ndarray]:
    from skimage import data

    return [cv2.resize(img, (W, H), interpolation=cv2.INTER_AREA) for img in (data.coffee(), data.rocket())]


def _transform(pose: Pose, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sprite scaled, squashed, dimmed, blurred and rotated; its coverage; the 2x3 map from sprite pixels."""
    sx, sy = pose.scale * pose.squash, pose.scale
    w, h = max(2, round(image.shape[1] * sx)), max(2, round(image.shape[0] * sy))
    sprite = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) * pose.dim
    if pose.blur > 1:
        kernel = np.zeros((pose.blur, pose.blur), np.float32)
        kernel[pose.blur // 2] = 1.0 / pose.blur
        sprite = cv2.filter2D(sprite, -1, kernel)
    alpha = np.ones((h, w), np.float32)
    affine = np.array([[sx, 0, 0], [0, sy, 0]], np.float64)
    if pose.rot:
        side = int(np.ceil(np.hypot(w, h)))
        rot = cv2.getRotationMatrix2D((w / 2, h / 2), pose.rot, 1.0)
        rot[:, 2] += ((side - w) / 2, (side - h) / 2)
        sprite = cv2.warpAffine(sprite, rot, (side, side))
        alpha = cv2.warpAffine(alpha, rot, (side, side))
        affine = rot @ np.vstack([affine, [0, 0, 1]])
    return sprite, alpha, affine


def _draw(frame: np.ndarray, pose: Pose, sprites: dict[str, Any]) -> tuple[tuple[float, float], ...]:
    """Paste a transformed sprite centred at (cx, cy); return the outline of its face in the frame."""
    image, (fx1, fy1, fx2, fy2) = sprites[pose.sprite]
    sprite, alpha, affine = _transform(pose, image)
    h, w = alpha.shape
    x0, y0 = round(pose.cx - w / 2), round(pose.cy - h / 2)
    xa, ya, xb, yb = max(0, x0), max(0, y0), min(W, x0 + w), min(H, y0 + h)
    if xb > xa and yb > ya:
        a = alpha[ya - y0 : yb - y0, xa - x0 : xb - x0, None]
        region = frame[ya:yb, xa:xb].astype(np.float32)
        blended = region * (1 - a) + sprite[ya - y0 : yb - y0, xa - x0 : xb - x0] * a
        frame[ya:yb, xa:xb] = np.clip(blended, 0, 255).astype(np.uint8)
    # The face is the ellipse inscribed in its box (the box corners are hair, ears or background).
    angles = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    cx, cy, rx, ry = (fx1 + fx2) / 2, (fy1 + fy2) / 2, (fx2 - fx1) / 2, (fy2 - fy1) / 2
    ring = np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles), np.ones_like(angles)], axis=1) @ affine.T
    return tuple((float(x0 + x), float(y0 + y)) for x, y in ring)


def _box(outline: tuple[tuple[float, float], ...]) -> tuple[float, float, float, float]:
    xs, ys = [p[0] for p in outline], [p[1] for p in outline]
    return (min(xs), min(ys), max(xs), max(ys))


def outline_mask(face: Face) -> np.ndarray:
    """The face's own pixels (its possibly rotated ellipse), clipped to the frame."""
    canvas = np.zeros((H, W), np.uint8)
    cv2.fillConvexPoly(canvas, np.round(np.array(face.outline)).astype(np.int32), 1)
    return canvas.astype(bool)


def _visible(outline: tuple[tuple[float, float], ...], occluders: list[tuple[int, int, int, int]]) -> float:
    """Share of the face's area that is inside the frame and not behind an occluder."""
    area = max(1.0, abs(cv2.contourArea(np.array(outline, np.float32))))
    canvas = outline_mask(Face("", _box(outline), 0.0, outline))
    for ox1, oy1, ox2, oy2 in occluders:
        canvas[oy1:oy2, ox1:ox2] = False
    return float(min(1.0, canvas.sum() / area))


def _render(
    name: str,
    poses: Callable[[int], list[Pose]],
    occluders: list[tuple[int, int, int, int]],
    background: Callable[[int], np.ndarray],
    cuts: set[int],
) -> Scene:
    sprites = _sprites()
    rng = np.random.default_rng(len(name))
    scene = Scene(name, [], [], cuts)
    for t in range(N):
        frame = background(t).copy()
        faces = []
        for pose in poses(t):
            outline = _draw(frame, pose, sprites)
            faces.append(Face(pose.ident, _box(outline), 0.0, outline))
        for ox1, oy1, ox2, oy2 in occluders:
            frame[oy1:oy2, ox1:ox2] = (90, 90, 96)
        noisy = frame.astype(np.float32) + rng.normal(0, 4, frame.shape)  # sensor noise: scores jitter frame to frame
        scene.frames.append(np.clip(noisy, 0, 255).astype(np.uint8))
        scene.faces.append([dataclasses.replace(f, visible=_visible(f.outline, occluders)) for f in faces])
    return scene


def _burst(t: int, starts: tuple[int, ...], length: int) -> bool:
    return any(s <= t < s + length for s in starts)


def synthetic_scenes() -> list[Scene]:
    """Four 640x360, 150-frame scenes with the situations that make per-frame detection miss a face.

    Measured with the video detector beforehand: a face squashed to 30 % width (a head turn), motion
    blur over 25 px, an in-plane tilt past 60 degrees (LFW faces), and faces of about 26-34 px (score
    near the threshold, so detection flickers with the sensor noise) are all missed in some frames.
    """
    bg = _backgrounds()

    def pole(t: int) -> list[Pose]:
        blur = 27 if _burst(t, (20, 60, 110), 4) else 0
        walker = Pose("walker", "astro", 40 + 3.8 * t, 180 + 25 * np.sin(t / 9), 0.5, blur=blur)
        dimmed = Pose("dimmed", "lfw0", 540, 90, 0.8, dim=0.12 if 40 <= t < 60 else 1.0)
        return [walker, dimmed]

    def exits(t: int) -> list[Pose]:
        poses = [Pose("approach", "astro", 180, 200, 0.3 + 0.45 * t / N, squash=0.3 if _burst(t, (70,), 6) else 1.0)]
        if t < 50:
            poses.append(Pose("leaver", "lfw1", 330 + 8 * t, 120, 0.32))
        elif t >= 80:
            poses.append(Pose("leaver", "lfw1", 700 - 8 * (t - 80), 120, 0.32))
        return poses

    def cut(t: int) -> list[Pose]:
        if t < 75:
            tilt = 70.0 if _burst(t, (30,), 8) else 0.0
            return [Pose("a1", "astro", 150 + t, 180, 0.5), Pose("b1", "lfw2", 480, 150, 0.8, rot=tilt)]
        fast = 90 <= t < 98
        travelled = 2 * (t - 75) + 10 * min(8, max(0, t - 90))  # 2 px/frame, 12 px/frame while blurred
        return [
            Pose("a2", "astro", 520 - travelled, 190, 0.6, blur=29 if fast else 0),
            Pose("b2", "lfw3", 150, 110, 0.7, rot=min(85.0, 3.0 * max(0, t - 100))),
        ]

    def turn(t: int) -> list[Pose]:
        squash = 0.3 if (_burst(t, (30,), 10) or _burst(t, (100,), 8)) else 1.0
        return [
            Pose("turner", "astro", 200 + 1.5 * t, 185, 0.5, squash=squash),
            Pose("small", "lfw4", 420 + 0.8 * t, 60 + 1.2 * t, 0.34),
            Pose("tilted", "lfw5", 600, 290, 0.6, rot=80.0 * abs(np.sin(t / 25))),
            Pose("x1", "lfw6", 330 + 2.5 * t, 250, 0.3),
            Pose("x2", "lfw7", 700 - 2.5 * t, 262, 0.3),
        ]

    return [
        _render("pole", pole, [(300, 0, 345, H)], lambda t: bg[0], set()),
        _render("exit-return", exits, [], lambda t: bg[0], set()),
        _render("cut", cut, [], lambda t: bg[0] if t < 75 else bg[1], {75}),
        _render("turn-cross", turn, [], lambda t: bg[1], set()),
    ]


def write_scene(scene: Scene, path: Path) -> None:
    """Encode a scene as a high-quality 30 fps MP4 (what the tools read)."""
    import av

    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=30, options={"crf": "14", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for i, frame in enumerate(scene.frames):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts = i
            out.mux(stream.encode(picture))
        out.mux(stream.encode())


# --------------------------------------------------------------------------- reading videos


def read_frames(path: Path, limit: int | None = None, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """Every frame of a video as RGB (display orientation ignored: the clips carry none).

    With `size` (width, height), frames of another size are scaled to it: deface's writer (imageio)
    scales every frame to a multiple of 16 pixels (360 -> 368, 1080 -> 1088).
    """
    import av

    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            rgb = frame.to_ndarray(format="rgb24")
            if size is not None and (rgb.shape[1], rgb.shape[0]) != size:
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            frames.append(rgb)
            if limit is not None and len(frames) >= limit:
                break
    return frames


def trim(source: Path, dest: Path, frames: int) -> Path:
    """The first `frames` frames of `source`, re-encoded near-losslessly (audio dropped), for short runs."""
    import av

    with av.open(str(source)) as inp, av.open(str(dest), "w", format="mp4") as out:
        vin = inp.streams.video[0]
        stream = out.add_stream("libx264", rate=vin.average_rate, options={"crf": "10", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
        stream.time_base = stream.codec_context.time_base = vin.time_base
        for i, frame in enumerate(inp.decode(vin)):
            if i >= frames:
                break
            picture = frame.reformat(format="yuv420p")
            picture.pts, picture.time_base = frame.pts, vin.time_base
            out.mux(stream.encode(picture))
        out.mux(stream.encode())
    return dest


def clip_fps(path: Path) -> float:
    import av

    with av.open(str(path)) as container:
        return float(container.streams.video[0].average_rate or 30)


def frame_count(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        return sum(1 for p in container.demux(container.streams.video[0]) if p.size)


# --------------------------------------------------------------------------- scoring


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    ga, gb = a.astype(np.float64).mean(axis=2), b.astype(np.float64).mean(axis=2)
    if min(ga.shape) < 7:
        return 1.0
    return float(structural_similarity(ga, gb, data_range=255.0))


def _crop(frame: np.ndarray, box: tuple[float, ...]) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    h, w = frame.shape[:2]
    x1, y1 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x2, y2 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    return frame[y1:y2, x1:x2], (x1, y1, x2, y2)


def hidden_pixels(out: np.ndarray, clean: np.ndarray, box: tuple[float, ...]) -> bool:
    """Metric 2: >= 90 % of the box's pixels changed, or SSIM against the input < 0.6."""
    a, (x1, y1, x2, y2) = _crop(out, box)
    b = clean[y1:y2, x1:x2]
    if a.size == 0:
        return True
    changed = (np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2) >= CHANGED).mean()
    return bool(changed >= COVERED or ssim(a, b) < SSIM_HIDDEN)


def hidden_fill(out: np.ndarray, clean: np.ndarray, face: Face, occluders: np.ndarray) -> bool:
    """Metric 1: >= 90 % of the face's visible pixels are fill-black, or its box's SSIM against the clean < 0.6."""
    view = outline_mask(face) & ~occluders
    if not view.any():
        return True
    filled = (out.max(axis=2) < 40)[view].mean()
    if filled >= COVERED:
        return True
    a, (x1, y1, x2, y2) = _crop(out, face.box)
    return bool(a.size and ssim(a, clean[y1:y2, x1:x2]) < SSIM_HIDDEN)


def detected(face: Face, dets: Any, high: float) -> bool:
    """A detection scoring >= high overlaps the face (IoU >= 0.1) with its centre inside the face's box."""
    from blur.types import iou_matrix

    strong = dets.xyxy[dets.score >= high]
    if not len(strong):
        return False
    x1, y1, x2, y2 = face.box
    cx, cy = (strong[:, 0] + strong[:, 2]) / 2, (strong[:, 1] + strong[:, 3]) / 2
    inside = (cx >= x1) & (cx <= x2) & (cy >= y1) & (cy <= y2)
    iou = iou_matrix(np.array([face.box], np.float32), strong)[0]
    return bool((inside & (iou >= 0.1)).any())


def found_nearby(scene_dets: list[Any], faces: list[list[Face]], high: float) -> dict[tuple[int, str], bool]:
    """(frame, face) -> the detector finds that face within +-WINDOW frames."""
    hit = {
        (t, f.ident): detected(f, dets, high)
        for t, (dets, gts) in enumerate(zip(scene_dets, faces, strict=True))
        for f in gts
    }
    return {
        (t, ident): any(hit.get((u, ident), False) for u in range(t - WINDOW, t + WINDOW + 1)) for (t, ident) in hit
    }


@dataclass
class SyntheticScore:
    face_frames: int = 0
    leaked: int = 0
    missed_by_detector: int = 0
    leaked_where: list[str] = field(default_factory=list)


def score_synthetic(scene: Scene, outputs: list[np.ndarray], near: dict[tuple[int, str], bool]) -> SyntheticScore:
    score = SyntheticScore()
    occl = _occluder_mask(scene)
    for t, (out, clean, faces) in enumerate(zip(outputs, scene.frames, scene.faces, strict=True)):
        for face in faces:
            if face.visible < MIN_VISIBLE or not near.get((t, face.ident), False):
                continue
            score.face_frames += 1
            if not hidden_fill(out, clean, face, occl):
                score.leaked += 1
                score.leaked_where.append(f"{scene.name}:{face.ident}@{t}")
    return score


def _occluder_mask(scene: Scene) -> np.ndarray:
    """Pixels of the static pole (drawn in a fixed grey) in the pole scene."""
    mask = np.zeros((H, W), bool)
    if scene.name == "pole":
        mask[:, 300:345] = True
    return mask


# --------------------------------------------------------------------------- detection and masks in memory


def detect_all(clip: Path, detector: Any, side: int) -> list[Any]:
    """Run blur's video detector on every frame of `clip` exactly as the pipeline does.

    Same detector copies (FFmpeg's area scaling from the decoded picture, long side `side`) and
    batches of 4: a borderline face comes out the same here as in `blur anonymize`.
    """
    import av

    from blur.media.planes import detector_copy
    from blur.video.schedule import detect_size

    out: list[Any] = []
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        w, h = stream.codec_context.width, stream.codec_context.height
        size = detect_size(w, h, side)
        chunk: list[np.ndarray] = []
        for frame in container.decode(stream):
            chunk.append(detector_copy(frame, size, 0))
            if len(chunk) == 4:
                out.extend(d.scaled(w / size[0], h / size[1]) for d in detector.detect_batch(chunk))
                chunk = []
        if chunk:
            out.extend(d.scaled(w / size[0], h / size[1]) for d in detector.detect_batch(chunk))
    return out


def cached_detections(cache: Path, clip: Path, frames: int, detector: Any) -> list[Any]:
    """detect_all at the default detection size, kept in `cache` between runs."""
    from blur.types import Detections
    from blur.video.options import VideoOptions

    if cache.is_file():
        data = np.load(cache)
        return [Detections(data[f"b{i}"], data[f"s{i}"]) for i in range(frames)]
    dets = detect_all(clip, detector, VideoOptions().detect_side)
    np.savez(cache, **{f"b{i}": d.xyxy for i, d in enumerate(dets)}, **{f"s{i}": d.score for i, d in enumerate(dets)})
    return dets


def cuts_of(frames: list[np.ndarray], side: int) -> set[int]:
    from blur.video.cuts import CutDetector
    from blur.video.schedule import detect_size

    detector = CutDetector()
    h, w = frames[0].shape[:2]
    size = detect_size(w, h, side)
    return {i for i, f in enumerate(frames) if detector(cv2.resize(f, size, interpolation=cv2.INTER_AREA))}


def masked_frames(frames: list[np.ndarray], dets: list[Any], cuts: set[int], cfg: Any) -> Iterator[np.ndarray]:
    """The frames as blur would mask them with tracker settings `cfg` (no encoding)."""
    from blur.anonymize.filters import anonymize
    from blur.anonymize.mask import build_mask
    from blur.config import MaskConfig
    from blur.video.tracking import track_all

    boxes, _ = track_all(dets, cuts, cfg)
    mask_cfg = MaskConfig()
    for frame, b in zip(frames, boxes, strict=True):
        h, w = frame.shape[:2]
        yield anonymize(frame, build_mask(b.clipped(w, h), h, w, mask_cfg), mask_cfg) if len(b) else frame


# --------------------------------------------------------------------------- reference faces (metric 2)


def reference_faces(
    frames: list[np.ndarray], cache: Path, threshold: float = REF_THRESHOLD, min_face: float = 0.0
) -> list[list[tuple[float, ...]]]:
    """Confident faces per frame: CenterFace at 1x and 2x (tiled), at `threshold` (default 0.6), merged by
    NMS; faces whose long side is under `min_face` px are left out."""
    if cache.is_file():
        rows = [[tuple(b) for b in row] for row in json.loads(cache.read_text())]
        return [[b for b in row if max(b[2] - b[0], b[3] - b[1]) >= min_face] for row in rows]
    from blur.config import DetectorConfig
    from blur.detect.centerface import CenterFaceDetector
    from blur.detect.multiscale import tile_grid
    from blur.types import Detections, nms

    det = CenterFaceDetector(DetectorConfig(multiscale=False, threshold=threshold))
    rows: list[list[tuple[float, ...]]] = []
    t0 = time.perf_counter()
    for i, frame in enumerate(frames):
        h, w = frame.shape[:2]
        found = [det.infer([frame], threshold)[0]]
        up = cv2.resize(frame, (w * 2, h * 2), interpolation=cv2.INTER_CUBIC)
        for x0, y0, x1, y1 in tile_grid(w * 2, h * 2, tile=1280, overlap=256):
            found.append(det.infer([up[y0:y1, x0:x1]], threshold)[0].shifted(x0, y0).scaled(0.5))
        merged = nms(Detections.concat(found), 0.3).clipped(w, h)
        rows.append([tuple(round(float(v), 1) for v in b) for b in merged.xyxy])
        if i % 20 == 0:
            log(f"  reference {i}/{len(frames)} ({time.perf_counter() - t0:.0f} s)")
    cache.write_text(json.dumps(rows))
    return [[b for b in row if max(b[2] - b[0], b[3] - b[1]) >= min_face] for row in rows]


def leaked_frames(
    inputs: list[np.ndarray], outputs: list[np.ndarray], refs: list[list[tuple[float, ...]]]
) -> tuple[int, int, int]:
    """(frames with a leaked reference face, leaked face-frames, reference face-frames)."""
    where = leak_positions(inputs, outputs, refs)
    return len({i for i, _ in where}), len(where), sum(len(r) for r in refs)


def leak_positions(
    inputs: list[np.ndarray], outputs: list[np.ndarray], refs: list[list[tuple[float, ...]]]
) -> list[tuple[int, tuple[float, ...]]]:
    """(frame index, box) of every reference face left visible in the output."""
    return [
        (i, box)
        for i, (clean, out, row) in enumerate(zip(inputs, outputs, refs, strict=False))
        for box in row
        if not hidden_pixels(out, clean, box)
    ]


# --------------------------------------------------------------------------- running the tools


@dataclass
class Timed:
    seconds: float
    ok: bool
    note: str = ""


def run_cmd(cmd: list[str], log_file: Path) -> Timed:
    t0 = time.perf_counter()
    with log_file.open("w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False)
    return Timed(
        time.perf_counter() - t0, proc.returncode == 0, "" if proc.returncode == 0 else f"exit {proc.returncode}"
    )


def run_blur(clip: Path, out_dir: Path, extra: list[str]) -> tuple[Timed, Path]:
    blur = shutil.which("blur") or "blur"
    cmd = [blur, "anonymize", str(clip), "-o", str(out_dir), "--jobs", "1", "--quiet", *extra]
    return run_cmd(cmd, out_dir.parent / f"{clip.stem}.blur.log"), out_dir / clip.name


def run_deface(clip: Path, out: Path) -> Timed:
    deface = shutil.which("deface") or "deface"
    cmd = [deface, "--keep-audio", "--backend", "opencv", str(clip), "-o", str(out)]
    return run_cmd(cmd, out.parent / f"{clip.stem}.deface.log")


def floor_fps(clip: Path, dest: Path) -> Timed:
    """Decode and re-encode with blur's codec settings, nothing else: the speed floor."""
    import av

    from blur.config import Settings
    from blur.media.video_write import OUTPUT_OPTIONS, encode_spec

    spec = encode_spec("mp4", Settings().video_crf)
    t0 = time.perf_counter()
    with av.open(str(clip)) as inp, av.open(str(dest), "w", format="mp4", options=dict(OUTPUT_OPTIONS)) as out:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        stream = out.add_stream(spec.codec, rate=vin.average_rate, options=dict(spec.options))
        stream.width, stream.height, stream.pix_fmt = vin.codec_context.width, vin.codec_context.height, spec.pix_fmt
        stream.time_base = stream.codec_context.time_base = vin.time_base
        for frame in inp.decode(vin):
            picture = frame.reformat(format=spec.pix_fmt)
            picture.pts, picture.time_base = frame.pts, vin.time_base
            out.mux(stream.encode(picture))
        out.mux(stream.encode())
    return Timed(time.perf_counter() - t0, True)


# --------------------------------------------------------------------------- the sweep


SWEEP = {
    "max_gap_seconds": [0.25, 0.5, 1.0, 2.0],
    "pad": [0, 3, 6, 10, 15, 20, 30],
    "grow": [0.0, 0.02, 0.04, 0.08],
    "low_fraction": [1.0, 1 / 3],
}


def tracker_for(fps: float, high: float, **params: float) -> Any:
    from blur.video.tracking import TrackerConfig

    return TrackerConfig(
        high=high,
        low=high * params["low_fraction"],
        max_gap=max(1, round(params["max_gap_seconds"] * fps)),
        pad=int(params["pad"]),
        grow=params["grow"],
    )


def mask_leaks(
    scene: Scene, dets: list[Any], cuts: set[int], cfg: Any, near: dict[tuple[int, str], bool]
) -> tuple[int, int, float]:
    """(leaked face-frames, face-frames that must be hidden, mean masked share of the frame) at mask level."""
    from blur.anonymize.mask import build_mask
    from blur.config import MaskConfig
    from blur.video.tracking import track_all

    boxes, _ = track_all(dets, cuts, cfg)
    occl = _occluder_mask(scene)
    leaked = total = 0
    area = 0.0
    for t, (b, faces) in enumerate(zip(boxes, scene.faces, strict=True)):
        mask = build_mask(b.clipped(W, H), H, W, MaskConfig())
        area += float(mask.mean())
        for face in faces:
            if face.visible < MIN_VISIBLE or not near.get((t, face.ident), False):
                continue
            total += 1
            view = outline_mask(face) & ~occl
            leaked += bool(view.any() and mask[view].mean() < COVERED)
    return leaked, total, area / len(boxes)


def sweep_synthetic(
    scenes: list[tuple[Scene, list[np.ndarray], list[Any], set[int]]], high: float
) -> list[dict[str, Any]]:
    """Leaked face-frames (mask coverage) and masked area for every tracker setting in SWEEP."""
    rows = []
    keys = list(SWEEP)
    nears = [found_nearby(dets, scene.faces, high) for scene, _, dets, _ in scenes]
    for values in itertools.product(*(SWEEP[k] for k in keys)):
        params = dict(zip(keys, values, strict=True))
        cfg = tracker_for(30.0, high, **params)
        leaked = total = 0
        area = 0.0
        for (scene, _, dets, cuts), near in zip(scenes, nears, strict=True):
            lk, tot, ar = mask_leaks(scene, dets, cuts, cfg, near)
            leaked, total, area = leaked + lk, total + tot, area + ar
        rows.append({**params, "leaked": leaked, "face_frames": total, "masked_area": area / len(scenes)})
    return rows


# --------------------------------------------------------------------------- main


def engine_and_detector() -> tuple[Any, Any, float]:
    from blur.config import Settings
    from blur.engine import build_engine
    from blur.video.options import LOW_FRACTION, threshold_of, video_detector

    engine = build_engine(Settings(verify=False))
    high = threshold_of(engine.detector)
    return engine, video_detector(engine, high * LOW_FRACTION), high


def synthetic(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Metric 1: run blur end to end on the synthetic scenes; optionally sweep the tracker settings."""
    from blur.video.options import VideoOptions

    scenes = synthetic_scenes()
    _, detector, high = engine_and_detector()
    result: dict[str, Any] = {"scenes": {}}
    prepared = []
    for scene in scenes:
        clip = work / f"synthetic-{scene.name}.mp4"
        if not clip.is_file():
            write_scene(scene, clip)
        timed, output = (
            (Timed(0, False), clip) if args.sweep_only else run_blur(clip, work / "blur-out", args.blur_args)
        )
        decoded_in = read_frames(clip)
        dets = cached_detections(work / f"synthetic-{scene.name}.dets.npz", clip, len(decoded_in), detector)
        cuts = cuts_of(decoded_in, VideoOptions().detect_side)
        near = found_nearby(dets, scene.faces, high)
        outputs = read_frames(output) if timed.ok else []
        score = score_synthetic(scene, outputs, near) if outputs else SyntheticScore()
        missed = sum(
            1
            for t, faces in enumerate(scene.faces)
            for f in faces
            if f.visible >= MIN_VISIBLE and near.get((t, f.ident)) and not detected(f, dets[t], high)
        )
        deface: dict[str, Any] = {}
        if "deface" in args.tool_set and not args.sweep_only:
            out = work / f"synthetic-{scene.name}.deface.mp4"
            run = run_deface(clip, out)
            if run.ok:
                d = score_synthetic(scene, read_frames(out, size=(W, H)), near)
                deface = {"deface_leaked": d.leaked, "deface_face_frames": d.face_frames}
        result["scenes"][scene.name] = {
            **deface,
            "ok": timed.ok,
            "face_frames": score.face_frames,
            "leaked": score.leaked,
            "detector_missed": missed,
            "cuts_found": sorted(cuts),
            "cuts_true": sorted(scene.cuts),
            "leaks": score.leaked_where[:20],
        }
        log(
            f"synthetic {scene.name}: {score.leaked} leaked of {score.face_frames} face-frames "
            f"(detector alone missed {missed}); cuts {sorted(cuts)} vs {sorted(scene.cuts)}"
        )
        prepared.append((scene, decoded_in, dets, cuts))
    if args.sweep:
        result["sweep"] = sweep_synthetic(prepared, high)
    return result


def real_clip(clip: Path, work: Path, args: argparse.Namespace, tools: set[str]) -> dict[str, Any]:
    """Metric 2 and speed on one real clip."""
    name = clip.stem
    if args.max_frames:
        clip = trim(clip, work / f"{name}-first{args.max_frames}.mp4", args.max_frames)
    frames = frame_count(clip)
    inputs = read_frames(clip)
    digest = hashlib.md5(clip.read_bytes()).hexdigest()[:10]
    tag = f"{name}-{digest}-{args.ref_threshold:g}"
    refs = reference_faces(
        inputs,
        work.parent / f"ref-{tag}.json" if args.cache else work / f"ref-{tag}.json",
        args.ref_threshold,
        args.ref_min_face,
    )
    row: dict[str, Any] = {
        "clip": name,
        "frames": frames,
        "ref_face_frames": sum(len(r) for r in refs),
        "ref_frames": sum(bool(r) for r in refs),
        "load": os.getloadavg()[0],
    }
    row["floor_fps"] = frames / floor_fps(clip, work / f"{name}.floor.mp4").seconds
    if "blur" in tools:
        timed, output = run_blur(clip, work / "blur-out", args.blur_args)
        row["blur_fps"] = frames / timed.seconds if timed.ok else None
        if timed.ok:
            where = leak_positions(inputs, read_frames(output), refs)
            row["blur_leaked_frames"], row["blur_leaked_faces"] = len({i for i, _ in where}), len(where)
            row["blur_leaks"] = [f"frame {i} of {frames}: box {[round(v) for v in box]}" for i, box in where]
    if "deface" in tools:
        out = work / f"{name}.deface.mp4"
        timed = run_deface(clip, out)
        row["deface_fps"] = frames / timed.seconds if timed.ok else None
        if timed.ok:
            outputs = read_frames(out, size=(inputs[0].shape[1], inputs[0].shape[0]))
            row["deface_frames_out"] = len(outputs)
            row["deface_leaked_frames"], row["deface_leaked_faces"], _ = leaked_frames(inputs, outputs, refs)
    if args.sweep:
        row["detect_side_sweep"], row["tracker_sweep"] = sweep_detect_side(clip, inputs, refs, clip_fps(clip))
    log(f"{name}: {json.dumps({k: v for k, v in row.items() if not k.endswith('_sweep')})}")
    return row


REAL_TRACKER_SWEEP = {"pad": [6, 15], "grow": [0.0, 0.02], "low_fraction": [1.0, 1 / 3]}
FINE_EVERY = [2, 4, 8, 9, 15]


def combine(coarse: list[Any], fine: list[Any], every: int) -> list[Any]:
    """Coarse detections on every frame, merged with fine ones on every `every`-th frame (as blur does)."""
    from blur.types import Detections, nms
    from blur.video.schedule import MERGE_IOU

    return [
        nms(Detections.concat([c, f]), MERGE_IOU) if t % every == 0 else c
        for t, (c, f) in enumerate(zip(coarse, fine, strict=True))
    ]


def sweep_detect_side(
    clip: Path, inputs: list[np.ndarray], refs: list[list[tuple[float, ...]]], fps: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Metric 2 with masks in memory: per detection plan (default tracker), then per tracker setting.

    Plans: one size on every frame, or 640 on every frame plus a fine size every N frames. The
    cost column adds the measured detector time of each pass, per frame.
    """
    from blur.video.options import VideoOptions, tracker_config
    from blur.video.schedule import detection_plan

    _, detector, high = engine_and_detector()
    h, w = inputs[0].shape[:2]
    native = max(w, h)
    cfg = tracker_config(VideoOptions(), high, fps)
    per_side: dict[int, tuple[list[Any], float]] = {}
    for side in sorted({640, 960, 1280, min(native, 1920)}):
        if side > native:
            continue
        t0 = time.perf_counter()
        dets = detect_all(clip, detector, side)
        per_side[side] = (dets, 1000 * (time.perf_counter() - t0) / len(inputs))
    cuts = cuts_of(inputs, 640)
    plans: list[tuple[str, list[Any], float]] = [(f"{s} every frame", d, ms) for s, (d, ms) in per_side.items()]
    coarse, coarse_ms = per_side[min(per_side)]
    for side, (dets, ms) in per_side.items():
        if side == min(per_side):
            continue
        for every in FINE_EVERY:
            plans.append(
                (f"{min(per_side)} + {side} every {every}", combine(coarse, dets, every), coarse_ms + ms / every)
            )
    sides = []
    for name, dets, ms in plans:
        leaked, faces, total = leaked_frames(inputs, list(masked_frames(inputs, dets, cuts, cfg)), refs)
        sides.append(
            {
                "plan": name,
                "detect_ms_per_frame": ms,
                "leaked_frames": leaked,
                "leaked_faces": faces,
                "ref_face_frames": total,
            }
        )
    default = VideoOptions()
    fine_side = min(native, default.fine_side)
    chosen = (
        combine(coarse, per_side[fine_side][0], detection_plan(w, h, default).every)
        if fine_side in per_side and fine_side != min(per_side)
        else coarse
    )
    trackers = []
    keys = list(REAL_TRACKER_SWEEP)
    for values in itertools.product(*(REAL_TRACKER_SWEEP[k] for k in keys)):
        params = dict(zip(keys, values, strict=True))
        tcfg = tracker_for(fps, high, max_gap_seconds=1.0, **params)
        leaked, faces, total = leaked_frames(inputs, list(masked_frames(inputs, chosen, cuts, tcfg)), refs)
        trackers.append({**params, "leaked_frames": leaked, "leaked_faces": faces, "ref_face_frames": total})
    return sides, trackers


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def report(rows: list[dict[str, Any]], synth: dict[str, Any] | None, args: argparse.Namespace) -> None:
    print(f"\nload average at start: {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores")
    print(f"reference: CenterFace 1x + 2x tiles, threshold {args.ref_threshold:g}, faces >= {args.ref_min_face:g} px\n")
    if rows:
        print(
            "| clip | frames | blur fps | deface fps | floor fps | blur/deface | floor/blur | "
            "ref face-frames | blur leaked frames | deface leaked frames |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            ratio = r["blur_fps"] / r["deface_fps"] if r.get("blur_fps") and r.get("deface_fps") else None
            floor = r["floor_fps"] / r["blur_fps"] if r.get("blur_fps") else None
            print(
                f"| {r['clip']} | {r['frames']} | {fmt(r.get('blur_fps'), 2)} | {fmt(r.get('deface_fps'), 2)} | "
                f"{fmt(r['floor_fps'], 2)} | {fmt(ratio, 2)} | {fmt(floor, 2)} | {r['ref_face_frames']} | "
                f"{fmt(r.get('blur_leaked_frames'))} | {fmt(r.get('deface_leaked_frames'))} |"
            )
    for r in rows:
        if r.get("blur_leaks"):
            print(f"\nblur's leaks in {r['clip']}: " + "; ".join(r["blur_leaks"][:20]))
    for r in rows:
        if r.get("deface_frames_out") not in (None, r["frames"]):
            print(
                f"\nnote: deface wrote {r['deface_frames_out']} frames for the {r['frames']} of {r['clip']}; "
                "its leak count compares frames by position and is unreliable there"
            )
    if synth:
        leaked = sum(s["leaked"] for s in synth["scenes"].values())
        total = sum(s["face_frames"] for s in synth["scenes"].values())
        missed = sum(s["detector_missed"] for s in synth["scenes"].values())
        print(
            f"\nsynthetic clips (metric 1): **{leaked} leaked face-frames** of {total} "
            f"(the detector alone missed {missed} of them; the tracker must cover those)"
        )
        if any("deface_leaked" in s for s in synth["scenes"].values()):
            d_leaked = sum(s.get("deface_leaked", 0) for s in synth["scenes"].values())
            print(f"deface on the same clips: {d_leaked} leaked face-frames of {total}")
        for name, s in synth["scenes"].items():
            print(
                f"- {name}: {s['leaked']} / {s['face_frames']} leaked, detector missed {s['detector_missed']}, "
                f"cuts found {s['cuts_found']} (true {s['cuts_true']})"
            )
        if "sweep" in synth:
            print("\ntracker sweep on the synthetic clips (leaked face-frames; masked share of the frame):\n")
            print("| max gap (s) | pad | grow | low/high | leaked | masked area |")
            print("|---|---|---|---|---|---|")
            for r in sorted(synth["sweep"], key=lambda r: (r["leaked"], r["masked_area"])):
                print(
                    f"| {r['max_gap_seconds']} | {r['pad']} | {r['grow']} | {r['low_fraction']:.2f} | "
                    f"{r['leaked']} | {r['masked_area']:.4f} |"
                )
    for r in rows:
        for s in r.get("tracker_sweep", []):
            print(
                f"tracker {r['clip']} pad {s['pad']} grow {s['grow']} low/high {s['low_fraction']:.2f}: "
                f"{s['leaked_frames']} leaked frames ({s['leaked_faces']} of {s['ref_face_frames']} face-frames)"
            )
        for s in r.get("detect_side_sweep", []):
            print(
                f"detect {r['clip']} {s['plan']}: {s['detect_ms_per_frame']:.0f} ms/frame, "
                f"{s['leaked_frames']} leaked frames ({s['leaked_faces']} of {s['ref_face_frames']} face-frames)"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-frames", type=int, default=0, help="only the first N frames of each real clip")
    parser.add_argument("--clips", default="", help="comma-separated clip names (default: all)")
    parser.add_argument("--tools", default="blur,deface")
    parser.add_argument("--synthetic-only", action="store_true")
    parser.add_argument("--no-synthetic", action="store_true")
    parser.add_argument("--sweep", action="store_true", help="sweep tracker and detection-size settings")
    parser.add_argument("--sweep-only", action="store_true", help="synthetic sweep without running blur end to end")
    parser.add_argument("--blur-args", default="", help="extra `blur anonymize` arguments")
    parser.add_argument("--workdir", type=Path, default=None, help="keep clips and outputs here")
    parser.add_argument("--cache", action="store_true", help="cache reference faces beside the workdir")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--ref-threshold", type=float, default=REF_THRESHOLD, help="reference detector threshold (default 0.6)"
    )
    parser.add_argument("--ref-min-face", type=float, default=0.0, help="leave out reference faces under N px")
    args = parser.parse_args(argv)
    args.blur_args = args.blur_args.split()
    args.sweep = args.sweep or args.sweep_only
    clips = sorted(VIDEOS.glob("*.mp4")) if VIDEOS.is_dir() else []
    if args.clips:
        wanted = set(args.clips.split(","))
        clips = [c for c in clips if c.stem in wanted or c.name in wanted]
    if not clips and not args.synthetic_only:
        print("benchdata not found, nothing measured")
        return 0
    tools = set(args.tools.split(","))
    args.tool_set = tools
    work = args.workdir or Path(tempfile.mkdtemp(prefix="blur-video-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "blur-out").mkdir(exist_ok=True)
    log(f"workdir {work}; load {os.getloadavg()[0]:.2f}")
    try:
        synth = None if args.no_synthetic else synthetic(work, args)
        rows = [] if args.synthetic_only else [real_clip(c, work, args, tools) for c in clips]
        report(rows, synth, args)
        if args.json:
            args.json.write_text(json.dumps({"clips": rows, "synthetic": synth}, indent=2, default=str))
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
