"""Compare blur and deface on annotated crowd photos (WIDER FACE), in one run on the same files.

Usage (from the repository root)::

    python benchmarks/photos.py                        # all 581 photos at 416 px, 640 px, 1x + 4x/6x subsets
    python benchmarks/photos.py --limit 100 --big-n4 4 --big-n6 2
    python benchmarks/photos.py --tools deface --limit 20 --json /tmp/res.json
    python benchmarks/photos.py --sets 416,1x --limit 100   # only the web-size and the full-size sets

Each tool runs once per image set as a subprocess over a folder of lossless PNG copies; the
benchmark then compares every output pixel with its input.  A labelled face counts as obscured
when at least half of the pixels of its GT box changed (any channel by >= 8 of 255).  The markdown
table goes to stdout, progress to stderr.  See benchmarks/README.md.

This is a measuring instrument, not a test: nothing in tests/ runs or imports it.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import importlib.metadata
import importlib.util
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _wider as W  # sibling helper module, benchmark-only

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCHDATA = REPO_ROOT.parent / "shared" / "benchdata"
DEFAULT_GT = "gt/wider_train_full.json"
TOOLS = ("blur", "deface")
STRICT = 0.8
LENIENT = 0.5
BIG_FACE = 40.0
PNG_FAST = [cv2.IMWRITE_PNG_COMPRESSION, 1]
WEB_SIDES = (416, 640)
"""Longest sides of the web-size copies (``--sets 416,640``)."""
SET_KEYS = ("416", "640", "1x", "4x", "6x")


def log(msg: str) -> None:
    print(f"[photos] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- data preparation


@dataclass
class ImageSet:
    """Photos to measure together, at one upscale factor or as web-size copies (``long_side``)."""

    name: str
    photos: list[W.Photo]
    scale: int = 1
    long_side: int | None = None
    """Web-size copies: longest side in pixels (INTER_AREA, then JPEG q90 encode and decode); sizes in
    the tables are then those of the copy."""
    key: str = "1x"


@dataclass
class Prepared:
    """One photo written as PNG for the tools: reference path, file name, faces in its pixels."""

    source: Path
    file: str
    ref: Path
    width: int
    height: int
    faces: tuple[W.Face, ...]


@dataclass
class PreparedSet:
    name: str
    scale: int
    items: list[Prepared]
    skipped: list[str]
    ref_dir: Path
    base_dir: Path
    key: str = "1x"

    @property
    def n_faces(self) -> int:
        return sum(len(p.faces) for p in self.items)


def inside(face: W.Face, width: int, height: int) -> bool:
    x0, y0, x1, y1 = W.clip_box(face.x, face.y, face.w, face.h, width, height)
    return x1 > x0 and y1 > y0


def prepare_set(image_set: ImageSet, base_dir: Path) -> PreparedSet:
    """Decode each photo (no EXIF rotation), upscale or make a web copy if asked, write it as PNG under
    ``base_dir/ref`` (a web copy's PNG holds the decoded JPEG, so the diff measures only the tool)."""
    ref_dir = base_dir / "ref"
    ref_dir.mkdir(parents=True, exist_ok=True)
    items: list[Prepared] = []
    skipped: list[str] = []
    used: set[str] = set()
    t0 = time.perf_counter()
    for photo in image_set.photos:
        orientation = W.exif_orientation(photo.path)
        if orientation != 1:
            skipped.append(f"{photo.path.name}: EXIF orientation {orientation} (not 1)")
            continue
        img = W.read_image(photo.path)
        if img is None:
            skipped.append(f"{photo.path.name}: unreadable")
            continue
        h, w = img.shape[:2]
        if photo.width and photo.height and (w, h) != (photo.width, photo.height):
            skipped.append(f"{photo.path.name}: {w}x{h} but GT says {photo.width}x{photo.height}")
            continue
        faces = photo.faces
        if image_set.scale != 1:
            size = (w * image_set.scale, h * image_set.scale)
            img = np.asarray(cv2.resize(img, size, interpolation=cv2.INTER_CUBIC), dtype=np.uint8)
            faces = tuple(f.scaled(image_set.scale) for f in faces)
            h, w = img.shape[:2]
        if image_set.long_side is not None:
            img, sx, sy = W.web_copy(img, image_set.long_side)
            faces = tuple(f.scaled(sx, sy) for f in faces)
            h, w = img.shape[:2]
        faces = tuple(f for f in faces if inside(f, w, h))
        stem = photo.name
        if stem in used:
            stem = f"{stem}__{len(used)}"
        used.add(stem)
        name = f"{stem}.png"
        ref = ref_dir / name
        if not cv2.imwrite(str(ref), img, PNG_FAST):
            skipped.append(f"{photo.path.name}: could not write PNG")
            continue
        items.append(Prepared(photo.path, name, ref, w, h, faces))
    log(f"{image_set.name}: {len(items)} PNGs written in {time.perf_counter() - t0:.1f} s ({len(skipped)} skipped)")
    return PreparedSet(image_set.name, image_set.scale, items, skipped, ref_dir, base_dir, image_set.key)


def copy_inputs(prepared: PreparedSet, dest: Path) -> None:
    """Give a tool its own copy of the PNGs, so it can neither alter the reference nor see other outputs."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in prepared.items:
        shutil.copyfile(item.ref, dest / item.file)


# --------------------------------------------------------------------------- running the tools


@dataclass
class RunResult:
    tool: str
    command: list[str]
    returncode: int
    wall_s: float
    # largest single process (wait4 rusage; covers waited-for descendants too)
    maxrss_mb: float
    # sampled peak of the summed PSS (or RSS) of the whole live process tree
    tree_peak_mb: float
    # user + system CPU seconds of the process and its waited-for descendants
    cpu_s: float
    # 1-minute load average just before the run (other work on the machine skews timings)
    load_before: float
    log_file: str


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def _process_kib(pid: int) -> int:
    """PSS of one process in KiB (shared pages split fairly), RSS if PSS is unavailable."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError, IndexError):
        return 0


def tree_kib(root: int) -> int:
    """Summed memory of ``root`` and all its live descendants (Linux /proc; 0 elsewhere)."""
    if not os.path.isdir("/proc"):
        return 0
    children = _children_map()
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += _process_kib(pid)
        stack.extend(children.get(pid, []))
    return total


def run_timed(tool: str, cmd: list[str], log_file: Path, cwd: Path, env: dict[str, str]) -> RunResult:
    """Run ``cmd`` to completion: wall clock, peak RSS from wait4, sampled process-tree peak."""
    log(f"running {tool}: {' '.join(cmd)}")
    load_before = os.getloadavg()[0]
    with open(log_file, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env)
        peak = 0
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            peak = max(peak, tree_kib(proc.pid))
            time.sleep(0.1)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    maxrss_mb = rusage.ru_maxrss / 1024.0  # KiB on Linux
    cpu_s = rusage.ru_utime + rusage.ru_stime
    log(f"{tool}: exit {proc.returncode}, {wall:.1f} s wall, {cpu_s:.1f} s CPU, peak RSS {maxrss_mb:.0f} MB")
    if proc.returncode != 0:
        tail = log_file.read_text(errors="replace").splitlines()[-15:]
        log(f"{tool} FAILED; last lines of {log_file}:\n  " + "\n  ".join(tail))
    return RunResult(tool, cmd, proc.returncode, wall, maxrss_mb, peak / 1024.0, cpu_s, load_before, str(log_file))


def blur_command() -> tuple[list[str], dict[str, str]]:
    """``python -m blur`` from the source tree this benchmark lives in (a ``blur`` console script on the
    PATH may belong to another checkout)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return [sys.executable, "-m", "blur"], env


def deface_command() -> list[str]:
    for candidate in (Path(sys.executable).parent / "deface", shutil.which("deface")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return [str(candidate)]
    return [sys.executable, "-m", "deface.deface"]


def run_blur(prepared: PreparedSet, jobs: int | None, extra: Sequence[str]) -> tuple[RunResult, dict[str, Path]]:
    in_dir = prepared.base_dir / "blur_in"
    out_dir = prepared.base_dir / "blur_out"
    copy_inputs(prepared, in_dir)
    base, env = blur_command()
    cmd = [*base, "anonymize", str(in_dir), "-o", str(out_dir)]
    cmd += ["--report", str(prepared.base_dir / "blur_report.json"), "--quiet"]
    if jobs is not None:
        cmd += ["--jobs", str(jobs)]
    cmd += list(extra)
    result = run_timed("blur", cmd, prepared.base_dir / "blur.log", prepared.base_dir, env)
    return result, {item.file: out_dir / item.file for item in prepared.items}


def run_deface(prepared: PreparedSet, backend: str) -> tuple[RunResult, dict[str, Path]]:
    # deface writes <name>_anonymized.png next to each input of a directory it is given
    # (its -o is unreliable with several inputs), so it works on its own copy of the folder.
    # It has no switch to silence its progress bar; its output goes to deface.log.
    in_dir = prepared.base_dir / "deface_in"
    copy_inputs(prepared, in_dir)
    cmd = [*deface_command(), "--backend", backend, str(in_dir)]
    result = run_timed("deface", cmd, prepared.base_dir / "deface.log", prepared.base_dir, dict(os.environ))
    outputs = {item.file: in_dir / f"{Path(item.file).stem}_anonymized.png" for item in prepared.items}
    return result, outputs


# --------------------------------------------------------------------------- measuring outputs


@dataclass
class Counter:
    obscured: int = 0
    labelled: int = 0

    def add(self, hit: bool) -> None:
        self.labelled += 1
        self.obscured += int(hit)

    @property
    def recall(self) -> float | None:
        return self.obscured / self.labelled if self.labelled else None


@dataclass
class Metrics:
    tool: str
    recall: dict[str, Counter] = field(default_factory=dict)
    strict: dict[str, Counter] = field(default_factory=dict)
    missed_big: list[dict[str, Any]] = field(default_factory=list)
    changed_bg: int = 0
    total_bg: int = 0
    missing_outputs: list[str] = field(default_factory=list)
    run: RunResult | None = None
    n_photos: int = 0

    def count(self, group: str, frac: float) -> None:
        self.recall.setdefault(group, Counter()).add(frac >= LENIENT)
        self.strict.setdefault(group, Counter()).add(frac >= STRICT)


GROUPS: tuple[str, ...] = (
    "all",
    ">=10 px",
    *(label for label, _, _ in W.BUCKETS),
    "occluded",
    "heavy blur",
    "atypical pose",
)


def groups_of(face: W.Face, scale: int) -> list[str]:
    """Which table rows a face counts in; size buckets use the size at 1x (the annotated photo) for upscaled
    sets, the size in the copy for web-size sets (their ``scale`` is 1)."""
    size = face.size / scale
    groups = ["all", W.bucket_of(size)]
    if size >= 10:
        groups.append(">=10 px")
    if face.occlusion >= 1:
        groups.append("occluded")
    if face.blur == 2:
        groups.append("heavy blur")
    if face.pose == 1:
        groups.append("atypical pose")
    return groups


def read_output(path: Path, ref_shape: tuple[int, ...]) -> tuple[W.Image | None, str]:
    if not path.is_file():
        return None, "missing"
    img = W.read_image(path)
    if img is None:
        return None, "unreadable"
    if img.shape != ref_shape:
        return None, f"shape {img.shape} != input {ref_shape}"
    return img, ""


def measure(prepared: PreparedSet, outputs: dict[str, dict[str, Path]]) -> dict[str, Metrics]:
    """Compare every tool's output with the reference PNG, one photo at a time."""
    metrics = {tool: Metrics(tool, n_photos=len(prepared.items)) for tool in outputs}
    for m in metrics.values():
        for g in GROUPS:
            m.recall[g] = Counter()
            m.strict[g] = Counter()
    t0 = time.perf_counter()
    for item in prepared.items:
        ref = W.read_image(item.ref)
        if ref is None:
            raise RuntimeError(f"reference PNG unreadable: {item.ref}")
        head = W.head_mask(item.faces, item.width, item.height)
        for tool, paths in outputs.items():
            m = metrics[tool]
            out, problem = read_output(paths[item.file], ref.shape)
            if out is None:
                m.missing_outputs.append(f"{item.file}: {problem}")
                changed = np.zeros(ref.shape[:2], dtype=np.bool_)
            else:
                changed = W.changed_mask(ref, out)
                background = ~head
                m.changed_bg += int(np.count_nonzero(changed & background))
                m.total_bg += int(np.count_nonzero(background))
            for face in item.faces:
                frac = W.changed_fraction(changed, face) or 0.0
                for g in groups_of(face, prepared.scale):
                    m.count(g, frac)
                if face.size / prepared.scale >= BIG_FACE and frac < LENIENT:
                    m.missed_big.append(
                        {
                            "image": str(item.source),
                            "box_1x": [round(v / prepared.scale, 1) for v in (face.x, face.y, face.w, face.h)],
                            "box": [round(v, 1) for v in (face.x, face.y, face.w, face.h)],
                            "changed_fraction": round(frac, 3),
                        }
                    )
    log(f"{prepared.name}: measured in {time.perf_counter() - t0:.1f} s")
    return metrics


# --------------------------------------------------------------------------- reporting


def fmt_recall(c: Counter) -> str:
    r = c.recall
    return "-" if r is None else f"{r:.3f}"


def table(prepared: PreparedSet, metrics: dict[str, Metrics], at_1x: dict[str, Metrics] | None = None) -> str:
    tools = list(metrics)
    ref = next(iter(metrics.values()))
    rows: list[tuple[str, list[str]]] = []

    def n(g: str) -> int:
        return ref.recall[g].labelled

    labels = {
        "all": "recall all",
        ">=10 px": "recall >=10 px",
        "occluded": "recall occluded (occlusion>=1)",
        "heavy blur": "recall heavily blurred (blur=2)",
        "atypical pose": "recall atypical pose (pose=1)",
    }
    for g in GROUPS:
        label = labels.get(g, f"recall {g}")
        rows.append((f"{label} (n={n(g)})", [fmt_recall(metrics[t].recall[g]) for t in tools]))
    for g in ("all", ">=10 px"):
        rows.append((f"strict recall {g} (>=80% of box changed)", [fmt_recall(metrics[t].strict[g]) for t in tools]))
    rows.append(("missed faces >=40 px (count, target 0)", [str(len(metrics[t].missed_big)) for t in tools]))
    if at_1x:
        for g in ("all", ">=10 px"):
            label = f"recall {g}, the same photos at 1x (target: no higher than above)"
            rows.append((label, [fmt_recall(at_1x[t].recall[g]) if t in at_1x else "-" for t in tools]))

    def damage(m: Metrics) -> str:
        return "-" if not m.total_bg else f"{100.0 * m.changed_bg / m.total_bg:.2f} %"

    rows.append(("non-face px changed", [damage(metrics[t]) for t in tools]))

    def run_field(m: Metrics, what: str) -> str:
        r = m.run
        if r is None:
            return "-"
        if what == "spp":
            return f"{r.wall_s / max(1, m.n_photos):.3f}"
        if what == "cpu":
            return f"{r.cpu_s / max(1, m.n_photos):.3f}"
        if what == "load":
            return f"{r.load_before:.2f}"
        if what == "wall":
            return f"{r.wall_s:.1f}"
        if what == "rss":
            return f"{r.maxrss_mb:.0f}"
        if what == "tree":
            return f"{r.tree_peak_mb:.0f}"
        return str(r.returncode)

    rows.append(("s/photo (wall clock of the whole run / photos)", [run_field(metrics[t], "spp") for t in tools]))
    rows.append(("wall clock, whole run (s)", [run_field(metrics[t], "wall") for t in tools]))
    rows.append(("CPU s/photo (user+sys, all processes)", [run_field(metrics[t], "cpu") for t in tools]))
    rows.append(("machine load avg before run (1 min)", [run_field(metrics[t], "load") for t in tools]))
    rows.append(("peak RSS MB (largest process)", [run_field(metrics[t], "rss") for t in tools]))
    rows.append(("peak memory MB (process tree, PSS, sampled)", [run_field(metrics[t], "tree") for t in tools]))
    rows.append(("exit code", [run_field(metrics[t], "rc") for t in tools]))
    rows.append(("outputs missing or unusable", [str(len(metrics[t].missing_outputs)) for t in tools]))

    lines = [
        f"### {prepared.name}: {len(prepared.items)} photos, {prepared.n_faces} labelled faces",
        "",
        "| metric | " + " | ".join(tools) + " |",
        "|---|" + "---:|" * len(tools),
    ]
    lines += [f"| {label} | " + " | ".join(vals) + " |" for label, vals in rows]
    if prepared.skipped:
        lines += ["", f"Skipped {len(prepared.skipped)} photo(s): " + "; ".join(prepared.skipped[:10])]
    for t in tools:
        if metrics[t].missing_outputs:
            lines += ["", f"{t}: no usable output for " + "; ".join(metrics[t].missing_outputs[:5])]
    return "\n".join(lines)


def summary(results: Sequence[tuple[PreparedSet, dict[str, Metrics]]]) -> str:
    """One row per set and tool: recall (all, >= 10 px, by size in that set's buckets), damage, time."""
    buckets = [label for label, _, _ in W.BUCKETS]
    head = ["set", "tool", "photos", "all", ">=10 px", *buckets, "non-face changed", "s/photo", "CPU s/photo", "load"]
    lines = ["### Summary", "", "| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    walls: dict[str, dict[str, float]] = {}
    for prepared, metrics in results:
        for tool, m in metrics.items():
            r = m.run
            damage = f"{100.0 * m.changed_bg / m.total_bg:.2f} %" if m.total_bg else "-"
            row = [prepared.name, tool, str(m.n_photos), fmt_recall(m.recall["all"]), fmt_recall(m.recall[">=10 px"])]
            row += [fmt_recall(m.recall[b]) for b in buckets]
            row.append(damage)
            if r is not None:
                row += [f"{r.wall_s / max(1, m.n_photos):.3f}", f"{r.cpu_s / max(1, m.n_photos):.3f}"]
                row.append(f"{r.load_before:.2f}")
                walls.setdefault(tool, {})[prepared.key] = walls.get(tool, {}).get(prepared.key, 0.0) + r.wall_s
            else:
                row += ["-", "-", "-"]
            lines.append("| " + " | ".join(row) + " |")
    both = [t for t in walls if {"416", "1x"} <= set(walls[t])]
    if "blur" in both and "deface" in both:
        b = walls["blur"]["416"] + walls["blur"]["1x"]
        d = walls["deface"]["416"] + walls["deface"]["1x"]
        lines += ["", f"Wall clock over the 416 px and 1x sets: blur {b:.1f} s, deface {d:.1f} s, ratio {b / d:.2f}"]
    return "\n".join(lines)


def footer(args: argparse.Namespace) -> str:
    blur_cmd = "blur anonymize IN -o OUT --report R --quiet"
    if args.jobs is not None:
        blur_cmd += f" --jobs {args.jobs}"
    if args.blur_args:
        blur_cmd += f" {args.blur_args}"
    return (
        "Definitions: a labelled face is *obscured* when at least 50 % (strict: 80 %) of the pixels of its WIDER box "
        "changed, a pixel being *changed* when any channel differs by >= 8 (of 255) between the lossless PNG input and "
        "the tool's output. Size buckets use s = max(w, h) of the box in the original photo for upscaled sets, in the "
        "web-size copy for the 416/640 px sets. "
        "*Non-face px changed* is the share of changed pixels outside the union of all GT boxes enlarged 1.5x about "
        "their centres (a mask must cover the whole head, which is larger than the WIDER box); WIDER leaves some faces "
        "unlabelled, so this is an upper bound on damage. Upscaled sets: photos resized with cv2.INTER_CUBIC, GT "
        "scaled alike, PNG input. Web-size sets: longest side 416/640 px with cv2.INTER_AREA, then JPEG quality 90 "
        "encode and decode, GT scaled alike, the decoded JPEG given as PNG. s/photo = wall clock of one process per "
        "tool per set / photos (start-up, model load, decode, PNG encode included); tools run one after the other, "
        "never together; CPU s also counts worker "
        "processes. Peak RSS = largest single process (wait4); process-tree memory = summed PSS of all live processes "
        f"of the tool, sampled every 0.1 s. Commands: `{blur_cmd}`; `deface --backend {args.deface_backend} DIR` "
        "(its defaults otherwise: thresh 0.2, mask-scale 1.3, blur)."
    )


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def blur_version() -> str:
    v = dist_version("blur")
    if v == "not installed":
        try:
            out = subprocess.run(
                [sys.executable, "-c", "import blur; print(blur.__version__)"],
                capture_output=True,
                text=True,
                cwd=REPO_ROOT,
                timeout=60,
                check=False,
            )
            v = out.stdout.strip() or "unknown"
        except (OSError, subprocess.SubprocessError):
            v = "unknown"
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "blur"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev, dirty = "", ""
    return f"{v} (git {rev or 'no commit'}{', modified' if dirty else ''})"


def header(sets: Sequence[PreparedSet], args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    meta: dict[str, Any] = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "cpu": cpu_model(),
        "ram_gb": round(mem_gb, 1),
        "load_at_start": args.load_at_start,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            "blur": blur_version() if "blur" in args.tools else "not run",
            "deface": dist_version("deface"),
            "onnxruntime": dist_version("onnxruntime"),
            "opencv": cv2.__version__,
            "numpy": np.__version__,
        },
        "blur_jobs": args.jobs,
        "blur_args": args.blur_args,
        "deface_backend": args.deface_backend,
        "sets": [{"name": s.name, "photos": len(s.items), "faces": s.n_faces} for s in sets],
    }
    v = meta["versions"]
    sets_txt = "; ".join(f"{s.name}: {len(s.items)} photos, {s.n_faces} faces" for s in sets)
    text = (
        f"**photos benchmark** {meta['date']} | {meta['cpus']} CPUs ({meta['cpu']}), {meta['ram_gb']} GB RAM,"
        f" {meta['platform']}, Python {meta['python']} | blur {v['blur']}, deface {v['deface']},"
        f" onnxruntime {v['onnxruntime']}, opencv {v['opencv']} | load avg at start {meta['load_at_start']:.2f}"
        f" | {sets_txt}"
    )
    return text, meta


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Compare blur and deface on WIDER-annotated photos (recall by face size, damage, speed, memory).",
    )
    p.add_argument(
        "roots",
        nargs="*",
        type=Path,
        help="extra WIDER-style data roots: ROOT/gt/*.json with image paths relative to ROOT",
    )
    p.add_argument("--limit", type=int, default=None, help="first N photos of each 1x and web-size set (default: all)")
    p.add_argument(
        "--sets",
        default=",".join(SET_KEYS),
        help="comma-separated benchdata sets to run: 416 and 640 (web-size copies, longest side in px), 1x, 4x, 6x "
        f"(default all: {','.join(SET_KEYS)}); extra roots always run at 1x",
    )
    p.add_argument("--big-n4", type=int, default=12, help="photos upscaled 4x (~16 MP); 0 disables (default 12)")
    p.add_argument("--big-n6", type=int, default=8, help="photos upscaled 6x (~24 MP); 0 disables (default 8)")
    p.add_argument("--tools", default="blur,deface", help="comma-separated subset of blur,deface")
    p.add_argument("--jobs", type=int, default=None, help="pass --jobs N to blur (default: blur's own default)")
    p.add_argument(
        "--blur-args",
        default="",
        help='extra arguments for `blur anonymize`, one string (e.g. "--no-verify"); default none',
    )
    p.add_argument(
        "--deface-backend",
        default="opencv",
        choices=["opencv", "onnxrt", "auto"],
        help="deface --backend (default opencv, its fastest on CPU here)",
    )
    p.add_argument("--no-benchdata", action="store_true", help="measure only the roots given on the command line")
    p.add_argument("--workdir", type=Path, default=None, help="keep PNGs and outputs here (default: a temp dir)")
    p.add_argument("--json", type=Path, default=None, help="also write machine-readable results here")
    args = p.parse_args(argv)
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    bad = [t for t in tools if t not in TOOLS]
    if bad or not tools:
        p.error(f"--tools: unknown {bad}; choose from {','.join(TOOLS)}")
    args.tools = tools
    sets = [k.strip() for k in args.sets.split(",") if k.strip()]
    bad = [k for k in sets if k not in SET_KEYS]
    if bad:
        p.error(f"--sets: unknown {bad}; choose from {','.join(SET_KEYS)}")
    args.sets = sets
    return args


