"""Video pictures as upright, even-sized 8-bit 4:2:0 planes, and the RGB copies the detector sees.

Frames stay in planes from decoder to encoder (half the memory of RGB, and no colour conversion for
frames without faces); only the detector's small copies, and frames masked with a look other than
a solid fill, go through RGB.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from blur.types import Frame

if TYPE_CHECKING:
    from av.video.frame import VideoFrame


@dataclass(frozen=True, slots=True)
class Planes:
    """An upright, even-sized 8-bit 4:2:0 picture in limited range: luma and half-size chroma planes.

    Frames stay in this form from decoder to encoder (half the memory of RGB, and no colour
    conversion for frames without faces): only the detector's small copies are RGB.
    """

    y: npt.NDArray[np.uint8]
    u: npt.NDArray[np.uint8]
    v: npt.NDArray[np.uint8]
    base: npt.NDArray[np.uint8] | None = field(default=None, compare=False, repr=False)
    """The packed array that y, u and v are views of (set by `unpack`), so `packed` need not copy."""

    @property
    def width(self) -> int:
        """Width in pixels."""
        return int(self.y.shape[1])

    @property
    def height(self) -> int:
        """Height in pixels."""
        return int(self.y.shape[0])

    def packed(self) -> npt.NDArray[np.uint8]:
        """The planes one after the other, shaped (height * 3/2, width) as PyAV's yuv420p arrays are."""
        if self.base is not None:
            return self.base
        flat = np.concatenate([self.y.ravel(), self.u.ravel(), self.v.ravel()])
        return flat.reshape(self.height * 3 // 2, self.width)

    @classmethod
    def unpack(cls, packed: npt.NDArray[np.uint8], width: int, height: int) -> Planes:
        """Split a (height * 3/2, width) yuv420p array into planes."""
        flat = packed.reshape(-1)
        luma, chroma = width * height, (width // 2) * (height // 2)
        y = flat[:luma].reshape(height, width)
        u = flat[luma : luma + chroma].reshape(height // 2, width // 2)
        v = flat[luma + chroma : luma + 2 * chroma].reshape(height // 2, width // 2)
        whole = packed.shape == (height * 3 // 2, width) and packed.flags.c_contiguous
        return cls(y, u, v, packed if whole else None)

    def turned(self, turns: int) -> Planes:
        """The picture rotated by `turns` counter-clockwise quarter turns."""
        if not turns:
            return self
        return Planes(*(np.ascontiguousarray(np.rot90(p, turns)) for p in (self.y, self.u, self.v)))


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    """One decoded video frame: upright 4:2:0 pixels and its own timestamp."""

    index: int
    planes: Planes
    pts: int
    duration: int


def upright(rgb: Frame, turns: int) -> Frame:
    """Rotate by `turns` counter-clockwise quarter turns and pad odd sizes to even; returns a new array."""
    out = np.rot90(rgb, turns) if turns else rgb
    h, w = out.shape[:2]
    if h % 2 or w % 2:
        out = np.pad(out, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return np.ascontiguousarray(out)


def to_rgb(frame: VideoFrame, size: tuple[int, int] | None = None) -> Frame:
    """Decoded frame -> 8-bit RGB (optionally scaled to `size`), honouring its colour matrix and range."""
    width, height = size or (frame.width, frame.height)
    rgb = frame.to_ndarray(
        width=width, height=height, format="rgb24", src_color_range=frame.color_range or None, interpolation="AREA"
    )
    return np.asarray(rgb, np.uint8)


LIMITED_RANGES = (0, 1)
"""FFmpeg's colour ranges read as limited: unspecified and MPEG."""


def to_planes(frame: VideoFrame, turns: int, colorspace: int) -> Planes:
    """Decoded frame -> upright, even-sized 8-bit limited-range 4:2:0 planes (10-bit and full range included).

    Odd sizes go through RGB so that the last row/column can be repeated (4:2:0 needs even sizes).
    """
    if frame.width % 2 or frame.height % 2:
        return rgb_to_planes(upright(to_rgb(frame), turns), colorspace)
    if frame.format.name != "yuv420p" or frame.color_range not in LIMITED_RANGES:
        frame = frame.reformat(format="yuv420p", src_color_range=frame.color_range or None, dst_color_range=1)
    # Already 8-bit limited-range 4:2:0 (nearly every camera file): the decoder's planes as they are.
    return Planes.unpack(np.asarray(frame.to_ndarray(), np.uint8), frame.width, frame.height).turned(turns)


def rgb_to_planes(rgb: Frame, colorspace: int) -> Planes:
    """Even-sized RGB -> limited-range 4:2:0 planes with colour matrix `colorspace`."""
    import av

    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    yuv = frame.reformat(format="yuv420p", dst_colorspace=colorspace, dst_color_range=1)
    return Planes.unpack(np.asarray(yuv.to_ndarray(), np.uint8), rgb.shape[1], rgb.shape[0])


def planes_to_rgb(planes: Planes, colorspace: int) -> Frame:
    """Limited-range 4:2:0 planes with colour matrix `colorspace` -> RGB."""
    import av

    frame = av.VideoFrame.from_ndarray(planes.packed(), format="yuv420p")
    rgb = frame.to_ndarray(format="rgb24", src_colorspace=colorspace, src_color_range=1)
    return np.asarray(rgb, np.uint8)


@functools.cache
def yuv_of(colour: tuple[int, int, int], colorspace: int) -> tuple[int, int, int]:
    """The limited-range (Y, U, V) of an RGB colour under colour matrix `colorspace`."""
    planes = rgb_to_planes(np.full((2, 2, 3), colour, np.uint8), colorspace)
    return int(planes.y[0, 0]), int(planes.u[0, 0]), int(planes.v[0, 0])


def detector_copy(frame: VideoFrame, size: tuple[int, int], turns: int) -> Frame:
    """An upright RGB copy of `frame` scaled to `size` (upright width, height) for the detector."""
    stored = (size[1], size[0]) if turns % 2 else size
    rgb = to_rgb(frame, stored)
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb
