"""How fast `blur review` answers: preview, a 4x crop, a video frame, and an apply (sidecar + re-render).

    python benchmarks/review.py                 # sample photos, a 24 MP and a 45 MP synthetic photo, a 10 s clip
    python benchmarks/review.py --repeat 5

Everything is built from scikit-image's public-domain astronaut in a temporary folder (no benchmark data):
the batch is anonymized once with blur's defaults, then served on 127.0.0.1 in this process and driven over
HTTP like the page drives it. Each apply keeps the file's first face, then undoes it (two re-renders), so the
output ends as it started. The table prints the median and worst of `--repeat` runs and the load average,
because other work on the machine inflates wall-clock times.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from blur.sample import astronaut, make_sample  # noqa: E402
from tests.review_server import Running, serving  # noqa: E402


def _synthetic(path: Path, width: int, height: int) -> None:
    x = np.linspace(0, 200, width, dtype=np.float32)
    y = np.linspace(0, 200, height, dtype=np.float32)
    rgb = np.empty((height, width, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = x[None, :], y[:, None], 96
    portrait = astronaut()
    for i, side in enumerate((512, 256, 128)):
        px, py = 400 + i * width // 3, 300 + i * height // 4
        rgb[py : py + side, px : px + side] = cv2.resize(portrait, (side, side), interpolation=cv2.INTER_AREA)
    Image.fromarray(rgb).save(path, quality=88)


def _clip(path: Path, seconds: int, rate: int = 25) -> None:
    import av

    frame_rgb = np.full((720, 1280, 3), 90, np.uint8)
    frame_rgb[100:612, 300:812] = astronaut()
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        for i in range(seconds * rate):
            shifted = np.roll(frame_rgb, i * 2, axis=1)
            frame = av.VideoFrame.from_ndarray(shifted, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _timed(client: httpx.Client, url: str, repeat: int) -> tuple[float, float]:
    """Median and worst seconds of GET `url` (the first, uncached, included)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        client.get(url).raise_for_status()
        times.append(time.perf_counter() - start)
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="blur-review-bench-") as tmp:
        base = Path(tmp)
        os.environ["XDG_STATE_HOME"] = str(base / "state")
        src, out = base / "in", base / "out"
        make_sample(src)
        _synthetic(src / "big24.jpg", 6000, 4000)
        _synthetic(src / "big45.jpg", 8192, 5504)
        _clip(src / "clip.mp4", 10)
        from typer.testing import CliRunner

        from blur.cli import app

        start = time.perf_counter()
        result = CliRunner().invoke(app, ["anonymize", str(src), "-o", str(out), "-q"])
        batch_seconds = time.perf_counter() - start
        if result.exit_code != 0:
            raise SystemExit(result.output)
        rows = []
        with serving(out) as run, run.client() as client:
            files = client.get("/api/batch").json()["files"]
            for summary in sorted(files, key=lambda f: f["source"]):
                detail = client.get(f"/api/files/{summary['id']}").json()
                fid, width, height = detail["id"], detail.get("width", 0), detail.get("height", 0)
                name = Path(detail["source"]).name
                none = (float("nan"), float("nan"))
                if detail["kind"] == "image":
                    preview = _timed(client, f"/api/files/{fid}/picture?which=output", args.repeat)
                    crop_url = f"/api/files/{fid}/crop?x={width // 2}&y={height // 2}&w=320&h=225&out=1280"
                    crop, frame = _timed(client, crop_url, args.repeat), none
                else:
                    preview = crop = none
                    frame = _timed(client, f"/api/files/{fid}/frames/125", args.repeat)
                apply = _apply_twice(run, client, detail, args.repeat)
                rows.append((name, f"{width}x{height}", preview, crop, frame, apply))
    print(
        f"load average at start: {load:.2f}; {os.cpu_count()} cores; batch (anonymize, defaults) {batch_seconds:.1f} s"
    )
    print(
        f"median / worst of {args.repeat} (seconds); apply = keep the first face or track, re-render; undo, re-render"
    )
    print()
    print("| file | size | preview | 4x crop | video frame 125 | apply (one re-render) |")
    print("|---|---|---|---|---|---|")
    for name, size, *cells in rows:
        text = [f"{m:.2f} / {w:.2f}" if m == m else "" for m, w in cells]
        print(f"| {name} | {size} | " + " | ".join(text) + " |")


def _apply_twice(run: Running, client: httpx.Client, detail: dict[str, Any], repeat: int) -> tuple[float, float]:
    """Median/worst seconds of one apply (sidecar write + re-render + write-back) over HTTP."""
    times = []
    headers = {"origin": run.base, "content-type": "application/json"}
    fid = detail["id"]
    masks = detail.get("masks") or []
    spans = detail.get("track_spans") or []
    keep: list[dict[str, Any]] = []
    if masks:
        x1, y1, x2, y2 = masks[0]["box"]
        keep = [{"box": [x1 - 5, y1 - 5, x2 + 5, y2 + 5]}]
    elif spans:
        keep = [{"track": spans[0]["id"]}]
    for i in range(repeat):
        for wanted in (keep, []):
            current = client.get(f"/api/files/{fid}").json()
            body = {"edits": [{"id": fid, "digest": current["corrections"]["digest"], "add": [], "keep": wanted}]}
            start = time.perf_counter()
            response = client.post("/api/apply", content=json.dumps(body), headers=headers)
            if i or wanted:
                times.append(time.perf_counter() - start)
            outcome = response.json()["outcomes"][0]
            if not outcome["ok"]:
                raise SystemExit(f"{detail['source']}: {outcome['message']}")
    return statistics.median(times), max(times)


if __name__ == "__main__":
    main()