def collect_sets(args: argparse.Namespace) -> list[ImageSet]:
    sets: list[ImageSet] = []
    default_gt = BENCHDATA / DEFAULT_GT
    if not args.no_benchdata and default_gt.is_file():
        photos = W.load_gt(default_gt, BENCHDATA)
        base = photos[: args.limit] if args.limit is not None else photos
        for side in WEB_SIDES:
            if str(side) in args.sets:
                sets.append(ImageSet(f"{default_gt.stem} {side} px", base, long_side=side, key=str(side)))
        if "1x" in args.sets:
            sets.append(ImageSet(f"{default_gt.stem} 1x", base))
        if args.big_n4 > 0 and "4x" in args.sets:
            sets.append(ImageSet(f"{default_gt.stem} 4x (~16 MP)", photos[: args.big_n4], 4, key="4x"))
        if args.big_n6 > 0 and "6x" in args.sets:
            sets.append(ImageSet(f"{default_gt.stem} 6x (~24 MP)", photos[: args.big_n6], 6, key="6x"))
    for root in args.roots:
        files = W.gt_files(root)
        if not files:
            log(f"{root}: no gt/*.json found, ignored")
        for gt in files:
            photos = W.load_gt(gt, root)
            photos = photos[: args.limit] if args.limit is not None else photos
            sets.append(ImageSet(f"{root.name}/{gt.stem} 1x", photos))
    return [s for s in sets if s.photos]


