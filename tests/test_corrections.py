"""Manual corrections: sidecar regions always masked, keep regions left visible, bad sidecars fail closed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from blur.cli import app
from blur.corrections import CorrectionsError, load_corrections, split_kept
from blur.types import Detections
from tests.conftest import ASTRO_FACE, tree_hashes

FACE_KEEP = [140, 20, 310, 220]
"""A keep region drawn generously around the astronaut's head."""
TATTOO = [20, 380, 120, 480]
"""A region with no face (the flag and suit): an `add` region here must be filled."""


def _sidecar(path: Path, **entry: object) -> None:
    path.write_text(json.dumps({"blur_sidecar": 1, **entry}))


def _run(runner: CliRunner, src: Path, out: Path, *extra: str) -> tuple[int, str]:
    result = runner.invoke(app, ["anonymize", str(src), "-o", str(out), "-j", "1", "-q", *extra])
    return result.exit_code, result.output


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


class TestSidecarFiles:
    def test_file_and_folder_sidecars_merge(self, tmp_path: Path) -> None:
        """Regions from PHOTO.blur.json and the folder's .blur.json entry for that photo both apply."""
        media = tmp_path / "a.jpg"
        _sidecar(tmp_path / "a.jpg.blur.json", add=[{"box": [0, 0, 10, 10], "label": "badge"}], size=[512, 512])
        _sidecar(tmp_path / ".blur.json", files={"a.jpg": {"keep": [{"box": FACE_KEEP}]}, "b.jpg": {"add": []}})
        corr = load_corrections(media)
        add, keep = corr.at(None)
        assert add.tolist() == [[0, 0, 10, 10]] and keep.tolist() == [FACE_KEEP]
        assert corr.size == (512, 512) and len(corr.sources) == 2
        assert load_corrections(tmp_path / "c.jpg").empty

    def test_time_ranges(self, tmp_path: Path) -> None:
        """For video, a region applies only between its start and end seconds."""
        _sidecar(
            tmp_path / "v.mp4.blur.json", add=[{"box": [1, 1, 5, 5], "start": 2.0, "end": 4.0}, {"box": [6, 6, 9, 9]}]
        )
        corr = load_corrections(tmp_path / "v.mp4")
        assert len(corr.at(1.0)[0]) == 1 and len(corr.at(3.0)[0]) == 2 and len(corr.at(4.5)[0]) == 1
        assert len(corr.at(None)[0]) == 2

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            ("{not json", "not valid JSON"),
            ('{"add": []}', "not a blur sidecar"),
            ('{"blur_sidecar": 1, "ad": []}', "unknown key"),
            ('{"blur_sidecar": 1, "add": [{"box": [10, 10, 5, 50]}]}', "x2 > x1"),
            ('{"blur_sidecar": 1, "add": [{"box": [1, 2, 3]}]}', "box"),
            ('{"blur_sidecar": 1, "keep": [{"box": [1, 2, 3, "4"]}]}', "finite number"),
            ('{"blur_sidecar": 1, "add": [{"box": [1, 2, 3, 4], "start": 5, "end": 1}]}', "before start"),
            ('{"blur_sidecar": 1, "keep": {"box": [1, 2, 3, 4]}}', "must be a list"),
        ],
    )
    def test_invalid_sidecars_raise(self, tmp_path: Path, content: str, message: str) -> None:
        """Every malformed sidecar raises, naming the file and the problem: a correction is never ignored."""
        (tmp_path / "a.jpg.blur.json").write_text(content)
        with pytest.raises(CorrectionsError, match=message) as info:
            load_corrections(tmp_path / "a.jpg")
        assert "a.jpg.blur.json" in str(info.value)

    def test_linked_sidecar_refused(self, tmp_path: Path) -> None:
        """A sidecar that is a symbolic link is not followed; the photo fails instead."""
        target = tmp_path / "elsewhere.json"
        _sidecar(target, add=[])
        (tmp_path / "a.jpg.blur.json").symlink_to(target)
        with pytest.raises(CorrectionsError, match="symbolic link"):
            load_corrections(tmp_path / "a.jpg")

    def test_keep_split_by_position(self) -> None:
        """A detection mostly inside a keep region is kept; one only touching it is still masked."""
        dets = Detections.from_arrays([[180, 60, 270, 180], [300, 60, 390, 180]], [0.9, 0.8])
        masked, kept = split_kept(dets, np.asarray([FACE_KEEP], np.float32))
        assert kept.xyxy.tolist() == [[180, 60, 270, 180]]
        assert masked.xyxy.tolist() == [[300, 60, 390, 180]]


