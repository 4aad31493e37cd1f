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


Piece = tuple[int, int, int, int, Mask]
"""One face's part of a mask: its window (x0, y0, x1, y1) in the frame and the mask inside that window."""


def mask_pieces(dets: Detections, height: int, width: int, cfg: MaskConfig, align: int = 1) -> list[Piece]:
    """Rasterise each head region of `dets` into its own small window (corners on multiples of
    `align`, for 4:2:0 chroma); together they are exactly `build_mask`, at the cost of the faces'
    area instead of the frame's."""
    pieces: list[Piece] = []
    for (bx1, by1, bx2, by2), (hx1, hy1, hx2, hy2) in zip(dets.xyxy, head_boxes(dets, cfg.scale), strict=True):
        # The detector's own box is always filled too, so no pixel of a detected face survives in the
        # box corners that a head-shaped ellipse leaves out.
        box = (int(np.floor(bx1)), int(np.floor(by1))), (int(np.ceil(bx2)) - 1, int(np.ceil(by2)) - 1)
        if cfg.shape is MaskShape.box:
            head = (int(np.floor(hx1)), int(np.floor(hy1))), (int(np.ceil(hx2)), int(np.ceil(hy2)))
            reach = head
        else:
            centre = (round((hx1 + hx2) / 2), round((hy1 + hy2) / 2))
            axes = (int(np.ceil((hx2 - hx1) / 2)), int(np.ceil((hy2 - hy1) / 2)))
            reach = (centre[0] - axes[0], centre[1] - axes[1]), (centre[0] + axes[0], centre[1] + axes[1])
        x0 = max(0, min(box[0][0], reach[0][0]) - 1) // align * align
        y0 = max(0, min(box[0][1], reach[0][1]) - 1) // align * align
        x1 = min(width, -(-(max(box[1][0], reach[1][0]) + 2) // align) * align)
        y1 = min(height, -(-(max(box[1][1], reach[1][1]) + 2) // align) * align)
        if x1 <= x0 or y1 <= y0:
            continue
        canvas = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.rectangle(canvas, (box[0][0] - x0, box[0][1] - y0), (box[1][0] - x0, box[1][1] - y0), 255, -1)
        if cfg.shape is MaskShape.box:
            cv2.rectangle(canvas, (head[0][0] - x0, head[0][1] - y0), (head[1][0] - x0, head[1][1] - y0), 255, -1)
        else:
            cv2.ellipse(canvas, (centre[0] - x0, centre[1] - y0), axes, 0, 0, 360, 255, thickness=-1)
        pieces.append((x0, y0, x1, y1, canvas.astype(bool)))
    return pieces


def build_mask(dets: Detections, height: int, width: int, cfg: MaskConfig) -> Mask:
    """Rasterise the head regions of `dets` into an H×W boolean mask."""
    return paste(np.zeros((height, width), bool), mask_pieces(dets, height, width, cfg))


def paste(mask: Mask, pieces: list[Piece]) -> Mask:
    """Set every piece's pixels in `mask` (in place) and return it."""
    for x0, y0, x1, y1, piece in pieces:
        mask[y0:y1, x0:x1] |= piece
    return mask


def region_pieces(
    boxes: npt.NDArray[np.float32],
    height: int,
    width: int,
    align: int = 1,
    ellipse: npt.NDArray[np.bool_] | None = None,
) -> list[Piece]:
    """Extra regions (manual corrections) as mask pieces, windows aligned like `mask_pieces`'.

    Each is the rectangle `boxes[i]`, or the ellipse inscribed in it where `ellipse[i]` is True (its
    outline rounded outwards, so the ellipse drawn is never smaller than the one asked for).
    """
    pieces: list[Piece] = []
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        xa, ya = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
        xb, yb = min(width, int(np.ceil(x2))), min(height, int(np.ceil(y2)))
        if xb <= xa or yb <= ya:
            continue
        x0, y0 = xa // align * align, ya // align * align
        x1_, y1_ = min(width, -(-xb // align) * align), min(height, -(-yb // align) * align)
        piece = np.zeros((y1_ - y0, x1_ - x0), bool)
        if ellipse is not None and bool(ellipse[i]):
            canvas = np.zeros(piece.shape, np.uint8)
            centre = (round((x1 + x2) / 2 - x0), round((y1 + y2) / 2 - y0))
            axes = (int(np.ceil((x2 - x1) / 2)), int(np.ceil((y2 - y1) / 2)))
            cv2.ellipse(canvas, centre, axes, 0, 0, 360, 255, thickness=-1)
            piece = canvas.astype(bool)
        else:
            piece[ya - y0 : yb - y0, xa - x0 : xb - x0] = True
        pieces.append((x0, y0, x1_, y1_, piece))
    return pieces


def add_regions(mask: Mask, boxes: npt.NDArray[np.float32], ellipse: npt.NDArray[np.bool_] | None = None) -> Mask:
    """Return `mask` with extra regions (manual corrections: rectangles, or ellipses where `ellipse`) set."""
    height, width = mask.shape
    return paste(mask.copy(), region_pieces(boxes, height, width, ellipse=ellipse))
