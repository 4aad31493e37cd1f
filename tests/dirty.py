"""Files made dirty on purpose: the metadata and embedded-content cases 1-12 of THREAT.md section 7.2.

Each builder returns raw bytes (photos) or writes a file (videos), built from real pixels (the
astronaut portrait), and plants canary strings an audit or a byte scan can look for.
"""

from __future__ import annotations

import base64
import io
import struct
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, PngImagePlugin, TiffImagePlugin

from blur.sample import exif_block, jpeg_with_metadata

CANARIES = [
    b"CANARY-SN-7731",
    b"CANARY-OWNER",
    b"CANARY-LENS-99",
    b"CANARY-UID-0042",
    b"CANARY-XMP",
    b"CANARY-IPTC",
    b"CANARY-COMMENT",
    b"CANARY-PNGTEXT",
    b"CANARY-TIFF",
    b"CANARY-C2PA",
    b"CANARY-TRAILER",
    b"52.5200",
]


def segment(marker: int, payload: bytes) -> bytes:
    """One JPEG segment with its length."""
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def insert_segments(jpeg: bytes, segments: bytes) -> bytes:
    """Insert segments right after SOI."""
    return jpeg[:2] + segments + jpeg[2:]


def plain_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """A clean JPEG of `rgb`."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def srgb_icc() -> bytes:
    """Pillow's built-in sRGB profile (it carries a description, copyright and creation date)."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _exif_loaded() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "CanaryCam"
    exif[0x0110] = "CanaryCam 5"
    exif[0x0131] = "CanaryCam firmware 2"
    exif[0x013B] = "CANARY-OWNER artist"
    sub = exif.get_ifd(0x8769)
    sub[0xA430] = "CANARY-OWNER"
    sub[0xA431] = "CANARY-SN-7731"
    sub[0xA435] = "CANARY-LENS-99"
    sub[0xA420] = "CANARY-UID-0042"
    sub[0x9003] = "2024:06:05 14:30:12"
    sub[0x927C] = b"Apple iOS\x00MAKERNOTE-CANARY" + plain_jpeg(np.zeros((8, 8, 3), np.uint8))
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (52.0, 31.0, 12.0), "E", (13.0, 24.0, 18.0)
    return exif.tobytes()


def xmp(body: str) -> bytes:
    """An XMP packet holding `body` inside one rdf:Description."""
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f"<rdf:Description {body}/></rdf:RDF></x:xmpmeta>"
    ).encode()


def iptc_app13(text: bytes = b"CANARY-IPTC") -> bytes:
    """An APP13 Photoshop segment holding an IPTC by-line."""
    iptc = b"\x1c\x02\x50" + struct.pack(">H", len(text)) + text
    irb = b"8BIM" + struct.pack(">H", 0x0404) + b"\0\0" + struct.pack(">I", len(iptc)) + iptc
    return segment(0xED, b"Photoshop 3.0\0" + irb)


def case1_jpeg_loaded(rgb: np.ndarray) -> bytes:
    """1. EXIF GPS, owner, body and lens serials, unique ID, maker note, XMP, IPTC, COM, ICC."""
    buffer = io.BytesIO()
    packet = xmp('xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="52.5200N" exif:Owner="CANARY-XMP"')
    Image.fromarray(rgb).save(
        buffer, "JPEG", quality=90, exif=_exif_loaded(), icc_profile=srgb_icc(), comment=b"CANARY-COMMENT", xmp=packet
    )
    return insert_segments(buffer.getvalue(), iptc_app13())


def case2_thumbnail_of_other_image(rgb: np.ndarray, face: tuple[int, int, int, int]) -> bytes:
    """2. The main picture shows no face (painted out); its EXIF thumbnail is the unblurred original."""
    x1, y1, x2, y2 = face
    main = rgb.copy()
    main[y1 - 30 : y2 + 30, x1 - 30 : x2 + 30] = 128
    thumb = plain_jpeg(np.ascontiguousarray(rgb[::3, ::3]), 85)
    return insert_segments(plain_jpeg(main), segment(0xE1, b"Exif\0\0" + exif_block(thumbnail=thumb)))


