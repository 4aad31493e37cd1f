"""One correction region of a sidecar: a box or ellipse, optionally limited in time, optionally moving.

A region is a `box` in upright pixels, or a list of `keyframes` (`{"time": seconds, "box": [...]}`)
for a region that follows a moving target in a video: between two keyframes the box is interpolated
linearly, coordinate by coordinate; before the first and after the last it holds still (the way CVAT
interpolates a track's boxes between its keyframes). `start`/`end` (seconds) limit when a region
applies, whether it moves or not. `shape` is `box` (default) or `ellipse` (the ellipse inscribed in
the box; only for `add` regions, which are painted; keep regions are matched by position as boxes).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

BoxTuple = tuple[float, float, float, float]

REGION_KEYS = frozenset({"box", "label", "start", "end", "score", "shape", "keyframes"})
KEYFRAME_KEYS = frozenset({"time", "box"})
MAX_KEYFRAMES = 100_000


class RegionShape(str, Enum):
    """Outline of an added region."""

    box = "box"
    ellipse = "ellipse"


@dataclass(frozen=True, slots=True)
class Keyframe:
    """Where a moving region is at `time` seconds."""

    time: float
    box: BoxTuple


@dataclass(frozen=True, slots=True)
class Region:
    """A box (or ellipse) in upright pixels, optionally limited to [start, end] seconds and moving by keyframes.

    For a moving region `box` is the first keyframe's box.
    """

    box: BoxTuple
    label: str = ""
    start: float | None = None
    end: float | None = None
    shape: RegionShape = RegionShape.box
    keyframes: tuple[Keyframe, ...] = ()

    def active(self, time_s: float | None) -> bool:
        """Whether the region applies at `time_s` (None: a photo, where every region applies)."""
        if time_s is None:
            return True
        return (self.start is None or time_s >= self.start) and (self.end is None or time_s <= self.end)

    def box_at(self, time_s: float | None) -> BoxTuple:
        """The box at `time_s`: interpolated between keyframes, held before the first and after the last."""
        frames = self.keyframes
        if not frames or time_s is None:
            return self.box
        times = [k.time for k in frames]
        pos = bisect.bisect_right(times, time_s)
        if pos == 0:
            return frames[0].box
        if pos == len(frames):
            return frames[-1].box
        a, b = frames[pos - 1], frames[pos]
        w = (time_s - a.time) / (b.time - a.time)
        x1, y1, x2, y2 = (pa + (pb - pa) * w for pa, pb in zip(a.box, b.box, strict=True))
        return x1, y1, x2, y2

    def extent(self) -> BoxTuple:
        """The smallest box holding the region wherever it moves."""
        boxes = [k.box for k in self.keyframes] or [self.box]
        return (
            min(b[0] for b in boxes),
            min(b[1] for b in boxes),
            max(b[2] for b in boxes),
            max(b[3] for b in boxes),
        )


def number(value: Any, what: str) -> float:
    """`value` as a finite float.

    Raises:
        ValueError: it is not a finite number (booleans and strings included).
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        msg = f"{what} must be a finite number, got {value!r}"
        raise ValueError(msg)
    return float(value)


def parse_box(box: Any, where: str) -> BoxTuple:
    """A validated [x1, y1, x2, y2] with x2 > x1 and y2 > y1.

    Raises:
        ValueError: naming `where` and the problem.
    """
    if not isinstance(box, list) or len(box) != 4:
        msg = f"{where}: 'box' must be [x1, y1, x2, y2]"
        raise ValueError(msg)
    x1, y1, x2, y2 = (number(v, f"{where} box") for v in box)
    if x2 <= x1 or y2 <= y1:
        msg = f"{where}: box {box} must have x2 > x1 and y2 > y1"
        raise ValueError(msg)
    return x1, y1, x2, y2


def _keyframes(raw: Any, where: str) -> tuple[Keyframe, ...]:
    if not isinstance(raw, list) or not raw or len(raw) > MAX_KEYFRAMES:
        msg = f"{where}: 'keyframes' must be a non-empty list of {{'time': seconds, 'box': [x1, y1, x2, y2]}}"
        raise ValueError(msg)
    frames: list[Keyframe] = []
    for i, item in enumerate(raw):
        at = f"{where} keyframes[{i}]"
        if not isinstance(item, dict) or set(item) != KEYFRAME_KEYS:
            msg = f"{at} must be an object with exactly 'time' and 'box'"
            raise ValueError(msg)
        time_s = number(item["time"], f"{at} time")
        if time_s < 0 or (frames and time_s <= frames[-1].time):
            msg = f"{at}: times must be >= 0 and strictly increasing, got {time_s}"
            raise ValueError(msg)
        frames.append(Keyframe(time_s, parse_box(item["box"], at)))
    return tuple(frames)


def _shape(raw: Any, where: str) -> RegionShape:
    try:
        return RegionShape(raw)
    except ValueError:
        msg = f"{where}: 'shape' must be 'box' or 'ellipse', got {raw!r}"
        raise ValueError(msg) from None


def parse_region(raw: Any, where: str) -> Region:
    """Validate one sidecar region.

    Raises:
        ValueError: naming `where` and the first problem.
    """
    if not isinstance(raw, dict):
        msg = f"{where} must be an object with a 'box' or 'keyframes'"
        raise ValueError(msg)
    unknown = set(raw) - REGION_KEYS
    if unknown:
        msg = f"{where} has unknown key(s) {sorted(unknown)}"
        raise ValueError(msg)
    if ("box" in raw) == ("keyframes" in raw):
        msg = f"{where}: give either 'box' or 'keyframes'"
        raise ValueError(msg)
    keyframes = _keyframes(raw["keyframes"], where) if "keyframes" in raw else ()
    box = keyframes[0].box if keyframes else parse_box(raw.get("box"), where)
    start = None if raw.get("start") is None else number(raw["start"], f"{where} start")
    end = None if raw.get("end") is None else number(raw["end"], f"{where} end")
    if start is not None and end is not None and end < start:
        msg = f"{where}: end {end} is before start {start}"
        raise ValueError(msg)
    shape = _shape(raw.get("shape", "box"), where)
    return Region(box, str(raw.get("label", "")), start, end, shape, keyframes)


def region_json(region: Region) -> dict[str, Any]:
    """A region as it is written into a sidecar (what `parse_region` reads back)."""
    out: dict[str, Any] = {}
    if region.keyframes:
        out["keyframes"] = [{"time": round(k.time, 4), "box": [round(v, 1) for v in k.box]} for k in region.keyframes]
    else:
        out["box"] = [round(v, 1) for v in region.box]
    if region.shape is not RegionShape.box:
        out["shape"] = region.shape.value
    if region.label:
        out["label"] = region.label
    # Times are rounded outwards, so a region never loses a frame to rounding.
    if region.start is not None:
        out["start"] = math.floor(region.start * 1e4) / 1e4
    if region.end is not None:
        out["end"] = math.ceil(region.end * 1e4) / 1e4
    return out