class TestAnonymizeWithCorrections:
    def test_add_keep_and_report(self, tmp_path: Path, runner: CliRunner, astro: np.ndarray) -> None:
        """An add region is filled; a kept face stays pixel-identical, escapes the second pass, and is warned about."""
        src, out = tmp_path / "in", tmp_path / "out"
        src.mkdir()
        Image.fromarray(astro).save(src / "a.png")
        _sidecar(
            src / "a.png.blur.json",
            add=[{"box": TATTOO, "label": "tattoo"}],
            keep=[{"box": FACE_KEEP, "label": "speaker"}],
        )
        code, output = _run(runner, src, out, "--report", str(tmp_path / "r.json"))
        assert code == 0, output
        result = _pixels(out / "a.png")
        x1, y1, x2, y2 = TATTOO
        assert (result[y1:y2, x1:x2] == 0).all(), "the add region is filled"
        fx1, fy1, fx2, fy2 = ASTRO_FACE
        assert (result[fy1:fy2, fx1:fx2] == astro[fy1:fy2, fx1:fx2]).all(), "the kept face is untouched"
        assert "left visible by keep regions" in output
        entry = json.loads((tmp_path / "r.json").read_text())["files"][0]
        assert entry["flagged"] == 0 and entry["faces"] == 0
        assert any("WARNING" in n and "VISIBLE" in n for n in entry["notes"])
        assert [d["kept"] for d in entry["detections"] if not d["added"]] == [True]
        assert sorted(p.name for p in out.iterdir()) == ["a.png"], "sidecars are never copied"

    def test_keep_never_unmasks_add(self, tmp_path: Path, runner: CliRunner, astro: np.ndarray) -> None:
        """Where an add region and a keep region overlap, the add region is still filled."""
        Image.fromarray(astro).save(tmp_path / "a.png")
        _sidecar(tmp_path / "a.png.blur.json", add=[{"box": [190, 70, 260, 160]}], keep=[{"box": FACE_KEEP}])
        code, output = _run(runner, tmp_path / "a.png", tmp_path / "out")
        assert code == 0, output
        assert (_pixels(tmp_path / "out" / "a.png")[70:160, 190:260] == 0).all()

    def test_bad_sidecar_fails_only_its_file(self, tmp_path: Path, runner: CliRunner, astro: np.ndarray) -> None:
        """Invalid JSON fails that photo with the reason; the other photo is done; nothing is written for the first."""
        src = tmp_path / "in"
        src.mkdir()
        for name in ("a.png", "b.png"):
            Image.fromarray(astro).save(src / name)
        (src / ".blur.json").write_text('{"blur_sidecar": 1, "files": {"a.png": {"add": [{"box": "nope"}]}}}')
        before = tree_hashes(src)
        code, output = _run(runner, src, tmp_path / "out")
        assert code == 1
        assert "a.png" in output and ".blur.json" in output and "box" in output
        assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == ["b.png"]
        assert "skipped:" not in output and "0 skipped" in output, "sidecars are not listed as skipped noise"
        assert tree_hashes(src) == before

    def test_sidecar_for_another_size_fails(self, tmp_path: Path, runner: CliRunner, astro: np.ndarray) -> None:
        """A sidecar recorded for a 1024x1024 picture is refused on a 512x512 one (its boxes would be misplaced)."""
        Image.fromarray(astro).save(tmp_path / "a.png")
        _sidecar(tmp_path / "a.png.blur.json", size=[1024, 1024], add=[{"box": [0, 0, 5, 5]}])
        code, output = _run(runner, tmp_path / "a.png", tmp_path / "out")
        assert code == 1 and "1024x1024" in output
        assert not (tmp_path / "out" / "a.png").exists()


