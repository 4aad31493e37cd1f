"""Unit tests of the pure parts: detections, masks, filters, sniffing, discovery."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blur.anonymize.filters import anonymize, neutral_fill
from blur.anonymize.mask import build_mask, head_boxes
from blur.batch.discover import discover
from blur.config import MaskConfig, MaskMode, MaskShape
from blur.detect.multiscale import plan_passes, tile_grid
from blur.jobs import Plan
from blur.media.kinds import Kind, sniff_bytes
from blur.types import Detections, iou_matrix, nms

boxes_st = st.lists(
    st.tuples(st.floats(-50, 300), st.floats(-50, 200), st.floats(1, 120), st.floats(1, 120)), min_size=0, max_size=6
)


def _dets(rows: list[tuple[float, float, float, float]]) -> Detections:
    xyxy = [(x, y, x + w, y + h) for x, y, w, h in rows]
    return Detections.from_arrays(xyxy, [0.9] * len(rows))


class TestDetections:
    def test_shape_checked(self):
        """A wrongly shaped box array is rejected with the shapes named."""
        with pytest.raises(ValueError, match=r"\(N, 4\)"):
            Detections(np.zeros((2, 3), np.float32), np.zeros(2, np.float32))
        with pytest.raises(ValueError, match="score"):
            Detections(np.zeros((2, 4), np.float32), np.zeros(3, np.float32))

    def test_filter_and_nms(self):
        """Boolean indexing filters; NMS keeps the best of overlapping boxes."""
        d = Detections.from_arrays([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], [0.5, 0.9, 0.7])
        assert len(d[d.score > 0.6]) == 2
        kept = nms(d, 0.3)
        assert sorted(kept.score.tolist()) == pytest.approx([0.7, 0.9])
        assert iou_matrix(d.xyxy[:1], d.xyxy[:1])[0, 0] == pytest.approx(1.0)

    @given(boxes_st)
    def test_clipped_inside_frame(self, rows):
        """Clipped boxes always lie inside the frame."""
        d = _dets(rows).clipped(320, 240)
        assert (d.xyxy[:, [0, 2]] >= 0).all() and (d.xyxy[:, [0, 2]] <= 320).all()
        assert (d.xyxy[:, [1, 3]] >= 0).all() and (d.xyxy[:, [1, 3]] <= 240).all()


class TestMask:
    @given(boxes_st, st.sampled_from(list(MaskShape)))
    @settings(max_examples=50, deadline=None)
    def test_mask_covers_every_face_oval(self, rows, shape):
        """The face oval inscribed in every detector box is masked wherever it lies inside the frame."""
        mask = build_mask(_dets(rows), 240, 320, MaskConfig(shape=shape))
        yy, xx = np.mgrid[:240, :320] + 0.5
        for x1, y1, x2, y2 in _dets(rows).xyxy:
            cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
            oval = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 0.9
            assert mask[oval].all()

    def test_head_box_grows_and_lifts(self):
        """The head region is 1.5× the box and moved towards the forehead."""
        ((x1, y1, x2, y2),) = head_boxes(_dets([(100, 100, 40, 50)]), 1.5)
        assert x2 - x1 == pytest.approx(60)
        assert y2 - y1 == pytest.approx(75)
        assert (y1 + y2) / 2 < 125

    def test_tiny_face_gets_minimum_mask(self):
        """A 3 px detection still gets a mask big enough to hide the face around it."""
        mask = build_mask(_dets([(50, 50, 3, 3)]), 100, 100, MaskConfig())
        assert mask.sum() >= 100


class TestFilters:
    @given(st.sampled_from(list(MaskMode)), st.integers(0, 2**32 - 1))
    @settings(max_examples=20, deadline=None)
    def test_outside_mask_identical_and_shape_kept(self, mode, seed):
        """Filters keep shape and dtype and never touch a pixel outside the mask."""
        rng = np.random.default_rng(seed)
        frame = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
        mask = build_mask(_dets([(40, 30, 50, 50)]), 120, 160, MaskConfig())
        out = anonymize(frame, mask, MaskConfig(mode=mode))
        assert out.shape == frame.shape and out.dtype == np.uint8
        assert np.array_equal(out[~mask], frame[~mask])
        assert not np.shares_memory(out, frame)

    @pytest.mark.parametrize("mode", list(MaskMode))
    def test_checkerboard_loses_its_structure(self, mode):
        """A high-contrast pattern inside the mask is gone: its variance collapses."""
        frame = np.full((200, 200, 3), 128, np.uint8)
        yy, xx = np.mgrid[:200, :200]
        board = (((yy // 4) + (xx // 4)) % 2 * 255).astype(np.uint8)
        frame[50:150, 50:150] = board[50:150, 50:150, None]
        mask = np.zeros((200, 200), bool)
        mask[40:160, 40:160] = True
        out = anonymize(frame, mask, MaskConfig(mode=mode))
        assert out[60:140, 60:140].astype(float).std() < 0.1 * frame[60:140, 60:140].astype(float).std() + 1

    @pytest.mark.parametrize("mode", list(MaskMode))
    def test_output_independent_of_face_pixels(self, astro, mode):
        """Two pictures that differ only under the mask give identical outputs: nothing to deblur."""
        from blur.config import MaskConfig as Cfg

        dets = Detections.from_arrays([[175, 54, 275, 180]], [0.9])
        mask = build_mask(dets, 512, 512, Cfg())
        other = astro.copy()
        other[mask] = np.random.default_rng(2).integers(0, 255, (int(mask.sum()), 3), dtype=np.uint8)
        assert np.array_equal(anonymize(astro, mask, Cfg(mode=mode)), anonymize(other, mask, Cfg(mode=mode)))

    def test_neutral_fill_ignores_masked_pixels(self):
        """Whatever is under the mask, the neutral fill is the same."""
        rng = np.random.default_rng(1)
        a = rng.integers(0, 255, (100, 100, 3), dtype=np.uint8)
        b = a.copy()
        mask = np.zeros((100, 100), bool)
        mask[30:70, 30:70] = True
        b[mask] = 255 - b[mask]
        assert np.array_equal(neutral_fill(a, mask), neutral_fill(b, mask))


class TestSniff:
    @pytest.mark.parametrize(
        ("head", "kind", "fmt"),
        [
            (b"\xff\xd8\xff\xe0" + b"\0" * 28, Kind.image, "JPEG"),
            (b"\x89PNG\r\n\x1a\n" + b"\0" * 24, Kind.image, "PNG"),
            (b"RIFF\0\0\0\0WEBPVP8 " + b"\0" * 16, Kind.image, "WEBP"),
            (b"\0\0\0\x18ftypheic" + b"\0" * 20, Kind.image, "HEIF"),
            (b"\0\0\0\x18ftypisom" + b"\0" * 20, Kind.video, "mp4"),
            (b"\0\0\0\x14ftypqt  " + b"\0" * 20, Kind.video, "mov"),
            (b"\x1a\x45\xdf\xa3" + b"\0" * 8 + b"webm" + b"\0" * 16, Kind.video, "webm"),
            (b"PK\x03\x04" + b"\0" * 28, Kind.unsupported, ""),
        ],
    )
    def test_content_decides(self, head, kind, fmt):
        """Magic bytes name the format."""
        sniffed = sniff_bytes(head)
        assert (sniffed.kind, sniffed.format) == (kind, fmt)


class TestDiscover:
    def test_symlinks_fifos_and_collisions(self, tmp_path):
        """Links are skipped, not followed; FIFOs are skipped; two inputs with one output name both get named."""
        root = tmp_path / "in"
        (root / "a").mkdir(parents=True)
        (root / "b").mkdir()
        jpeg = b"\xff\xd8\xff\xe0" + b"\0" * 60
        (root / "a" / "x.jpg").write_bytes(jpeg)
        (root / "b" / "x.jpg").write_bytes(jpeg)
        outside = tmp_path / "secret"
        outside.mkdir()
        (outside / "s.jpg").write_bytes(jpeg)
        (root / "link").symlink_to(outside, target_is_directory=True)
        (root / "loop").symlink_to(root, target_is_directory=True)
        os.mkfifo(root / "pipe.jpg")
        jobs = discover([root], tmp_path / "out")
        by = {(str(j.source.relative_to(tmp_path))): j for j in jobs}
        assert by["in/link"].plan is Plan.skip and by["in/loop"].plan is Plan.skip
        assert by["in/pipe.jpg"].plan is Plan.skip
        assert by["in/a/x.jpg"].plan is Plan.process and by["in/b/x.jpg"].plan is Plan.process
        assert not any("secret" in str(j.source) for j in jobs)
        a, b = discover([root / "a", root / "b"], tmp_path / "out")
        assert a.plan is Plan.process
        assert b.plan is Plan.fail and "in/a/x.jpg" in b.reason

    def test_same_file_given_twice_processed_once(self, tmp_path):
        """A file reached through two inputs is one job."""
        (tmp_path / "in").mkdir()
        (tmp_path / "in" / "x.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 60)
        jobs = discover([tmp_path / "in", tmp_path / "in" / "x.jpg"], tmp_path / "out")
        assert [j.plan for j in jobs] == [Plan.process]

    def test_hard_link_output_is_an_input(self, tmp_path):
        """An output path that is a hard link to an input is refused."""
        src = tmp_path / "in"
        src.mkdir()
        (src / "a.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 60)
        out = tmp_path / "out"
        out.mkdir()
        os.link(src / "a.jpg", out / "a.jpg")
        (job,) = discover([src / "a.jpg"], out)
        assert job.plan is Plan.fail and "input" in job.reason


class TestPlan:
    def test_tiles_cover_the_image(self):
        """Tiles cover every pixel, with overlap."""
        tiles = tile_grid(2000, 1300)
        cover = np.zeros((1300, 2000), bool)
        for x0, y0, x1, y1 in tiles:
            cover[y0:y1, x0:x1] = True
        assert cover.all()

    def test_big_photos_are_not_upscaled_whole(self):
        """Very large photos get passes whose pixel count stays proportional to the photo's."""
        work = sum(
            (len(p.tiles) * 1024 * 1024 if p.tiles else (8000 * p.scale) * (6000 * p.scale))
            for p in plan_passes(8000, 6000)
        )
        assert work < 3 * 8000 * 6000

    @pytest.mark.parametrize("size", [(6144, 4096), (8256, 5504), (5504, 8256)])
    def test_camera_files_have_no_scale_gap(self, size: tuple[int, int]) -> None:
        """24-45 MP files are searched at scales about 4x apart at most (a tiled middle pass bridges the
        whole-image and full-size passes), and no untiled pass is larger than 2048 px a side."""
        w, h = size
        passes = plan_passes(w, h)
        scales = sorted({p.scale for p in passes})
        assert max(b / a for a, b in itertools.pairwise(scales)) < 4.1
        for p in passes:
            if not p.tiles:
                assert max(w, h) * p.scale <= 2048
            else:
                assert all(x1 - x0 <= 1024 and y1 - y0 <= 1024 for x0, y0, x1, y1 in p.tiles)


