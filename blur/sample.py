"""A built-in sample folder made from public-domain pictures that scikit-image ships.

The astronaut is NASA's portrait of Eileen Collins (public domain). The sample plants the kinds of
metadata a camera writes (GPS, serial number, an unblurred EXIF thumbnail, XMP, a comment) so that a
new user can see them disappear.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, PngImagePlugin

from blur.types import Frame

SAMPLE_GPS = ((52, 1), (31, 1), (1234, 100))  # 52°31'12.34" N, a made-up position
SAMPLE_SERIAL = "SN-BLUR-SAMPLE-0042"
SAMPLE_COMMENT = "shot at the demo, seat row 3"


def astronaut() -> Frame:
    """scikit-image's 512×512 public-domain astronaut portrait (RGB)."""
    from skimage import data  # noqa: PLC0415

    return np.ascontiguousarray(data.astronaut(), dtype=np.uint8)  # type: ignore[no-untyped-call]


def _jpeg(rgb: Frame, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _ifd(entries: list[tuple[int, int, int, bytes]], base: int, next_ifd: int) -> tuple[bytes, int]:
    """Pack one little-endian TIFF IFD placed at offset `base`; return it and its size."""
    table_size = 2 + 12 * len(entries) + 4
    data_area = b""
    table = struct.pack("<H", len(entries))
    for tag, typ, count, value in sorted(entries):
        if len(value) <= 4:
            table += struct.pack("<HHI", tag, typ, count) + value.ljust(4, b"\0")
        else:
            table += struct.pack("<HHII", tag, typ, count, base + table_size + len(data_area))
            data_area += value + (b"\0" if len(value) % 2 else b"")
    table += struct.pack("<I", next_ifd)
    blob = table + data_area
    return blob, len(blob)


def _ascii(tag: int, text: str) -> tuple[int, int, int, bytes]:
    raw = text.encode() + b"\0"
    return (tag, 2, len(raw), raw)


def _long(tag: int, value: int) -> tuple[int, int, int, bytes]:
    return (tag, 4, 1, struct.pack("<I", value))


def _short(tag: int, value: int) -> tuple[int, int, int, bytes]:
    return (tag, 3, 1, struct.pack("<H", value))


def _rationals(tag: int, values: tuple[tuple[int, int], ...]) -> tuple[int, int, int, bytes]:
    return (tag, 5, len(values), b"".join(struct.pack("<II", n, d) for n, d in values))


def exif_block(orientation: int = 1, *, gps: bool = True, serial: str = SAMPLE_SERIAL, thumbnail: bytes = b"") -> bytes:
    """Build a TIFF/EXIF block with make, model, orientation, serial, maker note, GPS and a thumbnail."""

    # Lay out: header(8) | IFD0 | ExifIFD | GPS IFD | IFD1 | thumbnail. Offsets are computed in two passes.
    def build(offsets: tuple[int, int, int, int]) -> tuple[bytes, tuple[int, int, int, int]]:
        exif_at, gps_at, ifd1_at, thumb_at = offsets
        ifd0_entries = [
            _ascii(0x010F, "SampleCam"),
            _ascii(0x0110, "SampleCam Pro 9"),
            _short(0x0112, orientation),
            _ascii(0x0131, "SampleCam firmware 1.0"),
            _long(0x8769, exif_at),
        ]
        if gps:
            ifd0_entries.append(_long(0x8825, gps_at))
        ifd0, n0 = _ifd(ifd0_entries, 8, ifd1_at if thumbnail else 0)
        exif_entries = [_ascii(0xA431, serial), (0x927C, 7, 16, b"MAKERNOTE-SECRET"), _ascii(0xA430, "Jane Doe")]
        exif, n1 = _ifd(exif_entries, 8 + n0, 0)
        lat = SAMPLE_GPS
        gps_entries = [
            (0x0001, 2, 2, b"N\0"),
            _rationals(0x0002, lat),
            (0x0003, 2, 2, b"E\0"),
            _rationals(0x0004, ((13, 1), (24, 1), (5678, 100))),
        ]
        gps_blob, n2 = _ifd(gps_entries, 8 + n0 + n1, 0) if gps else (b"", 0)
        ifd1_entries = [_short(0x0103, 6), _long(0x0201, thumb_at), _long(0x0202, len(thumbnail))]
        ifd1, n3 = _ifd(ifd1_entries, 8 + n0 + n1 + n2, 0) if thumbnail else (b"", 0)
        blob = b"II*\0" + struct.pack("<I", 8) + ifd0 + exif + gps_blob + ifd1 + thumbnail
        new = (8 + n0, 8 + n0 + n1, 8 + n0 + n1 + n2, 8 + n0 + n1 + n2 + n3)
        return blob, new

    blob, offsets = build((0, 0, 0, 0))
    blob, _ = build(offsets)
    return blob


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def jpeg_with_metadata(
    rgb: Frame,
    *,
    orientation: int = 1,
    gps: bool = True,
    thumbnail: bool = True,
    xmp: bool = True,
    comment: str = SAMPLE_COMMENT,
    trailer: bytes = b"",
) -> bytes:
    """A JPEG of `rgb` carrying the metadata cameras and editors leave: EXIF with GPS, serial and an
    UNBLURRED thumbnail, XMP, IPTC in a Photoshop block, a comment, and optional trailing data.

    `orientation` is written into EXIF as is; the caller stores the pixels accordingly.
    """
    thumb_size = (160, max(1, round(160 * rgb.shape[0] / rgb.shape[1])))
    small = np.asarray(cv2.resize(rgb, thumb_size, interpolation=cv2.INTER_AREA), np.uint8)
    thumb = _jpeg(small, 80) if thumbnail else b""
    body = _jpeg(rgb)
    segments = _segment(0xE1, b"Exif\0\0" + exif_block(orientation, gps=gps, thumbnail=thumb))
    if xmp:
        packet = (
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            '<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="52,31.2N" '
            'exif:BodySerial="XMP-SERIAL-777"/></rdf:RDF></x:xmpmeta>'
        )
        segments += _segment(0xE1, b"http://ns.adobe.com/xap/1.0/\0" + packet.encode())
        iptc = b"\x1c\x02\x50" + struct.pack(">H", 13) + b"IPTC-BYLINE-X"
        irb = b"8BIM" + struct.pack(">H", 0x0404) + b"\0\0" + struct.pack(">I", len(iptc)) + iptc
        segments += _segment(0xED, b"Photoshop 3.0\0" + irb)
    if comment:
        segments += _segment(0xFE, comment.encode())
    return body[:2] + segments + body[2:] + trailer


def png_with_text(rgb: Frame, text: dict[str, str]) -> bytes:
    """A PNG carrying tEXt chunks (author, location, software...)."""
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def crowd(
    width: int = 1600, height: int = 1000, sizes: tuple[int, ...] = (14, 18, 24, 32, 40, 56, 80, 120)
) -> tuple[Frame, list[tuple[int, int, int, int]]]:
    """Paste astronaut copies whose faces are `sizes` pixels wide on a plain background, in rows.

    Returns:
        The picture and the face box (x1, y1, x2, y2) of every copy.
    """
    portrait = astronaut()
    face = (175, 54, 275, 180)  # the astronaut's face in the 512×512 original
    canvas = np.full((height, width, 3), (96, 110, 120), np.uint8)
    boxes: list[tuple[int, int, int, int]] = []
    x, y, row_height = 10, 10, 0
    for face_px in sizes:
        side = round(512 * face_px / (face[2] - face[0]))
        if x + side > width:
            x, y, row_height = 10, y + row_height + 10, 0
        if y + side > height:
            break
        canvas[y : y + side, x : x + side] = cv2.resize(portrait, (side, side), interpolation=cv2.INTER_AREA)
        k = side / 512
        boxes.append((x + round(face[0] * k), y + round(face[1] * k), x + round(face[2] * k), y + round(face[3] * k)))
        x, row_height = x + side + 10, max(row_height, side)
    return canvas, boxes


def make_sample(folder: Path) -> list[Path]:
    """Write the sample folder (nested, several formats, planted metadata) and return the files."""
    portrait = astronaut()
    files: dict[str, bytes] = {
        "portrait/astronaut_gps_thumbnail.jpg": jpeg_with_metadata(portrait),
        # Stored sideways with EXIF orientation 6: viewers rotate it upright, and so must the detector.
        "portrait/astronaut_rotated_exif6.jpg": jpeg_with_metadata(np.rot90(portrait, 1).copy(), orientation=6),
        "crowd/astronauts_crowd.jpg": jpeg_with_metadata(crowd()[0], thumbnail=True),
        "crowd/nested/astronaut_small.png": png_with_text(
            np.asarray(cv2.resize(portrait, (256, 256), interpolation=cv2.INTER_AREA), np.uint8),
            {"Author": "Jane Doe", "Location": "52.52N 13.40E"},
        ),
        "README.txt": b"Sample photos for blur; this text file is skipped.\n",
    }
    written = []
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
    return written
