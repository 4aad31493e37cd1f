"""Photos: read the header, decode fully with orientation baked in, encode a fresh metadata-free file.

Nothing from the input container is copied to the output: no EXIF (GPS, serials, maker notes,
thumbnails), XMP, IPTC, Photoshop blocks, comments, text chunks, MPF images or trailing data.
An embedded ICC profile is applied to the pixels (converted to sRGB) and then dropped, because
profiles carry free text (descriptions, copyright, sometimes device names).

HEIF and AVIF are walked box by box first (`blur.media.bmff`): a file cut short is named as
truncated, with the byte where it ends, before any decoder sees it; thumbnails, depth maps, mattes
and gain maps are listed so the report can say they were dropped.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from blur.errors import BlurError, MediaReadError, MediaWriteError
from blur.fsio import open_regular
from blur.media.gif import encode_gif
from blur.media.heif_layout import HeifLayout, read_layout
from blur.media.limits import EncodePlan, plan_output
from blur.types import Frame

MAX_PIXELS = 200_000_000
"""Refuse images above 200 MP (decompression-bomb guard; 45 MP camera files pass easily)."""

BMFF_FORMATS = frozenset({"HEIF", "AVIF"})
DECODABLE_ITEMS = {
    "HEIF": frozenset({b"hvc1", b"grid", b"iden", b"iovl"}),  # libheif with libde265
    "AVIF": frozenset({b"av01", b"grid"}),  # libavif with dav1d
}
"""Item codings the decoders here read: a refusal of anything else names the coding, not damage."""

_HEIF_REGISTERED = False

_AUX_NAMES = (
    ("depth", "depth map"),
    ("auxid:2", "depth map"),
    ("disparity", "depth map"),
    ("gainmap", "HDR gain map"),
    ("portraiteffectsmatte", "portrait matte"),
    ("matte", "segmentation matte"),
)


def register_heif() -> None:
    global _HEIF_REGISTERED
    if not _HEIF_REGISTERED:
        from pillow_heif import register_heif_opener  # noqa: PLC0415

        register_heif_opener(thumbnails=False)
        _HEIF_REGISTERED = True


@dataclass(frozen=True, slots=True)
class Photo:
    """A decoded photo: upright RGB pixels, an optional alpha plane, and its source format."""

    rgb: Frame
    alpha: np.ndarray | None
    format: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PhotoHeader:
    """What a photo file declares, read without decoding pixels.

    Attributes:
        frames: frames (animations), pages (TIFF) or top-level images (HEIF); 1 for a still photo.
        sizes: the upright width and height of each of them.
        alpha: whether any of them has transparency.
        notes: what will not be written (thumbnails, depth maps, gain maps), for the report.
    """

    format: str
    frames: int
    sizes: tuple[tuple[int, int], ...]
    alpha: bool
    notes: tuple[str, ...] = ()


def _aux_name(aux_type: str) -> str:
    lowered = aux_type.lower()
    return next((name for key, name in _AUX_NAMES if key in lowered), aux_type)


def _layout_notes(layout: HeifLayout) -> tuple[str, ...]:
    dropped = [_aux_name(a) for a in layout.auxiliary]
    if layout.thumbnails:
        dropped.insert(0, f"{layout.thumbnails} thumbnail(s)")
    if not dropped:
        return ()
    return (f"not written: {', '.join(dict.fromkeys(dropped))} (only the anonymized picture is kept)",)


def _check_bmff(fh: Any, path: Path, fmt: str) -> HeifLayout:
    """The HEIF/AVIF boxes, refusing a truncated file by name before the decoder sees it."""
    size = os.fstat(fh.fileno()).st_size
    try:
        layout = read_layout(fh, size)
    except MediaReadError as exc:
        msg = f"{path}: not a readable {fmt} file: {exc}"
        raise MediaReadError(msg) from exc
    finally:
        fh.seek(0)
    if layout.truncated:
        msg = f"{path}: truncated: the {fmt} data ends at byte {size} of {layout.declared_end}"
        raise MediaReadError(msg)
    return layout


@contextlib.contextmanager
def decode_errors(path: Path, fmt: str) -> Iterator[list[warnings.WarningMessage]]:
    """Turn whatever a decoder raises into a `MediaReadError` naming the file, and collect its warnings.

    Decoder warnings (corrupt EXIF, truncated tags) become notes in the report, never prints.
    Pillow warns above MAX_IMAGE_PIXELS and raises above twice that; the warning is made an error so
    the limit is exactly MAX_PIXELS, checked when the header is read.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        try:
            yield caught
        except BlurError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            msg = f"{path}: image too large ({exc}); refusing a possible decompression bomb"
            raise MediaReadError(msg) from exc
        except MemoryError as exc:
            msg = f"{path}: not enough memory to decode it"
            raise MediaReadError(msg) from exc
        except Exception as exc:
            msg = f"{path}: cannot decode as {fmt}: {type(exc).__name__}: {exc}"
            raise MediaReadError(msg) from exc


