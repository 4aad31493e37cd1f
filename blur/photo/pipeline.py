"""One photo, start to finish: header, read, detect, apply sidecar corrections, mask, verify, write. No printing.

The header is read first: a picture its own format's encoder cannot hold is refused (or planned as
a HEIF grid or a BigTIFF) before any pixel is decoded, and a file with several frames, pages or
images goes to `blur.photo.sequence`.

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
from blur.errors import BlurError, reason_of
from blur.fsio import write_bytes_atomic
from blur.jobs import FileResult, Job, Status
from blur.media.image import encode_photo, probe_photo, read_photo
from blur.media.limits import plan_output
from blur.photo.frame import Anonymized, anonymize_frame
from blur.types import Detections


def listed(
    result: Anonymized, kept: Detections, added: Boxes, ellipses: npt.NDArray[np.bool_], **extra: Any
) -> list[dict[str, Any]]:
    """Every mask and kept face for the report: detector, second pass, sidecar additions, kept visible
    (`extra`: keys added to every row, such as the frame of a multi-frame picture)."""
    rows: list[dict[str, Any]] = []
    for dets, second, is_kept in (
        (result.detections, False, False),
        (result.flagged, True, False),
        (kept, False, True),
    ):
        rows += [{**d, "second_pass": second, "kept": is_kept, "added": False, **extra} for d in dets.to_list()]
    for box, ellipse in zip(added.tolist(), ellipses.tolist(), strict=True):
        rows.append(
            {
                "box": [round(v, 1) for v in box],
                "score": 1.0,
                "second_pass": False,
                "kept": False,
                "added": True,
                **({"shape": "ellipse"} if ellipse else {}),
                **extra,
            }
        )
    return rows


def correction_notes(corrections: Corrections, kept: int, added: int) -> list[str]:
    """What the report says about sidecar corrections: regions added, faces left visible."""
    notes: list[str] = []
    if added:
        notes.append(f"{added} region(s) masked from the sidecar ({', '.join(corrections.sources)})")
    if kept:
        notes.append(
            f"WARNING: {kept} detected face(s) left VISIBLE by keep regions in {', '.join(corrections.sources)}; "
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
        header = probe_photo(job.source, job.format)
        plan = plan_output(job.source, job.format, header.sizes, alpha=header.alpha)
        if header.frames > 1:
            from blur.photo.sequence import process_pictures  # noqa: PLC0415 - only for multi-frame files

            return process_pictures(job, engine, header, plan)
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
        data = encode_photo(result.frame, photo.alpha, job.format, engine.settings.jpeg_quality, plan)
        write_bytes_atomic(job.output, data, job.scratch)
    except BlurError as exc:
        return replace(base, reason=reason_of(exc, job.source), seconds=time.perf_counter() - start)
    return replace(
        base,
        status=Status.ok,
        output=str(job.output),
        faces=len(result.detections) + len(result.flagged),
        flagged=len(result.flagged),
        seconds=time.perf_counter() - start,
        notes=header.notes + photo.notes + tuple(correction_notes(corrections, len(kept), len(added))),
        detections=tuple(listed(result, kept, added, corrections.ellipses_at(None))),
        found=_exact(found),
    )
