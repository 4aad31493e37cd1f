"""One photo, start to finish: read, detect, apply sidecar corrections, mask, verify, write. No printing."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np

from blur.anonymize.mask import add_regions
from blur.corrections import Boxes, Corrections, load_corrections, split_kept
from blur.engine import Engine
from blur.errors import BlurError
from blur.fsio import write_bytes_atomic
from blur.jobs import FileResult, Job, Status
from blur.media.image import encode_photo, read_photo
from blur.photo.frame import Anonymized, anonymize_frame
from blur.types import Detections


def _listed(result: Anonymized, kept: Detections, added: Boxes) -> tuple[dict[str, Any], ...]:
    """Every mask and kept face for the report: detector, second pass, sidecar additions, kept visible."""
    rows: list[dict[str, Any]] = []
    for dets, second, is_kept in (
        (result.detections, False, False),
        (result.flagged, True, False),
        (kept, False, True),
    ):
        rows += [{**d, "second_pass": second, "kept": is_kept, "added": False} for d in dets.to_list()]
    for box in added.tolist():
        rows.append(
            {"box": [round(v, 1) for v in box], "score": 1.0, "second_pass": False, "kept": False, "added": True}
        )
    return tuple(rows)


def _correction_notes(corrections: Corrections, kept: Detections, added: Boxes) -> list[str]:
    notes: list[str] = []
    if len(added):
        notes.append(f"{len(added)} region(s) masked from the sidecar ({', '.join(corrections.sources)})")
    if len(kept):
        notes.append(
            f"WARNING: {len(kept)} detected face(s) left VISIBLE by keep regions in {', '.join(corrections.sources)}; "
            "check that each person consented or is a public official"
        )
    return notes


def process_photo(job: Job, engine: Engine) -> FileResult:
    """Read, detect, apply sidecar corrections, mask, verify and write one photo; any failure leaves no output."""
    start = time.perf_counter()
    base = FileResult(source=str(job.source), status=Status.failed, kind="image")
    if job.output is None:
        return replace(base, reason="no output path")
    try:
        corrections = load_corrections(job.source)
        photo = read_photo(job.source, job.format)
        h, w = photo.rgb.shape[:2]
        corrections.check_fits(w, h, job.source)
        added, keep = corrections.at(None)
        dets, kept = split_kept(engine.detector.detect(photo.rgb), keep)
        extra = add_regions(np.zeros((h, w), bool), added) if len(added) else None
        result = anonymize_frame(photo.rgb, dets, engine, extra=extra, keep=keep)
        data = encode_photo(result.frame, photo.alpha, job.format, engine.settings.jpeg_quality)
        write_bytes_atomic(job.output, data)
    except BlurError as exc:
        return replace(base, reason=str(exc), seconds=time.perf_counter() - start)
    return replace(
        base,
        status=Status.ok,
        output=str(job.output),
        faces=len(result.detections) + len(result.flagged),
        flagged=len(result.flagged),
        seconds=time.perf_counter() - start,
        notes=photo.notes + tuple(_correction_notes(corrections, kept, added)),
        detections=_listed(result, kept, added),
    )