@contextlib.contextmanager
def open_picture(path: Path, fmt: str) -> Iterator[Image.Image]:
    """Open a regular file with the decoder of `fmt` only (header read, nothing decoded yet).

    Call inside `decode_errors`. HEIF and AVIF are checked for truncation first.

    Raises:
        MediaReadError: it cannot be opened, is not a regular file, or is truncated.
    """
    if fmt == "HEIF":
        register_heif()
    try:
        fh = open_regular(path)
    except OSError as exc:
        msg = f"{path}: cannot read: {exc.strerror or exc}"
        raise MediaReadError(msg) from exc
    with fh:
        if fmt in BMFF_FORMATS:
            _check_bmff(fh, path, fmt)
        if fmt == "AVIF":
            # Pillow's AVIF opener only accepts files whose major brand is avif, avis, mif1 or msf1;
            # the sniffer has already read the compatible brands too.
            from PIL import AvifImagePlugin  # noqa: PLC0415

            image: Image.Image = AvifImagePlugin.AvifImageFile(fh)
            w, h = image.size
            if w * h > MAX_PIXELS:
                image.close()
                msg = f"{path}: image too large ({w}x{h} pixels); refusing a possible decompression bomb"
                raise MediaReadError(msg)
        else:
            try:
                image = Image.open(fh, formats=[fmt])
            except UnidentifiedImageError as exc:
                raise MediaReadError(_unidentified(path, fmt, fh)) from exc
        with image:
            yield image


def _unidentified(path: Path, fmt: str, fh: Any) -> str:
    """Why the decoder of `fmt` refused a file whose content says it is `fmt`."""
    why = "the decoder does not recognise it (an unsupported variant of the format, or damaged)"
    if fmt in BMFF_FORMATS:
        try:
            layout = read_layout(fh, os.fstat(fh.fileno()).st_size)
        except MediaReadError:
            return f"{path}: cannot decode as {fmt}: {why}"
        item = layout.items.get(layout.primary)
        if item is not None and item.kind not in DECODABLE_ITEMS[fmt]:
            kind = item.kind.decode("latin-1").strip()
            why = f"its primary picture is coded as '{kind}', which this build's decoder cannot read"
    return f"{path}: cannot decode as {fmt}: {why}"