def _mpf_segment(main_size: int, second_size: int) -> bytes:
    entries = [(0xB000, 7, 4, b"0100"), (0xB001, 4, 1, struct.pack("<I", 2))]
    mp_entry = struct.pack("<IIIHH", 0x030000, main_size, 0, 0, 0) + struct.pack(
        "<IIIHH", 0x010001, second_size, main_size, 0, 0
    )
    count = len(entries) + 1
    table_end = 8 + 2 + 12 * count + 4
    body = struct.pack("<H", count)
    for tag, typ, n, value in entries:
        body += struct.pack("<HHI", tag, typ, n) + value
    body += struct.pack("<HHII", 0xB002, 7, len(mp_entry), table_end) + struct.pack("<I", 0)
    return segment(0xE2, b"MPF\0" + b"II*\0" + struct.pack("<I", 8) + body + mp_entry)


def case3_mpf_and_gain_map(rgb: np.ndarray) -> bytes:
    """3. MPF index plus a second full image after EOI, and Ultra HDR gain-map XMP."""
    second = plain_jpeg(np.ascontiguousarray(rgb[:, ::-1]))
    gain = xmp('xmlns:hdrgm="http://ns.adobe.com/hdr-gain-map/1.0/" hdrgm:Version="1.0" GainMapMax="2"')
    segs = _mpf_segment(0, len(second)) + segment(0xE1, b"http://ns.adobe.com/xap/1.0/\0" + gain)
    return insert_segments(plain_jpeg(rgb), segs) + second


def _mp4_bytes() -> bytes:
    return struct.pack(">I", 24) + b"ftypmp42" + b"\0\0\0\0mp42isom" + struct.pack(">I", 16) + b"mdatCANARY-TRAIL"


def case4_motion_photos(rgb: np.ndarray) -> tuple[bytes, bytes]:
    """4. A Google motion photo (MP4 after EOI) and a Samsung SEFT trailer."""
    video = _mp4_bytes()
    packet = xmp(
        'xmlns:GCamera="http://ns.google.com/photos/1.0/camera/" GCamera:MicroVideo="1" '
        f'GCamera:MicroVideoOffset="{len(video)}"'
    )
    google = insert_segments(plain_jpeg(rgb), segment(0xE1, b"http://ns.adobe.com/xap/1.0/\0" + packet)) + video
    seft = b"MotionPhoto_Data" + video + b"SEFH" + b"\0" * 12 + b"CANARY-TRAILER" + b"SEFT"
    return google, plain_jpeg(rgb) + seft


def case5_png_loaded(rgb: np.ndarray) -> bytes:
    """5. tEXt, zTXt, iTXt, eXIf, iCCP, tIME, and the tail of an earlier image after IEND (aCropalypse)."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "CANARY-PNGTEXT")
    info.add_text("Location", "52.5200N 13.4050E", zip=True)
    info.add_itxt("Description", "CANARY-PNGTEXT international", lang="en", tkey="Beschreibung")
    info.add(b"tIME", struct.pack(">HBBBBB", 2024, 6, 5, 14, 30, 12))
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG", pnginfo=info, icc_profile=srgb_icc(), exif=_exif_loaded())
    earlier = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb[::2, ::2])).save(earlier, "PNG")
    return buffer.getvalue() + earlier.getvalue()[len(earlier.getvalue()) // 2 :]


def case6_png_face_under_alpha(rgb: np.ndarray, face: tuple[int, int, int, int]) -> bytes:
    """6. RGBA: the face's RGB is intact under alpha = 0, the rest half transparent."""
    alpha = np.full(rgb.shape[:2], 128, np.uint8)
    x1, y1, x2, y2 = face
    alpha[y1 - 40 : y2 + 40, x1 - 40 : x2 + 40] = 0
    buffer = io.BytesIO()
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(buffer, "PNG")
    return buffer.getvalue()


def case7_heic(rgb: np.ndarray, *, single: bool = False) -> bytes:
    """7. HEIC with EXIF GPS, XMP, an ICC profile, a thumbnail and (unless `single`) a second top-level image."""
    import pillow_heif

    heif = pillow_heif.from_bytes(mode="RGB", size=(rgb.shape[1], rgb.shape[0]), data=rgb.tobytes())
    heif[0].info["thumbnails"] = [128]
    if not single:
        flipped = np.ascontiguousarray(rgb[:, ::-1])
        heif.add_frombytes(mode="RGB", size=(rgb.shape[1], rgb.shape[0]), data=flipped.tobytes())
    buffer = io.BytesIO()
    heif.save(buffer, quality=80, exif=b"Exif\0\0" + exif_block(), xmp=xmp('CANARY-XMP="1"'), icc_profile=srgb_icc())
    return buffer.getvalue()


