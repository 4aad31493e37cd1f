"""`blur audit`: files made dirty on purpose (THREAT.md 7.2, cases 1-12) are reported; blur's outputs pass."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from blur.audit import Category, FaceCheck, FileAudit, Verdict, audit_file
from blur.audit.faces import suspect
from blur.audit.run import LazyCheck
from blur.cli import app
from blur.photo.frame import anonymize_frame
from blur.sample import jpeg_with_metadata
from blur.types import iou_matrix
from tests.conftest import ASTRO_FACE
from tests.dirty import CANARIES, case7_heic, case11_tagged_videos, case12_extra_streams, photo_cases, plain_jpeg

pytest.importorskip("pillow_heif")


def _audit(path: Path, check: FaceCheck | None = None) -> FileAudit:
    return audit_file(path, LazyCheck((lambda: check) if check is not None else None))


def _has(result: FileAudit, category: Category, *words: str) -> bool:
    """Whether one finding of `category` mentions every word (in its label, detail or location)."""
    return any(
        f.category is category and all(w.lower() in f"{f.what} {f.detail} {f.where}".lower() for w in words)
        for f in result.findings
    )


@pytest.fixture(scope="module")
def dirty(tmp_path_factory: pytest.TempPathFactory, astro: np.ndarray) -> Path:
    """A folder holding every dirty photo and video case."""
    folder = tmp_path_factory.mktemp("dirty")
    for name, data in photo_cases(astro, ASTRO_FACE).items():
        (folder / name).write_bytes(data)
    case11_tagged_videos(folder, astro)
    case12_extra_streams(folder, astro)
    return folder


PHOTO_EXPECTED = {
    "c01_loaded.jpg": [
        (Category.metadata, "GPS"),
        (Category.metadata, "CANARY-SN-7731"),
        (Category.metadata, "CANARY-LENS-99"),
        (Category.metadata, "CANARY-UID-0042"),
        (Category.metadata, "CameraOwnerName"),
        (Category.metadata, "maker note"),
        (Category.hidden, "maker note"),
        (Category.metadata, "XMP"),
        (Category.metadata, "IPTC"),
        (Category.metadata, "CANARY-COMMENT"),
        (Category.metadata, "ICC profile", "sRGB"),
    ],
    "c02_thumbnail.jpg": [(Category.hidden, "EXIF thumbnail", "IFD1")],
    "c03_mpf.jpg": [
        (Category.hidden, "MPF"),
        (Category.hidden, "after the end", "JPEG"),
        (Category.hidden, "gain map"),
    ],
    "c04_motion_google.jpg": [(Category.hidden, "motion photo"), (Category.hidden, "after the end", "MP4")],
    "c04_motion_samsung.jpg": [(Category.hidden, "after the end", "Samsung")],
    "c05_loaded.png": [
        (Category.metadata, "tEXt", "CANARY-PNGTEXT"),
        (Category.metadata, "zTXt", "52.5200"),
        (Category.metadata, "iTXt", "CANARY-PNGTEXT"),
        (Category.metadata, "tIME", "2024-06-05"),
        (Category.metadata, "eXIf", "GPS"),
        (Category.metadata, "iCCP"),
        (Category.hidden, "after IEND", "aCropalypse"),
    ],
    "c08_pages.tif": [
        (Category.hidden, "Photoshop thumbnail"),
        (Category.metadata, "IPTC"),
        (Category.metadata, "XMP"),
        (Category.metadata, "CANARY-TIFF"),
    ],
    "c09_photoshop.jpg": [
        (Category.hidden, "XMP thumbnail"),
        (Category.metadata, "edit history", "pasted-in", "original document"),
    ],
    "c10_c2pa.jpg": [
        (Category.metadata, "C2PA"),
        (Category.hidden, "C2PA thumbnail"),
        (Category.hidden, "embedded JPEG"),
    ],
    "c00_sample.jpg": [
        (Category.hidden, "EXIF thumbnail"),
        (Category.hidden, "after the end"),
        (Category.metadata, "GPS"),
    ],
    "c07_iphone.heic": [
        (Category.hidden, "thumbnail"),
        (Category.metadata, "GPS"),
        (Category.metadata, "XMP"),
        (Category.metadata, "ICC profile"),
    ],
}

VIDEO_EXPECTED = {
    "iphone.mov": [
        (Category.metadata, "location", "ISO6709", "+52.5200"),
        (Category.metadata, "quicktime.make", "Apple"),
        (Category.metadata, "quicktime.model", "iPhone"),
        (Category.metadata, "software"),
        (Category.metadata, "creationdate"),
        (Category.metadata, "encoder", "CanaryCam"),
    ],
    "android.mp4": [
        (Category.metadata, "location", "+52.5200"),
        (Category.metadata, "creation_time"),
        (Category.metadata, "title"),
    ],
    "phone.3gp": [(Category.metadata, "location", "+52.5200")],
    "telemetry.mp4": [
        (Category.stream, "data stream"),
        (Category.hidden, "extra video stream", "mjpeg"),
        (Category.stream, "audio stream"),
    ],
    "subtitles.mkv": [
        (Category.stream, "subtitle stream"),
        (Category.hidden, "cover picture", "cover.jpg"),
        (Category.metadata, "chapter", "gate 3"),
    ],
    "cover.mp4": [(Category.hidden, "cover picture", "attached_pic")],
}


class TestDirtyFiles:
    @pytest.mark.parametrize("name", sorted(PHOTO_EXPECTED))
    def test_photo_findings(self, dirty: Path, name: str) -> None:
        """Each planted carrier in a photo is reported under the right category, naming what leaks."""
        result = _audit(dirty / name)
        assert result.verdict is Verdict.findings, result
        for category, *words in PHOTO_EXPECTED[name]:
            assert _has(result, category, *words), (category, words, [f.to_dict() for f in result.findings])

    @pytest.mark.parametrize("name", sorted(VIDEO_EXPECTED))
    def test_video_findings(self, dirty: Path, name: str) -> None:
        """Container and stream tags, telemetry, subtitle and attachment streams, thumbnails, chapters: all reported."""
        result = _audit(dirty / name)
        assert result.verdict is Verdict.findings, result
        for category, *words in VIDEO_EXPECTED[name]:
            assert _has(result, category, *words), (category, words, [f.to_dict() for f in result.findings])

    def test_clean_files_pass(self, tmp_path: Path, astro: np.ndarray) -> None:
        """A plain JPEG, PNG and WebP written by Pillow without metadata are clean (no false alarms)."""
        for fmt, ext in (("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("TIFF", "tif")):
            Image.fromarray(astro).save(tmp_path / f"a.{ext}", fmt)
            result = _audit(tmp_path / f"a.{ext}")
            assert result.verdict is Verdict.clean, result

    def test_truncated_files_are_errors(self, tmp_path: Path, astro: np.ndarray) -> None:
        """A file whose structure ends early cannot be vouched for: it is an error, not clean."""
        data = plain_jpeg(astro)
        (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
        assert _audit(tmp_path / "t.jpg").verdict is Verdict.error

    def test_second_soi_and_zip_polyglot(self, tmp_path: Path, astro: np.ndarray) -> None:
        """A ZIP appended to a JPEG (a polyglot) and a second SOI are reported as hidden data."""
        (tmp_path / "p.jpg").write_bytes(plain_jpeg(astro) + b"PK\x03\x04" + b"\0" * 26 + b"secret.txt")
        result = _audit(tmp_path / "p.jpg")
        assert _has(result, Category.hidden, "after the end", "ZIP")


class TestFaces:
    def test_visible_face_reported_with_position(self, tmp_path: Path, astro: np.ndarray, engine) -> None:
        """An unmasked face is reported with a box on the astronaut's face and its score."""
        (tmp_path / "a.jpg").write_bytes(plain_jpeg(astro))
        result = _audit(tmp_path / "a.jpg", FaceCheck(engine.detector, 0.5))
        faces = [f for f in result.findings if f.category is Category.face]
        assert len(faces) == 1 and faces[0].box is not None and faces[0].score is not None
        x1, y1, x2, y2 = faces[0].box
        assert abs((x1 + x2) / 2 - 225) < 25 and abs((y1 + y2) / 2 - 117) < 30
        assert faces[0].score > 0.5

    def test_face_under_transparency_and_rotation(self, tmp_path: Path, astro: np.ndarray, engine) -> None:
        """A face hidden only by alpha = 0, and one stored sideways with EXIF orientation 6, are both found upright."""
        check = FaceCheck(engine.detector, 0.5)
        (tmp_path / "alpha.png").write_bytes(photo_cases(astro, ASTRO_FACE)["c06_alpha.png"])
        (tmp_path / "rot.jpg").write_bytes(jpeg_with_metadata(np.rot90(astro, 1).copy(), orientation=6))
        for name in ("alpha.png", "rot.jpg"):
            faces = [f for f in _audit(tmp_path / name, check).findings if f.category is Category.face]
            assert faces, name
            assert faces[0].box is not None and abs((faces[0].box[0] + faces[0].box[2]) / 2 - 225) < 25, name

    def test_video_face_frame_ranges(self, tmp_path: Path, astro: np.ndarray, plain_engine) -> None:
        """A face visible in frames 4-7 of 12 is reported as that frame range; --every 2 checks half the frames."""
        import av

        hidden = astro.copy()
        hidden[20:220, 140:310] = 90
        path = tmp_path / "v.mp4"
        with av.open(str(path), "w") as out:
            stream = out.add_stream("libx264", rate=10)
            stream.width, stream.height, stream.pix_fmt = 512, 512, "yuv420p"
            for i in range(12):
                frame = av.VideoFrame.from_ndarray(astro if 4 <= i <= 7 else hidden, format="rgb24")
                frame.pts = i
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
        result = _audit(path, FaceCheck(plain_engine.detector, 0.5))
        faces = [f for f in result.findings if f.category is Category.face]
        assert [f.where.split(" (")[0] for f in faces] == ["frames 4-7"], [f.to_dict() for f in faces]
        assert result.frames_checked == 12
        sparse = _audit(path, FaceCheck(plain_engine.detector, 0.5, every=2))
        assert sparse.frames_checked == 6
        assert [f.where.split(" (")[0] for f in sparse.findings if f.category is Category.face] == ["frames 4-6"]


