"""What a video's run found, kept for the review app: one compressed `.npz` per video in the state folder.

- every frame's detections as they were fed to the tracker, before keep regions took any out, so a
  re-render can rerun tracking, masking and encoding with other corrections and no detection run;
- each frame's time in seconds from the first frame (the clock of sidecar time ranges) and the
  scene cuts;
- the box each track masked on each frame, so the page can draw tracks on a timeline and on any frame.

Loading checks every array's shape and type (`np.load` without pickles): a damaged record raises.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from blur.errors import BlurError
from blur.types import Detections

VERSION = 1


class RecordError(BlurError):
    """A video's detection record is missing, damaged or from another video."""


@dataclass(slots=True)
class DetectionLog:
    """Collects one run's per-frame detections and track boxes (appended in frame order)."""

    det_frame: list[int] = field(default_factory=list)
    det_box: list[npt.NDArray[np.float32]] = field(default_factory=list)
    det_score: list[npt.NDArray[np.float32]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    cuts: list[int] = field(default_factory=list)
    trk_frame: list[int] = field(default_factory=list)
    trk_id: list[int] = field(default_factory=list)
    trk_box: list[npt.NDArray[np.float32]] = field(default_factory=list)
    trk_score: list[float] = field(default_factory=list)

    def found(self, index: int, seconds: float, dets: Detections, *, cut: bool) -> None:
        """Record frame `index`'s detections (before keep regions), its time and whether a shot starts there."""
        if index != len(self.times):
            msg = f"frames must be logged in order: expected {len(self.times)}, got {index}"
            raise ValueError(msg)
        self.times.append(seconds)
        if cut:
            self.cuts.append(index)
        self.det_frame += [index] * len(dets)
        self.det_box.append(dets.xyxy)
        self.det_score.append(dets.score)

    def masked(self, index: int, boxes: Detections, idents: list[int]) -> None:
        """Record the box each track masked on frame `index`."""
        self.trk_frame += [index] * len(boxes)
        self.trk_id += idents
        self.trk_box.append(boxes.xyxy)
        self.trk_score += [float(s) for s in boxes.score]

    def arrays(self, meta: dict[str, Any]) -> dict[str, npt.NDArray[Any]]:
        """Everything as named arrays (what `save` writes)."""
        return {
            "meta": np.array(json.dumps({"version": VERSION, **meta})),
            "det_frame": np.asarray(self.det_frame, np.int32),
            "det_box": np.concatenate(self.det_box).astype(np.float32)
            if self.det_box
            else np.zeros((0, 4), np.float32),
            "det_score": np.concatenate(self.det_score).astype(np.float32)
            if self.det_score
            else np.zeros(0, np.float32),
            "times": np.asarray(self.times, np.float64),
            "cuts": np.asarray(self.cuts, np.int32),
            "trk_frame": np.asarray(self.trk_frame, np.int32),
            "trk_id": np.asarray(self.trk_id, np.int32),
            "trk_box": np.concatenate(self.trk_box).astype(np.float32)
            if self.trk_box
            else np.zeros((0, 4), np.float32),
            "trk_score": np.asarray(self.trk_score, np.float32),
        }

    def spans(self) -> list[TrackSpan]:
        """Every track's span so far (see `VideoRecord.spans`)."""
        arrays = self.arrays({})
        return VideoRecord({}, arrays).spans()

    def save(self, path: Path, meta: dict[str, Any]) -> None:
        """Write the record atomically (0600) to `path`.

        Raises:
            OSError: it cannot be written.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as fh:
                np.savez_compressed(fh, **self.arrays(meta))  # type: ignore[arg-type]
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def _stack(parts: list[npt.NDArray[np.float32]], empty: tuple[int, ...]) -> npt.NDArray[np.float32]:
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(empty, np.float32)


@dataclass(frozen=True, slots=True)
class TrackSpan:
    """One track as the timeline shows it: first and last frame masked, best score."""

    ident: int
    first: int
    last: int
    score: float

    def to_dict(self, times: npt.NDArray[np.float64] | None = None) -> dict[str, Any]:
        """JSON-ready, with the span's start and end in seconds when the frame `times` are given."""
        out: dict[str, Any] = {"id": self.ident, "first": self.first, "last": self.last, "score": round(self.score, 4)}
        if times is not None and len(times) > self.last:
            out["start"], out["end"] = round(float(times[self.first]), 4), round(float(times[self.last]), 4)
        return out


_SHAPES: dict[str, tuple[type, int]] = {
    "det_frame": (np.integer, 1),
    "det_box": (np.floating, 2),
    "det_score": (np.floating, 1),
    "times": (np.floating, 1),
    "cuts": (np.integer, 1),
    "trk_frame": (np.integer, 1),
    "trk_id": (np.integer, 1),
    "trk_box": (np.floating, 2),
    "trk_score": (np.floating, 1),
}


@dataclass(frozen=True, slots=True)
class VideoRecord:
    """A loaded detection record."""

    meta: dict[str, Any]
    arrays: dict[str, npt.NDArray[Any]]

    @property
    def frames(self) -> int:
        """Frames the run wrote."""
        return len(self.arrays["times"])

    @property
    def times(self) -> npt.NDArray[np.float64]:
        """Each frame's time in seconds from the first frame."""
        return self.arrays["times"]

    def detections(self, index: int) -> Detections:
        """The detections fed to the tracker on frame `index` (before keep regions)."""
        return self._select("det", index)

    def track_boxes(self, index: int) -> tuple[Detections, list[int]]:
        """The boxes tracks masked on frame `index`, and their track ids."""
        rows = self._rows("trk", index)
        return self._select("trk", index), [int(i) for i in self.arrays["trk_id"][rows]]

    def track_path(self, ident: int) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
        """The frames and boxes track `ident` masked, in frame order."""
        rows = self.arrays["trk_id"] == ident
        return self.arrays["trk_frame"][rows].astype(np.int32), self.arrays["trk_box"][rows].astype(np.float32)

    def spans(self) -> list[TrackSpan]:
        """Every track's span, in order of first frame."""
        ids = self.arrays["trk_id"]
        if not len(ids):
            return []
        order = np.argsort(ids, kind="stable")
        idents, starts = np.unique(ids[order], return_index=True)
        frames, scores = self.arrays["trk_frame"][order], self.arrays["trk_score"][order]
        spans = [
            TrackSpan(int(ident), int(f.min()), int(f.max()), float(sc.max()))
            for ident, f, sc in zip(idents, np.split(frames, starts[1:]), np.split(scores, starts[1:]), strict=True)
        ]
        return sorted(spans, key=lambda s: (s.first, s.ident))

    def _rows(self, prefix: str, index: int) -> slice:
        """The rows of frame `index` (rows are stored in frame order)."""
        frames = self.arrays[f"{prefix}_frame"]
        return slice(int(np.searchsorted(frames, index, "left")), int(np.searchsorted(frames, index, "right")))

    def _select(self, prefix: str, index: int) -> Detections:
        rows = self._rows(prefix, index)
        return Detections(
            self.arrays[f"{prefix}_box"][rows].astype(np.float32),
            self.arrays[f"{prefix}_score"][rows].astype(np.float32),
        )


def load_record(path: Path) -> VideoRecord:
    """Read and check a detection record.

    Raises:
        RecordError: it is missing, not a record, or its arrays do not fit together.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: np.asarray(data[name]) for name in [*_SHAPES, "meta"]}
        meta = json.loads(str(arrays.pop("meta")))
    except (OSError, ValueError, KeyError, EOFError) as exc:
        msg = f"{path}: cannot read the video's detection record ({exc}); run `blur anonymize` on it again"
        raise RecordError(msg) from exc
    problem = _problem(arrays, meta)
    if problem:
        msg = f"{path}: damaged detection record ({problem}); run `blur anonymize` on it again"
        raise RecordError(msg)
    return VideoRecord(meta, arrays)


def _problem(arrays: dict[str, npt.NDArray[Any]], meta: Any) -> str | None:
    if not isinstance(meta, dict) or meta.get("version") != VERSION:
        return "unknown version"
    for name, (kind, ndim) in _SHAPES.items():
        if not np.issubdtype(arrays[name].dtype, kind) or arrays[name].ndim != ndim:
            return f"{name} has the wrong type or shape"
    for prefix in ("det", "trk"):
        n = len(arrays[f"{prefix}_frame"])
        if arrays[f"{prefix}_box"].shape != (n, 4) or len(arrays[f"{prefix}_score"]) != n:
            return f"{prefix} arrays differ in length"
    if len(arrays["trk_id"]) != len(arrays["trk_frame"]):
        return "track arrays differ in length"
    frames = len(arrays["times"])
    for name in ("det_frame", "trk_frame", "cuts"):
        values = arrays[name]
        if len(values) and (values.min() < 0 or values.max() >= frames or (np.diff(values) < 0).any()):
            return f"{name} is out of order or points past the last frame"
    return None
