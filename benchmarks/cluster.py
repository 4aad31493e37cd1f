"""Cluster and split-video benchmark: throughput of the local pool against a Dask LocalCluster, and one
long 1080p video split into segments against the same video processed whole.

Usage (from the repository root, with `pip install -e ".[cluster]"`)::

    python benchmarks/cluster.py                            # 40 photos, 3 clips, the 1080p clip looped to 63 s
    python benchmarks/cluster.py --photos 20 --loops 15     # quicker
    python benchmarks/cluster.py --skip-throughput          # only the long video

Three tables:

1. **Throughput**: `blur anonymize` (the command line, start-up included) on WIDER FACE photos and on
   three of the benchmark clips, with the local pool (`-j` = cores), and with `--cluster` on a
   LocalCluster of 1 and of 2 worker processes (started before the timing: its start-up is its own
   column).
2. **One long video**: the 1080p street clip looped (re-encoded with PyAV, a keyframe every 2 s) to
   at least 60 s, run whole and split into segments (`--split-after 30 --segment-seconds 10`), with
   the decode + encode floor (the same clip decoded and re-encoded with blur's codec settings and
   nothing else) in the same run.
3. **Same output**: frame count, timestamps and duration of both runs; frames where the split run
   masks less than the whole-file run (a pixel the whole-file run darkened that the split run did not,
   over 1 % of them); leaked frames against the video benchmark's reference (CenterFace at 1x and
   2x tiled, threshold 0.5, faces of 10 px and more; a face is hidden when 90 % of its pixels changed
   or its SSIM is below 0.6). The reference is computed on the 105 frames of the original clip and
   applies to each loop.

Measuring instrument, not a test. Timings depend on the machine's load, printed with each row.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from video import BENCHDATA, VIDEOS, floor_fps, hidden_pixels

CLIP_1080 = VIDEOS / "street_arcade_pedestrians_1080p.mp4"
THROUGHPUT_CLIPS = ("hamilton_whitehouse_speech.mp4", "cctv_parking_lot_group.mp4", "cctv_indoor_two_people.mp4")
REF_THRESHOLD = 0.5
REF_MIN_SIDE = 10.0


def log(msg: str) -> None:
    print(f"[cluster] {msg}", file=sys.stderr, flush=True)


def load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


@dataclass
class Run:
    seconds: float
    code: int
    report: dict[str, Any]
    load: str


def blur_cmd() -> list[str]:
    return [sys.executable, "-m", "blur", "anonymize"]


def run_blur(inputs: list[Path], out: Path, extra: list[str]) -> Run:
    report = out.parent / f"{out.name}.json"
    before = load()
    start = time.perf_counter()
    done = subprocess.run(
        [*blur_cmd(), *map(str, inputs), "-o", str(out), "--report", str(report), "-q", *extra],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):
        log(done.stderr[-2000:])
    data = json.loads(report.read_text()) if report.exists() else {}
    return Run(seconds, done.returncode, data, before)


def frames_of(report: dict[str, Any]) -> int:
    return sum(f.get("frames") or 0 for f in report.get("files", []) if f["status"] == "ok")


def ok_photos(report: dict[str, Any]) -> int:
    return sum(1 for f in report.get("files", []) if f["status"] == "ok" and f["kind"] == "image")


def photo_inputs(n: int) -> list[Path]:
    gt = json.loads((BENCHDATA / "gt" / "wider_train_full.json").read_text())
    return [BENCHDATA / entry["image"] for entry in gt[:n]]


@dataclass
class Cluster:
    address: str
    started: float
    close: Any


def local_cluster(workers: int) -> Cluster:
    from distributed import LocalCluster

    start = time.perf_counter()
    cluster = LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    )
    return Cluster(str(cluster.scheduler_address), time.perf_counter() - start, cluster.close)


def throughput(work: Path, photos: list[Path], clips: list[Path]) -> list[dict[str, Any]]:
    cores = os.cpu_count() or 1
    rows = []
    for name, workers in (("local pool", 0), ("LocalCluster", 1), ("LocalCluster", 2)):
        cluster = local_cluster(workers) if workers else None
        extra = ["--cluster", cluster.address, "-j", str(workers)] if cluster else ["-j", str(cores)]
        try:
            tag = f"{name.replace(' ', '-')}-{workers}"
            log(f"{name} {workers or cores} worker(s): {len(photos)} photos")
            p = run_blur(photos, work / f"{tag}-photos", extra)
            log(f"{name} {workers or cores} worker(s): {len(clips)} clips")
            v = run_blur(clips, work / f"{tag}-videos", extra)
        finally:
            if cluster is not None:
                cluster.close()
        rows.append(
            {
                "run": name,
                "workers": workers or f"{cores} (pool)",
                "start": f"{cluster.started:.1f}" if cluster else "-",
                "photos": ok_photos(p.report),
                "photo_s": p.seconds,
                "frames": frames_of(v.report),
                "video_s": v.seconds,
                "load": f"{p.load} / {v.load}",
            }
        )
    return rows


def loop_clip(src: Path, dest: Path, loops: int) -> tuple[int, float]:
    """`src` repeated `loops` times into `dest` (H.264, a keyframe every 2 s, the audio repeated too)."""
    import av

    with av.open(str(src)) as inp:
        vin = inp.streams.video[0]
        frames = [f.reformat(format="yuv420p") for f in inp.decode(vin)]
        origin = [f.pts for f in frames]  # reformat may hand back the same frame, whose pts is set below
        rate, time_base = vin.average_rate, vin.time_base
    with av.open(str(src)) as inp:
        audio = [p for p in inp.demux(inp.streams.audio[0]) if p.size and p.dts is not None]
        ain_template = inp.streams.audio[0]
        step = origin[1] - origin[0]
        span = step * len(frames)
        with av.open(str(dest), "w", format="mp4") as out:
            keyint = round(2 * float(rate))
            video = out.add_stream("libx264", rate=rate, options={"crf": "20", "preset": "veryfast", "g": str(keyint)})
            video.width, video.height, video.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
            video.time_base = video.codec_context.time_base = time_base
            aout = out.add_stream_from_template(ain_template)
            seconds_per_loop = float(span * time_base)
            for k in range(loops):
                for f, pts in zip(frames, origin, strict=True):
                    f.pts, f.time_base = pts + k * span, time_base
                    out.mux(video.encode(f))
                for p in audio:
                    q = av.Packet(bytes(p))
                    shift = round(k * seconds_per_loop / float(p.time_base))
                    q.pts, q.dts, q.duration, q.time_base = p.pts + shift, p.dts + shift, p.duration, p.time_base
                    q.stream = aout
                    if float(q.pts * p.time_base) < (k + 1) * seconds_per_loop:
                        out.mux(q)
            out.mux(video.encode())
    return len(frames), float(span * time_base) * loops


def reference(src: Path) -> list[list[tuple[float, ...]]]:
    """Confident faces of each frame of the original clip: CenterFace at 1x and 2x (tiled), threshold 0.5,
    merged by NMS, at least 10 px on their long side."""
    import cv2

    from blur.config import DetectorConfig
    from blur.detect.centerface import CenterFaceDetector
    from blur.detect.multiscale import tile_grid
    from blur.types import Detections, nms

    det = CenterFaceDetector(DetectorConfig(multiscale=False, threshold=REF_THRESHOLD))
    rows = []
    for i, frame in enumerate(decoded(src)):
        h, w = frame.shape[:2]
        found = [det.infer([frame], REF_THRESHOLD)[0]]
        up = cv2.resize(frame, (w * 2, h * 2), interpolation=cv2.INTER_CUBIC)
        for x0, y0, x1, y1 in tile_grid(w * 2, h * 2, tile=1280, overlap=256):
            found.append(det.infer([up[y0:y1, x0:x1]], REF_THRESHOLD)[0].shifted(x0, y0).scaled(0.5))
        merged = nms(Detections.concat(found), 0.3).clipped(w, h)
        side = np.maximum(merged.xyxy[:, 2] - merged.xyxy[:, 0], merged.xyxy[:, 3] - merged.xyxy[:, 1])
        rows.append([tuple(float(v) for v in b) for b in merged.xyxy[side >= REF_MIN_SIDE]])
        if i % 25 == 0:
            log(f"  reference frame {i}")
    return rows


def decoded(path: Path) -> Iterator[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in c.decode(stream):
            yield frame.to_ndarray(format="rgb24")


def timing(path: Path) -> tuple[list[int], Any, float, int]:
    import av

    with av.open(str(path)) as c:
        v = c.streams.video[0]
        pts = sorted(p.pts for p in c.demux(v) if p.size and p.pts is not None)
        return pts, v.time_base, (c.duration or 0) / 1e6, len(pts)


def masked(out: np.ndarray, clean: np.ndarray) -> np.ndarray:
    return (out.max(axis=2) < 40) & (clean.max(axis=2) > 70)


def compare(looped: Path, whole: Path, split: Path, refs: list[list[tuple[float, ...]]]) -> dict[str, Any]:
    """Stream the input and both outputs frame by frame: leaks against the reference, and masks missing
    from the split output."""
    leaks = {"whole": 0, "split": 0}
    faces = 0
    less = []
    for i, (clean, a, b) in enumerate(zip(decoded(looped), decoded(whole), decoded(split), strict=True)):
        row = refs[i % len(refs)]
        faces += len(row)
        leaks["whole"] += any(not hidden_pixels(a, clean, box) for box in row)
        leaks["split"] += any(not hidden_pixels(b, clean, box) for box in row)
        by_whole = masked(a, clean)
        if by_whole.sum() > 50 and masked(b, clean)[by_whole].mean() < 0.99:
            less.append(i)
    return {"leaks": leaks, "ref_faces": faces, "less": less}


def long_video(work: Path, loops: int, split_after: float, segment: float) -> dict[str, Any]:
    looped = work / "street_looped.mp4"
    unique, seconds = loop_clip(CLIP_1080, looped, loops)
    log(f"looped {unique} frames x {loops} = {seconds:.1f} s")
    cores = os.cpu_count() or 1
    out: dict[str, Any] = {"seconds": seconds, "loops": loops}
    log("floor: decode + encode")
    floor = floor_fps(looped, work / "floor.mp4")
    out["floor_s"] = floor.seconds
    log("whole file")
    out["whole"] = run_blur([looped], work / "whole", ["-j", str(cores), "--split-after", "0"])
    log("split into segments, local worker processes")
    split_args = ["-j", str(cores), "--split-after", str(split_after), "--segment-seconds", str(segment)]
    out["split"] = run_blur([looped], work / "split", split_args)
    a, b, src = timing(work / "whole" / looped.name), timing(work / "split" / looped.name), timing(looped)
    out["timing"] = {"whole": a, "split": b, "input": src}
    log("reference faces on the original clip")
    refs = reference(CLIP_1080)
    log("comparing frame by frame")
    out["compare"] = compare(looped, work / "whole" / looped.name, work / "split" / looped.name, refs)
    return out


def table(rows: list[list[Any]], head: list[str]) -> None:
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for row in rows:
        print("| " + " | ".join(str(v) for v in row) + " |")
    print()


def report_throughput(rows: list[dict[str, Any]]) -> None:
    print("### Throughput: local pool against a Dask LocalCluster\n")
    table(
        [
            [
                r["run"],
                r["workers"],
                r["start"],
                r["photos"],
                f"{r['photo_s']:.1f}",
                f"{r['photos'] / r['photo_s']:.2f}",
                r["frames"],
                f"{r['video_s']:.1f}",
                f"{r['frames'] / r['video_s']:.2f}",
                r["load"],
            ]
            for r in rows
        ],
        [
            "run",
            "workers",
            "cluster start s",
            "photos",
            "s",
            "photos/s",
            "video frames",
            "s",
            "frames/s",
            "load avg before (photos / videos)",
        ],
    )


def report_long(res: dict[str, Any]) -> None:
    frames = res["timing"]["input"][3]
    floor = res["floor_s"]
    print(f"### One long video: the 1080p clip looped to {res['seconds']:.1f} s ({frames} frames)\n")
    rows = [["decode + encode floor", f"{floor:.1f}", f"{frames / floor:.2f}", "1.00", "-", "-", "-"]]
    for name in ("whole", "split"):
        run: Run = res[name]
        entry = next(iter(run.report.get("files", [])), {})
        seg = entry.get("segments") or {}
        steps = ", ".join(f"{k} {v:.0f}" for k, v in seg.get("seconds", {}).items())
        rows.append(
            [
                f"blur, {name}",
                f"{run.seconds:.1f}",
                f"{frames / run.seconds:.2f}",
                f"{run.seconds / floor:.2f}",
                seg.get("segments", 1),
                seg.get("workers", 1),
                steps or "-",
            ]
        )
    table(rows, ["run", "wall s", "fps", "x floor", "segments", "workers", "step ends, s from start"])
    whole, split, src = (res["timing"][k] for k in ("whole", "split", "input"))
    cmp = res["compare"]
    print("### Same output: split against whole\n")
    table(
        [
            ["frames (input / whole / split)", f"{src[3]} / {whole[3]} / {split[3]}"],
            ["timestamps equal to the input's", f"whole {whole[0] == src[0]}, split {split[0] == src[0]}"],
            ["duration s (input / whole / split)", f"{src[2]:.3f} / {whole[2]:.3f} / {split[2]:.3f}"],
            ["frames where the split output masks less than the whole-file run", len(cmp["less"])],
            [
                f"leaked frames against the reference ({cmp['ref_faces']} reference face-frames)",
                f"whole {cmp['leaks']['whole']}, split {cmp['leaks']['split']}",
            ],
        ],
        ["check", "result"],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--loops", type=int, default=15, help="repetitions of the 4.2 s 1080p clip (15: 63 s)")
    parser.add_argument("--split-after", type=float, default=30.0)
    parser.add_argument("--segment-seconds", type=float, default=10.0)
    parser.add_argument("--ref-threshold", type=float, default=REF_THRESHOLD, help="reference detector threshold")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-long", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None, help="keep every file here (default: a temp folder)")
    args = parser.parse_args(argv)
    global REF_THRESHOLD  # one setting of this script, read by reference() and the table
    REF_THRESHOLD = args.ref_threshold
    if not CLIP_1080.is_file():
        print("benchdata not found, nothing measured")
        return 0
    work = args.workdir or Path(tempfile.mkdtemp(prefix="blur-cluster-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores, load average at start {load()}; {time.strftime('%Y-%m-%d %H:%M')}\n")
    try:
        if not args.skip_throughput:
            clips = [VIDEOS / name for name in THROUGHPUT_CLIPS]
            report_throughput(throughput(work, photo_inputs(args.photos), clips))
        if not args.skip_long:
            report_long(long_video(work, args.loops, args.split_after, args.segment_seconds))
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
