"""Per-frame anonymization and per-photo processing. No printing, no exiting."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from blur.anonymize.filters import anonymize
from blur.anonymize.mask import add_regions, build_mask
from blur.config import Settings
from blur.corrections import Boxes, Corrections, load_corrections, split_kept
from blur.detect import Detector, load_detector
from blur.discover import Job
from blur.errors import BlurError
from blur.fsio import write_bytes_atomic
from blur.media.image import encode_photo, read_photo
from blur.report import FileResult, Status
from blur.types import Detections, Frame, Mask

COVERED = 0.6
"""A second-pass detection counts as already hidden when this share of its box lies under the mask."""


VERIFY_MAX_SIDE = 1600
VERIFY_THRESHOLD = 0.5
"""Score at which the second pass treats a detection on the anonymized picture as a face still visible."""


@dataclass(frozen=True, slots=True)
class Engine:
    """The detectors one process uses for a whole batch, built once."""

    detector: Detector
    verifier: Detector | None
    settings: Settings


def build_engine(settings: Settings) -> Engine:
    """Load the detector (and the second-pass verifier) once for this process."""
    detector = load_detector(settings.detector)
    verifier = None
    if settings.verify:
        # A plain single pass with a firmer threshold: it looks for faces still plainly visible, not for
        # shapes the fill itself suggests (a black ellipse on a collar scores about 0.3).
        threshold = max(VERIFY_THRESHOLD, settings.detector.threshold or 0.0)
        verifier = load_detector(replace(settings.detector, multiscale=False, threshold=threshold))
    return Engine(detector, verifier, settings)


@dataclass(frozen=True, slots=True)
class Anonymized:
    """One frame's result: new pixels, the faces masked, and those the second pass added."""

    frame: Frame
    mask: Mask
    detections: Detections
    flagged: Detections


def uncovered(dets: Detections, mask: Mask) -> Detections:
    """Detections whose boxes are not mostly inside `mask`."""
    if len(dets) == 0:
        return dets
    h, w = mask.shape
    keep = np.zeros(len(dets), bool)
    for i, (x1, y1, x2, y2) in enumerate(dets.xyxy):
        xa, ya = max(0, int(x1)), max(0, int(y1))
        xb, yb = min(w, int(np.ceil(x2))), min(h, int(np.ceil(y2)))
        if xb <= xa or yb <= ya:
            continue
        keep[i] = mask[ya:yb, xa:xb].mean() < COVERED
    return dets[keep]


def _verify(verifier: Detector, frame: Frame) -> Detections:
    """Second pass on a copy no larger than VERIFY_MAX_SIDE: it looks for faces still plainly visible,
    and a 45 MP frame at full size would cost 450 MB of activations for that."""
    h, w = frame.shape[:2]
    scale = min(1.0, VERIFY_MAX_SIDE / max(h, w))
    if scale == 1.0:
        return verifier.detect(frame)
    small = cv2.resize(frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return verifier.detect(np.asarray(small, np.uint8)).scaled(1 / scale).clipped(w, h)


def anonymize_frame(
    frame: Frame, dets: Detections, engine: Engine, extra: Mask | None = None, keep: Boxes | None = None
) -> Anonymized:
    """Mask `dets` (plus any `extra` regions), then run the second pass and mask what it still finds.

    `keep` boxes (manual corrections) leave second-pass detections mostly inside them unmasked, as the
    caller did for the first pass; they never remove `extra` or anything else from the mask.
    """
    h, w = frame.shape[:2]
    cfg = engine.settings.mask
    mask = build_mask(dets, h, w, cfg)
    if extra is not None:
        mask |= extra
    out = anonymize(frame, mask, cfg)
    flagged = Detections.empty()
    if engine.verifier is not None:
        flagged = uncovered(_verify(engine.verifier, out), mask)
        if keep is not None and len(keep):
            flagged, _ = split_kept(flagged, keep)
        if len(flagged):
            mask = mask | build_mask(flagged, h, w, cfg)
            out = anonymize(frame, mask, cfg)
    return Anonymized(out, mask, dets, flagged)


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
