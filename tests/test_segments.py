"""One long video split into segments: faces crossing the segment boundaries hidden in every frame, the
joined file with the input's exact timestamps (variable frame rate too), frame count and audio, and a
split that cannot be trusted falling back to a whole-file run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

from blur.batch.pool import BatchOptions
from blur.batch.segmented import run_video
from blur.engine import Engine
from blur.errors import MediaWriteError
from blur.jobs import Job, Plan, Status
from blur.media.kinds import Kind
from blur.types import Detections, Frame
from blur.video.segment_boxes import FrameBoxes, SegmentBoxes, WholeTracks, union_boxes
from blur.video.segments import (
    Segment,
    SegmentError,
    SegmentOptions,
    SegmentPlan,
    _cut,
    plan_segments,
)
from tests.test_video import background, decode, head_sprite, hidden

FPS = 12
"""A low frame rate keeps the tracker's overlaps (1.5 s) short in frames, so the tests stay quick."""
KEYINT = 12
FRAMES = 60
SIZE = (320, 240)
SPLIT = SegmentOptions(split_after=2.0, length=1.0)
"""Segments of one second: boundaries at frames 12, 24, 36 and 48 (keyframes every 12 frames)."""


def _faces(n: int, sprite_w: int) -> list[list[tuple[int, int]]]:
    """Where the sprites are: one slides in from the left edge around the boundary at frame 24 (still
    partly outside the picture when the boundary passes), one slides out to the right around the
    boundary at frame 36."""
    step = 12
    out: list[list[tuple[int, int]]] = []
    for i in range(n):
        here = []
        x_in = -sprite_w + step * (i - 20)  # first pixels in view at frame 21, whole from frame 26
        if x_in > -sprite_w:
            here.append((x_in, 10))
        x_out = SIZE[0] - sprite_w - 40 + step * (i - 30)  # touches the edge at frame 34, gone at frame 40
        if x_out < SIZE[0]:
            here.append((x_out, 140))
        out.append(here)
    return out


def _paste(frame: Frame, sprite: Frame, x: int, y: int) -> None:
    h, w = sprite.shape[:2]
    x0, x1 = max(0, x), min(frame.shape[1], x + w)
    if x1 > x0:
        frame[y : y + h, x0:x1] = sprite[:, x0 - x : x1 - x]


def _sprite(astro: Frame) -> tuple[Frame, tuple[int, int, int, int]]:
    """The astronaut's head at about 60 x 75 px, and the face box inside it."""
    sprite, face = head_sprite(astro)
    small = np.asarray(cv2.resize(sprite, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA), np.uint8)
    x1, y1, x2, y2 = (round(v * 0.6) for v in face)
    return small, (x1, y1, x2, y2)


