"""Recall against non-face pixels changed, per size set: the frontier the default and `high` presets sit on.

Usage (from the repository root)::

    python benchmarks/frontier.py                          # 416 px, 640 px and 1x sets, all 581 photos
    python benchmarks/frontier.py --sets 416 --limit 100   # quicker
    python benchmarks/frontier.py --out /tmp/frontier      # where the PNG and the markdown table go

Each curve is one family of plans swept along one knob; every point replays blur's detection from
cached network outputs (``_sim.py``: exact for the detector, the second pass not replayed) and scores it
as ``photos.py`` scores blur's output. Families:

- ``preset dial``: blur's tuned plan for the picture's size (``plan_for``) with every threshold
  multiplied by a factor; the factors of the ``normal`` and ``high`` presets are marked.
- ``old plan, one threshold``: the plan tuned on 1 MP photos before web-size copies were measured
  (2x detail pass at most, no thresholds by face size), every pass at one threshold, as
  ``--threshold`` runs it.
- ``tuned plan, detail pass at one threshold``: the tuned plan with its detail pass at one threshold
  for every face size (pictures under 1 MP; at 1 MP it has one already): what thresholds by size buy.

The network outputs are cached under ``--cache`` (default a folder in the temporary directory): the
first run of a set costs about 1-3 CPU s per photo, later runs only the replay.  Data: the benchdata
photos, read in place (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _sim as S  # sibling helper modules, benchmark-only
import _wider as W

from blur.config import DetectorConfig, Sensitivity
from blur.detect.centerface import CenterFaceDetector
from blur.detect.multiscale import PRESETS, Pass, plan_for

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCHDATA = REPO_ROOT.parent / "shared" / "benchdata"
GT = BENCHDATA / "gt" / "wider_train_full.json"
SETS = ("416", "640", "1x")
DIAL = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.4, 1.6, 1.8, 2.2)
ONE_THRESHOLD = (0.06, 0.08, 0.1, 0.12, 0.14, 0.17, 0.2, 0.25, 0.3, 0.4)
HIGH_MAX_DAMAGE = 0.03
DEFAULT_MAX_DAMAGE = 0.015

Planner = Callable[[int, int], list[Pass]]


def old_plan(width: int, height: int, threshold: float) -> list[Pass]:
    """The pre-#17 plan of a frame of at most 2048 px a side: 2x detail pass at most, the native and
    coarse passes beside it (untiled sizes only; enough for these sets)."""
    up = max(1.0, min(2.0, (4_200_000 / (width * height)) ** 0.5))
    passes = [Pass(up, threshold)]
    if up == 1.0:
        passes = [Pass(1.0, threshold)]
    elif up > 1.0:
        passes.append(Pass(1.0, threshold))
    if max(width, height) * 0.5 >= 320:
        passes.append(Pass(0.5, threshold))
    return passes


def families(marks: Sequence[float]) -> dict[str, tuple[Sequence[float], Callable[[float], Planner]]]:
    """Each family: knob values and, per value, a planner."""
    normal = PRESETS[Sensitivity.normal]

    def dial(k: float) -> Planner:
        preset = normal.scaled(k)
        return lambda w, h: plan_for(w, h, preset)

    def one_threshold(t: float) -> Planner:
        def planner(w: int, h: int) -> list[Pass]:
            plan = plan_for(w, h, normal)
            return [dataclasses.replace(p, threshold=t, bands=()) if p.bands else p for p in plan]

        return planner

    def old(t: float) -> Planner:
        return lambda w, h: old_plan(w, h, t)

    dial_values = tuple(sorted({*DIAL, *marks}))
    return {
        "preset dial (threshold factor)": (dial_values, dial),
        "tuned plan, detail pass at one threshold": (ONE_THRESHOLD, one_threshold),
        "old plan, one threshold": (ONE_THRESHOLD, old),
    }


def measure(
    sim: S.SimSet, fams: dict[str, tuple[Sequence[float], Callable[[float], Planner]]]
) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for name, (values, make) in fams.items():
        for v in values:
            planner = make(v)
            sim.ensure(planner)
            sc = S.evaluate(sim, planner)
            row: dict[str, object] = {
                "set": sim.key,
                "family": name,
                "knob": v,
                "all": sc.recall("all"),
                ">=10 px": sc.recall(">=10 px"),
                "damage": sc.damage,
                "cpu": sc.cpu_per_photo,
            }
            row.update({label: sc.recall(label) for label, _, _ in W.BUCKETS})
            rows.append(row)
            print(
                f"[frontier] {sim.key} {name} {v}: all {row['all']:.3f} >=10 {row['>=10 px']:.3f}"
                f" changed {100 * sc.damage:.2f} %",
                file=sys.stderr,
                flush=True,
            )
    return rows


def preset_marks(key: str) -> dict[str, float]:
    """Where each sensitivity preset sits on a set's dial: web-size copies are planned from the small-picture
    anchors (their factor), 1 MP photos from the rest."""
    small = key != "1x"
    return {s.value: PRESETS[s].small_factor if small else PRESETS[s].factor for s in Sensitivity}


def markdown(rows: list[dict[str, object]], marks: dict[str, dict[str, float]]) -> str:
    buckets = [label for label, _, _ in W.BUCKETS]
    head = ["set", "family", "knob", "all", ">=10 px", *buckets, "non-face changed", "detector CPU s/photo"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|---:|" + "---:|" * (len(head) - 3)]
    for r in rows:
        mark = ""
        if str(r["family"]).startswith("preset"):
            found = marks[str(r["set"])].items()
            mark = "".join(f" **{name}**" for name, k in found if abs(float(str(r["knob"])) - k) < 1e-9)
        cells = [str(r["set"]), str(r["family"]), f"{r['knob']}{mark}", f"{r['all']:.3f}", f"{r['>=10 px']:.3f}"]
        cells += [f"{r[b]:.3f}" for b in buckets]
        cells += [f"{100 * float(r['damage']):.2f} %", f"{r['cpu']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


COLOURS = {  # BGR
    "preset dial (threshold factor)": (40, 40, 200),
    "tuned plan, detail pass at one threshold": (200, 120, 30),
    "old plan, one threshold": (120, 120, 120),
}


def _to_px(damage: float, recall: float, box: tuple[int, int, int, int]) -> tuple[int, int]:
    """A (damage, recall) point in a panel's pixels: damage 0-X_MAX, recall Y_LO-1."""
    x0, y0, x1, y1 = box
    x = x0 + (x1 - x0) * min(damage, X_MAX) / X_MAX
    y = y1 - (y1 - y0) * (max(min(recall, 1.0), Y_LO) - Y_LO) / (1.0 - Y_LO)
    return round(x), round(y)