class TestMaskOutlines:
    """A detector can take the black fill over a head for a face; a face beside black fill is still a face."""

    def test_outline_of_blur_fill_is_not_reported(self, tmp_path: Path, astro: np.ndarray, engine, runner) -> None:
        """blur's fill over the astronaut's face: at --face-threshold 0.3 the detector fires on the filled
        ellipse (a box mostly on black fill); the audit repaints the fill, looks again and reports nothing.
        The portrait is enlarged to 1024 px, where the 1 MP plan runs: at 512 px the small-picture plan
        no longer fires on the fill."""
        big = cv2.resize(astro, (1024, 1024), interpolation=cv2.INTER_CUBIC)
        out = anonymize_frame(big, engine.detector.detect(big), engine).frame
        plain = engine.detector.detect(out)
        plain = plain[plain.score >= 0.3]
        assert len(plain) and all(suspect(out, b) for b in plain.xyxy), "the outline case no longer arises here"
        assert len(FaceCheck(engine.detector, 0.3).faces(out)) == 0
        Image.fromarray(out).save(tmp_path / "masked.png")
        audit = runner.invoke(app, ["audit", "--face-threshold", "0.3", str(tmp_path / "masked.png")])
        assert audit.exit_code == 0, audit.output

    @pytest.mark.parametrize("half", ["eyes showing", "mouth showing"])
    def test_half_filled_face_is_still_reported(self, astro: np.ndarray, engine, half: str) -> None:
        """Half the astronaut's face filled black: the half still showing is reported as a face."""
        x1, y1, x2, y2 = ASTRO_FACE
        mid = (y1 + y2) // 2
        part = astro.copy()
        if half == "eyes showing":
            part[mid : y2 + 10, x1 - 10 : x2 + 10] = 0
        else:
            part[y1 - 14 : mid, x1 - 10 : x2 + 10] = 0
        check = FaceCheck(engine.detector, 0.5)
        plain = engine.detector.detect(part)
        plain = plain[plain.score >= 0.5]
        assert len(plain) == 1 and suspect(part, plain.xyxy[0]), "the outline check must run on this case"
        assert len(check.faces(part)) == 1

    def test_missed_face_among_masked_faces_is_still_reported(self, engine) -> None:
        """A crowd of LFW faces masked by blur, then one face's pixels put back (a face a tool missed among
        masked neighbours, with the black fill around it): each such face is reported."""
        from skimage import data

        lfw = data.lfw_subset()  # type: ignore[no-untyped-call]
        size, canvas, boxes = 64, np.full((330, 560, 3), 150, np.uint8), []
        for k, (y, x) in enumerate((y, x) for y in range(10, 260, 96) for x in range(10, 500, 80)):
            face = cv2.resize((lfw[k] * 255).astype(np.uint8), (size, size), interpolation=cv2.INTER_CUBIC)
            canvas[y : y + size, x : x + size] = face[..., None]
            boxes.append((x, y, x + size, y + size))
        masked = anonymize_frame(canvas, engine.detector.detect(canvas), engine).frame
        check = FaceCheck(engine.detector, 0.5)
        tried = 0
        for x0, y0, x1, y1 in boxes[7:14]:  # the middle row: masks on every side
            leak = masked.copy()
            leak[y0:y1, x0:x1] = canvas[y0:y1, x0:x1]
            plain = engine.detector.detect(leak)
            box = np.array([[x0, y0, x1, y1]], np.float32)
            here = plain[(plain.score >= 0.5) & (iou_matrix(box, plain.xyxy)[0] >= 0.3)]
            if not len(here) or not suspect(leak, here.xyxy[0]):
                continue
            tried += 1
            found = check.faces(leak)
            assert len(found) and (iou_matrix(box, found.xyxy)[0] >= 0.3).any()
        assert tried >= 3, "too few leaked faces beside black fill to test"


