"""Files from the wild (issue 20): AVIF, animated pictures, multi-page TIFF, multi-image and truncated HEIF,
BigTIFF, encoder limits checked from the header, and errors that name the file once.

Every input is generated here (Pillow, pillow-heif) from scikit-image's public-domain astronaut.
"""

from __future__ import annotations

import io
import json
import struct
import time
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from PIL import Image
from typer.testing import CliRunner

from blur.audit import Category, FaceCheck, Verdict, audit_file
from blur.audit.run import PARSERS, LazyCheck
from blur.batch.pool import guarded as _guarded
from blur.cli import app
from blur.engine import Engine
from blur.errors import MediaReadError, UnsupportedMediaError
from blur.jobs import Job, Plan, Status
from blur.media.animated import read_pictures
from blur.media.heif_layout import read_layout
from blur.media.image import encode_photo, probe_photo, register_heif
from blur.media.kinds import Kind, sniff, sniff_bytes
from blur.media.limits import X265_MAX_LUMA, EncodePlan, plan_output
from blur.types import Detections, Frame
from tests.conftest import ASTRO_FACE, ssim_gray
from tests.dirty import exif_block, xmp
from tests.hostile import jpeg_bomb
from tests.test_fuzz import FUZZ, mutate, mutations

pillow_heif = pytest.importorskip("pillow_heif")

FACE_SIZE = (100, 126)
"""The astronaut's face box cut tight (ASTRO_FACE), pasted on grey backgrounds."""


def _anonymize(runner: CliRunner, *args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, ["anonymize", *map(str, args), "-j", "1", "-q"])
    return result.exit_code, result.output


def _report(runner: CliRunner, src: Path, out: Path) -> dict[str, Any]:
    report = out.parent / f"{out.name}.json"
    code, output = _anonymize(runner, src, "-o", out, "--report", report)
    data: dict[str, Any] = json.loads(report.read_text())
    data["exit_code"], data["output"] = code, output
    return data