def test_cli_version_and_help():
    """`blur --version` and `--help` answer without loading models."""
    from typer.testing import CliRunner

    from blur.cli import app

    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.startswith("blur ")
    r = CliRunner().invoke(app, ["anonymize", "--help"])
    assert r.exit_code == 0 and "--output" in r.output
    assert Path  # keep import used


def test_nms_matches_pairwise_greedy_and_stays_small() -> None:
    """NMS keeps exactly what the textbook greedy pass over the full IoU matrix keeps, and a dense
    crowd's 30,000 candidates need megabytes, not the gigabytes an N x N matrix takes."""
    import tracemalloc

    from blur.types import Detections, iou_matrix, nms

    rng = np.random.default_rng(3)

    def boxes(n: int, span: float) -> Detections:
        xy = rng.uniform(0, span, (n, 2)).astype(np.float32)
        wh = rng.uniform(2, 60, (n, 2)).astype(np.float32)
        return Detections.from_arrays(np.concatenate([xy, xy + wh], 1), rng.uniform(0, 1, n).astype(np.float32))

    for _ in range(50):
        dets = boxes(int(rng.integers(0, 200)), 400)
        order = np.argsort(-dets.score, kind="stable")
        ious = iou_matrix(dets.xyxy[order], dets.xyxy[order])
        gone = np.zeros(len(order), bool)
        expected = []
        for i in range(len(order)):
            if not gone[i]:
                expected.append(order[i])
                gone |= ious[i] > 0.3
        assert np.array_equal(nms(dets, 0.3).xyxy, dets.xyxy[np.array(expected, dtype=np.intp)])
    crowd = boxes(30_000, 200)  # heavily overlapping: few survivors, as in a real dense crowd
    tracemalloc.start()
    kept = nms(crowd, 0.3)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert 0 < len(kept) < len(crowd) and peak < 50_000_000, peak
