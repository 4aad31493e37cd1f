"""The tracker and the cut detector, on boxes and arrays only (no video, no detector)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blur.types import Detections, iou_matrix
from blur.video.cuts import CutDetector
from blur.video.tracking import Tracker, TrackerConfig, greedy_match, grow_box, track_all

CFG = TrackerConfig(high=0.3, low=0.1, max_gap=10, pad=3, grow=0.05)


def det(*boxes: tuple[float, float, float, float], score: float = 0.9) -> Detections:
    """Detections of the given boxes, all with one score."""
    return Detections.from_arrays(np.array(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), score))


def moving(n: int, missing: set[int] = frozenset(), step: float = 4.0, score: float = 0.9) -> list[Detections]:
    """A 40 px face moving right by `step` px per frame, not detected in `missing` frames."""
    return [
        Detections.empty() if i in missing else det((10 + step * i, 50, 50 + step * i, 90), score=score)
        for i in range(n)
    ]


def covers(outer: np.ndarray, inner: tuple[float, float, float, float]) -> bool:
    """Whether box `outer` contains box `inner`."""
    return bool(outer[0] <= inner[0] + 1e-3 and outer[1] <= inner[1] + 1e-3 and outer[2] >= inner[2] - 1e-3)


class TestTracks:
    def test_detected_every_frame_is_one_track_with_the_detected_boxes(self) -> None:
        """A face found in every frame is one track, masked with exactly its detections."""
        dets = moving(20)
        boxes, tracks = track_all(dets, set(), CFG)
        assert tracks == 1
        for frame_dets, out in zip(dets, boxes, strict=True):
            np.testing.assert_allclose(out.xyxy, frame_dets.xyxy)

    def test_gap_is_filled_with_interpolated_grown_boxes(self) -> None:
        """Frames where the detector missed the face get a box between its neighbours, grown with the gap."""
        dets = moving(20, missing={8, 9, 10, 11, 12})
        boxes, tracks = track_all(dets, set(), CFG)
        assert tracks == 1
        for i in range(8, 13):
            assert len(boxes[i]) == 1
            truth = (10 + 4.0 * i, 50, 50 + 4.0 * i, 90)
            assert covers(boxes[i].xyxy[0], truth), (i, boxes[i].xyxy[0], truth)
        assert boxes[10].width[0] > boxes[8].width[0] > 40

    def test_gap_longer_than_max_gap_splits_the_track(self) -> None:
        """After max_gap frames without a detection the track ends; frames beyond the pads are unmasked."""
        dets = moving(40, missing=set(range(5, 25)))
        boxes, tracks = track_all(dets, set(), CFG)
        assert tracks == 2
        assert all(len(boxes[i]) == 1 for i in range(5, 5 + CFG.pad))
        assert all(len(boxes[i]) == 0 for i in range(5 + CFG.pad, 25 - CFG.pad))
        assert all(len(boxes[i]) == 1 for i in range(25 - CFG.pad, 25))

    def test_pad_masks_before_first_and_after_last_detection(self) -> None:
        """`pad` frames before the first and after the last detection are masked, and no more."""
        dets = [Detections.empty()] * 10 + moving(5) + [Detections.empty()] * 10
        boxes, _ = track_all(dets, set(), CFG)
        masked = [i for i, b in enumerate(boxes) if len(b)]
        assert masked == list(range(10 - CFG.pad, 15 + CFG.pad))

    def test_extrapolated_pad_follows_the_motion(self) -> None:
        """After the last detection the box keeps covering where a moving face is going."""
        dets = moving(10) + [Detections.empty()] * 3
        boxes, _ = track_all(dets, set(), CFG)
        for i in range(10, 13):
            assert covers(boxes[i].xyxy[0], (10 + 4.0 * i, 50, 50 + 4.0 * i, 90))

    def test_cut_ends_tracks_and_clips_pads(self) -> None:
        """A scene cut ends every track: no box crosses it, and the face after it starts a new track."""
        dets = moving(20)
        boxes, tracks = track_all(dets, {10}, CFG)
        assert tracks == 2
        assert all(len(b) == 1 for b in boxes)

    def test_weak_detections_continue_but_never_start_tracks(self) -> None:
        """Scores between low and high extend a track (ByteTrack's second stage) but start none."""
        strong = moving(5)
        weak = [det((10 + 4.0 * i, 50, 50 + 4.0 * i, 90), score=0.15) for i in range(5, 30)]
        boxes, tracks = track_all(strong + weak, set(), CFG)
        assert tracks == 1
        assert all(len(b) == 1 for b in boxes)
        lone, lone_tracks = track_all([det((0, 0, 30, 30), score=0.15)] * 5, set(), CFG)
        assert lone_tracks == 0
        assert all(len(b) == 0 for b in lone)

    def test_two_faces_crossing_keep_their_tracks(self) -> None:
        """Two faces passing each other are two tracks, each masked in every frame."""
        dets = [det((10 + 6.0 * i, 40, 50 + 6.0 * i, 80), (200 - 6.0 * i, 44, 240 - 6.0 * i, 84)) for i in range(30)]
        boxes, tracks = track_all(dets, set(), CFG)
        assert tracks == 2
        assert all(len(b) == 2 for b in boxes)

    def test_frames_must_arrive_in_order(self) -> None:
        """Skipping a frame is a programming error, reported at once."""
        tracker = Tracker(CFG)
        tracker.update(0, Detections.empty())
        with pytest.raises(ValueError, match="in order"):
            tracker.update(2, Detections.empty())

    def test_config_rejects_low_above_high(self) -> None:
        """A weak threshold above the strong one is refused."""
        with pytest.raises(ValueError, match="low"):
            TrackerConfig(high=0.2, low=0.5)


class TestStreaming:
    def test_final_frames_lag_by_the_horizon(self) -> None:
        """A frame becomes final once `horizon` later frames have been seen, or at the end."""
        tracker = Tracker(CFG)
        for i in range(20):
            tracker.update(i, Detections.empty())
        assert tracker.final_until() == 20 - CFG.horizon
        tracker.finish()
        assert tracker.final_until() == 20

    def test_state_stays_bounded_on_a_long_video(self) -> None:
        """Released frames are forgotten: a long clip keeps a bounded number of stored detections."""
        tracker = Tracker(CFG)
        emitted = 0
        for i in range(2000):
            tracker.update(i, det((100 + 5 * np.sin(i / 9), 50, 140 + 5 * np.sin(i / 9), 90)))
            while emitted < tracker.final_until():
                tracker.boxes(emitted)
                emitted += 1
            tracker.release(emitted)
        stored = sum(len(t.frames) for t in [*tracker._live, *tracker._done])
        assert stored <= CFG.horizon + 8

    @settings(max_examples=60, deadline=None)
    @given(
        st.lists(
            st.lists(
                st.tuples(
                    st.floats(0, 300), st.floats(0, 200), st.floats(8, 80), st.sampled_from([0.12, 0.2, 0.5, 0.9])
                ),
                max_size=3,
            ),
            min_size=1,
            max_size=60,
        ),
        st.sets(st.integers(0, 59), max_size=3),
    )
    def test_streamed_boxes_equal_whole_clip_boxes(
        self, raw: list[list[tuple[float, float, float, float]]], cuts: set[int]
    ) -> None:
        """Boxes handed out as soon as a frame is final equal those computed after seeing the whole clip."""
        dets = [
            Detections.from_arrays(
                np.array([(x, y, x + s, y + s) for x, y, s, _ in row], np.float32).reshape(-1, 4),
                np.array([sc for *_, sc in row], np.float32),
            )
            for row in raw
        ]
        streamed, _ = track_all(dets, cuts, CFG)
        offline = Tracker(CFG)
        for i, d in enumerate(dets):
            offline.update(i, d, cut=i in cuts)
        offline.finish()
        for i, got in enumerate(streamed):
            want = offline.boxes(i)
            np.testing.assert_allclose(_sorted(got.xyxy), _sorted(want.xyxy), rtol=1e-5, atol=1e-3)

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.tuples(st.floats(0, 300), st.floats(0, 200), st.floats(8, 80)), min_size=1, max_size=40))
    def test_every_confident_detection_is_masked_in_its_frame(self, raw: list[tuple[float, float, float]]) -> None:
        """Whatever the association does, each detection at or above `high` is inside a box of its frame."""
        dets = [det((x, y, x + s, y + s)) for x, y, s in raw]
        boxes, _ = track_all(dets, set(), CFG)
        for frame_dets, out in zip(dets, boxes, strict=True):
            assert iou_matrix(frame_dets.xyxy, out.xyxy).max() > 0.99


