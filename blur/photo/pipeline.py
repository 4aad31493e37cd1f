"""One photo, start to finish: read, detect, apply sidecar corrections, mask, verify, write. No printing.

The review app re-renders a photo with the detections recorded by the batch (`found`): the same
steps without a new detection run, so the output is what `blur anonymize` would write with the
same sidecar."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from blur.anonymize.mask import add_regions
from blur.corrections import Boxes, Corrections, load_corrections, split_kept
from blur.engine import Engine
from blur.errors import BlurError
from blur.fsio import write_bytes_atomic
from blur.jobs import FileResult, Job, Status
from blur.media.image import encode_photo, read_photo
from blur.photo.frame import Anonymized, anonymize_frame
from blur.types import Detections


def _listed(
    result: Anonymized, kept: Detections, added: Boxes, ellipses: npt.NDArray[np.bool_]
) -> tuple[dict[str, Any], ...]:
    """Every mask and kept face for the report: detector, second pass, sidecar additions, kept visible."""
    rows: list[dict[str, Any]] = []
    for dets, second, is_kept in (
        (result.detections, False, False),
        (result.flagged, True, False),
        (kept, False, True),
    ):
        rows += [{**d, "second_pass": second, "kept": is_kept, "added": False} for d in dets.to_list()]
    for box, ellipse in zip(added.tolist(), ellipses.tolist(), strict=True):
        rows.append(
            {
                "box": [round(v, 1) for v in box],
                "score": 1.0,
                "second_pass": False,
                "kept": False,
                "added": True,
                **({"shape": "ellipse"} if ellipse else {}),
            }
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


def first_pass(result: FileResult) -> Detections:
    """The detector's own faces of an earlier run: at full precision when recorded, else from the listed
    detections (masked or kept; not second-pass or added), rounded as a report rounds them."""
    if result.found:
        rows = np.asarray(result.found, np.float32).reshape(-1, 5)
        return Detections(rows[:, :4].copy(), rows[:, 4].copy())
    listed = [d for d in result.detections if not d.get("second_pass") and not d.get("added")]
    return Detections.from_arrays([d["box"] for d in listed], [d.get("score", 1.0) for d in listed])


def _exact(dets: Detections) -> tuple[tuple[float, float, float, float, float], ...]:
    return tuple(
        (float(x1), float(y1), float(x2), float(y2), float(s))
        for (x1, y1, x2, y2), s in zip(dets.xyxy, dets.score, strict=True)
    )


def process_photo(job: Job, engine: Engine, found: Detections | None = None) -> FileResult:
    """Read, detect, apply sidecar corrections, mask, verify and write one photo; any failure leaves no output.

    `found`: the detector's faces recorded by an earlier run (re-rendering); None runs the detector.
    The second pass always runs: it looks at the new picture, and it is what a batch would do.
    """
    start = time.perf_counter()
    base = FileResult(source=str(job.source), status=Status.failed, kind="image")
    if job.output is None:
        return replace(base, reason="no output path")
    try:
        corrections = load_corrections(job.source)
        photo = read_photo(job.source, job.format)
        h, w = photo.rgb.shape[:2]
        corrections.check_fits(w, h, job.source)
        corrections.check_photo(job.source)
        added, keep = corrections.at(None)
        found = engine.detector.detect(photo.rgb) if found is None else found
        dets, kept = split_kept(found, keep)
        extra = add_regions(np.zeros((h, w), bool), added, corrections.ellipses_at(None)) if len(added) else None
        result = anonymize_frame(photo.rgb, dets, engine, extra=extra, keep=keep)
        data = encode_photo(result.frame, photo.alpha, job.format, engine.settings.jpeg_quality)
        write_bytes_atomic(job.output, data, job.scratch)
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
        detections=_listed(result, kept, added, corrections.ellipses_at(None)),
        found=_exact(found),
    )
