"""GIF written from pixels: every frame quantized afresh, the file assembled frame by frame.

Each frame's palette is computed from the anonymized pixels alone (a GIF reused from the input
would keep the face's colours in its colour tables), pixels hidden by transparency never enter it,
and every frame is written whole: Pillow's own GIF writer merges identical consecutive frames,
which would change the frame count and the timing a viewer sees.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence

import numpy as np
from PIL import GifImagePlugin, Image

from blur.errors import MediaWriteError
from blur.types import Frame

OPAQUE = 128
"""GIF transparency is one bit: alpha below this is transparent."""


def quantize(rgb: Frame, alpha: np.ndarray | None) -> tuple[np.ndarray, bytes, int | None]:
    """Palette indices, the palette (RGB triplets, at most 256) and the transparent index, if any.

    Transparent pixels are set to black before the palette is computed, so nothing they held (a
    face under alpha 0, say) can shape a palette entry.
    """
    hidden = alpha < OPAQUE if alpha is not None else None
    transparent = hidden is not None and bool(hidden.any())
    source = rgb
    if transparent:
        source = rgb.copy()
        source[hidden] = 0
    image = Image.fromarray(np.ascontiguousarray(source), "RGB")
    paletted = image.quantize(colors=255 if transparent else 256, method=Image.Quantize.MEDIANCUT)
    indices = np.array(paletted, dtype=np.uint8)
    palette = bytes(paletted.getpalette() or [])
    used = int(indices.max()) + 1
    palette = palette[: 3 * used].ljust(3 * used, b"\0")
    if not transparent:
        return indices, palette, None
    index = used  # a new entry after every colour in use: at most 255, since 255 colours were asked for
    indices[hidden] = index
    return indices, palette + b"\0\0\0", index


def _frame_bytes(
    indices: np.ndarray, palette: bytes, transparency: int | None, duration: float, disposal: int
) -> bytes:
    image = Image.fromarray(indices, "P")
    image.putpalette(palette, "RGB")
    params: dict[str, object] = {"include_color_table": True, "disposal": disposal}
    centiseconds = min(65_535, max(0, round(duration / 10)))
    if centiseconds:
        params["duration"] = centiseconds * 10
    if transparency is not None:
        params["transparency"] = transparency
    return b"".join(GifImagePlugin.getdata(image, (0, 0), **params))


def encode_gif(
    frames: Sequence[tuple[Frame, np.ndarray | None]], durations: Sequence[float], loop: int | None
) -> bytes:
    """A GIF of full-canvas `frames` (RGB and optional alpha), each shown `durations` ms.

    `loop` is written as a NETSCAPE loop extension (0: forever); None writes none (plays once).

    Raises:
        MediaWriteError: no frames, frames of different sizes, or the encoder failed.
    """
    if not frames or len({f[0].shape for f in frames}) != 1:
        msg = "cannot encode GIF: no frames, or frames of different sizes"
        raise MediaWriteError(msg)
    height, width = frames[0][0].shape[:2]
    # With transparency each frame clears the canvas after it (disposal 2), so a transparent pixel
    # shows what the frame says, not the frame before; opaque animations need no disposal.
    disposal = 2 if any(a is not None and bool((a < OPAQUE).any()) for _, a in frames) else 0
    out = io.BytesIO()
    out.write(b"GIF89a" + struct.pack("<HHBBB", width, height, 0x70, 0, 0))
    if loop is not None:
        out.write(b"!\xff\x0bNETSCAPE2.0\x03\x01" + struct.pack("<H", min(65_535, max(0, loop))) + b"\0")
    try:
        for (rgb, alpha), duration in zip(frames, durations, strict=True):
            indices, palette, transparency = quantize(rgb, alpha)
            out.write(_frame_bytes(indices, palette, transparency, duration, disposal))
    except (OSError, ValueError) as exc:
        msg = f"cannot encode GIF: {exc}"
        raise MediaWriteError(msg) from exc
    out.write(b";")
    return out.getvalue()
