"""Masks painted into 4:2:0 frames: a solid fill straight into the planes, other looks through RGB."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from blur.anonymize.filters import anonymize
from blur.anonymize.mask import Piece, add_regions, build_mask, mask_pieces, region_pieces
from blur.config import MaskConfig, MaskMode
from blur.media.planes import Planes, planes_to_rgb, rgb_to_planes, yuv_of
from blur.types import Detections, Mask

if TYPE_CHECKING:
    pass


def entries(dets: Detections, **flags: bool) -> list[dict[str, Any]]:
    """Detections as report entries (box in frame pixels, score), with `flags` set on each."""
    return [{**entry, **flags} for entry in dets.to_list()]


def fill_planes(planes: Planes, pieces: list[Piece], yuv: tuple[int, int, int]) -> Planes:
    """Paint a solid fill into the planes, in place, under each piece (windows on even coordinates):
    luma under the mask, and every chroma sample that any masked pixel shares (a chroma sample is
    filled when any of the 2x2 luma pixels it covers is masked). Returns `planes`."""
    fill_y, fill_u, fill_v = yuv
    for x0, y0, x1, y1, piece in pieces:
        np.putmask(planes.y[y0:y1, x0:x1], piece, fill_y)
        chroma = (piece[0::2, 0::2] | piece[1::2, 0::2]) | (piece[0::2, 1::2] | piece[1::2, 1::2])
        np.putmask(planes.u[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2], chroma, fill_u)
        np.putmask(planes.v[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2], chroma, fill_v)
    return planes


def mask_planes(planes: Planes, mask: Mask, cfg: MaskConfig, colorspace: int) -> Planes:
    """Anonymize the masked pixels of a 4:2:0 picture, returning new planes.

    A solid fill is painted straight into the planes (`fill_planes`). The other looks are computed
    in RGB by `blur.anonymize.filters`.
    """
    if cfg.mode is not MaskMode.fill:
        rgb = anonymize(planes_to_rgb(planes, colorspace), mask, cfg)
        return rgb_to_planes(rgb, colorspace)
    copy = Planes(planes.y.copy(), planes.u.copy(), planes.v.copy())
    return fill_planes(copy, [(0, 0, planes.width, planes.height, mask)], yuv_of(tuple(cfg.colour), colorspace))


def mask_frame(
    planes: Planes,
    boxes: Detections,
    add: npt.NDArray[np.float32] | None,
    cfg: MaskConfig,
    colorspace: int,
    ellipse: npt.NDArray[np.bool_] | None = None,
) -> Planes:
    """Mask the head regions of `boxes` and the regions `add` (sidecar corrections: rectangles, or
    ellipses where `ellipse`) in a 4:2:0 frame whose colour matrix is `colorspace`; a solid fill is
    painted into `planes` in place."""
    w, h = planes.width, planes.height
    boxes = boxes.clipped(w, h)
    if cfg.mode is not MaskMode.fill:
        mask = build_mask(boxes, h, w, cfg)
        return mask_planes(planes, mask if add is None else add_regions(mask, add, ellipse), cfg, colorspace)
    # Each face is rasterised in its own window, not over the whole frame: a 1080p frame with 20
    # faces costs the faces' area (the full-frame mask took most of the main thread's time).
    pieces = mask_pieces(boxes, h, w, cfg, align=2)
    if add is not None:
        pieces += region_pieces(add, h, w, align=2, ellipse=ellipse)
    return fill_planes(planes, pieces, yuv_of(tuple(cfg.colour), colorspace))