class TestCommand:
    def test_text_json_and_exit_codes(self, tmp_path: Path, astro: np.ndarray, runner: CliRunner) -> None:
        """Exit 0 when clean, 1 with findings, 2 for a missing path; --json is valid and lists every file."""
        Image.fromarray(astro).save(tmp_path / "clean.png")
        (tmp_path / "dirty.jpg").write_bytes(jpeg_with_metadata(astro))
        (tmp_path / "notes.txt").write_text("not a photo")
        clean = runner.invoke(app, ["audit", "--no-faces", str(tmp_path / "clean.png"), str(tmp_path / "notes.txt")])
        assert clean.exit_code == 0, clean.output
        assert "CLEAN" in clean.output and "SKIP" in clean.output
        found = runner.invoke(app, ["audit", "--no-faces", str(tmp_path)])
        assert found.exit_code == 1
        assert "EXIF GPS position" in found.output and "EXIF thumbnail" in found.output
        as_json = runner.invoke(app, ["audit", "--no-faces", "--json", str(tmp_path)])
        data = json.loads(as_json.stdout)
        verdicts = {Path(f["path"]).name: f["verdict"] for f in data["files"]}
        assert verdicts == {"clean.png": "clean", "dirty.jpg": "findings", "notes.txt": "unchecked"}
        assert runner.invoke(app, ["audit", str(tmp_path / "missing.jpg")]).exit_code == 2

    def test_blur_working_files_flagged(self, tmp_path: Path, runner: CliRunner) -> None:
        """Sidecars, journals, batch and video records, reports, review pages and temporary outputs are flagged
        wherever they are found (say, a state folder copied into what is published)."""
        (tmp_path / "a.jpg.blur.json").write_text('{"blur_sidecar": 1, "add": [], "keep": []}')
        (tmp_path / ".blur-journal.jsonl").write_text("{}\n")
        (tmp_path / "state.json").write_text('{"blur_batch": 1, "files": []}')
        (tmp_path / "0123abcd.blur-tracks.npz").write_bytes(b"PK\x03\x04")
        (tmp_path / "report.json").write_text('{"blur_version": "0", "files": []}')
        (tmp_path / "review.html").write_text('<meta name="generator" content="blur review page">')
        (tmp_path / ".a.0123abcd.blur-partial.jpg").write_bytes(b"\xff\xd8")
        result = runner.invoke(app, ["audit", "--no-faces", "--json", str(tmp_path)])
        assert result.exit_code == 1
        flagged = {Path(f["path"]).name for f in json.loads(result.stdout)["files"] if f["findings"]}
        assert flagged == {
            "a.jpg.blur.json",
            ".blur-journal.jsonl",
            "state.json",
            "0123abcd.blur-tracks.npz",
            "report.json",
            "review.html",
            ".a.0123abcd.blur-partial.jpg",
        }

    def test_hostile_names_and_links(self, tmp_path: Path, astro: np.ndarray, runner: CliRunner) -> None:
        """Undecodable and control-character names keep one line per item and valid JSON; links are not followed."""
        folder = os.fsencode(tmp_path)
        for name in (b"bad\xff\xfe.jpg", b"new\nline\x1b[31m.jpg"):
            with open(os.path.join(folder, name), "wb") as fh:
                fh.write(jpeg_with_metadata(astro))
        secret = tmp_path.parent / f"{tmp_path.name}-outside.jpg"
        secret.write_bytes(jpeg_with_metadata(astro))
        (tmp_path / "link.jpg").symlink_to(secret)
        text = runner.invoke(app, ["audit", "--no-faces", str(tmp_path)])
        assert "\x1b" not in text.output and "bad\\xff\\xfe.jpg" in text.output and "new\\x0aline" in text.output
        data = json.loads(runner.invoke(app, ["audit", "--no-faces", "--json", str(tmp_path)]).stdout)
        link = next(f for f in data["files"] if f["path"].endswith("link.jpg"))
        assert link["verdict"] == "unchecked" and "symbolic link" in link["reason"]


