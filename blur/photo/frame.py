"""One picture's masks: mask the detections, then the second pass masks any face still visible. Pure
computation on arrays; no files."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from blur.anonymize.filters import anonymize
from blur.anonymize.mask import build_mask
from blur.corrections import Boxes, split_kept
from blur.detect import Detector
from blur.engine import Engine
from blur.types import Detections, Frame, Mask

COVERED = 0.6
"""A second-pass detection counts as already hidden when this share of its box lies under the mask."""


VERIFY_MAX_SIDE = 1600


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
