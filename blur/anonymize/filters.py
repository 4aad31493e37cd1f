"""Masked pixels -> their anonymized look. Every look starts from a fill, so none can be undone.

`fill` paints a solid colour. `pixelate` and `blur` first replace the region by content painted in
from outside the mask (OpenCV inpainting on a downscaled copy), then mosaic or blur that: the face's
own pixels never enter the computation, so there is nothing for a deblurring model to recover.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

import cv2
import numpy as np

from blur.config import MaskConfig, MaskMode
from blur.types import Frame, Mask

Filter: TypeAlias = Callable[[Frame, Mask, MaskConfig], Frame]

_WORK_SIDE = 384


def apply_fill(frame: Frame, mask: Mask, cfg: MaskConfig) -> Frame:
    """Paint the mask with the configured solid colour."""
    out = frame.copy()
    out[mask] = np.array(cfg.colour, np.uint8)
    return out


def _bbox(mask: Mask) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def neutral_fill(frame: Frame, mask: Mask) -> Frame:
    """Return a copy whose masked pixels are painted in from unmasked surroundings only.

    Works on a downscaled copy for speed. The downscaled mask is dilated so that no small pixel that
    averaged any masked pixel is used as a source.
    """
    if not mask.any():
        return frame.copy()
    h, w = mask.shape
    x0, y0, x1, y1 = _bbox(mask)
    pad = max(x1 - x0, y1 - y0) // 2 + 8
    x0, y0, x1, y1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
    crop, crop_mask = frame[y0:y1, x0:x1], mask[y0:y1, x0:x1]
    factor = min(1.0, _WORK_SIDE / max(crop.shape[:2]))
    small_size = (max(2, round(crop.shape[1] * factor)), max(2, round(crop.shape[0] * factor)))
    # Blank the masked pixels before any resampling, so the face cannot leak through averaging.
    blanked = crop.copy()
    blanked[crop_mask] = 0
    small = cv2.resize(blanked, small_size, interpolation=cv2.INTER_AREA)
    small_mask = cv2.resize(crop_mask.astype(np.uint8) * 255, small_size, interpolation=cv2.INTER_AREA) > 0
    small_mask = cv2.dilate(small_mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    painted = cv2.inpaint(small, small_mask.astype(np.uint8), 3, cv2.INPAINT_TELEA)
    big = cv2.resize(painted, (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_LINEAR)
    out = frame.copy()
    region = out[y0:y1, x0:x1]
    region[crop_mask] = big[crop_mask]
    return out


def apply_pixelate(frame: Frame, mask: Mask, cfg: MaskConfig) -> Frame:
    """Mosaic over a neutral fill; block size scales with the masked region."""
    base = neutral_fill(frame, mask)
    if not mask.any():
        return base
    x0, y0, x1, y1 = _bbox(mask)
    block = max(4, max(x1 - x0, y1 - y0) // 10)
    h, w = mask.shape
    small = cv2.resize(base, (max(1, w // block), max(1, h // block)), interpolation=cv2.INTER_AREA)
    mosaic = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    out = base.copy()
    out[mask] = mosaic[mask]
    return out


def apply_blur(frame: Frame, mask: Mask, cfg: MaskConfig) -> Frame:
    """Gaussian blur over a neutral fill."""
    base = neutral_fill(frame, mask)
    if not mask.any():
        return base
    x0, y0, x1, y1 = _bbox(mask)
    sigma = max(2.0, max(x1 - x0, y1 - y0) / 12)
    blurred = cv2.GaussianBlur(base, (0, 0), sigma)
    out = base.copy()
    out[mask] = blurred[mask]
    return out


FILTERS: dict[MaskMode, Filter] = {
    MaskMode.fill: apply_fill,
    MaskMode.pixelate: apply_pixelate,
    MaskMode.blur: apply_blur,
}


def anonymize(frame: Frame, mask: Mask, cfg: MaskConfig) -> Frame:
    """Apply the configured look to the masked pixels of `frame`, returning a new frame."""
    if frame.shape[:2] != mask.shape:
        msg = f"mask shape {mask.shape} does not match frame {frame.shape[:2]}"
        raise ValueError(msg)
    return FILTERS[cfg.mode](frame, mask, cfg)
