"""Detections -> head masks. Pure functions: arrays in, new arrays out."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from blur.config import MaskConfig, MaskShape
from blur.types import Detections, Mask

MIN_MASK_PX = 6.0
"""Smallest mask half-size in pixels, so a 4 px detection still hides its whole face."""

HEAD_LIFT = 0.08
"""Share of the box height the mask is moved up: detectors box brow-to-chin, the head reaches above."""


def head_boxes(dets: Detections, scale: float) -> npt.NDArray[np.float32]:
    """Grow detector boxes about their centre (lifted towards the forehead) to cover the whole head."""
    if len(dets) == 0:
        return np.zeros((0, 4), np.float32)
    cx = (dets.xyxy[:, 0] + dets.xyxy[:, 2]) / 2
    cy = (dets.xyxy[:, 1] + dets.xyxy[:, 3]) / 2 - HEAD_LIFT * dets.height
    half_w = np.maximum(dets.width * scale / 2, MIN_MASK_PX)
    half_h = np.maximum(dets.height * scale / 2, MIN_MASK_PX)
    return np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1).astype(np.float32)


def build_mask(dets: Detections, height: int, width: int, cfg: MaskConfig) -> Mask:
    """Rasterise the head regions of `dets` into an H×W boolean mask."""
    canvas = np.zeros((height, width), np.uint8)
    # The detector's own box is always filled too, so no pixel of a detected face survives in the
    # box corners that a head-shaped ellipse leaves out.
    for x1, y1, x2, y2 in dets.xyxy:
        cv2.rectangle(
            canvas, (int(np.floor(x1)), int(np.floor(y1))), (int(np.ceil(x2)) - 1, int(np.ceil(y2)) - 1), 255, -1
        )
    for x1, y1, x2, y2 in head_boxes(dets, cfg.scale):
        if cfg.shape is MaskShape.box:
            p1 = (int(np.floor(x1)), int(np.floor(y1)))
            p2 = (int(np.ceil(x2)), int(np.ceil(y2)))
            cv2.rectangle(canvas, p1, p2, 255, thickness=-1)
        else:
            centre = (round((x1 + x2) / 2), round((y1 + y2) / 2))
            axes = (int(np.ceil((x2 - x1) / 2)), int(np.ceil((y2 - y1) / 2)))
            cv2.ellipse(canvas, centre, axes, 0, 0, 360, 255, thickness=-1)
    return canvas.astype(bool)


def add_regions(mask: Mask, boxes: npt.NDArray[np.float32]) -> Mask:
    """Return `mask` with extra rectangular regions (manual corrections) set."""
    out = mask.copy()
    h, w = out.shape
    for x1, y1, x2, y2 in boxes:
        xa, ya = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
        xb, yb = min(w, int(np.ceil(x2))), min(h, int(np.ceil(y2)))
        out[ya:yb, xa:xb] = True
    return out