def case8_tiff_pages(rgb: np.ndarray) -> bytes:
    """8. Two-page TIFF (page 2 the unblurred copy) with IPTC, Photoshop IRB thumbnail and XMP."""
    ifd = TiffImagePlugin.ImageFileDirectory_v2()
    ifd[700] = xmp('CANARY-XMP="tiff"')
    ifd.tagtype[700] = 1
    ifd[33723] = b"\x1c\x02\x50\x00\x0bCANARY-IPTC"
    ifd.tagtype[33723] = 7
    thumb = plain_jpeg(np.ascontiguousarray(rgb[::4, ::4]))
    ifd[34377] = b"8BIM" + struct.pack(">H", 0x040C) + b"\0\0" + struct.pack(">I", len(thumb)) + thumb
    ifd.tagtype[34377] = 1
    ifd[315] = "CANARY-TIFF artist"
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "TIFF", tiffinfo=ifd, save_all=True, append_images=[Image.fromarray(rgb.copy())])
    return buffer.getvalue()


def case9_photoshop_xmp(rgb: np.ndarray) -> bytes:
    """9. Photoshop export: XMP history, document ancestors, original document ID, a base64 thumbnail."""
    thumb = base64.b64encode(plain_jpeg(np.ascontiguousarray(rgb[::4, ::4]))).decode()
    body = (
        'xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/" xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" '
        'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:xmpGImg="http://ns.adobe.com/xap/1.0/g/img/" '
        'xmpMM:OriginalDocumentID="xmp.did:CANARY-XMP" xmpMM:History="saved by Adobe Photoshop" '
        f'photoshop:DocumentAncestors="adobe:docid:photoshop:1234" xmp:Thumbnails="{thumb}"'
    )
    return insert_segments(plain_jpeg(rgb), segment(0xE1, b"http://ns.adobe.com/xap/1.0/\0" + xmp(body)))


def case10_c2pa(rgb: np.ndarray) -> bytes:
    """10. A JUMBF/C2PA manifest (APP11) holding an ingredient thumbnail."""
    thumb = plain_jpeg(np.ascontiguousarray(rgb[::4, ::4]))
    box = b"jumb" + b"\0" * 4 + b"c2pa.thumbnail.ingredient.jpeg\0CANARY-C2PA" + thumb
    return insert_segments(plain_jpeg(rgb), segment(0xEB, b"JP" + b"\0\x01" + b"\0\0\0\x01" + box))


def _video(path: Path, fmt: str, rgb: np.ndarray, options: dict[str, str] | None = None) -> tuple[object, object]:
    import av

    out = av.open(str(path), "w", format=fmt, options=options or {})
    stream = out.add_stream("libx264", rate=10)
    stream.width, stream.height, stream.pix_fmt = rgb.shape[1], rgb.shape[0], "yuv420p"
    return out, stream


def _frames(out: object, stream: object, rgb: np.ndarray, n: int = 6) -> None:
    import av

    for i in range(n):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = i
        out.mux(stream.encode(frame))  # type: ignore[attr-defined]
    out.mux(stream.encode(None))  # type: ignore[attr-defined]


def case11_tagged_videos(folder: Path, rgb: np.ndarray) -> list[Path]:
    """11. iPhone-style MOV (ISO6709 location, make, model, software), Android MP4 (location, dates), 3GP."""
    mov = folder / "iphone.mov"
    out, stream = _video(mov, "mov", rgb, {"movflags": "use_metadata_tags"})
    out.metadata.update(
        {  # type: ignore[attr-defined]
            "com.apple.quicktime.location.ISO6709": "+52.5200+013.4050+034.000/",
            "com.apple.quicktime.make": "Apple",
            "com.apple.quicktime.model": "iPhone 12",
            "com.apple.quicktime.software": "17.5",
            "com.apple.quicktime.creationdate": "2024-06-05T14:30:12+0200",
        }
    )
    stream.metadata["encoder"] = "CanaryCam H.264 encoder"  # type: ignore[attr-defined]
    _frames(out, stream, rgb)
    out.close()  # type: ignore[attr-defined]
    mp4 = folder / "android.mp4"
    out, stream = _video(mp4, "mp4", rgb)
    out.metadata.update({"location": "+52.5200+013.4050/", "creation_time": "2024-06-05T14:30:12Z", "title": "CANARY"})  # type: ignore[attr-defined]
    _frames(out, stream, rgb)
    out.close()  # type: ignore[attr-defined]
    gp = folder / "phone.3gp"
    out, stream = _video(gp, "3gp", rgb)
    out.metadata.update({"location": "+52.5200+013.4050/", "comment": "CANARY-COMMENT"})  # type: ignore[attr-defined]
    _frames(out, stream, rgb)
    out.close()  # type: ignore[attr-defined]
    return [mov, mp4, gp]


