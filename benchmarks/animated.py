"""Which detector should search the frames of animated pictures: the photo plan or the video passes?

Usage (from the repository root)::

    python benchmarks/animated.py                 # 60 WIDER FACE photos, frames of 480 and 1080 px
    python benchmarks/animated.py --limit 200 --sides 320,480,720,1080

Animated GIFs and WebPs are small frames (a GIF is typically 480 px wide). Each WIDER FACE photo of
../shared/benchdata is scaled so its long side is that of such a frame, and searched by

- the photo detector (`engine.detector`: the multiscale plan, upscaled detail pass), which
  `blur.photo.sequence` runs on every frame, and
- the video passes at their best (`blur.video`: the coarse pass at 640 px and the fine pass at the
  frame's own size on the same frame, detections from the tracker's start threshold up).

A labelled face counts as found when a detection overlaps it with IoU >= 0.3. The table gives the
recall by face size and the time per frame. Markdown on stdout; nothing measured without benchdata.

This is a measuring instrument, not a test: nothing in tests/ runs or imports it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import _wider as W

from blur.config import Settings
from blur.engine import build_engine
from blur.types import Detections, iou_matrix, nms
from blur.video.options import VideoOptions, threshold_of, video_detector
from blur.video.schedule import detect_size

BENCHDATA = Path(__file__).resolve().parent.parent.parent / "shared" / "benchdata"
MATCH_IOU = 0.3


def _found(faces: tuple[W.Face, ...], dets: Detections) -> list[bool]:
    if not faces:
        return []
    gt = np.array([[f.x, f.y, f.x + f.w, f.y + f.h] for f in faces], np.float32)
    if len(dets) == 0:
        return [False] * len(faces)
    return list((iou_matrix(gt, dets.xyxy) >= MATCH_IOU).any(axis=1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument("--sides", default="480,1080", help="long sides of the frames, comma-separated")
    args = parser.parse_args()
    gt = BENCHDATA / "gt" / "wider_train_full.json"
    if not gt.exists():
        print("benchdata not found, nothing measured")
        return 0
    photos = W.load_gt(gt, BENCHDATA)[: args.limit]
    engine = build_engine(Settings())
    high = threshold_of(engine.detector)
    video = video_detector(engine, high)
    options = VideoOptions()
    print(
        f"## Detectors on frames of animated pictures: {len(photos)} WIDER FACE photos, load {os.getloadavg()[0]:.1f}\n"
    )
    print(
        "| long side | detector | faces | found | " + " | ".join(label for label, _, _ in W.BUCKETS) + " | ms/frame |"
    )
    print("|---|---|---|---|" + "---|" * len(W.BUCKETS) + "---|")
    for side in (int(s) for s in args.sides.split(",")):
        tallies: dict[str, dict[str, list[int]]] = {"photo": {}, "video": {}}
        seconds = {"photo": 0.0, "video": 0.0}
        for photo in photos:
            rgb = W.read_image(photo.path)
            if rgb is None:
                continue
            scale = side / max(rgb.shape[:2])
            frame = np.asarray(cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), np.uint8)
            faces = tuple(f.scaled(scale) for f in photo.faces)
            start = time.perf_counter()
            found = {"photo": engine.detector.detect(frame)}
            seconds["photo"] += time.perf_counter() - start
            start = time.perf_counter()
            w, h = frame.shape[1], frame.shape[0]
            cw, ch = detect_size(w, h, options.detect_side)
            small = np.asarray(cv2.resize(frame, (cw, ch), interpolation=cv2.INTER_AREA), np.uint8)
            coarse = video.detect(small).scaled(w / cw, h / ch)
            fine = video.detect(frame) if (cw, ch) != (w, h) else Detections.empty()
            found["video"] = nms(Detections.concat([coarse, fine]), 0.3)
            seconds["video"] += time.perf_counter() - start
            for name, dets in found.items():
                for face, hit in zip(faces, _found(faces, dets), strict=True):
                    tallies[name].setdefault(W.bucket_of(face.size), [0, 0])
                    tallies[name][W.bucket_of(face.size)][0] += 1
                    tallies[name][W.bucket_of(face.size)][1] += int(hit)
        for name in ("photo", "video"):
            total = sum(t[0] for t in tallies[name].values())
            hits = sum(t[1] for t in tallies[name].values())
            cells = []
            for label, _, _ in W.BUCKETS:
                n, k = tallies[name].get(label, [0, 0])
                cells.append(f"{k}/{n} ({100 * k / n:.0f} %)" if n else "-")
            ms = 1000 * seconds[name] / max(1, len(photos))
            print(
                f"| {side} | {name} | {total} | {100 * hits / max(1, total):.1f} % | "
                + " | ".join(cells)
                + f" | {ms:.0f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
