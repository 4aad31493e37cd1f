"""Write frames, pages and images back in their own format, frame for frame, with nothing else.

GIF, APNG and animated WebP are assembled here from frames that Pillow encodes one at a time:
Pillow's and libwebp's animation writers merge identical consecutive frames, which changes the
frame count. Every frame is written whole (no delta frames): a frame never depends on pixels of
the input. AVIF sequences and TIFF pages go through Pillow, multi-image HEIF through pillow-heif
(with the same primary image). No metadata is written: no EXIF, XMP, ICC, text or comments.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from fractions import Fraction

import numpy as np

from blur.errors import MediaWriteError
from blur.media.animated import Picture, Pictures
from blur.media.gif import encode_gif
from blur.media.image import encode_options, pillow_image, register_heif
from blur.media.limits import EncodePlan

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _with_alpha(frames: tuple[Picture, ...]) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """RGB and alpha of each frame; when any frame has alpha, every frame gets one (opaque where none)."""
    any_alpha = any(f.alpha is not None for f in frames)
    for f in frames:
        alpha = f.alpha
        if any_alpha and alpha is None:
            alpha = np.full(f.rgb.shape[:2], 255, np.uint8)
        yield f.rgb, alpha


def _chunks(data: bytes, start: int, little: bool) -> Iterator[tuple[bytes, bytes]]:
    """(type, payload) of each chunk of a PNG (big-endian, CRC) or RIFF (little-endian, padded) stream."""
    pos = start
    while pos + 8 <= len(data):
        if little:
            kind, length = struct.unpack_from("<4sI", data, pos)
            yield kind, data[pos + 8 : pos + 8 + length]
            pos += 8 + length + (length & 1)
        else:
            length, kind = struct.unpack_from(">I4s", data, pos)
            yield kind, data[pos + 8 : pos + 8 + length]
            pos += 12 + length


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def apng_delay(duration_ms: float) -> tuple[int, int]:
    """An APNG frame delay (numerator, denominator, each 16-bit) as close to `duration_ms` as they allow."""
    seconds = Fraction(duration_ms / 1000).limit_denominator(65_535)
    if seconds.numerator <= 65_535:
        return seconds.numerator, seconds.denominator
    return min(65_535, round(duration_ms / 10)), 100


def _encode_apng(pictures: Pictures) -> bytes:
    frames = list(_with_alpha(pictures.frames))
    height, width = frames[0][0].shape[:2]
    level = 6 if width * height <= 1_000_000 else 1
    coded = []
    for rgb, alpha in frames:
        buffer = io.BytesIO()
        pillow_image(rgb, alpha).save(buffer, "PNG", compress_level=level)
        coded.append(buffer.getvalue())
    ihdr = next(payload for kind, payload in _chunks(coded[0], 8, little=False) if kind == b"IHDR")
    animated = len(frames) - int(pictures.default_image)
    out = [
        PNG_SIGNATURE,
        _png_chunk(b"IHDR", ihdr),
        _png_chunk(b"acTL", struct.pack(">II", animated, pictures.loop or 0)),
    ]
    sequence = 0
    for index, (data, picture) in enumerate(zip(coded, pictures.frames, strict=True)):
        idat = [payload for kind, payload in _chunks(data, 8, little=False) if kind == b"IDAT"]
        if not (index == 0 and pictures.default_image):
            num, den = apng_delay(picture.duration)
            fctl = struct.pack(">IIIIIHHBB", sequence, width, height, 0, 0, num, den, 0, 0)
            out.append(_png_chunk(b"fcTL", fctl))
            sequence += 1
        if index == 0:
            out += [_png_chunk(b"IDAT", payload) for payload in idat]
            continue
        for payload in idat:
            out.append(_png_chunk(b"fdAT", struct.pack(">I", sequence) + payload))
            sequence += 1
    out.append(_png_chunk(b"IEND", b""))
    return b"".join(out)


def _riff_chunk(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) & 1 else b"")


def _u24(value: int) -> bytes:
    return struct.pack("<I", value)[:3]


def _encode_webp(pictures: Pictures, quality: int) -> bytes:
    frames = list(_with_alpha(pictures.frames))
    height, width = frames[0][0].shape[:2]
    body = []
    for (rgb, alpha), picture in zip(frames, pictures.frames, strict=True):
        buffer = io.BytesIO()
        pillow_image(rgb, alpha).save(buffer, "WEBP", quality=quality, method=4)
        data = buffer.getvalue()
        parts = b"".join(
            _riff_chunk(k, p) for k, p in _chunks(data, 12, little=True) if k in (b"ALPH", b"VP8 ", b"VP8L")
        )
        duration = min((1 << 24) - 1, max(0, round(picture.duration)))
        header = _u24(0) + _u24(0) + _u24(width - 1) + _u24(height - 1) + _u24(duration) + b"\x02"  # no blending
        body.append(_riff_chunk(b"ANMF", header + parts))
    flags = 0x02 | (0x10 if frames[0][1] is not None else 0)  # animation, alpha
    vp8x = _riff_chunk(b"VP8X", bytes([flags, 0, 0, 0]) + _u24(width - 1) + _u24(height - 1))
    anim = _riff_chunk(b"ANIM", b"\0\0\0\0" + struct.pack("<H", min(65_535, pictures.loop or 0)))
    payload = b"WEBP" + vp8x + anim + b"".join(body)
    return b"RIFF" + struct.pack("<I", len(payload)) + payload


def _encode_pillow(pictures: Pictures, quality: int, plan: EncodePlan) -> bytes:
    fmt = pictures.format
    frames = list(_with_alpha(pictures.frames)) if fmt == "AVIF" else [(f.rgb, f.alpha) for f in pictures.frames]
    images = [pillow_image(rgb, alpha) for rgb, alpha in frames]
    pixels = max(rgb.shape[0] * rgb.shape[1] for rgb, _ in frames)
    options = encode_options(fmt, quality, pixels, plan)
    if fmt == "AVIF":
        options["duration"] = [round(f.duration) for f in pictures.frames]
    buffer = io.BytesIO()
    images[0].save(buffer, fmt, save_all=True, append_images=images[1:], **options)
    return buffer.getvalue()


def _encode_heif(pictures: Pictures, quality: int, plan: EncodePlan) -> bytes:
    import pillow_heif  # noqa: PLC0415 - libheif only when a HEIF is written

    register_heif()
    heif = pillow_heif.from_pillow(pillow_image(pictures.frames[0].rgb, pictures.frames[0].alpha))
    for picture in pictures.frames[1:]:
        heif.add_from_pillow(pillow_image(picture.rgb, picture.alpha))
    buffer = io.BytesIO()
    heif.save(buffer, quality=quality, primary_index=pictures.primary, tile_size=plan.heif_tile)
    return buffer.getvalue()


def encode_pictures(pictures: Pictures, quality: int, plan: EncodePlan | None = None) -> bytes:
    """A new file of `pictures.format` holding `pictures`' frames, durations, loop count (and primary image).

    Raises:
        MediaWriteError: no frames, or the encoder failed.
    """
    if not pictures.frames:
        msg = f"cannot encode {pictures.format}: no frames"
        raise MediaWriteError(msg)
    fmt, plan = pictures.format, plan or EncodePlan()
    try:
        if fmt == "GIF":
            frames = [(f.rgb, f.alpha) for f in pictures.frames]
            return encode_gif(frames, [f.duration for f in pictures.frames], pictures.loop)
        if fmt == "PNG":
            return _encode_apng(pictures)
        if fmt == "WEBP":
            return _encode_webp(pictures, quality)
        if fmt == "HEIF":
            return _encode_heif(pictures, quality, plan)
        return _encode_pillow(pictures, quality, plan)
    except (OSError, ValueError, KeyError, RuntimeError, StopIteration) as exc:
        msg = f"cannot encode {fmt}: {exc}"
        raise MediaWriteError(msg) from exc