def _sorted(boxes: np.ndarray) -> np.ndarray:
    """Rows in lexicographic order (tracks may be listed in any order)."""
    return boxes[np.lexsort(boxes.T[::-1])] if len(boxes) else boxes


class TestHelpers:
    def test_grow_box_keeps_the_centre(self) -> None:
        """Growing a box scales it about its centre."""
        np.testing.assert_allclose(grow_box(np.array([0, 0, 10, 20], np.float32), 2.0), [-5, -10, 15, 30])

    def test_greedy_match_takes_cheapest_pairs_once(self) -> None:
        """Each row and column is used at most once, cheapest first; infinite cost never matches."""
        cost = np.array([[0.1, 0.2], [0.05, np.inf]], np.float32)
        assert greedy_match(cost) == [(1, 0), (0, 1)]
        assert greedy_match(np.full((2, 2), np.inf, np.float32)) == []


class TestCuts:
    @staticmethod
    def scene(seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        base = rng.integers(0, 256, (9, 16, 3), dtype=np.uint8)
        return np.kron(base, np.ones((20, 20, 1), np.uint8))

    def test_first_frame_and_repeats_are_not_cuts(self) -> None:
        """The first frame and an unchanged frame never count as cuts."""
        detector = CutDetector()
        frame = self.scene(1)
        assert not detector(frame)
        assert not detector(frame.copy())

    def test_a_different_scene_is_a_cut(self) -> None:
        """A jump to an unrelated dark scene counts as a cut."""
        detector = CutDetector()
        detector(self.scene(1))
        assert detector((self.scene(2) // 4).astype(np.uint8))

    def test_a_pan_is_not_a_cut(self) -> None:
        """The same scene shifted sideways (a camera pan) keeps its histogram, so it is no cut."""
        detector = CutDetector()
        frame = self.scene(3)
        detector(frame)
        assert not detector(np.roll(frame, 40, axis=1))


def test_expected_boxes_follow_live_tracks() -> None:
    """Where each live track is expected next: its motion carried on; nothing once it has ended."""
    tracker = Tracker(CFG)
    assert tracker.expected(0).shape == (0, 4)
    for i, dets in enumerate(moving(6)):
        tracker.update(i, dets)
    np.testing.assert_allclose(tracker.expected(6), [[10 + 4.0 * 6, 50, 50 + 4.0 * 6, 90]], atol=1e-3)
    for i in range(6, 6 + CFG.max_gap + 2):
        tracker.update(i, Detections.empty())
    assert tracker.expected(6 + CFG.max_gap + 2).shape == (0, 4)


def test_frame_samples_bounded_and_span_the_track() -> None:
    """However long a track, the review keeps a bounded sample and shows its first, a middle and its last frame."""
    from blur.video.samples import FrameSamples

    samples = FrameSamples(cap=8)
    for frame in range(10_000):
        samples.offer("7", frame, frame / 25, [{"box": [0, 0, 1, 1], "score": 0.9}])
    samples.offer("kept", 42, 1.68, [{"box": [0, 0, 1, 1], "score": 0.8, "kept": True}])
    assert all(len(s.kept) <= 8 for s in samples._keys.values())
    picks = samples.picks()
    frames = [p["frame"] for p in picks if p["track"] == "7"]
    assert frames[0] == 0 and frames[-1] == 9_999 and 2_500 <= frames[1] <= 7_500, frames
    assert [p["frame"] for p in picks if p["track"] == "kept"] == [42]
    assert picks[-1]["time"] == 1.68 and picks[-1]["kept"] is True


def _run_schedule(schedule: Any, seen: Callable[[int], Detections], frames: int = 40) -> list[Any]:
    """Drive a fine schedule over `frames` frames on which the coarse pass finds nothing and the fine
    pass finds `seen(index)` (what lies inside a focused pass's windows); list the passes run."""
    runs: list[Any] = []
    for index in range(0, frames, schedule.plan.dense):
        full, windows = schedule.full(index), schedule.focus_windows(index)
        if not full and not windows:
            continue
        found = seen(index)
        if not full:
            boxes = found.xyxy.tolist()
            inside = [
                any(x0 <= a and y0 <= b and c <= x1 and d <= y1 for x0, y0, x1, y1 in windows) for a, b, c, d in boxes
            ]
            found = found[np.asarray(inside, bool)]
        runs.append(index if full else (index, windows))
        schedule.ran(index, Detections.empty(), found, full=full)
    return runs


def test_fine_pass_plan_and_schedule() -> None:
    """720p: fine copies every 2nd frame, a full fine pass every 4th; for a second after a pass finds a
    face the coarse pass missed, a focused pass on the frames in between, in a window around that
    face only; a target not found again is searched for until the next full pass."""
    from blur.video.options import VideoOptions
    from blur.video.schedule import FineSchedule, detection_plan, missed_by

    plan = detection_plan(1280, 720, VideoOptions())
    assert (plan.coarse, plan.fine, plan.every, plan.dense) == ((640, 360), (1280, 720), 4, 2)
    hd = detection_plan(1920, 1080, VideoOptions())
    assert hd.dense == 4 and hd.every % hd.dense == 0 and 9 <= hd.every <= 15
    assert detection_plan(640, 360, VideoOptions()).fine is None
    face = Detections.from_arrays(np.array([[600, 300, 630, 330]], np.float32), np.array([0.9], np.float32))
    window = (487, 187, 743, 443)  # 256 px, centred on the face and its 48 px margin
    # A small face in view on frames 8-14: focused passes on 10 and 14, none once it is gone.
    runs = _run_schedule(FineSchedule(plan, hold=10, high=0.5), lambda i: face if 8 <= i <= 14 else Detections.empty())
    assert runs == [0, 4, 8, (10, [window]), 12, (14, [window]), 16, 20, 24, 28, 32, 36], runs
    # Seen on frame 8 only: searched for again on frame 10, forgotten after the full pass on 12.
    runs = _run_schedule(FineSchedule(plan, hold=10, high=0.5), lambda i: face if i == 8 else Detections.empty())
    assert runs == [0, 4, 8, (10, [window]), 12, 16, 20, 24, 28, 32, 36], runs
    # Weak detections alone start no focused passes, but once a confident face has, they are followed.
    weak_face = Detections.from_arrays(face.xyxy, np.array([0.2], np.float32))
    runs = _run_schedule(FineSchedule(plan, hold=10, high=0.5), lambda i: weak_face)
    assert runs == [0, 4, 8, 12, 16, 20, 24, 28, 32, 36], runs
    runs = _run_schedule(
        FineSchedule(plan, hold=10, high=0.5), lambda i: face if i == 8 else weak_face if i < 20 else Detections.empty()
    )
    assert runs == [0, 4, 8, (10, [window]), 12, (14, [window]), 16, (18, [window]), 20, 24, 28, 32, 36], runs
    # Faces all over the frame: the windows would cover most of it, so the pass between is a full one.
    crowd = Detections.from_arrays(
        np.array([[x, y, x + 20, y + 20] for x in range(40, 1280, 200) for y in range(40, 720, 200)], np.float32),
        np.full(28, 0.9, np.float32),
    )
    runs = _run_schedule(FineSchedule(plan, hold=10, high=0.5), lambda i: crowd, frames=12)
    assert runs == [0, 2, 4, 6, 8, 10], runs
    # Without focusing, every pass is a full one (the earlier behaviour).
    runs = _run_schedule(
        FineSchedule(plan, hold=10, high=0.5, focus=False), lambda i: face if 8 <= i <= 14 else Detections.empty()
    )
    assert runs == [0, 4, 8, 10, 12, 14, 16, 18, 20, 22, 24, 28, 32, 36], runs
    weak = Detections.from_arrays(np.array([[100, 10, 120, 30]], np.float32), np.array([0.2], np.float32))
    assert len(missed_by(Detections.empty(), face)) == 1
    assert len(missed_by(face, face)) == 0
    assert len(missed_by(weak, face)) == 1


@given(st.lists(st.tuples(st.integers(0, 1270), st.integers(0, 710), st.integers(4, 400)), min_size=1, max_size=6))
@settings(max_examples=200, deadline=None)
def test_focused_windows_hold_every_target(faces: list[tuple[int, int, int]]) -> None:
    """Every target, with its margin (cut to the frame), lies whole inside one window; windows are
    squares of 256 px steps within the frame (or the frame's height); where they would cover more than
    half the frame, the pass is a full one instead."""
    from blur.video.options import VideoOptions
    from blur.video.schedule import FOCUS_MARGIN, FOCUS_WINDOW, FineSchedule, detection_plan

    plan = detection_plan(1280, 720, VideoOptions())
    schedule = FineSchedule(plan, hold=10, high=0.5)
    boxes = np.array([[x, y, min(1280, x + s), min(720, y + s)] for x, y, s in faces], np.float32)
    schedule.ran(0, Detections.empty(), Detections.from_arrays(boxes, np.full(len(boxes), 0.9, np.float32)), full=True)
    windows = schedule.focus_windows(2)
    if not windows:
        assert schedule.full(2)
        return
    assert sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in windows) <= 0.5 * 1280 * 720
    for x0, y0, x1, y1 in windows:
        assert 0 <= x0 < x1 <= 1280 and 0 <= y0 < y1 <= 720
        assert (x1 - x0) % FOCUS_WINDOW == 0 and ((y1 - y0) % FOCUS_WINDOW == 0 or y1 - y0 == 720)
    for bx0, by0, bx1, by1 in boxes.tolist():
        m = max(FOCUS_MARGIN, bx1 - bx0, by1 - by0)
        need = (max(0, bx0 - m), max(0, by0 - m), min(1280, bx1 + m), min(720, by1 + m))
        assert any(x0 <= need[0] and y0 <= need[1] and need[2] <= x1 and need[3] <= y1 for x0, y0, x1, y1 in windows)