def _upright_size(image: Image.Image, fmt: str) -> tuple[int, int]:
    orientation = image.getexif().get(0x0112, 1) if fmt != "TIFF" else image.tag_v2.get(0x0112, 1)  # type: ignore[attr-defined]
    w, h = image.size
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def probe_photo(path: Path, fmt: str) -> PhotoHeader:
    """Read what a photo declares: frames or pages, their upright sizes, transparency; decode nothing.

    Raises:
        MediaReadError: unreadable, truncated, not `fmt`, or a frame above `MAX_PIXELS`.
    """
    notes: tuple[str, ...] = ()
    if fmt in BMFF_FORMATS:
        # The boxes say every picture's size before a decoder sees the file: refuse from them.
        layout = _layout(path, fmt)
        _check_sizes(path, fmt, [s for s in map(layout.upright_size, layout.top_level) if s is not None])
        notes = _layout_notes(layout)
    with decode_errors(path, fmt), open_picture(path, fmt) as image:
        frames = max(1, int(getattr(image, "n_frames", 1)))
        if fmt == "JPEG" and frames > 1:
            # MPF (Pillow's MPO): a second view, an HDR gain map or a preview after the picture.
            notes += (f"not written: {frames - 1} MPF image(s) after the picture (second view, gain map or preview)",)
            frames = 1
        if fmt in ("TIFF", "HEIF") and frames > 1:
            sizes, alpha = [], False
            for index in range(frames):
                image.seek(index)
                sizes.append(_upright_size(image, fmt))
                alpha = alpha or _has_alpha(image)
        else:
            sizes, alpha = [_upright_size(image, fmt)] * frames, _has_alpha(image)
    _check_sizes(path, fmt, sizes)
    return PhotoHeader(fmt, frames, tuple(sizes), alpha, notes)


def _layout(path: Path, fmt: str) -> HeifLayout:
    try:
        fh = open_regular(path)
    except OSError as exc:
        msg = f"{path}: cannot read: {exc.strerror or exc}"
        raise MediaReadError(msg) from exc
    with fh:
        return _check_bmff(fh, path, fmt)


def _check_sizes(path: Path, fmt: str, sizes: list[tuple[int, int]]) -> None:
    """Refuse pictures above `MAX_PIXELS`, or larger than `fmt`'s encoder can write in any form."""
    for w, h in sizes:
        if w * h > MAX_PIXELS:
            msg = f"{path}: image too large ({w}x{h} = {w * h / 1e6:.0f} MP, above {MAX_PIXELS / 1e6:.0f} MP); refusing"
            raise MediaReadError(msg)
    plan_output(path, fmt, sizes)