def _write_video(path: Path, astro: np.ndarray, frames: int, rate: int = 10) -> None:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 512, 512, "yuv420p"
        stream.options = {"crf": "12"}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(astro), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def _video_frames(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as video:
        return [frame.to_ndarray(format="rgb24") for frame in video.decode(video=0)]


def _region_diff(a: np.ndarray, b: np.ndarray, box: list[int] | tuple[int, int, int, int]) -> float:
    x1, y1, x2, y2 = box
    return float(np.abs(a[y1:y2, x1:x2].astype(np.int16) - b[y1:y2, x1:x2]).mean())


class TestVideoCorrections:
    """Sidecars on video: add regions masked only in their time range, keep regions leave a face visible."""

    def test_add_region_applies_in_its_time_range(self, tmp_path: Path, runner: CliRunner, astro: np.ndarray) -> None:
        _write_video(tmp_path / "v.mp4", astro, 20)
        _sidecar(tmp_path / "v.mp4.blur.json", add=[{"box": TATTOO, "label": "tattoo", "start": 0.5, "end": 1.0}])
        code, output = _run(runner, tmp_path / "v.mp4", tmp_path / "out")
        assert code == 0, output
        source, frames = _video_frames(tmp_path / "v.mp4"), _video_frames(tmp_path / "out" / "v.mp4")
        assert len(frames) == len(source) == 20
        for i, (out, src) in enumerate(zip(frames, source, strict=True)):
            inner = [TATTOO[0] + 4, TATTOO[1] + 4, TATTOO[2] - 4, TATTOO[3] - 4]
            changed = _region_diff(out, src, inner) > 30
            assert changed == (5 <= i <= 10), f"frame {i} at {i / 10:.1f} s: region changed={changed}"
            assert _region_diff(out, src, ASTRO_FACE) > 30, f"frame {i}: the face itself is still masked"

    def test_keep_region_leaves_the_face_visible_only_in_its_range(
        self, tmp_path: Path, runner: CliRunner, astro: np.ndarray
    ) -> None:
        _write_video(tmp_path / "v.mp4", astro, 30)
        _sidecar(tmp_path / "v.mp4.blur.json", keep=[{"box": FACE_KEEP, "label": "speaker", "end": 1.5}])
        code, output = _run(runner, tmp_path / "v.mp4", tmp_path / "out")
        assert code == 0, output
        source, frames = _video_frames(tmp_path / "v.mp4"), _video_frames(tmp_path / "out" / "v.mp4")
        visible = [_region_diff(out, src, ASTRO_FACE) < 8 for out, src in zip(frames, source, strict=True)]
        # Kept until 1.5 s; the track that starts after it is padded back by up to 0.5 s (fail-safe side).
        assert all(visible[:10]), visible
        assert not any(visible[16:]), visible

    def test_add_region_outside_the_frame_fails_the_video(
        self, tmp_path: Path, runner: CliRunner, astro: np.ndarray
    ) -> None:
        _write_video(tmp_path / "v.mp4", astro, 3)
        _sidecar(tmp_path / "v.mp4.blur.json", add=[{"box": [600, 600, 700, 700]}])
        code, output = _run(runner, tmp_path / "v.mp4", tmp_path / "out")
        assert code == 1 and "outside" in output
        assert not (tmp_path / "out" / "v.mp4").exists()


class TestWriteSidecar:
    def test_detect_writes_starting_sidecar_once(self, tmp_path: Path, runner: CliRunner, astro: np.ndarray) -> None:
        """`blur detect --write-sidecar` lists faces with empty add/keep lists; an edited one is never overwritten."""
        Image.fromarray(astro).save(tmp_path / "a.png")
        result = runner.invoke(app, ["detect", str(tmp_path), "--write-sidecar", "--no-multiscale"])
        assert result.exit_code == 0, result.output
        data = json.loads((tmp_path / "a.png.blur.json").read_text())
        assert data["blur_sidecar"] == 1 and data["add"] == [] and data["keep"] == [] and data["size"] == [512, 512]
        assert len(data["faces"]) == 1 and data["faces"][0]["score"] > 0.5
        edited = {**data, "keep": [{"box": FACE_KEEP}]}
        (tmp_path / "a.png.blur.json").write_text(json.dumps(edited))
        again = runner.invoke(app, ["detect", str(tmp_path), "--write-sidecar", "--no-multiscale"])
        assert again.exit_code == 0 and "kept the existing sidecar" in again.output
        assert json.loads((tmp_path / "a.png.blur.json").read_text())["keep"] == [{"box": FACE_KEEP}]
        assert load_corrections(tmp_path / "a.png").at(None)[1].tolist() == [FACE_KEEP]


class TestShapesAndKeyframes:
    """Sidecar extensions the review app writes: ellipses, and regions that follow a target by keyframes."""

    def test_ellipse_add_region_fills_the_ellipse_only(
        self, tmp_path: Path, runner: CliRunner, astro: np.ndarray
    ) -> None:
        """An ellipse region is filled inside its inscribed ellipse; its box corners keep the original pixels."""
        Image.fromarray(astro).save(tmp_path / "a.png")
        _sidecar(tmp_path / "a.png.blur.json", add=[{"box": [20, 300, 140, 420], "shape": "ellipse"}])
        code, output = _run(runner, tmp_path / "a.png", tmp_path / "out", "--report", str(tmp_path / "r.json"))
        assert code == 0, output
        result = _pixels(tmp_path / "out" / "a.png")
        assert (result[340:380, 60:100] == 0).all(), "the ellipse's centre is filled"
        assert (result[300:308, 20:28] == astro[300:308, 20:28]).all(), "a box corner outside the ellipse is kept"
        added = [d for d in json.loads((tmp_path / "r.json").read_text())["files"][0]["detections"] if d["added"]]
        assert added == [{**added[0], "shape": "ellipse"}]

    def test_keyframes_follow_the_target_in_video(self, tmp_path: Path, runner: CliRunner, astro: np.ndarray) -> None:
        """A region with keyframes at 0 s and 1 s is interpolated in between and held after the last keyframe."""
        _write_video(tmp_path / "v.mp4", astro, 20)
        frames = [{"time": 0.0, "box": [0, 400, 60, 460]}, {"time": 1.0, "box": [400, 400, 460, 460]}]
        _sidecar(tmp_path / "v.mp4.blur.json", add=[{"keyframes": frames, "start": 0.0, "end": 1.5}])
        code, output = _run(runner, tmp_path / "v.mp4", tmp_path / "out")
        assert code == 0, output
        source, out = _video_frames(tmp_path / "v.mp4"), _video_frames(tmp_path / "out" / "v.mp4")
        for i in (0, 5, 10, 15):
            x = round(400 * min(i / 10, 1.0))
            assert _region_diff(out[i], source[i], [x + 8, 408, x + 52, 452]) > 30, f"frame {i}: box at x={x}"
        assert _region_diff(out[5], source[5], [8, 408, 52, 452]) < 8, "at 0.5 s the region has moved on"
        assert _region_diff(out[18], source[18], [408, 408, 452, 452]) < 8, "after the end it is gone"

    def test_keyframes_refused_on_photos(self, tmp_path: Path, runner: CliRunner, astro: np.ndarray) -> None:
        """A photo whose sidecar region moves by keyframes fails with the reason; nothing is written."""
        Image.fromarray(astro).save(tmp_path / "a.png")
        _sidecar(tmp_path / "a.png.blur.json", add=[{"keyframes": [{"time": 0, "box": [0, 0, 9, 9]}]}])
        code, output = _run(runner, tmp_path / "a.png", tmp_path / "out")
        assert code == 1 and "only apply to videos" in output
        assert not (tmp_path / "out" / "a.png").exists()

    @pytest.mark.parametrize(
        ("region", "message"),
        [
            ({"box": [1, 2, 3, 4], "shape": "star"}, "'box' or 'ellipse'"),
            ({"box": [1, 2, 3, 4], "keyframes": [{"time": 0, "box": [1, 2, 3, 4]}]}, "either 'box' or 'keyframes'"),
            ({"keyframes": []}, "non-empty list"),
            ({"keyframes": [{"time": 1, "box": [1, 2, 3, 4]}, {"time": 1, "box": [1, 2, 3, 4]}]}, "increasing"),
            ({"keyframes": [{"time": 0, "box": [1, 2, 3, 4], "x": 1}]}, "exactly 'time' and 'box'"),
            ({"keyframes": [{"time": 0, "box": [3, 2, 1, 4]}]}, "x2 > x1"),
        ],
    )
    def test_invalid_extensions_raise(self, tmp_path: Path, region: dict[str, object], message: str) -> None:
        """Each malformed extension names the sidecar file and the problem."""
        _sidecar(tmp_path / "v.mp4.blur.json", add=[region])
        with pytest.raises(CorrectionsError, match=message) as info:
            load_corrections(tmp_path / "v.mp4")
        assert "v.mp4.blur.json" in str(info.value) and "add[0]" in str(info.value)

    def test_keep_regions_are_boxes(self, tmp_path: Path) -> None:
        """An ellipse keep region is refused: keep regions are matched by position as boxes."""
        _sidecar(tmp_path / "a.jpg.blur.json", keep=[{"box": FACE_KEEP, "shape": "ellipse"}])
        with pytest.raises(CorrectionsError, match="keep regions are boxes"):
            load_corrections(tmp_path / "a.jpg")

    def test_moving_keep_region(self, tmp_path: Path) -> None:
        """A keep region with keyframes keeps the detections inside it where it is at that time."""
        frames = [{"time": 0.0, "box": [0, 0, 100, 100]}, {"time": 2.0, "box": [200, 0, 300, 100]}]
        _sidecar(tmp_path / "v.mp4.blur.json", keep=[{"keyframes": frames}])
        corr = load_corrections(tmp_path / "v.mp4")
        assert corr.at(1.0)[1].tolist() == [[100, 0, 200, 100]]
        dets = Detections.from_arrays([[110, 10, 190, 90], [10, 10, 90, 90]], [0.9, 0.9])
        masked, kept = split_kept(dets, corr.at(1.0)[1])
        assert kept.xyxy.tolist() == [[110, 10, 190, 90]] and masked.xyxy.tolist() == [[10, 10, 90, 90]]