@pytest.mark.slow
def test_blur_outputs_pass_audit(dirty: Path, tmp_path: Path, runner: CliRunner, astro: np.ndarray) -> None:
    """`blur anonymize` on every dirty case, then `blur audit` on the outputs: exit 0, nothing found, no canaries."""
    src = tmp_path / "in"
    shutil.copytree(dirty, src)
    (src / "c07_single.heic").write_bytes(case7_heic(astro, single=True))
    out = tmp_path / "out"
    made = runner.invoke(app, ["anonymize", str(src), "-o", str(out), "-j", "1", "-q"])
    assert made.exit_code == 0, made.output
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "nothing of blur's own in the output folder"
    audit = runner.invoke(app, ["audit", "--every", "2", "--json", str(out)])
    data = json.loads(audit.stdout)
    problems = {f["path"]: f["findings"] or f["reason"] for f in data["files"] if f["verdict"] != "clean"}
    assert audit.exit_code == 0 and not problems, problems
    assert len(data["files"]) == len(list(src.iterdir()))
    for path in out.iterdir():
        raw = path.read_bytes()
        assert not [c for c in CANARIES if c in raw], path


def test_multi_image_heic_every_image_anonymized(dirty: Path, tmp_path: Path, runner: CliRunner, engine) -> None:
    """A HEIC with a second top-level image: both images come out anonymized, the thumbnail is dropped and
    the report says so, and the audit (faces on every image) finds nothing."""
    report = tmp_path / "r.json"
    result = runner.invoke(
        app,
        [
            "anonymize",
            str(dirty / "c07_iphone.heic"),
            "-o",
            str(tmp_path / "o"),
            "-j",
            "1",
            "-q",
            "--report",
            str(report),
        ],
    )
    assert result.exit_code == 0, result.output
    entry = json.loads(report.read_text())["files"][0]
    assert entry["frames"] == 2 and any("thumbnail" in n for n in entry["notes"]), entry
    audit = _audit(tmp_path / "o" / "c07_iphone.heic", FaceCheck(engine.detector, 0.5))
    assert audit.verdict is Verdict.clean, audit
