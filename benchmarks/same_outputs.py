"""Show that a change kept behaviour: run two revisions of blur on the same inputs and compare everything.

Usage (from the repository root)::

    python benchmarks/same_outputs.py 9dd7be9            # that commit against the working tree
    python benchmarks/same_outputs.py 9dd7be9 HEAD       # two commits
    python benchmarks/same_outputs.py 9dd7be9 --photos 5 --no-clips   # quicker

Inputs: the built-in sample (made once, by the BEFORE revision), plus, when ../shared/benchdata is
there, `--photos` of its WIDER FACE photos (spread over the list) and its real video clips, copied
into a temporary folder (never into the repository). Each revision runs `python -m blur anonymize`
over that folder with its own code (PYTHONPATH), then:

- every output is compared byte for byte; where the bytes differ, the decoded pixels (and, for
  video, every frame's timestamp) are compared;
- the two JSON reports are compared with the timings and the output folder's name taken out.

Prints a markdown table and exits 1 when anything differs. A measuring instrument, not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCHDATA = REPO_ROOT.parent / "shared" / "benchdata"


def log(msg: str) -> None:
    print(f"[same_outputs] {msg}", file=sys.stderr, flush=True)


def export(rev: str, dest: Path) -> Path:
    """The `blur` package of `rev` under `dest` (a git archive, so the working tree is not touched)."""
    dest.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", "--format=tar", rev, "blur"], check=True, capture_output=True
    ).stdout
    tar_path = dest / "blur.tar"
    tar_path.write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        tar.extractall(dest, filter="data")
    tar_path.unlink()
    return dest


def blur_cmd(tree: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "blur", *args], env=env, capture_output=True, text=True, check=False, cwd=tree
    )
    return done, time.perf_counter() - start


def gather_inputs(folder: Path, before: Path, photos: int, clips: bool) -> None:
    done, _ = blur_cmd(before, "sample", str(folder / "sample"))
    if done.returncode != 0:
        raise SystemExit(f"blur sample failed: {done.stderr}")
    gt = BENCHDATA / "gt" / "wider_train_full.json"
    if photos and gt.is_file():
        entries = json.loads(gt.read_text())
        step = max(1, len(entries) // photos)
        (folder / "photos").mkdir()
        for entry in entries[::step][:photos]:
            src = BENCHDATA / entry["image"]
            shutil.copyfile(src, folder / "photos" / src.name)
    elif photos:
        log("benchdata not found: the sample only")
    videos = BENCHDATA / "videos"
    if clips and videos.is_dir():
        (folder / "clips").mkdir()
        for clip in sorted(videos.glob("*.mp4")):
            shutil.copyfile(clip, folder / "clips" / clip.name)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def photo_pixels(path: Path) -> np.ndarray:
    from PIL import Image
    from pillow_heif import register_heif_opener

    register_heif_opener()
    with Image.open(path) as image:
        return np.asarray(image.convert("RGBA"))


def video_frames(path: Path) -> list[tuple[int | None, str]]:
    """Every frame's pts and the SHA-256 of its decoded pixels."""
    import av

    with av.open(str(path)) as container:
        return [
            (frame.pts, hashlib.sha256(frame.to_ndarray(format="rgb24").tobytes()).hexdigest())
            for frame in container.decode(video=0)
        ]


def same_decoded(a: Path, b: Path) -> bool:
    if a.suffix.lower() in {".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi"}:
        return video_frames(a) == video_frames(b)
    pa, pb = photo_pixels(a), photo_pixels(b)
    return pa.shape == pb.shape and bool((pa == pb).all())


def normalise(report: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """The report without timings, with the output folder's own name replaced by OUT."""
    text = json.dumps(report, sort_keys=True).replace(str(out_dir), "OUT")
    data = json.loads(text)
    data.get("summary", {}).pop("seconds", None)
    for item in data.get("files", []):
        item.pop("seconds", None)
    return data


def differences(a: Any, b: Any, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        found: list[str] = []
        for key in sorted(set(a) | set(b)):
            found += differences(a.get(key), b.get(key), f"{where}.{key}")
        return found
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [where or "."]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", help="git revision to compare against")
    parser.add_argument("after", nargs="?", help="git revision (default: the working tree)")
    parser.add_argument("--photos", type=int, default=20, help="benchdata photos (default 20; 0: none)")
    parser.add_argument("--no-clips", action="store_true", help="leave out the benchdata videos")
    parser.add_argument("--workdir", type=Path, help="keep inputs, outputs and reports here")
    args = parser.parse_args(argv)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="blur-same-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        before = export(args.before, work / "before")
        after = export(args.after, work / "after") if args.after else REPO_ROOT
        inputs = work / "in"
        inputs.mkdir()
        gather_inputs(inputs, before, args.photos, not args.no_clips)
        runs: dict[str, tuple[Path, Path, float, int]] = {}
        for tag, tree in (("before", before), ("after", after)):
            out, report = work / f"out-{tag}", work / f"report-{tag}.json"
            log(f"{tag}: blur anonymize ({tree})")
            done, seconds = blur_cmd(tree, "anonymize", str(inputs), "-o", str(out), "--report", str(report), "-q")
            runs[tag] = (out, report, seconds, done.returncode)
        return compare(runs, args)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def compare(runs: dict[str, tuple[Path, Path, float, int]], args: argparse.Namespace) -> int:
    (out_a, rep_a, sec_a, rc_a), (out_b, rep_b, sec_b, rc_b) = runs["before"], runs["after"]
    names = sorted({p.relative_to(out_a) for p in out_a.rglob("*") if p.is_file()})
    names_b = sorted({p.relative_to(out_b) for p in out_b.rglob("*") if p.is_file()})
    rows: list[tuple[str, str]] = []
    bad = 0
    for name in sorted(set(names) | set(names_b)):
        a, b = out_a / name, out_b / name
        if not a.is_file() or not b.is_file():
            verdict = "only before" if a.is_file() else "only after"
        elif sha(a) == sha(b):
            verdict = "same bytes"
        elif same_decoded(a, b):
            verdict = "same decoded pixels and timestamps"
        else:
            verdict = "DIFFERENT"
        bad += verdict not in ("same bytes", "same decoded pixels and timestamps")
        rows.append((str(name), verdict))
    report_diffs = differences(
        normalise(json.loads(rep_a.read_text()), out_a), normalise(json.loads(rep_b.read_text()), out_b)
    )
    print(f"before: {args.before}   after: {args.after or 'working tree'}\n")
    print("| output | result |\n|---|---|")
    for name, verdict in rows:
        print(f"| {name} | {verdict} |")
    print(f"\nexit status: before {rc_a}, after {rc_b}; wall: before {sec_a:.1f} s, after {sec_b:.1f} s")
    if report_diffs:
        print(f"reports differ at {len(report_diffs)} place(s): {', '.join(report_diffs[:20])}")
    else:
        print("reports: identical (timings and the output folder's name aside)")
    same = not bad and not report_diffs and rc_a == rc_b
    print(f"\n{len(rows)} outputs, {bad} different: {'SAME' if same else 'DIFFERENT'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