def run_set(
    image_set: ImageSet, base_dir: Path, args: argparse.Namespace
) -> tuple[PreparedSet, dict[str, Metrics], dict[str, dict[str, Path]]]:
    prepared = prepare_set(image_set, base_dir)
    outputs: dict[str, dict[str, Path]] = {}
    runs: dict[str, RunResult] = {}
    if prepared.items:
        for tool in args.tools:
            if tool == "blur":
                runs[tool], outputs[tool] = run_blur(prepared, args.jobs, shlex.split(args.blur_args))
            else:
                runs[tool], outputs[tool] = run_deface(prepared, args.deface_backend)
    metrics = measure(prepared, outputs)
    for tool, m in metrics.items():
        m.run = runs[tool]
    return prepared, metrics, outputs


def same_photos(prepared: PreparedSet, outputs: dict[str, dict[str, Path]], big: ImageSet) -> dict[str, Metrics]:
    """The 1x set's results restricted to the photos of an upscaled set: its recall target compares like with like."""
    sources = {p.path for p in big.photos}
    items = [i for i in prepared.items if i.source in sources]
    subset = dataclasses.replace(prepared, name=f"{prepared.name}, photos of {big.name}", items=items)
    return measure(subset, outputs)


def metrics_json(
    prepared: PreparedSet, metrics: dict[str, Metrics], at_1x: dict[str, Metrics] | None = None
) -> dict[str, Any]:
    tools: dict[str, Any] = {}
    for tool, m in metrics.items():
        tools[tool] = {
            "recall": {g: {**asdict(c), "recall": c.recall} for g, c in m.recall.items()},
            "strict_recall": {g: {**asdict(c), "recall": c.recall} for g, c in m.strict.items()},
            "missed_ge40": m.missed_big,
            "non_face_changed": m.changed_bg / m.total_bg if m.total_bg else None,
            "seconds_per_photo": m.run.wall_s / max(1, m.n_photos) if m.run else None,
            "run": asdict(m.run) if m.run else None,
            "missing_outputs": m.missing_outputs,
        }
        if at_1x and tool in at_1x:
            tools[tool]["same_photos_1x_recall"] = {g: at_1x[tool].recall[g].recall for g in ("all", ">=10 px")}
    return {
        "name": prepared.name,
        "key": prepared.key,
        "scale": prepared.scale,
        "photos": len(prepared.items),
        "faces": prepared.n_faces,
        "skipped": prepared.skipped,
        "tools": tools,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.load_at_start = os.getloadavg()[0]
    if args.load_at_start > 0.5 * (os.cpu_count() or 1):
        log(f"warning: load average {args.load_at_start:.2f} - other work on this machine will skew timings")
    image_sets = collect_sets(args)
    if not image_sets:
        print(
            f"benchdata not found, nothing measured (looked for {BENCHDATA / DEFAULT_GT}"
            f"{' and ' + ', '.join(map(str, args.roots)) if args.roots else ''})"
        )
        return 0
    if "blur" in args.tools and importlib.util.find_spec("blur") is None and not (REPO_ROOT / "blur").is_dir():
        log("blur is not importable; run from the repository with its virtualenv active")
    with tempfile.TemporaryDirectory(prefix="blur-bench-") as tmp:
        work = args.workdir if args.workdir is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        results: list[tuple[PreparedSet, dict[str, Metrics]]] = []
        at_1x: dict[int, dict[str, Metrics]] = {}
        for i, image_set in enumerate(image_sets):
            base = work / f"set{i}_{image_set.key}"
            if base.exists():
                shutil.rmtree(base)
            prepared, metrics, outputs = run_set(image_set, base, args)
            results.append((prepared, metrics))
            if image_set.scale == 1 and image_set.long_side is None:
                paths = {p.path for p in image_set.photos}
                for j, big in enumerate(image_sets):
                    if big.scale > 1 and {p.path for p in big.photos} <= paths:
                        at_1x[j] = same_photos(prepared, outputs, big)
            if args.workdir is None:  # free the disk before the next set; --workdir keeps everything
                shutil.rmtree(base, ignore_errors=True)
        head, meta = header([p for p, _ in results], args)
        print(head)
        for j, (prepared, metrics) in enumerate(results):
            print()
            print(table(prepared, metrics, at_1x.get(j)))
        print()
        print(summary(results))
        print()
        print(footer(args))
        if args.json is not None:
            payload = {"meta": meta, "sets": [metrics_json(p, m, at_1x.get(j)) for j, (p, m) in enumerate(results)]}
            args.json.write_text(json.dumps(payload, indent=1))
            log(f"JSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
