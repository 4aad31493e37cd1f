"""The first and last frames of a clip: a face in view only there has no later (or earlier) frames to
confirm it, and is hidden all the same."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from blur.engine import Engine
from blur.types import Detections, Frame
from blur.video.options import VideoOptions
from blur.video.pipeline import anonymize_video
from blur.video.schedule import detection_plan
from blur.video.tracking import Tracker, TrackerConfig
from tests.test_video import FACE_IN_HEAD, HEAD, Spec, background, decode, encode_clip, hidden

SIZE = (1280, 720)
FACE_PX = 20
"""A face this wide in a 720p frame: the coarse pass (640 px) does not see it at all, the fine pass
(full size) scores it about 0.8."""


def small_sprite(astro: Frame) -> tuple[Frame, tuple[int, int, int, int]]:
    """The astronaut's head scaled so the face is `FACE_PX` wide, and the face box inside it."""
    y1, y2, x1, x2 = HEAD
    scale = FACE_PX / (FACE_IN_HEAD[2] - FACE_IN_HEAD[0])
    crop = astro[y1:y2, x1:x2]
    size = (round(crop.shape[1] * scale), round(crop.shape[0] * scale))
    sprite = np.asarray(cv2.resize(crop, size, interpolation=cv2.INTER_AREA), np.uint8)
    fx1, fy1, fx2, fy2 = (round(v * scale) for v in FACE_IN_HEAD)
    return sprite, (fx1, fy1, fx2, fy2)