def face_frame(astro: Frame, x: int, y: int, *, grey_rim: bool = False) -> Frame:
    """A 320x240 grey gradient (every pixel R = G = B) with the astronaut's face, cut tight, at (x, y);
    with `grey_rim` only the middle of the face (eyes, nose, mouth) keeps its colours."""
    frame = np.repeat(np.linspace(60, 200, 320).astype(np.uint8)[None, :, None], 3, axis=2).repeat(240, axis=0)
    x1, y1, x2, y2 = ASTRO_FACE
    face = astro[y1:y2, x1:x2].copy()
    if grey_rim:
        h, w = face.shape[:2]
        middle = face[h // 4 : h * 3 // 4, w // 4 : w * 3 // 4].copy()
        face[:] = face.mean(axis=2, keepdims=True).astype(np.uint8)
        face[h // 4 : h * 3 // 4, w // 4 : w * 3 // 4] = middle
    frame[y : y + y2 - y1, x : x + x2 - x1] = face
    return np.ascontiguousarray(frame)


def face_box(x: int, y: int) -> tuple[int, int, int, int]:
    """Where `face_frame` put the face."""
    return x, y, x + FACE_SIZE[0], y + FACE_SIZE[1]


def moving_frames(
    astro: Frame, n: int = 8, *, grey_rim: bool = False
) -> tuple[list[Frame], list[tuple[int, int, int, int]]]:
    """`n` frames with the face moving right, and where it is in each."""
    frames, boxes = [], []
    for i in range(n):
        x = 20 + 12 * i
        frames.append(face_frame(astro, x, 60, grey_rim=grey_rim))
        boxes.append(face_box(x, 60))
    return frames, boxes


def decoded(path: Path) -> tuple[str, list[Frame], list[Any], Any]:
    """Format, RGB frames, per-frame durations and loop count as Pillow reads them."""
    register_heif()
    with Image.open(path) as image:
        fmt = str(image.format)
        frames, durations = [], []
        for i in range(getattr(image, "n_frames", 1)):
            image.seek(i)
            image.load()
            frames.append(np.asarray(image.convert("RGB")))
            durations.append(image.info.get("duration"))
        return fmt, frames, durations, image.info.get("loop")


def hidden(out: Frame, original: Frame, box: tuple[int, int, int, int], engine: Engine) -> bool:
    """The face in `box` is unrecognisable: structure gone (SSIM) and no detection over it."""
    x1, y1, x2, y2 = box
    if ssim_gray(out[y1:y2, x1:x2], original[y1:y2, x1:x2]) >= 0.6:
        return False
    dets = engine.detector.detect(out)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return not any(a <= cx <= c and b <= cy <= d for a, b, c, d in dets.xyxy.tolist())


def save_animation(path: Path, frames: list[Frame], fmt: str, durations: list[int], loop: int | None) -> None:
    """Write `frames` as an animation with Pillow (GIF, APNG, WebP, AVIF) or as TIFF pages."""
    images = [Image.fromarray(f) for f in frames]
    options: dict[str, Any] = {"save_all": True, "append_images": images[1:]}
    if fmt != "TIFF":
        options["duration"] = durations
    if loop is not None and fmt != "AVIF":
        options["loop"] = loop
    if fmt == "WEBP":
        options["quality"] = 95
    images[0].save(path, fmt, **options)


class TestSniff:
    @pytest.mark.parametrize(
        ("head", "kind", "fmt"),
        [
            (b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf", Kind.image, "AVIF"),
            (b"\0\0\0\x2cftypavis\0\0\0\0avifavismsf1iso8mif1miafMA1B", Kind.image, "AVIF"),
            (b"\0\0\0\x18ftypmif1\0\0\0\0mif1avif", Kind.image, "AVIF"),
            (b"\0\0\0\x18ftypmif1\0\0\0\0mif1heic", Kind.image, "HEIF"),
            (b"\0\0\0\x18ftypmiaf\0\0\0\0miafMA1B", Kind.image, "AVIF"),
            (b"\0\0\0\x18ftypheix\0\0\0\0mif1heix", Kind.image, "HEIF"),
            (b"\0\0\0\x18ftypmsf1\0\0\0\0msf1hevc", Kind.image, "HEIF"),
            (b"\0\0\0\x18ftypisom\0\0\0\0isomiso2mp41", Kind.video, "mp4"),
            (b"\0\0\0\x14ftypqt  \0\0\0\0qt  ", Kind.video, "mov"),
            (b"\0\0\0\x18ftypcrx \0\0\0\x01crx isom", Kind.unsupported, ""),
            (b"GIF89a\x10\0\x10\0" + b"\0" * 22, Kind.image, "GIF"),
            (b"GIF87a\x10\0\x10\0" + b"\0" * 22, Kind.image, "GIF"),
            (b"II+\0\x08\0\0\0" + b"\0" * 24, Kind.image, "TIFF"),
            (b"MM\0+\0\x08\0\0" + b"\0" * 24, Kind.image, "TIFF"),
        ],
    )
    def test_brands_and_magic(self, head: bytes, kind: Kind, fmt: str) -> None:
        """ISO-BMFF images are told from videos by the major and the compatible brands; GIF and BigTIFF by magic."""
        sniffed = sniff_bytes(head + b"\0" * 16)
        assert (sniffed.kind, sniffed.format) == (kind, fmt)

    def test_item_types_decide_when_brands_do_not(self, tmp_path: Path, astro: Frame) -> None:
        """A file branded only `mif1` is AVIF when its items are AV1 (the item table is read), HEIF when HEVC."""
        buffer = io.BytesIO()
        Image.fromarray(astro[:64, :64]).save(buffer, "AVIF")
        data = bytearray(buffer.getvalue())
        size = struct.unpack(">I", data[:4])[0]
        data[8:12] = b"mif1"
        data[16:size] = b"mif1" * ((size - 16) // 4)  # no brand names the codec any more
        (tmp_path / "a.heif").write_bytes(bytes(data))
        assert sniff(tmp_path / "a.heif").format == "AVIF"
        Image.fromarray(astro[:64, :64]).save(tmp_path / "h.heic", "HEIF")
        assert sniff(tmp_path / "h.heic").format == "HEIF"


class TestAvif:
    def test_avif_photo_round_trip(self, tmp_path: Path, runner: CliRunner, astro: Frame, plain_engine: Engine) -> None:
        """An AVIF with EXIF GPS, a serial and XMP comes out as an AVIF image (not an MP4), face hidden, no metadata."""
        src = tmp_path / "in" / "phone.avif"
        src.parent.mkdir()
        exif = b"Exif\0\0" + exif_block(serial="CANARY-SN-7731")
        Image.fromarray(astro).save(src, "AVIF", quality=90, exif=exif, xmp=xmp('CANARY-XMP="avif"'))
        raw_in = src.read_bytes()
        assert b"CANARY-SN-7731" in raw_in and b"CANARY-XMP" in raw_in
        dirty = audit_file(src, LazyCheck(None))
        assert any(f.category is Category.metadata and "GPS" in f.what for f in dirty.findings), dirty
        assert any("XMP" in f.what for f in dirty.findings), dirty
        code, output = _anonymize(runner, src.parent, "-o", tmp_path / "out")
        assert code == 0, output
        dst = tmp_path / "out" / "phone.avif"
        raw = dst.read_bytes()
        assert sniff(dst).format == "AVIF" and raw[4:12] == b"ftypavif"
        assert b"CANARY" not in raw and b"Exif" not in raw and b"xmpmeta" not in raw
        fmt, frames, _, _ = decoded(dst)
        assert fmt == "AVIF" and len(frames) == 1
        assert hidden(frames[0], astro, ASTRO_FACE, plain_engine)
        assert audit_file(dst, LazyCheck(lambda: FaceCheck(plain_engine.detector, 0.5))).verdict is Verdict.clean
        assert src.read_bytes() == raw_in

    @pytest.mark.parametrize(
        ("orientation", "stored"),
        [
            (6, lambda a: np.rot90(a, 1)),  # irot: shown turned a quarter clockwise
            (8, lambda a: np.rot90(a, -1)),
            (2, lambda a: a[:, ::-1]),  # imir: shown mirrored
            (3, lambda a: a[::-1, ::-1]),
        ],
    )
    def test_irot_imir_applied(
        self, tmp_path: Path, runner: CliRunner, astro: Frame, plain_engine: Engine, orientation: int, stored: Any
    ) -> None:
        """AVIF rotation and mirror boxes (written by Pillow from EXIF orientation) are applied before detection."""
        exif = Image.Exif()
        exif[0x0112] = orientation
        src = tmp_path / "r.avif"
        Image.fromarray(np.ascontiguousarray(stored(astro))).save(src, "AVIF", quality=95, exif=exif.tobytes())
        assert b"irot" in src.read_bytes() or b"imir" in src.read_bytes()
        code, output = _anonymize(runner, src, "-o", tmp_path / "out")
        assert code == 0, output
        raw = (tmp_path / "out" / "r.avif").read_bytes()
        assert b"irot" not in raw and b"imir" not in raw  # the pixels are upright: nothing left to apply
        _, frames, _, _ = decoded(tmp_path / "out" / "r.avif")
        out = frames[0].astype(int)
        assert np.abs(out[400:, :] - astro[400:, :]).mean() < 12  # upright: the unmasked lower part matches
        assert hidden(frames[0], astro, ASTRO_FACE, plain_engine)


ANIMATED = ["GIF", "PNG", "WEBP", "AVIF", "TIFF"]
EXT = {"GIF": "gif", "PNG": "png", "WEBP": "webp", "AVIF": "avif", "TIFF": "tif"}


class TestAnimated:
    @pytest.mark.parametrize("fmt", ANIMATED)
    def test_every_frame_hidden_timing_kept(
        self, tmp_path: Path, runner: CliRunner, astro: Frame, plain_engine: Engine, fmt: str
    ) -> None:
        """Animated GIF, APNG, animated WebP and AVIF, and TIFF pages: every frame's face hidden, written back in
        the same format with the same frame count, durations and loop count."""
        frames, boxes = moving_frames(astro)
        durations = [100, 50, 200, 100, 100, 300, 300, 100]
        src = tmp_path / "in" / f"clip.{EXT[fmt]}"
        src.parent.mkdir()
        save_animation(src, frames, fmt, durations, 3)
        data = _report(runner, src.parent, tmp_path / "out")
        assert data["exit_code"] == 0, data["output"]
        entry = data["files"][0]
        assert entry["frames"] == len(frames) and entry["tracks"] >= 1, entry
        dst = tmp_path / "out" / src.name
        assert sniff(dst).format == fmt
        _, before, d_in, loop_in = decoded(src)
        out_fmt, after, d_out, loop_out = decoded(dst)
        assert out_fmt == fmt and len(after) == len(before) == len(frames)
        assert d_out == pytest.approx(d_in, abs=0.5) and loop_out == loop_in
        for i, (out, original, box) in enumerate(zip(after, before, boxes, strict=True)):
            assert hidden(out, original, box, plain_engine), f"frame {i}"
        check = LazyCheck(lambda: FaceCheck(plain_engine.detector, 0.5))
        audit = audit_file(dst, check)
        assert audit.verdict is Verdict.clean, audit
        assert audit_file(src, check).frames_checked == len(frames)

    @pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
    def test_identical_frames_kept_apart(self, tmp_path: Path, runner: CliRunner, astro: Frame, fmt: str) -> None:
        """Two identical consecutive frames (a pause) stay two frames with their own durations: Pillow's and
        libwebp's writers would merge them, changing the frame count."""
        frames, _ = moving_frames(astro, 4)
        src = tmp_path / f"pause.{EXT[fmt]}"
        save_animation(src, frames, fmt, [100, 200, 300, 400], 0)
        src.write_bytes(repeat_frame(src.read_bytes(), fmt, 1))
        _, before, d_in, _ = decoded(src)
        assert len(before) == 5 and np.array_equal(before[1], before[2]) and d_in[1] == d_in[2] == 200
        code, output = _anonymize(runner, src, "-o", tmp_path / "out")
        assert code == 0, output
        _, after, d_out, _ = decoded(tmp_path / "out" / src.name)
        assert len(after) == 5 and d_out == pytest.approx(d_in, abs=0.5)

    def test_a_frame_the_detector_misses_is_masked_by_its_track(
        self, tmp_path: Path, astro: Frame, engine: Engine, plain_engine: Engine
    ) -> None:
        """A face found in the frames around frame 3 but not in frame 3 itself is masked there too (tracking),
        with the second pass off so only the tracker can do it."""
        from blur.photo.sequence import anonymize_pictures

        frames, boxes = moving_frames(astro)
        frames[3] = frames[3].copy()
        frames[3][0, 0] = (1, 2, 3)  # the marker the blind detector looks for

        class Blind:
            name = "blind-on-frame-3"

            def detect(self, frame: Frame) -> Detections:
                return Detections.empty() if tuple(frame[0, 0]) == (1, 2, 3) else engine.detector.detect(frame)

            def detect_batch(self, batch: list[Frame]) -> list[Detections]:
                return [self.detect(f) for f in batch]

        src = tmp_path / "clip.png"  # lossless: the marker pixel survives
        save_animation(src, frames, "PNG", [100] * len(frames), 0)
        pictures = read_pictures(src, probe_photo(src, "PNG"))
        assert tuple(pictures.frames[3].rgb[0, 0]) == (1, 2, 3)
        assert len(Blind().detect(pictures.frames[3].rgb)) == 0 and len(Blind().detect(pictures.frames[2].rgb)) == 1
        blind = replace(engine, detector=Blind(), verifier=None)
        done = anonymize_pictures(pictures, blind)
        assert len(done.results[3].detections) >= 1 and done.tracks == 1  # the track's box: frame 3 had none
        for i, (out, original) in enumerate(zip(done.pictures.frames, pictures.frames, strict=True)):
            assert hidden(out.rgb, original.rgb, boxes[i], plain_engine), f"frame {i}"

    def test_gif_palette_keeps_no_face_colour(self, tmp_path: Path, runner: CliRunner, astro: Frame) -> None:
        """The only colours in the input GIF are the middle of the face (the rest is exactly grey): every colour
        table of the output GIF, global and local, holds only greys, so no entry comes from the face."""
        frames, _ = moving_frames(astro, 4, grey_rim=True)
        src = tmp_path / "grey.gif"
        images = paletted(frames)
        images[0].save(src, save_all=True, append_images=images[1:], duration=100, loop=0)
        _, decoded_in, _, _ = decoded(src)
        coloured = [f[(f != f[..., :1]).any(axis=2)] for f in decoded_in]
        assert all(len(c) > 500 for c in coloured)  # the face's middle is in colour in every frame
        assert any(not (r == g == b) for r, g, b in gif_colour_tables(src.read_bytes()))
        code, output = _anonymize(runner, src, "-o", tmp_path / "out")
        assert code == 0, output
        entries = gif_colour_tables((tmp_path / "out" / "grey.gif").read_bytes())
        assert entries and all(r == g == b for r, g, b in entries), sorted({e for e in entries if len(set(e)) > 1})

    def test_gif_transparency_kept_hidden_pixels_not_in_palette(
        self, tmp_path: Path, runner: CliRunner, astro: Frame
    ) -> None:
        """A transparent GIF stays transparent where it was, frame by frame."""
        frames, _ = moving_frames(astro, 3)
        images = []
        for f in frames:
            rgba = np.dstack([f, np.full(f.shape[:2], 255, np.uint8)])
            rgba[:, 280:, 3] = 0
            images.append(Image.fromarray(rgba, "RGBA"))
        src = tmp_path / "t.gif"
        images[0].save(src, save_all=True, append_images=images[1:], duration=100, loop=0, disposal=2)
        code, output = _anonymize(runner, src, "-o", tmp_path / "out")
        assert code == 0, output
        with Image.open(tmp_path / "out" / "t.gif") as image:
            for i in range(image.n_frames):
                image.seek(i)
                alpha = np.asarray(image.convert("RGBA"))[..., 3]
                assert (alpha[:, 285:] == 0).all() and (alpha[:, :270] == 255).all(), i

    def test_pixels_under_transparency_never_shape_the_palette(self) -> None:
        """What a GIF frame hides under transparency (here pure green) takes no palette entry."""
        from blur.media.gif import quantize

        rgb = np.full((64, 64, 3), 120, np.uint8)
        rgb[:, 32:] = (0, 255, 0)
        alpha = np.full((64, 64), 255, np.uint8)
        alpha[:, 32:] = 0
        indices, palette, transparent = quantize(rgb, alpha)
        entries = {tuple(palette[i : i + 3]) for i in range(0, len(palette), 3)}
        assert (0, 255, 0) not in entries and transparent is not None and (indices[:, 32:] == transparent).all()

    def test_still_gif_is_a_photo(self, tmp_path: Path, runner: CliRunner, astro: Frame, plain_engine: Engine) -> None:
        """A one-frame GIF goes through the photo path and comes back a one-frame GIF, face hidden."""
        Image.fromarray(astro).save(tmp_path / "s.gif")
        data = _report(runner, tmp_path / "s.gif", tmp_path / "out")
        assert data["exit_code"] == 0 and data["files"][0]["frames"] is None, data
        fmt, frames, _, _ = decoded(tmp_path / "out" / "s.gif")
        assert fmt == "GIF" and len(frames) == 1
        _, original, _, _ = decoded(tmp_path / "s.gif")
        assert hidden(frames[0], original[0], ASTRO_FACE, plain_engine)

    def test_apng_default_image_kept_apart(
        self, tmp_path: Path, runner: CliRunner, astro: Frame, plain_engine: Engine
    ) -> None:
        """An APNG whose still default image is not part of the animation keeps that structure, every picture hidden."""
        frames, boxes = moving_frames(astro, 4)
        images = [Image.fromarray(f) for f in frames]
        images[0].save(
            tmp_path / "d.png", save_all=True, append_images=images[1:], default_image=True, duration=[0, 100, 100, 100]
        )
        code, output = _anonymize(runner, tmp_path / "d.png", "-o", tmp_path / "out")
        assert code == 0, output
        with Image.open(tmp_path / "out" / "d.png") as image:
            assert image.n_frames == 4 and image.info.get("default_image")
        _, after, _, _ = decoded(tmp_path / "out" / "d.png")
        for i, out in enumerate(after):
            assert hidden(out, frames[i], boxes[i], plain_engine), i

    def test_tiff_pages_of_different_sizes(
        self, tmp_path: Path, runner: CliRunner, astro: Frame, plain_engine: Engine
    ) -> None:
        """A TIFF whose second page is a half-size copy: every page anonymized at its own size."""
        small = np.asarray(Image.fromarray(astro).resize((256, 256)))
        Image.fromarray(astro).save(tmp_path / "p.tif", save_all=True, append_images=[Image.fromarray(small)])
        data = _report(runner, tmp_path / "p.tif", tmp_path / "out")
        assert data["exit_code"] == 0 and data["files"][0]["frames"] == 2, data
        _, pages, _, _ = decoded(tmp_path / "out" / "p.tif")
        assert [p.shape for p in pages] == [(512, 512, 3), (256, 256, 3)]
        assert hidden(pages[0], astro, ASTRO_FACE, plain_engine)
        assert hidden(pages[1], small, tuple(v // 2 for v in ASTRO_FACE), plain_engine)  # type: ignore[arg-type]

    def test_too_many_frames_refused_from_the_header(self, tmp_path: Path, runner: CliRunner) -> None:
        """A GIF declaring 5 frames of 10000x10000 (500 MP in all) is refused before any frame is decoded."""
        screen = b"GIF89a" + struct.pack("<HHBBB", 10_000, 10_000, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
        tiny = b",\0\0\0\0\x01\0\x01\0\0\x02\x02\x44\x01\0"
        (tmp_path / "big.gif").write_bytes(screen + tiny * 5 + b";")
        start = time.perf_counter()
        data = _report(runner, tmp_path / "big.gif", tmp_path / "out")
        assert time.perf_counter() - start < 5
        reason = data["files"][0]["reason"]
        assert data["exit_code"] == 1 and "500 MP" in reason and "refused before decoding" in reason, reason


def paletted(frames: list[Frame]) -> list[Image.Image]:
    """Frames as GIF-ready paletted images whose grey pixels stay exactly grey: 128 greys, then 128 colours
    quantized from the pixels that are not grey."""
    colour = np.concatenate([f[(f != f[..., :1]).any(axis=2)] for f in frames])
    sample = Image.fromarray(np.ascontiguousarray(colour.reshape(-1, 1, 3)), "RGB").quantize(128)
    face = np.array(sample.getpalette()[: 3 * 128], np.int32).reshape(-1, 3)
    face = np.vstack([face, np.zeros((128 - len(face), 3), np.int32)])
    greys = np.repeat(np.arange(0, 256, 2)[:, None], 3, axis=1)
    palette = np.vstack([greys, face]).astype(np.uint8)
    images = []
    for f in frames:
        is_grey = (f == f[..., :1]).all(axis=2)
        index = (f[..., 0] // 2).astype(np.uint8)
        pixels = f[~is_grey].astype(np.int32)
        nearest = ((pixels[:, None, :] - face[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
        index[~is_grey] = 128 + nearest
        image = Image.fromarray(index, "P")
        image.putpalette(palette.tobytes())
        images.append(image)
    return images


def repeat_frame(data: bytes, fmt: str, index: int) -> bytes:
    """The animation with frame `index` repeated right after itself (its own block copied)."""
    if fmt == "GIF":
        spans = gif_frame_spans(data)
        start, end = spans[index]
        return data[:end] + data[start:end] + data[end:]
    if fmt == "PNG":
        return repeat_apng_frame(data, index)
    pos, found = 12, []
    while pos + 8 <= len(data):
        kind, length = struct.unpack_from("<4sI", data, pos)
        end = pos + 8 + length + (length & 1)
        if kind == b"ANMF":
            found.append((pos, end))
        pos = end
    start, end = found[index]
    out = bytearray(data[:end] + data[start:end] + data[end:])
    out[4:8] = struct.pack("<I", len(out) - 8)
    return bytes(out)


def repeat_apng_frame(data: bytes, index: int) -> bytes:
    """An APNG with frame `index` (>= 1: an fcTL and its fdATs) repeated, sequence numbers renumbered."""
    chunks, pos = [], 8
    while pos < len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        chunks.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    frames = [i for i, (kind, _) in enumerate(chunks) if kind == b"fcTL"]
    start = frames[index]
    end = frames[index + 1] if index + 1 < len(frames) else next(i for i, c in enumerate(chunks) if c[0] == b"IEND")
    chunks[end:end] = chunks[start:end]
    out, sequence = [data[:8]], 0
    for kind, payload in chunks:
        if kind == b"acTL":
            payload = struct.pack(">II", len(frames) + 1, struct.unpack(">II", payload)[1])
        if kind in (b"fcTL", b"fdAT"):
            payload = struct.pack(">I", sequence) + payload[4:]
            sequence += 1
        out.append(struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload)))
    return b"".join(out)


def gif_frame_spans(data: bytes) -> list[tuple[int, int]]:
    """Where each frame of a GIF lies: its graphic control extension (if any) through its image data."""
    spans: list[tuple[int, int]] = []
    pos = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    control = None
    while data[pos] != 0x3B:
        start = pos
        if data[pos] == 0x21:
            label = data[pos + 1]
            pos += 2
            while data[pos]:
                pos += data[pos] + 1
            pos += 1
            control = start if label == 0xF9 else control
            continue
        flags = data[pos + 9]
        pos += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0) + 1
        while data[pos]:
            pos += data[pos] + 1
        pos += 1
        spans.append((control if control is not None else start, pos))
        control = None
    return spans


def gif_colour_tables(data: bytes) -> list[tuple[int, int, int]]:
    """Every entry of a GIF's global and local colour tables."""
    entries: list[tuple[int, int, int]] = []

    def table(flags: int, at: int) -> int:
        size = 3 << ((flags & 7) + 1) if flags & 0x80 else 0
        entries.extend(tuple(data[i : i + 3]) for i in range(at, at + size, 3))  # type: ignore[misc]
        return at + size

    def skip_blocks(at: int) -> int:
        while data[at]:
            at += data[at] + 1
        return at + 1

    pos = table(data[10], 13)
    while data[pos] != 0x3B:
        extension = data[pos] == 0x21
        pos = skip_blocks(pos + 2) if extension else skip_blocks(table(data[pos + 9], pos + 10) + 1)
    return entries


class TestHeif:
    def test_multi_image_written_back_with_its_primary(
        self, tmp_path: Path, runner: CliRunner, astro: Frame, plain_engine: Engine
    ) -> None:
        """A two-image HEIF (a stereo pair, a burst) whose primary is the second image: both anonymized, the
        output holds two images with the second still primary."""
        heif = pillow_heif.from_bytes(mode="RGB", size=(512, 512), data=astro.tobytes())
        shifted = np.ascontiguousarray(np.roll(astro, 20, axis=1))
        heif.add_frombytes(mode="RGB", size=(512, 512), data=shifted.tobytes())
        heif.save(tmp_path / "pair.heic", quality=90, primary_index=1)
        data = _report(runner, tmp_path / "pair.heic", tmp_path / "out")
        assert data["exit_code"] == 0 and data["files"][0]["frames"] == 2, data
        out = pillow_heif.open_heif(tmp_path / "out" / "pair.heic")
        assert len(out) == 2 and out.primary_index == 1
        x1, y1, x2, y2 = ASTRO_FACE
        for image, original, box in ((out[0], astro, ASTRO_FACE), (out[1], shifted, (x1 + 20, y1, x2 + 20, y2))):
            assert hidden(np.asarray(image.to_pillow().convert("RGB")), original, box, plain_engine)

    def test_truncated_heic_named_as_truncated(self, tmp_path: Path, runner: CliRunner, astro: Frame) -> None:
        """A HEIC cut short is reported as truncated, with the byte where it ends and the size it declares,
        naming the file once; no output."""
        buffer = io.BytesIO()
        Image.fromarray(astro).save(buffer, "HEIF", quality=80)
        full = buffer.getvalue()
        cut = len(full) * 6 // 10
        (tmp_path / "cut.heic").write_bytes(full[:cut])
        data = _report(runner, tmp_path / "cut.heic", tmp_path / "out")
        reason = data["files"][0]["reason"]
        assert reason == f"truncated: the HEIF data ends at byte {cut} of {len(full)}", reason
        line = next(li for li in data["output"].splitlines() if li.startswith("failed:"))
        assert line.count("cut.heic") == 1, line
        assert not (tmp_path / "out" / "cut.heic").exists()

    def test_unreadable_coding_named(self, tmp_path: Path, astro: Frame) -> None:
        """A HEIF whose picture is coded in a way libheif here cannot decode says so, naming the coding."""
        buffer = io.BytesIO()
        Image.fromarray(astro[:64, :64]).save(buffer, "HEIF")
        data = buffer.getvalue()
        at = data.find(b"hvc1")  # the item type in the item table, before any property
        (tmp_path / "u.heic").write_bytes(data[:at] + b"unci" + data[at + 4 :])
        with pytest.raises(MediaReadError, match="coded as 'unci', which this build's decoder cannot read"):
            probe_photo(tmp_path / "u.heic", "HEIF")

    def test_dropped_items_are_reported(self, tmp_path: Path, runner: CliRunner, astro: Frame) -> None:
        """A thumbnail in the input is not written, and the report says so."""
        heif = pillow_heif.from_bytes(mode="RGB", size=(512, 512), data=astro.tobytes())
        heif[0].info["thumbnails"] = [128]
        heif.save(tmp_path / "t.heic", quality=80)
        data = _report(runner, tmp_path / "t.heic", tmp_path / "out")
        assert any("not written: 1 thumbnail(s)" in n for n in data["files"][0]["notes"]), data["files"][0]
        raw = (tmp_path / "out" / "t.heic").read_bytes()
        layout = read_layout(io.BytesIO(raw), len(raw))
        assert layout.thumbnails == 0

    def test_grid_written_when_asked(self, astro: Frame) -> None:
        """A HEIF planned as a grid (pictures above x265's limit) is written as one grid item of tiles."""
        data = encode_photo(
            np.ascontiguousarray(np.tile(astro, (2, 3, 1))), None, "HEIF", 80, EncodePlan(heif_tile=512)
        )
        layout = read_layout(io.BytesIO(data), len(data))
        assert layout.items[layout.primary].kind == b"grid" and layout.upright_size(layout.primary) == (1536, 1024)
        assert sum(item.kind == b"hvc1" for item in layout.items.values()) == 6


class TestLimits:
    def test_plans(self, tmp_path: Path) -> None:
        """Every encoder's limit, from the header: grids above x265's, refusals where nothing fits."""
        path = tmp_path / "x"
        assert plan_output(path, "HEIF", [(8000, 6000)]) == EncodePlan()
        big = plan_output(path, "HEIF", [(16384, 12208)])
        assert big.heif_tile == 512 and X265_MAX_LUMA < 16384 * 12208
        assert plan_output(path, "HEIF", [(16384, 12208)] * 2).heif_tile == 1024  # 1000 items at most
        # Every picture above the tile size is tiled too: 769 items + 5 x 49 > 1000 at 512 px.
        assert plan_output(path, "HEIF", [(16384, 12208)] + [(4000, 3000)] * 5).heif_tile == 1024
        for fmt, size, words in (
            ("HEIF", (16384, 12208), "transparency"),
            ("WEBP", (16384, 100), "16383"),
            ("JPEG", (65535, 16), "65500"),
            ("AVIF", (40000, 64), "32768"),
        ):
            with pytest.raises(UnsupportedMediaError, match=words):
                plan_output(path, fmt, [size], alpha=fmt == "HEIF")
        assert plan_output(path, "TIFF", [(10000, 10000)] * 9).big_tiff
        assert not plan_output(path, "TIFF", [(10000, 10000)]).big_tiff

    def test_oversize_jpeg_refused_fast(self, tmp_path: Path, runner: CliRunner, astro: Frame) -> None:
        """A JPEG declaring 65535 px wide (more than libjpeg writes) is refused from its header at once."""
        buffer = io.BytesIO()
        Image.fromarray(astro[:16, :16]).save(buffer, "JPEG")
        (tmp_path / "wide.jpg").write_bytes(jpeg_bomb(65_535, 16, buffer.getvalue()))
        start = time.perf_counter()
        with pytest.raises(UnsupportedMediaError, match="65500"):
            probe_photo(tmp_path / "wide.jpg", "JPEG")
        assert time.perf_counter() - start < 1.0
        data = _report(runner, tmp_path / "wide.jpg", tmp_path / "out")
        assert "refused before decoding" in data["files"][0]["reason"]

    def test_oversize_heif_with_alpha_refused_fast(self, tmp_path: Path, engine: Engine) -> None:
        """A HEIF with transparency declaring 16384x9000 (above x265's limit; no grid keeps alpha) is refused
        from its header by the photo pipeline in well under a second, naming the reason."""
        from blur.photo.pipeline import process_photo

        rgba = np.dstack([np.zeros((64, 64, 3), np.uint8), np.full((64, 64), 200, np.uint8)])
        buffer = io.BytesIO()
        Image.fromarray(rgba, "RGBA").save(buffer, "HEIF")
        data = bytearray(buffer.getvalue())
        at = 0
        while (at := data.find(b"ispe", at + 1)) > 0:
            data[at + 8 : at + 16] = struct.pack(">II", 16_384, 9_000)
        (tmp_path / "big.heic").write_bytes(bytes(data))
        job = Job(tmp_path / "big.heic", tmp_path / "out" / "big.heic", Plan.process, Kind.image, "HEIF")
        start = time.perf_counter()
        result = process_photo(job, engine)
        assert time.perf_counter() - start < 1.0
        assert result.status is Status.failed and "x265" in result.reason and "transparency" in result.reason, result
        assert "refused before decoding" in result.reason and not (tmp_path / "out").exists()

    def test_oversize_avif_refused_from_its_boxes(self, tmp_path: Path, astro: Frame) -> None:
        """An AVIF declaring 40000 px wide (libavif reads at most 32768) is refused by name, not as a decode error."""
        buffer = io.BytesIO()
        Image.fromarray(astro[:64, :64]).save(buffer, "AVIF")
        data = bytearray(buffer.getvalue())
        at = data.find(b"ispe")
        data[at + 8 : at + 16] = struct.pack(">II", 40_000, 64)
        (tmp_path / "wide.avif").write_bytes(bytes(data))
        with pytest.raises(UnsupportedMediaError, match="AVIF cannot hold a 40000x64 picture"):
            probe_photo(tmp_path / "wide.avif", "AVIF")


class TestBigTiff:
    def test_bigtiff_read_and_written_as_tiff(
        self, tmp_path: Path, runner: CliRunner, astro: Frame, plain_engine: Engine
    ) -> None:
        """A BigTIFF (II+) is read, anonymized and written back as a classic TIFF (it fits in 4 GiB)."""
        Image.fromarray(astro).save(tmp_path / "b.tif", big_tiff=True)
        assert (tmp_path / "b.tif").read_bytes()[:4] == b"II+\0"
        code, output = _anonymize(runner, tmp_path / "b.tif", "-o", tmp_path / "out")
        assert code == 0, output
        dst = tmp_path / "out" / "b.tif"
        assert dst.read_bytes()[:4] == b"II*\0"
        _, frames, _, _ = decoded(dst)
        assert hidden(frames[0], astro, ASTRO_FACE, plain_engine)

    def test_bigtiff_audited(self, tmp_path: Path, astro: Frame) -> None:
        """The audit walks BigTIFF directories: an artist tag is found, a plain BigTIFF is clean."""
        Image.fromarray(astro[:64, :64]).save(tmp_path / "plain.tif", big_tiff=True)
        assert audit_file(tmp_path / "plain.tif", LazyCheck(None)).verdict is Verdict.clean
        info = {315: "CANARY-ARTIST"}
        Image.fromarray(astro[:64, :64]).save(tmp_path / "tagged.tif", big_tiff=True, tiffinfo=info)
        result = audit_file(tmp_path / "tagged.tif", LazyCheck(None))
        assert any("CANARY-ARTIST" in f.detail for f in result.findings), result

    def test_big_tiff_written_when_needed(self, astro: Frame) -> None:
        """A TIFF planned as BigTIFF (more than 3 GiB of pixels) is written as one."""
        data = encode_photo(astro, None, "TIFF", 90, EncodePlan(big_tiff=True))
        assert data[:4] == b"II+\0"


class TestAuditFormats:
    def test_gif_metadata_found(self, astro: Frame) -> None:
        """A GIF comment, an XMP application extension and an unknown one are reported; data after the trailer too."""
        buffer = io.BytesIO()
        Image.fromarray(astro[:32, :32]).save(buffer, "GIF", comment=b"CANARY-COMMENT")
        data = buffer.getvalue()
        xmp_ext = b"!\xff\x0bXMP DataXMP" + _sub_blocks(xmp('CANARY-XMP="gif"')) + b"\0"
        app_ext = b"!\xff\x0bCANARYAP1.0" + _sub_blocks(b"serial 7731") + b"\0"
        dirty = data[:-1] + xmp_ext + app_ext + b";" + b"\xff\xd8\xff\xe0trailing JPEG"
        findings = PARSERS["GIF"](dirty)
        text = " ".join(f"{f.what} {f.detail}" for f in findings)
        assert "CANARY-COMMENT" in text and "XMP" in text and "CANARYAP" in text and "after the GIF trailer" in text
        assert not any(f.category is Category.error for f in findings), text
        assert PARSERS["GIF"](encode_photo(astro[:32, :32], None, "GIF", 90)) == []

    def test_heif_thumbnail_found_after_any_decode(self, astro: Frame) -> None:
        """Decoding a HEIF turns pillow-heif's thumbnail listing off for the whole process; the audit reads the
        item references itself, so a thumbnail is still reported afterwards."""
        register_heif()
        heif = pillow_heif.from_bytes(mode="RGB", size=(512, 512), data=astro.tobytes())
        heif[0].info["thumbnails"] = [128]
        buffer = io.BytesIO()
        heif.save(buffer, quality=60)
        assert any(f.category is Category.hidden and "thumbnail" in f.what for f in PARSERS["HEIF"](buffer.getvalue()))

    def test_webp_frame_chunks_checked(self, astro: Frame) -> None:
        """Inside an animated WebP's frames, chunks beyond the picture's own are reported."""
        from blur.media.animated import Picture, Pictures
        from blur.media.animated_write import encode_pictures

        frame = Picture(np.ascontiguousarray(astro[:32, :32]), None, 100)
        data = encode_pictures(Pictures("WEBP", (frame, frame), True, 0), 90)
        assert PARSERS["WEBP"](data) == []
        at = data.find(b"ANMF")
        (length,) = struct.unpack("<I", data[at + 4 : at + 8])
        extra = b"CNRY" + struct.pack("<I", 4) + b"7731"
        patched = bytearray(data[: at + 8 + length] + extra + data[at + 8 + length :])
        patched[at + 4 : at + 8] = struct.pack("<I", length + len(extra))
        patched[4:8] = struct.pack("<I", len(patched) - 8)
        assert any("CNRY" in f.what for f in PARSERS["WEBP"](bytes(patched)))


def _sub_blocks(payload: bytes) -> bytes:
    return b"".join(bytes([len(payload[i : i + 255])]) + payload[i : i + 255] for i in range(0, len(payload), 255))


class TestErrors:
    def test_file_named_once(self, tmp_path: Path, runner: CliRunner, astro: Frame) -> None:
        """A broken photo and a broken video: the summary line names each file once, the report's reason not at all."""
        buffer = io.BytesIO()
        Image.fromarray(astro).save(buffer, "JPEG")
        (tmp_path / "in").mkdir()
        (tmp_path / "in" / "cut.jpg").write_bytes(buffer.getvalue()[:2000])
        (tmp_path / "in" / "bad.mp4").write_bytes(b"\0\0\0\x18ftypisom\0\0\0\0isomiso2" + b"\x01" * 4000)
        data = _report(runner, tmp_path / "in", tmp_path / "out")
        assert data["exit_code"] == 1
        for entry in data["files"]:
            name = Path(entry["source"]).name
            assert entry["status"] == "failed" and name not in entry["reason"], entry
            line = next(li for li in data["output"].splitlines() if name in li)
            assert line.count(name) == 1, line

    def test_internal_error_carries_its_traceback(
        self, tmp_path: Path, astro: Frame, engine: Engine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An exception no file should cause is reported as a bug in blur, with the traceback in the report entry."""
        import blur.batch.pool as pool

        def broken(job: Job, engine: Engine) -> Any:
            raise KeyError("surprise")

        monkeypatch.setattr(pool, "process_photo", broken)
        Image.fromarray(astro).save(tmp_path / "a.png")
        job = Job(tmp_path / "a.png", tmp_path / "out" / "a.png", Plan.process, Kind.image, "PNG")
        result = _guarded(job, engine)
        assert result.status is Status.failed and result.reason.startswith("internal error (KeyError")
        assert "bug in blur" in result.reason and str(tmp_path) not in result.reason
        assert "Traceback" in result.traceback and "in broken" in result.traceback
        assert result.to_dict()["traceback"] == result.traceback


def _read_any(path: Path, fmt: str) -> int:
    header = probe_photo(path, fmt)
    return len(read_pictures(path, header).frames) if header.frames > 1 else 1


@pytest.fixture(scope="module")
def fuzz_bases(astro: Frame) -> dict[str, bytes]:
    """Small animated files, an AVIF with EXIF and a two-image HEIF, for mutation."""
    crop = np.ascontiguousarray(astro[40:200:4, 160:320:4])
    frames = [crop, np.ascontiguousarray(crop[::-1])]
    files: dict[str, bytes] = {}
    for fmt in ("GIF", "PNG", "WEBP"):
        buffer = io.BytesIO()
        images = [Image.fromarray(f) for f in frames]
        images[0].save(buffer, fmt, save_all=True, append_images=images[1:], duration=[100, 200], loop=0)
        files[fmt] = buffer.getvalue()
    buffer = io.BytesIO()
    Image.fromarray(crop).save(buffer, "AVIF", exif=b"Exif\0\0" + exif_block(), quality=50)
    files["AVIF"] = buffer.getvalue()
    heif = pillow_heif.from_bytes(mode="RGB", size=(40, 40), data=crop.tobytes())
    heif.add_frombytes(mode="RGB", size=(40, 40), data=np.ascontiguousarray(crop[::-1]).tobytes())
    buffer = io.BytesIO()
    heif.save(buffer, quality=50)
    files["HEIF"] = buffer.getvalue()
    return files


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP", "AVIF", "HEIF"])
def test_fuzzed_new_formats_fail_cleanly(
    tmp_path_factory: pytest.TempPathFactory, fuzz_bases: dict[str, bytes], fmt: str
) -> None:
    """Mutated animated and multi-image files: read whole, or refused with a per-file error naming the file;
    the audit's parsers never raise."""
    folder = tmp_path_factory.mktemp(f"fuzz-{fmt}")

    @FUZZ
    @given(ops=mutations)
    def run(ops: list[tuple[str, int, object]]) -> None:
        data = mutate(fuzz_bases[fmt], ops)
        path = folder / f"m.{fmt.lower()}"
        path.write_bytes(data)
        message = str(path)
        try:
            assert _read_any(path, fmt) >= 1
        except (MediaReadError, UnsupportedMediaError) as exc:
            message = str(exc)
        assert str(path) in message
        assert isinstance(PARSERS[fmt](data), list)

    run()