X_MAX = 0.06
Y_LO = 0.4
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _axes(img: np.ndarray, box: tuple[int, int, int, int], title: str) -> None:
    x0, y0, x1, y1 = box
    cv2.rectangle(img, (x0, y0), (x1, y1), (0, 0, 0), 1)
    for d in (0.01, 0.015, 0.02, 0.03, 0.04, 0.05):
        px, _ = _to_px(d, Y_LO, box)
        cv2.line(img, (px, y0), (px, y1), (0, 170, 0) if d in (0.015, 0.03) else (225, 225, 225), 1)
        cv2.putText(img, f"{100 * d:g}%", (px - 14, y1 + 16), FONT, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    for r in (0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 0.96, 1.0):
        _, py = _to_px(0.0, r, box)
        cv2.line(img, (x0, py), (x1, py), (0, 170, 0) if r in (0.75, 0.96) else (235, 235, 235), 1)
        cv2.putText(img, f"{r:.2f}", (x0 - 40, py + 4), FONT, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, title, (x0 - 40, y0 - 12), FONT, 0.42, (0, 0, 0), 1, cv2.LINE_AA)


def _curve(img: np.ndarray, pts: list[tuple[int, int]], colour: tuple[int, int, int], dashed: bool) -> None:
    for j, (a, b) in enumerate(itertools.pairwise(pts)):
        if not dashed or j % 2 == 0:
            cv2.line(img, a, b, colour, 2, cv2.LINE_AA)
    for p in pts:
        cv2.circle(img, p, 3, colour, -1, cv2.LINE_AA)


def plot(rows: list[dict[str, object]], sets: Sequence[str], marks: dict[str, dict[str, float]], path: Path) -> None:
    """One panel per set: recall (all: solid, >= 10 px: dashed) against non-face pixels changed; green
    lines mark the targets (1.5 % and 3 % changed, recall 0.75 and 0.96); rings mark the presets."""
    pw, ph = 520, 440
    img = np.full((ph + 40, pw * len(sets), 3), 255, np.uint8)
    for i, key in enumerate(sets):
        box = (i * pw + 60, 40, i * pw + pw - 20, ph - 30)
        _axes(img, box, f"{key}: recall (solid: all, dashed: >=10 px) vs non-face changed")
        for fam, colour in COLOURS.items():
            chosen = [r for r in rows if r["set"] == key and r["family"] == fam]
            pts = sorted(((float(str(r["damage"])), r) for r in chosen), key=lambda dr: dr[0])
            for metric, dashed in (("all", False), (">=10 px", True)):
                _curve(img, [_to_px(d, float(str(r[metric])), box) for d, r in pts], colour, dashed)
            if not fam.startswith("preset"):
                continue
            for name, k in marks[key].items():
                for d, r in pts:
                    if abs(float(str(r["knob"])) - k) > 1e-9:
                        continue
                    for metric in ("all", ">=10 px"):
                        cv2.circle(img, _to_px(d, float(str(r[metric])), box), 7, (0, 0, 0), 2, cv2.LINE_AA)
                    x, y = _to_px(d, float(str(r["all"])), box)
                    cv2.putText(img, name, (x + 8, y + 18), FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    x = 10
    for fam, colour in COLOURS.items():
        cv2.line(img, (x, ph + 21), (x + 30, ph + 21), colour, 3)
        cv2.putText(img, fam, (x + 36, ph + 25), FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        x += 60 + 8 * len(fam)
    cv2.imwrite(str(path), img)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sets", default=",".join(SETS), help=f"comma-separated subset of {','.join(SETS)}")
    p.add_argument("--limit", type=int, default=None, help="first N photos (default all 581)")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "blur-frontier-cache")
    p.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "blur-frontier")
    args = p.parse_args(argv)
    args.sets = [s for s in args.sets.split(",") if s]
    if bad := [s for s in args.sets if s not in SETS]:
        p.error(f"--sets: unknown {bad}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not GT.is_file():
        print(f"benchdata not found, nothing measured (looked for {GT})")
        return 0
    photos = W.load_gt(GT, BENCHDATA)[: args.limit]
    detector = CenterFaceDetector(DetectorConfig())
    marks = {k: preset_marks(k) for k in args.sets}
    fams = families(sorted({f for m in marks.values() for f in m.values()}))
    rows: list[dict[str, object]] = []
    t0 = time.perf_counter()
    for key in args.sets:
        sim = S.SimSet(key, photos, args.cache, detector)
        rows += measure(sim, fams)
        sim.save()
    args.out.mkdir(parents=True, exist_ok=True)
    table = markdown(rows, marks)
    n = len(photos)
    where = "; ".join(f"{k}: " + ", ".join(f"{name} = {f:g}" for name, f in m.items()) for k, m in marks.items())
    text = (
        f"# Frontier: recall against non-face pixels changed ({n} benchdata photos per set)\n\n"
        "Replayed from cached network outputs (`benchmarks/_sim.py`), blur's default mask, no second pass. "
        f"The presets on the dial (threshold factor): {where}.\n\n{table}\n"
    )
    (args.out / "frontier.md").write_text(text)
    (args.out / "frontier.json").write_text(json.dumps(rows, indent=1))
    plot(rows, args.sets, marks, args.out / "frontier.png")
    print(text)
    print(f"[frontier] wrote {args.out}/frontier.md, .png, .json in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