def small_face_clip(
    astro: Frame, n: int, present: range | list[int], cut: int | None = None
) -> tuple[list[Frame], list[tuple[int, int, int, int]]]:
    """`n` frames of a 720p background with a still 20 px face in the frames of `present` (still: at
    this size CenterFace's score swings between 0.1 and 0.85 as the face moves by a pixel or two).
    From frame `cut` on, the background is another scene (upside down and darker): a scene cut."""
    sprite, (fx1, fy1, fx2, fy2) = small_sprite(astro)
    first = background(*SIZE)
    second = np.asarray(np.flipud(first) // 2, np.uint8)
    frames, faces = [], []
    x, y = 700, 300
    for i in range(n):
        frame = (first if cut is None or i < cut else second).copy()
        if i in present:
            frame[y : y + sprite.shape[0], x : x + sprite.shape[1]] = sprite
            faces.append((x + fx1, y + fy1, x + fx2, y + fy2))
        else:
            faces.append((0, 0, 0, 0))
        frames.append(frame)
    return frames, faces


def leaked(
    tmp_path: Path, astro: Frame, engine: Engine, n: int, present: range, options: VideoOptions, name: str
) -> list[int]:
    """Frames of `present` in which the face is still recognisable after anonymizing the clip."""
    frames, faces = small_face_clip(astro, n, present)
    clip = encode_clip(tmp_path / f"{name}.mp4", frames, faces, Spec(frames=n, size=SIZE, subtitle=None, acodec=None))
    dest = tmp_path / f"{name}-out.mp4"
    anonymize_video(clip.path, dest, "mp4", engine, options)
    out, clean = decode(dest).frames, decode(clip.path).frames
    assert len(out) == n
    return [i for i in present if not hidden(out[i], clean[i], faces[i])]


def test_face_entering_in_the_final_three_frames_is_hidden(tmp_path: Path, astro: Frame, engine: Engine) -> None:
    """A small face that appears in the last 3 frames, none of which the fine-pass schedule searches at
    full size: the clip's last frame always gets a full fine pass, the face starts a track there, and
    the track's lead-in hides it in the two frames before. Shown with the weak-detection tail off, so
    the last frame's pass alone does it."""
    n, present = 24, range(21, 24)
    plan = detection_plan(*SIZE, VideoOptions())
    assert plan.fine is not None and not any(plan.full(i) for i in present), "the schedule alone must miss it"
    assert leaked(tmp_path, astro, engine, n, present, VideoOptions(tail_seconds=0), "enter") == []


def test_faces_at_the_edges_of_a_shot_are_hidden(tmp_path: Path, astro: Frame, engine: Engine) -> None:
    """A scene cut is an end and a start: a small face in the last 2 frames before a cut and in the
    first frame after it (none of them searched at full size by the schedule, which runs every 4th
    frame here) is hidden as faces at the clip's own ends are. The weak-detection tail is off, so the
    shots' edge passes do it."""
    n, cut = 48, 23
    present = [21, 22, 23]
    plan = detection_plan(*SIZE, VideoOptions())
    assert not any(plan.full(i) for i in present), "the schedule alone must miss them"
    frames, faces = small_face_clip(astro, n, present, cut=cut)
    clip = encode_clip(tmp_path / "shots.mp4", frames, faces, Spec(frames=n, size=SIZE, subtitle=None, acodec=None))
    dest = tmp_path / "shots-out.mp4"
    stats = anonymize_video(clip.path, dest, "mp4", engine, VideoOptions(tail_seconds=0))
    out, clean = decode(dest).frames, decode(clip.path).frames
    assert [i for i in present if not hidden(out[i], clean[i], faces[i])] == []
    assert stats.tracks == 2, "one track per shot: the cut ends the first"


def test_face_leaving_after_the_first_two_frames_is_hidden(tmp_path: Path, astro: Frame, engine: Engine) -> None:
    """A small face in view only in the first 2 frames: the first frame gets a full fine pass, and the
    track masks it from the first frame on."""
    assert leaked(tmp_path, astro, engine, 24, range(2), VideoOptions(), "leave") == []


def _weak(box: tuple[float, float, float, float], score: float = 0.15) -> Detections:
    return Detections.from_arrays([box], [score])


def _run(cfg: TrackerConfig, dets: dict[int, Detections], n: int, cuts: frozenset[int] = frozenset()) -> list[int]:
    """Frames in which the tracker masks anything."""
    tracker = Tracker(cfg)
    for i in range(n):
        tracker.update(i, dets.get(i, Detections.empty()), cut=i in cuts)
    tracker.finish()
    return [i for i in range(n) if len(tracker.boxes(i))]


CFG = TrackerConfig(high=0.3, low=0.1, max_gap=30, pad=15, tail=15)
BOX = (100.0, 100.0, 130.0, 140.0)


def test_weak_detection_in_the_last_half_second_is_masked() -> None:
    """A weak detection (below the track-starting 0.3) in the last `tail` frames, with no track to
    continue, is masked from `pad` frames before it to the end: nothing comes after it to refute it."""
    assert _run(CFG, {55: _weak(BOX)}, 60) == list(range(40, 60))


def test_weak_detection_earlier_in_the_clip_is_not() -> None:
    """The same weak detection earlier than the last `tail` frames continues no track and starts none
    (later frames had their chance to confirm it), and with the tail off it is not masked at the end either."""
    assert _run(CFG, {30: _weak(BOX)}, 60) == []
    assert _run(TrackerConfig(high=0.3, low=0.1, max_gap=30, pad=15), {55: _weak(BOX)}, 60) == []


def test_tail_detection_stays_in_its_shot() -> None:
    """A weak tail detection just before a scene cut is masked up to the cut, not across it; one after
    the cut is masked from the cut on."""
    assert _run(CFG, {50: _weak(BOX)}, 60, cuts=frozenset({53})) == list(range(35, 53))
    assert _run(CFG, {56: _weak(BOX)}, 60, cuts=frozenset({53})) == list(range(53, 60))


def test_a_shot_ends_as_a_clip_does() -> None:
    """A scene cut ends a shot as the clip's end does: a weak detection in a shot's last `tail` frames
    is masked even when the clip goes on long after the cut; one earlier in the shot is not."""
    assert _run(CFG, {50: _weak(BOX)}, 200, cuts=frozenset({53})) == list(range(35, 53))
    assert _run(CFG, {30: _weak(BOX)}, 200, cuts=frozenset({53})) == []


@pytest.mark.parametrize("tail", [0, 15, 40])
def test_tail_frames_are_still_in_the_window_when_the_clip_ends(tail: int) -> None:
    """The lookahead horizon covers the tail, so no tail frame is final (and emitted) before the end."""
    cfg = TrackerConfig(tail=tail)
    assert cfg.horizon >= tail