def case12_extra_streams(folder: Path, rgb: np.ndarray) -> list[Path]:
    """12. Telemetry data track, subtitle GPS, mjpeg thumbnail track, cover picture, two audio tracks, chapters."""
    import av

    mp4 = folder / "telemetry.mp4"
    out, stream = _video(mp4, "mp4", rgb)
    data = out.add_data_stream("bin_data")  # type: ignore[attr-defined]
    thumb = out.add_stream("mjpeg", rate=1)  # type: ignore[attr-defined]
    thumb.width, thumb.height, thumb.pix_fmt = 128, 128, "yuvj420p"
    audio = [out.add_stream("aac", rate=48000) for _ in range(2)]  # type: ignore[attr-defined]
    _frames(out, stream, rgb)
    small = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[::4, ::4]), format="rgb24").reformat(format="yuvj420p")
    small.pts = 0
    out.mux(thumb.encode(small) + thumb.encode(None))  # type: ignore[attr-defined]
    packet = av.Packet(b"GPS5" + b"52.5200N13.4050E" + b"\0" * 12)
    packet.stream, packet.pts, packet.dts = data, 0, 0
    out.mux(packet)  # type: ignore[attr-defined]
    for track in audio:
        for i in range(5):
            sound = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            sound.sample_rate, sound.pts = 48000, i * 1024
            out.mux(track.encode(sound))  # type: ignore[attr-defined]
        out.mux(track.encode(None))  # type: ignore[attr-defined]
    out.close()  # type: ignore[attr-defined]
    mkv = folder / "subtitles.mkv"
    srt = folder / "gps.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:00,500\nGPS 52.5200N 13.4050E\n\n")
    with av.open(str(srt)) as src:
        out, stream = _video(mkv, "matroska", rgb)
        sub = out.add_stream_from_template(src.streams.subtitles[0])  # type: ignore[attr-defined]
        out.add_attachment("cover.jpg", "image/jpeg", plain_jpeg(np.ascontiguousarray(rgb[::4, ::4])))  # type: ignore[attr-defined]
        out.set_chapters(
            [{"id": 1, "start": 0, "end": 5, "time_base": Fraction(1, 10), "metadata": {"title": "arrest at gate 3"}}]
        )  # type: ignore[attr-defined]
        _frames(out, stream, rgb)
        for packet in src.demux(src.streams.subtitles[0]):
            if packet.size:
                packet.stream = sub
                out.mux(packet)  # type: ignore[attr-defined]
        out.close()  # type: ignore[attr-defined]
    srt.unlink()
    cover = folder / "cover.mp4"
    out, stream = _video(cover, "mp4", rgb)
    pic = out.add_stream("mjpeg")  # type: ignore[attr-defined]
    pic.width, pic.height, pic.pix_fmt = 128, 128, "yuvj420p"
    pic.disposition = av.stream.Disposition.attached_pic
    _frames(out, stream, rgb)
    out.mux(pic.encode(small) + pic.encode(None))  # type: ignore[attr-defined]
    out.close()  # type: ignore[attr-defined]
    return [mp4, mkv, cover]


def photo_cases(rgb: np.ndarray, face: tuple[int, int, int, int]) -> dict[str, bytes]:
    """Every photo case, by file name."""
    google, samsung = case4_motion_photos(rgb)
    return {
        "c01_loaded.jpg": case1_jpeg_loaded(rgb),
        "c02_thumbnail.jpg": case2_thumbnail_of_other_image(rgb, face),
        "c03_mpf.jpg": case3_mpf_and_gain_map(rgb),
        "c04_motion_google.jpg": google,
        "c04_motion_samsung.jpg": samsung,
        "c05_loaded.png": case5_png_loaded(rgb),
        "c06_alpha.png": case6_png_face_under_alpha(rgb, face),
        "c07_iphone.heic": case7_heic(rgb),
        "c08_pages.tif": case8_tiff_pages(rgb),
        "c09_photoshop.jpg": case9_photoshop_xmp(rgb),
        "c10_c2pa.jpg": case10_c2pa(rgb),
        "c00_sample.jpg": jpeg_with_metadata(rgb, trailer=b"\xff\xd8CANARY-TRAILER"),
    }