def _to_srgb(image: Image.Image, notes: list[str]) -> Image.Image:
    icc = image.info.get("icc_profile")
    if not icc:
        return image
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        dst = ImageCms.createProfile("sRGB")
        mode = "RGBA" if image.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(image.convert(mode), src, dst, outputMode=mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        notes.append("embedded colour profile could not be applied; colours may shift slightly")
        return image
    notes.append("colour profile converted to sRGB and removed")
    return converted if converted is not None else image


def _upright(image: Image.Image) -> Image.Image:
    """Apply EXIF orientation, copying only when a transpose is needed (a 45 MP frame is 136 MB)."""
    if image.getexif().get(0x0112, 1) in (0, 1):
        return image
    upright = ImageOps.exif_transpose(image)
    return image if upright is None else upright


def upright_pixels(image: Image.Image, notes: list[str]) -> tuple[Frame, np.ndarray | None]:
    """Upright sRGB pixels of the loaded frame and its alpha plane, if any, with as few full-size copies
    as possible. `notes` collects what the report should say (profile converted)."""
    upright = _to_srgb(_upright(image), notes)
    if _has_alpha(upright):
        rgba = np.asarray(upright.convert("RGBA"))
        return np.ascontiguousarray(rgba[:, :, :3]), np.ascontiguousarray(rgba[:, :, 3])
    rgb = upright if upright.mode == "RGB" else upright.convert("RGB")
    return np.asarray(rgb, dtype=np.uint8), None


def read_photo(path: Path, fmt: str) -> Photo:
    """Decode a whole single-picture photo, apply its orientation and return upright RGB pixels.

    Only a regular file is opened (no link, FIFO or device), only with the decoder of `fmt`, and a
    declared size above `MAX_PIXELS` is refused from the header, before any pixel is decoded.
    Files with several frames, pages or images are read with `blur.media.animated.read_pictures`.

    Raises:
        MediaReadError: unreadable, truncated, corrupt, too large, several frames, or not `fmt`.
    """
    with decode_errors(path, fmt) as caught, open_picture(path, fmt) as image:
        frames = int(getattr(image, "n_frames", 1))
        if frames > 1 and fmt != "JPEG":  # a JPEG's MPF images are never read: the picture is the first
            many = f"{frames} frames, pages or images"
            msg = f"{path}: holds {many}; only single pictures are read here (blur anonymize reads them all)"
            raise MediaReadError(msg)
        image.load()
        notes: list[str] = []
        rgb, alpha = upright_pixels(image, notes)
        photo = Photo(rgb=rgb, alpha=alpha, format=fmt, notes=tuple(notes))
    heard = tuple(dict.fromkeys(f"decoder warning: {w.message}" for w in caught))
    return replace(photo, notes=photo.notes + heard) if heard else photo


def pillow_image(rgb: Frame, alpha: np.ndarray | None) -> Image.Image:
    """An RGB or RGBA Pillow image sharing `rgb`'s memory where it can (no metadata at all)."""
    contiguous = np.ascontiguousarray(rgb)
    image = Image.frombuffer("RGB", (contiguous.shape[1], contiguous.shape[0]), contiguous, "raw", "RGB", 0, 1)
    if alpha is not None:
        image.putalpha(Image.fromarray(alpha, "L"))
    return image


def encode_options(fmt: str, quality: int, pixels: int, plan: EncodePlan) -> dict[str, object]:
    """Encoder settings of `fmt` for a picture of `pixels` pixels."""
    if fmt == "JPEG":
        # Huffman optimisation holds the whole coded image in memory twice: only for small photos.
        return {
            "quality": quality,
            "optimize": pixels <= 12_000_000,
            "subsampling": "4:2:0" if quality < 95 else "4:4:4",
        }
    if fmt == "WEBP":
        return {"quality": quality, "method": 4}
    if fmt == "HEIF":
        return {"quality": quality, "tile_size": plan.heif_tile}
    if fmt == "AVIF":
        return {"quality": quality}
    if fmt == "TIFF":
        # libtiff (which Pillow uses to compress) writes classic TIFF only: a BigTIFF is written uncompressed.
        return {"big_tiff": True} if plan.big_tiff else {"compression": "tiff_lzw"}
    if fmt == "PNG":
        # zlib level 1: on the ~1 MP benchmark photos 68 ms a photo against 189 ms at Pillow's default 6,
        # for files 6 % larger (1.13 against 1.07 MB); on a 24 MP frame level 6 takes ~10 s.
        return {"optimize": False, "compress_level": 1}
    return {}


ALPHA_FORMATS = frozenset({"PNG", "WEBP", "TIFF", "HEIF", "AVIF", "GIF"})


def encode_photo(rgb: Frame, alpha: np.ndarray | None, fmt: str, quality: int, plan: EncodePlan | None = None) -> bytes:
    """Encode pixels into a brand-new file of format `fmt` with no metadata at all.

    `plan` (from `blur.media.limits.plan_output`) says how a picture too large for one HEIF image is
    tiled and whether a TIFF must be a BigTIFF. A GIF is quantized afresh from these pixels only.

    Raises:
        MediaWriteError: the encoder failed.
    """
    alpha = alpha if fmt in ALPHA_FORMATS else None
    if fmt == "GIF":
        return encode_gif([(rgb, alpha)], [0.0], None)
    if fmt == "HEIF":
        register_heif()
    # frombuffer shares the array's memory: a 45 MP frame is not copied once more for encoding.
    image = pillow_image(rgb, alpha)
    buffer = io.BytesIO()
    options = encode_options(fmt, quality, rgb.shape[0] * rgb.shape[1], plan or EncodePlan())
    try:
        image.save(buffer, format=fmt, **options)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        msg = f"cannot encode {fmt}: {exc}"
        raise MediaWriteError(msg) from exc
    return buffer.getvalue()