def write_crossing(
    path: Path, astro: Frame, pts: list[int] | None = None
) -> tuple[list[Frame], list[list[tuple[int, int, int, int]]]]:
    """A 5 s clip (keyframe every second, AAC audio) whose faces cross segment boundaries; the face boxes per frame."""
    sprite, face = _sprite(astro)
    w = sprite.shape[1]
    base = background(*SIZE)
    frames, boxes = [], []
    for places in _faces(FRAMES, w):
        frame = base.copy()
        found = []
        for x, y in places:
            _paste(frame, sprite, x, y)
            fx1, fx2 = max(0, x + face[0]), min(SIZE[0], x + face[2])
            if fx2 - fx1 >= (face[2] - face[0]) // 2:  # at least half the face in view
                found.append((fx1, y + face[1], fx2, y + face[3]))
        frames.append(frame)
        boxes.append(found)
    time_base = Fraction(1, 90000)
    stamps = pts or [round(i * 90000 / FPS) for i in range(FRAMES)]
    with av.open(str(path), "w", format="mp4") as out:
        params = f"keyint={KEYINT}:min-keyint={KEYINT}:scenecut=0"
        video = out.add_stream("libx264", rate=FPS, options={"x264-params": params, "crf": "16"})
        video.width, video.height, video.pix_fmt = *SIZE, "yuv420p"
        video.time_base = video.codec_context.time_base = time_base
        audio = out.add_stream("aac", rate=48000)
        for frame, stamp in zip(frames, stamps, strict=True):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts = stamp
            out.mux(video.encode(picture))
        out.mux(video.encode())
        seconds = (stamps[-1] + 90000 // FPS) / 90000
        t = np.arange(int(48000 * seconds)) / 48000
        tone = av.AudioFrame.from_ndarray(
            (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None], format="flt", layout="mono"
        )
        tone.sample_rate, tone.pts = 48000, 0
        out.mux(audio.encode(tone))
        out.mux(audio.encode())
    return frames, boxes


def psnr(a: Frame, b: Frame) -> float:
    """Peak signal-to-noise ratio of two pictures in dB (inf when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _job(src: Path, out: Path) -> Job:
    return Job(src, out, Plan.process, Kind.video, "mp4")


def _masked(out: Frame, clean: Frame) -> np.ndarray:
    """Pixels the fill darkened: dark in the output where the input was not."""
    return (out.max(axis=2) < 40) & (clean.max(axis=2) > 70)


@pytest.fixture(scope="module")
def crossing(tmp_path_factory: pytest.TempPathFactory, astro: Frame, engine: Engine) -> dict[str, object]:
    """The crossing clip run whole and split (in this process), once for the module."""
    folder = tmp_path_factory.mktemp("crossing")
    src = folder / "crossing.mp4"
    frames, boxes = write_crossing(src, astro)
    whole = run_video(_job(src, folder / "whole.mp4"), engine, BatchOptions(jobs=1), None)
    split = run_video(_job(src, folder / "split.mp4"), engine, BatchOptions(jobs=1, segments=SPLIT), None)
    return {"src": src, "frames": frames, "boxes": boxes, "whole": whole, "split": split, "folder": folder}


class TestSplitVideo:
    def test_split_into_segments_with_a_report(self, crossing: dict[str, object]) -> None:
        """The 5 s clip is split at its keyframes into five segments; the report says so, with each step's time."""
        split = crossing["split"]
        assert split.status is Status.ok, split.reason
        assert split.segments is not None and split.segments["segments"] == 5
        assert set(split.segments["seconds"]) >= {"plan", "detect", "encode", "join"}
        assert split.segments["workers"] == 1
        assert any("split into 5 segments" in n for n in split.notes)
        assert crossing["whole"].segments is None

    def test_faces_crossing_boundaries_hidden_in_every_frame(self, crossing: dict[str, object]) -> None:
        """Every frame with at least half a face in view has that face hidden in the joined file."""
        out = decode(Path(crossing["folder"]) / "split.mp4")
        frames, boxes = crossing["frames"], crossing["boxes"]
        assert len(out.frames) == FRAMES
        checked = 0
        for i, (clean, result) in enumerate(zip(frames, out.frames, strict=True)):
            for box in boxes[i]:
                checked += 1
                assert hidden(result, clean, box), f"frame {i}: face {box} visible"
        assert checked > 40

    def test_whole_file_masks_are_all_in_the_split_output(self, crossing: dict[str, object]) -> None:
        """Every pixel the whole-file run masked is masked in the split output too (including the frames
        masked before a face's first detection, which lie in the segment before it)."""
        folder = Path(crossing["folder"])
        whole, split = decode(folder / "whole.mp4"), decode(folder / "split.mp4")
        missed = []
        for i, (clean, a, b) in enumerate(zip(crossing["frames"], whole.frames, split.frames, strict=True)):
            by_whole = _masked(a, clean)
            if by_whole.sum() > 50 and _masked(b, clean)[by_whole].mean() < 0.99:
                missed.append(i)
        assert not missed, f"frames where the split output masks less than the whole-file run: {missed}"

    def test_same_frames_times_duration_rate_and_audio(self, crossing: dict[str, object]) -> None:
        """The joined file has the whole-file run's frame count, timestamps, duration, frame rate and audio
        (copied packet for packet from the input), and no other stream or tag."""
        folder = Path(crossing["folder"])
        whole, split, source = decode(folder / "whole.mp4"), decode(folder / "split.mp4"), decode(Path(crossing["src"]))
        assert split.pts == whole.pts == source.pts
        assert split.time_base == whole.time_base
        assert split.rate == whole.rate and split.duration == whole.duration
        assert split.audio == source.audio and split.audio
        assert split.streams == ["video", "audio"]
        assert split.metadata.keys() <= {"major_brand", "minor_version", "compatible_brands", "encoder"}

    def test_split_video_records_what_the_review_needs(self, tmp_path: Path, astro: Frame, engine: Engine) -> None:
        """A split video leaves the same kind of detection record as a whole-file run (every frame's faces,
        times and track boxes), so the review app can show and re-render it."""
        from dataclasses import replace as with_

        from blur.video.record import load_record

        src = tmp_path / "c.mp4"
        write_crossing(src, astro)
        whole_job = with_(_job(src, tmp_path / "whole.mp4"), tracks=tmp_path / "whole.npz")
        split_job = with_(_job(src, tmp_path / "split.mp4"), tracks=tmp_path / "split.npz")
        whole = run_video(whole_job, engine, BatchOptions(jobs=1), None)
        split = run_video(split_job, engine, BatchOptions(jobs=1, segments=SPLIT), None)
        assert split.segments is not None and split.track_spans
        a, b = load_record(tmp_path / "whole.npz"), load_record(tmp_path / "split.npz")
        assert b.frames == a.frames == FRAMES
        assert np.allclose(a.times, b.times)
        assert [len(b.detections(i)) for i in range(FRAMES)] == [len(a.detections(i)) for i in range(FRAMES)]
        assert len(b.spans()) == len(a.spans()) == whole.tracks

    def test_variable_frame_rate_keeps_every_timestamp(self, tmp_path: Path, astro: Frame, engine: Engine) -> None:
        """A clip whose frame intervals vary (a phone slowing its frame rate in low light) keeps each
        frame's own timestamp through the split and the join."""
        rng = np.random.default_rng(3)
        steps = rng.choice([5000, 7500, 11250], size=FRAMES - 1)
        pts = [0, *np.cumsum(steps).tolist()]
        src = tmp_path / "vfr.mp4"
        write_crossing(src, astro, pts)
        result = run_video(_job(src, tmp_path / "out.mp4"), engine, BatchOptions(jobs=1, segments=SPLIT), None)
        assert result.status is Status.ok and result.segments is not None, result.reason
        assert result.segments["segments"] >= 3
        out, source = decode(tmp_path / "out.mp4"), decode(src)
        assert out.pts == source.pts == pts
        assert out.time_base == source.time_base

    def test_split_across_worker_processes(self, tmp_path: Path, astro: Frame, engine: Engine) -> None:
        """With two worker processes the segments run on both, and the output is the in-process split's
        (the same frames and masks; x264 is not bit-reproducible from run to run here, so pixels are
        compared within encoder noise)."""
        src = tmp_path / "crossing.mp4"
        write_crossing(src, astro)
        one = run_video(_job(src, tmp_path / "one.mp4"), engine, BatchOptions(jobs=1, segments=SPLIT), None)
        two = run_video(_job(src, tmp_path / "two.mp4"), engine, BatchOptions(jobs=2, segments=SPLIT), None)
        assert one.status is two.status is Status.ok, two.reason
        assert two.segments is not None and two.segments["workers"] == 2
        a, b = decode(tmp_path / "one.mp4"), decode(tmp_path / "two.mp4")
        assert a.pts == b.pts
        assert min(psnr(x, y) for x, y in zip(a.frames, b.frames, strict=True)) > 40.0


class TestSidecar:
    def test_add_and_keep_regions_keep_the_video_clock(self, tmp_path: Path, astro: Frame, engine: Engine) -> None:
        """Sidecar time ranges count from the video's first frame in every segment: an `add` region across
        two boundaries is masked in exactly its frames, and a `keep` range leaves faces visible in the
        same frames as in a whole-file run."""
        import json

        src = tmp_path / "c.mp4"
        frames, boxes = write_crossing(src, astro)
        region = [250, 4, 300, 44]  # top right: no face there
        sidecar = {
            "blur_sidecar": 1,
            "add": [{"box": region, "start": 1.5, "end": 3.2}],
            "keep": [{"box": [0, 0, SIZE[0], SIZE[1]], "start": 2.5, "end": 5.0}],
        }
        (tmp_path / "c.mp4.blur.json").write_text(json.dumps(sidecar))
        whole = run_video(_job(src, tmp_path / "whole.mp4"), engine, BatchOptions(jobs=1), None)
        split = run_video(_job(src, tmp_path / "split.mp4"), engine, BatchOptions(jobs=1, segments=SPLIT), None)
        assert whole.status is split.status is Status.ok, split.reason
        assert split.segments is not None
        a, b = decode(tmp_path / "whole.mp4"), decode(tmp_path / "split.mp4")
        x1, y1, x2, y2 = region
        added = [i for i, f in enumerate(b.frames) if f[y1 + 4 : y2 - 4, x1 + 4 : x2 - 4].max() < 40]
        assert added == [i for i in range(FRAMES) if 1.5 <= i / FPS <= 3.2]
        for i, (clean, fa, fb) in enumerate(zip(frames, a.frames, b.frames, strict=True)):
            for box in boxes[i]:
                assert hidden(fa, clean, box) == hidden(fb, clean, box), f"frame {i}: face {box}"
        # Kept faces show once the tracks that started before the range have run out (gap and pad).
        kept = [i for i in range(FRAMES) if boxes[i] and not all(hidden(b.frames[i], frames[i], x) for x in boxes[i])]
        assert kept and min(kept) >= 30


def _without(found: FrameBoxes, drop: Callable[[int], bool]) -> FrameBoxes:
    """`found` without the frames `drop` selects."""
    return FrameBoxes.pack({f: d for f, d in found.by_frame().items() if not drop(f)})


def _run_with(
    monkeypatch: pytest.MonkeyPatch, change: Callable[[SegmentBoxes, Segment], SegmentBoxes]
) -> Callable[[Path, Path, Engine], Any]:
    """`run_video` with every detection pass's result changed by `change`."""
    import blur.batch.segmented as segmented

    real = segmented.detect_segment

    def changed(engine: Engine, source: Path, task: Any) -> SegmentBoxes:
        return change(real(engine, source, task), task.segment)

    monkeypatch.setattr(segmented, "detect_segment", changed)
    return lambda src, out, engine: run_video(_job(src, out), engine, BatchOptions(jobs=1, segments=SPLIT), None)


def _all_hidden(out: Path, frames: list[Frame], boxes: list[list[tuple[int, int, int, int]]]) -> None:
    decoded = decode(out)
    for i, (clean, masked) in enumerate(zip(frames, decoded.frames, strict=True)):
        for box in boxes[i]:
            assert hidden(masked, clean, box), f"frame {i}: face {box} visible"


class TestBoxSources:
    def test_whole_video_tracking_masks_what_the_passes_trackers_lose(
        self, tmp_path: Path, astro: Frame, engine: Engine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The whole video is tracked here from every pass's faces, as a whole-file run tracks it: with
        every pass's own tracker giving nothing, each face is still hidden in every frame."""
        run = _run_with(monkeypatch, lambda found, _seg: replace(found, tracked=FrameBoxes()))
        src = tmp_path / "c.mp4"
        frames, boxes = write_crossing(src, astro)
        assert run(src, tmp_path / "out.mp4", engine).status is Status.ok
        _all_hidden(tmp_path / "out.mp4", frames, boxes)

    def test_neighbours_boxes_cover_what_a_pass_misses_at_its_start(
        self, tmp_path: Path, astro: Frame, engine: Engine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A pass whose tracker starts without the tracks the segment before it had (here: it gives nothing
        in its segment's first 6 frames, and the whole-video tracking gets no faces at all) is covered by
        the pass before it, which saw those frames in its overlap."""

        def forgetful(found: SegmentBoxes, seg: Segment) -> SegmentBoxes:
            early = _without(found.tracked, lambda f: seg.start <= f < seg.start + 6)
            return replace(found, tracked=early, found=FrameBoxes())

        run = _run_with(monkeypatch, forgetful)
        src = tmp_path / "c.mp4"
        frames, boxes = write_crossing(src, astro)
        assert run(src, tmp_path / "out.mp4", engine).status is Status.ok
        _all_hidden(tmp_path / "out.mp4", frames, boxes)


class TestWhenSplitFails:
    def test_unexpected_frames_fall_back_to_whole(
        self, tmp_path: Path, astro: Frame, engine: Engine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """When a segment's frames are not the planned ones, the video is processed whole, with a note."""
        import blur.batch.segmented as segmented

        def wrong(*_args: object, **_kw: object) -> SegmentBoxes:
            raise SegmentError("expected frame 12, decoded frame 13")

        monkeypatch.setattr(segmented, "detect_segment", wrong)
        src = tmp_path / "c.mp4"
        write_crossing(src, astro)
        result = run_video(_job(src, tmp_path / "out.mp4"), engine, BatchOptions(jobs=1, segments=SPLIT), None)
        assert result.status is Status.ok, result.reason
        assert result.segments is None
        assert any("processed whole" in n and "decoded frame 13" in n for n in result.notes)
        assert len(decode(tmp_path / "out.mp4").pts) == FRAMES

    def test_failed_segment_leaves_nothing(
        self, tmp_path: Path, astro: Frame, engine: Engine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A segment that cannot be encoded fails the video: no output, no temporary or spooled file left."""
        import blur.batch.segmented as segmented

        def broken(*_args: object, **_kw: object) -> object:
            raise MediaWriteError("disk full")

        monkeypatch.setattr(segmented, "encode_segment", broken)
        monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
        (tmp_path / "tmp").mkdir()
        import tempfile

        monkeypatch.setattr(tempfile, "tempdir", None)
        src = tmp_path / "c.mp4"
        write_crossing(src, astro)
        (tmp_path / "out").mkdir()
        result = run_video(_job(src, tmp_path / "out" / "c.mp4"), engine, BatchOptions(jobs=1, segments=SPLIT), None)
        assert result.status is Status.failed and "disk full" in result.reason
        assert list((tmp_path / "out").iterdir()) == []
        assert list((tmp_path / "tmp").iterdir()) == []

    def test_short_video_not_split(self, tmp_path: Path, astro: Frame, engine: Engine) -> None:
        """A video shorter than the threshold is processed whole, and its plan says so."""
        src = tmp_path / "c.mp4"
        write_crossing(src, astro)
        plan, why = plan_segments(src, "mp4", engine.settings, SegmentOptions(split_after=60.0, length=1.0))
        assert plan is None and why == ""
        plan, _ = plan_segments(src, "mp4", engine.settings, SPLIT)
        assert plan is not None and [s.start for s in plan.segments] == [0, 12, 24, 36, 48]


class TestPlan:
    def test_cut_at_keyframes_with_overlaps_on_the_fine_grid(self) -> None:
        """Segments start at keyframes; detection passes start an overlap earlier, on the fine-pass grid."""
        from blur.media.video_read import VideoInfo

        info = VideoInfo(640, 360, Fraction(25), Fraction(1, 25), 300, 300, "h264", 0)
        pts = list(range(300))
        keys = [(k, k - 2) for k in range(0, 300, 50)]
        segments = _cut(pts, keys, info, length=4.0, overlap=20, grid=9)
        assert [(s.start, s.end) for s in segments] == [(0, 100), (100, 200), (200, 300)]
        assert [s.detect_start for s in segments] == [0, 72, 180]
        assert all(s.detect_start % 9 == 0 and s.detect_start <= s.start - 20 for s in segments[1:])
        assert [s.detect_end for s in segments] == [120, 220, 300]
        assert segments[0].encode_seek is None and segments[1].encode_seek == 98 and segments[2].detect_seek == 148

    def test_by_default_split_only_where_enough_workers_share_it(self) -> None:
        """Without --split-after, long videos are split only with 12 workers or more; an explicit
        threshold splits whatever the workers."""
        assert SegmentOptions.auto().for_workers(2).split_after == 0
        assert SegmentOptions.auto().for_workers(16).split_after == 120
        assert SegmentOptions(30.0).for_workers(1).split_after == 30

    def test_short_last_segment_joins_the_one_before(self) -> None:
        """A last piece shorter than half a segment is not a segment of its own."""
        from blur.media.video_read import VideoInfo

        info = VideoInfo(640, 360, Fraction(25), Fraction(1, 25), 230, 230, "h264", 0)
        segments = _cut(list(range(230)), [(k, k) for k in range(0, 230, 50)], info, 4.0, 10, 1)
        assert [(s.start, s.end) for s in segments] == [(0, 100), (100, 230)]

    def test_union_and_neighbours(self) -> None:
        """A segment's masks are the union of the whole-video tracking and every detection pass that saw
        its frames (repeats once)."""
        seg = Segment(1, 10, 20, 5, 25, None, None)
        box = np.array([[1, 2, 3, 4]], np.float32)
        other = np.array([[5, 6, 7, 8]], np.float32)

        def tracked(index: int, frames: dict[int, np.ndarray]) -> SegmentBoxes:
            packed = FrameBoxes.pack(
                {f: Detections.from_arrays(b, np.ones(len(b), np.float32)) for f, b in frames.items()}
            )
            return SegmentBoxes(index, packed, FrameBoxes(), FrameBoxes(), (), 0.5, 1, (), 0.0, "w")

        own = tracked(1, {10: box, 19: box})
        before = tracked(0, {9: other, 10: box, 12: other})
        after = tracked(2, {19: other, 22: other})
        whole = {11: box, 25: box}
        union = union_boxes(seg, [own, before, after], whole)
        assert sorted(union) == [10, 11, 12, 19]
        assert len(union[10]) == 1  # the same box from two passes, once
        assert {tuple(b) for b in union[19].tolist()} == {(1, 2, 3, 4), (5, 6, 7, 8)}
        assert 9 not in union and 22 not in union

    def test_whole_tracks_in_frame_order(self) -> None:
        """Passes arriving out of order are tracked in frame order; a frame's boxes are final only once
        the tracker's horizon has passed it, and every frame's are at the end."""
        from blur.media.video_read import VideoInfo

        info = VideoInfo(640, 360, Fraction(10), Fraction(1, 10), 40, 40, "h264", 0)
        segments = _cut(list(range(40)), [(k, k) for k in range(0, 40, 10)], info, 1.0, 5, 1)
        plan = SegmentPlan("mp4", info, tuple(range(40)), tuple(segments), "none", 5)
        face = Detections.from_arrays(np.array([[100, 100, 140, 150]], np.float32), np.array([0.9], np.float32))

        def found(i: int) -> SegmentBoxes:
            seg = segments[i]
            faces = FrameBoxes.pack(dict.fromkeys(range(seg.start, seg.end), face))
            return SegmentBoxes(i, FrameBoxes(), faces, faces, (), 0.5, 0, (), 0.0, "w")

        whole = WholeTracks(plan)
        whole.add(found(1))
        assert whole.final_until == 0  # segment 0 first
        whole.add(found(0))
        assert 0 < whole.final_until < 20  # the last frames wait for the tracker's horizon
        whole.add(found(3))
        whole.add(found(2))
        assert whole.final_until == 40 and whole.tracks == 1
        assert all(len(whole.take(s)) == s.end - s.start for s in segments)
