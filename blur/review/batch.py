"""The batch under review: its files by opaque id, and what the page is told about each.

Files are known only by ids drawn at random when the app starts; the server never takes a path
from a request. A file's view lists its masks (detector faces with their score and the outline of
the mask drawn, second-pass finds), its corrections (from its own sidecar, editable, and from its
folder's sidecar, shown but locked) and the digest of its own sidecar as it was read, which an
apply must present unchanged.
"""

from __future__ import annotations

import os
import secrets
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from blur.anonymize.mask import head_boxes
from blur.batch.journal import sha256_file
from blur.batch.record import BatchRecord, BatchRecordError, read_json, record_from_json, record_from_report
from blur.batch.state import StateDir
from blur.corrections import Corrections, CorrectionsError, load_parts, sidecar_paths
from blur.jobs import FileResult, Status
from blur.regions import region_json
from blur.review.page import LOW_SCORE, attention
from blur.sidecar_write import sidecar_digest
from blur.types import Detections


@dataclass(slots=True)
class ReviewFile:
    """One file of the batch: its opaque id and its latest result (replaced after each re-render).

    The result's paths are as in the report (relative to the folder the batch ran in, `base`).
    """

    id: str
    result: FileResult
    base: Path
    version: int = 0
    """Bumped on every re-render, so the page never shows a stale cached picture."""

    @property
    def source(self) -> Path:
        """The original, absolute."""
        return Path(os.path.abspath(self.base / self.result.source))

    @property
    def output(self) -> Path | None:
        """The published copy, absolute, when there is one."""
        return None if self.result.output is None else Path(os.path.abspath(self.base / self.result.output))


@dataclass(slots=True)
class ReviewBatch:
    """The batch the app serves: the record it came from, its files by id, and where to write back."""

    state: StateDir
    record: BatchRecord
    files: dict[str, ReviewFile]
    order: list[str]
    report: Path | None = None
    html: Path | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    record_digest: str = ""
    """SHA-256 of the batch record as loaded (or last written here): another run changes it."""

    def get(self, file_id: str) -> ReviewFile | None:
        """The file with this id, or None (an unknown id, whatever it looks like)."""
        return self.files.get(file_id)

    def results(self) -> list[FileResult]:
        """Every file's latest result, in the batch's order."""
        return [self.files[i].result for i in self.order]


def load_batch(state: StateDir, report: Path | None = None, html: Path | None = None) -> ReviewBatch:
    """The batch recorded in `state` (or described by `report`), with fresh random ids.

    Raises:
        BatchRecordError: no batch is recorded, or the record (report) cannot be used.
    """
    recorded = record_from_json(read_json(state.record), state.record) if state.record.is_file() else None
    digest = record_digest(state)
    if report is not None:
        record = record_from_report(read_json(report), report, state.output)
        if recorded is not None:  # the run's folder and the hashes of its originals
            record = replace(record, cwd=recorded.cwd, sources=recorded.sources, html=recorded.html)
    elif recorded is not None:
        record = recorded
    else:
        msg = f"no batch recorded for {state.output} in {state.path}: run `blur anonymize ... -o {state.output}` first"
        raise BatchRecordError(msg)
    files: dict[str, ReviewFile] = {}
    order: list[str] = []
    for result in record.results:
        if result.status is Status.skipped:
            continue
        file_id = secrets.token_urlsafe(9)
        files[file_id] = ReviewFile(file_id, result, record.cwd)
        order.append(file_id)
    return ReviewBatch(state, record, files, order, report or record.report, html or record.html, record_digest=digest)


def record_digest(state: StateDir) -> str:
    """SHA-256 of the batch record on disk now ("" when there is none)."""
    try:
        return sha256_file(state.record)
    except OSError:
        return ""


def _counts_and_flags(result: FileResult) -> dict[str, Any]:
    priority, flags, counts = attention(result, LOW_SCORE)
    return {"priority": priority, "flags": flags, "counts": counts}


def summary(item: ReviewFile) -> dict[str, Any]:
    """What the file list shows: name, kind, status, face count, and why it needs a look."""
    result = item.result
    return {
        "id": item.id,
        "source": result.source,
        "kind": result.kind,
        "status": result.status.value,
        "reason": result.reason,
        "faces": result.faces,
        "tracks": result.tracks,
        "version": item.version,
        **_counts_and_flags(result),
    }


def _outlines(dets: Detections, record: BatchRecord) -> list[list[float]]:
    return [[round(float(v), 1) for v in row] for row in head_boxes(dets, record.settings.mask.scale)]


def masks(result: FileResult, record: BatchRecord) -> list[dict[str, Any]]:
    """A photo's detector and second-pass faces with the outline of the mask drawn for each."""
    rows = [d for d in result.detections if not d.get("added") and "box" in d]
    if not rows:
        return []
    dets = Detections.from_arrays([d["box"] for d in rows], [float(d.get("score", 1.0)) for d in rows])
    return [
        {
            "id": f"d{i}",
            "box": [round(float(v), 1) for v in row["box"]],
            "outline": outline,
            "score": round(float(row.get("score", 1.0)), 3),
            "second_pass": bool(row.get("second_pass")),
        }
        for i, (row, outline) in enumerate(zip(rows, _outlines(dets, record), strict=True))
    ]


def _regions(corr: Corrections, prefix: str) -> dict[str, list[dict[str, Any]]]:
    return {
        kind: [{"id": f"{prefix}{kind[0]}{i}", **region_json(r)} for i, r in enumerate(regions)]
        for kind, regions in (("add", corr.add), ("keep", corr.keep))
    }


def corrections_view(source: Path) -> dict[str, Any]:
    """The file's corrections as the page edits them: its own sidecar's (editable) and its folder's (locked)."""
    own, folder = sidecar_paths(source)
    view: dict[str, Any] = {"path": str(own), "folder_path": str(folder)}
    try:
        mine, shared = load_parts(source)
        view["digest"] = sidecar_digest(source)
    except CorrectionsError as exc:
        return {
            **view,
            "error": str(exc),
            "digest": None,
            "own": {"add": [], "keep": []},
            "folder": _regions(Corrections(), "f"),
        }
    return {**view, "own": _regions(mine, "s"), "folder": _regions(shared, "f")}


def detail(item: ReviewFile, batch: ReviewBatch) -> dict[str, Any]:
    """Everything the page needs to show and edit one file (video frames and tracks come separately)."""
    result = item.result
    out: dict[str, Any] = {
        **summary(item),
        "output": result.output,
        "notes": list(result.notes),
        "frames": result.frames,
        "mask_shape": batch.record.settings.mask.shape.value,
        "corrections": corrections_view(item.source),
    }
    if result.kind == "image":
        out["masks"] = masks(result, batch.record)
    else:
        out["track_spans"] = list(result.track_spans)
    return out


def frame_masks(dets: Detections, idents: list[int], record: BatchRecord) -> list[dict[str, Any]]:
    """One video frame's track boxes as the page draws them (id, box, mask outline, score)."""
    return [
        {
            "track": ident,
            "box": [round(float(v), 1) for v in box],
            "outline": outline,
            "score": round(float(score), 3),
        }
        for ident, box, score, outline in zip(idents, dets.xyxy, dets.score, _outlines(dets, record), strict=True)
    ]


def times_list(times: np.ndarray) -> list[float]:
    """Frame times for the page's scrubber, to the millisecond."""
    return [round(float(t), 3) for t in times]
