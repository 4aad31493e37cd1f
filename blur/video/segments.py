"""One long video on many cores: where it is split, and what each segment's workers get.

A video at least `SegmentOptions.split_after` seconds long is split at keyframes into segments of
about `SegmentOptions.length` seconds. Each segment is anonymized in two passes
(`blur.video.segment_passes`), each a task that any worker may run:

1. **detect**: the segment's frames plus an overlap before and after it (at least the tracker's
   maximum gap and pad) go through the video pipeline's detection and tracking (`blur.video.run`);
   the result is the faces it fed its tracker in its own frames, and the boxes its tracker gave
   every frame it saw.
2. **encode**: the segment's own frames are decoded again and masked with the union of (a) the
   whole video's tracking, run in order by the client from every pass's faces
   (`blur.video.segment_boxes`: what a whole-file run's tracker does, so a track that began long
   before the segment and lives on weak detections is kept) and (b) the boxes of every pass whose
   frames cover them (its own and, in the overlaps, its neighbours'); then encoded on their own.

`blur.video.join` joins the encoded segments into one file with the input's exact timestamps, frame
count and frame rate, and copies the audio once from the input. A video that cannot be split
safely (timestamps missing or repeated, a container or audio codec the join does not handle) is
processed whole, and the reason is noted.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from blur.errors import MediaReadError
from blur.media.video_read import (
    AudioMode,
    VideoInfo,
    _Reach,
    audio_stream,
    open_input,
    probe,
    video_stream,
)
from blur.media.video_write import choose_audio
from blur.video.options import DEFAULT_THRESHOLD, VideoOptions, tracker_config
from blur.video.schedule import detection_plan

if TYPE_CHECKING:
    from av.container import InputContainer
    from av.video.frame import VideoFrame

    from blur.config import Settings


SPLITTABLE = frozenset({"mp4", "mov", "matroska"})
"""Containers whose videos are split (H.264 out, which the join checks stream by stream)."""


Boxes = npt.NDArray[np.float32]
"""(N, 4) x1, y1, x2, y2 boxes in frame pixels."""


class SegmentError(MediaReadError):
    """A segment's frames are not the ones its plan says (the video is then processed whole)."""


AUTO_SPLIT_AFTER = 120.0
"""Without `--split-after`, videos of two minutes and more are split where enough workers can share them."""

AUTO_MIN_WORKERS = 12
"""...and enough means this many. A whole-file run keeps about 9 cores busy (16-core machine,
docs/video.md), and a split run does about 1.3-1.4 times the work (overlaps detected twice, frames
decoded twice: benchmarks/cluster.py); below this many workers splitting only costs time (2 cores:
1.4 times slower)."""


@dataclass(frozen=True, slots=True)
class SegmentOptions:
    """When a video is split into segments, and how long they are.

    Attributes:
        split_after: videos at least this many seconds long are split (0: never split).
        length: seconds per segment; each ends at the first keyframe after this much.
        min_workers: split only where at least this many tasks can run at once.
    """

    split_after: float = 0.0
    length: float = 10.0
    min_workers: int = 1

    def __post_init__(self) -> None:
        if self.split_after < 0 or self.length <= 0:
            msg = f"need split_after >= 0 and length > 0, got {self.split_after} and {self.length}"
            raise ValueError(msg)

    @classmethod
    def auto(cls, length: float = 10.0) -> SegmentOptions:
        """Split long videos only where enough workers can share them (`AUTO_SPLIT_AFTER`, `AUTO_MIN_WORKERS`)."""
        return cls(AUTO_SPLIT_AFTER, length, AUTO_MIN_WORKERS)

    def for_workers(self, workers: int) -> SegmentOptions:
        """These options where `workers` tasks can run at once: never split below `min_workers`."""
        return self if workers >= self.min_workers else SegmentOptions(0.0, self.length, self.min_workers)


@dataclass(frozen=True, slots=True)
class Segment:
    """One segment: the frames it encodes and the frames its detection pass sees (display order).

    Attributes:
        index: position in the video (0 first).
        start, end: the frames it encodes, `start` a keyframe.
        detect_start, detect_end: the frames its detection pass sees (with the overlaps), `detect_start`
            on the fine-pass grid so that the passes fall on the same frames as in a whole-file run.
        detect_seek, encode_seek: decode timestamps of the keyframes each pass starts decoding at
            (None: the start of the file).
    """

    index: int
    start: int
    end: int
    detect_start: int
    detect_end: int
    detect_seek: int | None
    encode_seek: int | None


@dataclass(frozen=True, slots=True)
class SegmentTask:
    """What a worker needs for one segment: its frames' timestamps, not the whole video's.

    Attributes:
        pts: timestamps of frames `segment.detect_start` to `segment.detect_end` (display order).
        first_pts: the video's first timestamp (the clock of sidecar time ranges).
    """

    fmt: str
    info: VideoInfo
    segment: Segment
    pts: tuple[int, ...]
    first_pts: int

    def index_of(self, pts: int) -> int | None:
        """The frame number (in the whole video) of the frame at `pts`, or None if it is not one of this task's."""
        i = bisect.bisect_left(self.pts, pts)
        if i < len(self.pts) and self.pts[i] == pts:
            return self.segment.detect_start + i
        return None

    def pts_of(self, index: int) -> int:
        """The timestamp of frame `index` (within the task's frames)."""
        return self.pts[index - self.segment.detect_start]


@dataclass(frozen=True, slots=True)
class SegmentPlan:
    """A video split into segments: every frame's timestamp and the segments."""

    fmt: str
    info: VideoInfo
    pts: tuple[int, ...]
    segments: tuple[Segment, ...]
    audio: AudioMode
    overlap: int

    def task(self, index: int) -> SegmentTask:
        """The part of the plan segment `index`'s workers need."""
        seg = self.segments[index]
        return SegmentTask(self.fmt, self.info, seg, self.pts[seg.detect_start : seg.detect_end], self.pts[0])


def neighbours(plan: SegmentPlan, index: int) -> list[int]:
    """The segments whose detection passes cover some of segment `index`'s frames (itself included)."""
    seg = plan.segments[index]
    return [o.index for o in plan.segments if o.detect_start < seg.end and seg.start < o.detect_end]


def overlap_frames(options: VideoOptions, rate: float) -> int:
    """Frames each detection pass sees before and after its segment: the tracker's maximum gap and pad, and one."""
    cfg = tracker_config(options, DEFAULT_THRESHOLD, rate)
    return cfg.max_gap + cfg.pad + 1


@dataclass(frozen=True, slots=True)
class _Packets:
    pts: list[int]
    keyframes: list[tuple[int, int | None]]
    """(pts, dts) of every keyframe."""


def _scan(source: Path, container: InputContainer) -> _Packets:
    """Every video packet's timestamp and the keyframes, reading the whole file once (no decoding).

    Raises:
        MediaReadError: the file is truncated, or a frame has no timestamp.
    """
    import av

    video = video_stream(source, container)
    reach = _Reach()
    pts: list[int] = []
    keys: list[tuple[int, int | None]] = []
    try:
        for packet in container.demux():
            reach.see(packet)
            if packet.stream.index != video.index or packet.size == 0:
                continue
            reach.video_packets += 1
            if packet.pts is None:
                msg = f"{source}: a frame has no timestamp"
                raise SegmentError(msg)
            pts.append(packet.pts)
            if packet.is_keyframe:
                keys.append((packet.pts, packet.dts))
    except av.FFmpegError as exc:
        msg = f"{source}: read error after {len(pts)} frames: {exc}"
        raise MediaReadError(msg) from exc
    reach.check(source, container, video)
    return _Packets(pts, keys)


def _first_frame(source: Path, container: InputContainer) -> VideoFrame:
    import av

    video = video_stream(source, container)
    try:
        for frame in container.decode(video):
            return frame
    except av.FFmpegError as exc:
        msg = f"{source}: cannot decode the first frame: {exc}"
        raise MediaReadError(msg) from exc
    msg = f"{source}: no video frame could be decoded"
    raise MediaReadError(msg)


def plan_segments(
    source: Path, fmt: str, settings: Settings, options: SegmentOptions, video: VideoOptions | None = None
) -> tuple[SegmentPlan | None, str]:
    """Split `source` into segments, or say why it is processed whole.

    Returns:
        The plan, or None and the reason ("" when the video is simply shorter than `split_after`).

    Raises:
        MediaReadError: the file cannot be read (it would fail whole too).
    """
    video = video or VideoOptions()
    if not options.split_after or fmt not in SPLITTABLE:
        return None, "" if not options.split_after else f"not split: {fmt} videos are processed whole"
    with open_input(source, fmt) as container:
        seconds = (container.duration or 0) / 1_000_000
        if seconds < options.split_after:
            return None, ""
        audio = choose_audio(fmt, audio_stream(container), settings.keep_audio, source)
        if audio == "encode":
            return None, "not split: its audio must be re-encoded for this container"
        info = probe(source, container, _first_frame(source, container))
    with open_input(source, fmt) as container:
        packets = _scan(source, container)
    pts = sorted(packets.pts)
    if len(set(pts)) != len(pts):
        return None, "not split: some frames share a timestamp"
    fine_grid = detection_plan(info.width, info.height, video).every
    overlap = overlap_frames(video, float(info.rate))
    segments = _cut(pts, packets.keyframes, info, options.length, overlap, fine_grid)
    if len(segments) < 2:
        return None, ""
    return SegmentPlan(fmt, info, tuple(pts), tuple(segments), audio, overlap), ""


def _cut(
    pts: list[int],
    keyframes: list[tuple[int, int | None]],
    info: VideoInfo,
    length: float,
    overlap: int,
    grid: int,
) -> list[Segment]:
    """Segments of about `length` seconds, each starting at a keyframe."""
    index = {p: i for i, p in enumerate(pts)}
    keys = sorted((index[p], d) for p, d in keyframes)
    key_frames = [k for k, _ in keys]
    step = length / float(info.time_base)
    starts = [0]
    for frame in key_frames:
        if frame > starts[-1] and pts[frame] - pts[starts[-1]] >= step:
            starts.append(frame)
    # A last segment shorter than half a segment joins the one before it.
    if len(starts) > 1 and (pts[-1] - pts[starts[-1]]) < step / 2:
        starts.pop()
    ends = [*starts[1:], len(pts)]

    def seek(frame: int) -> int | None:
        k = bisect.bisect_right(key_frames, frame) - 1
        if k <= 0:
            return None  # from the start of the file
        _, dts = keys[k]
        return dts if dts is not None else pts[key_frames[k]]

    segments = []
    for i, (start, end) in enumerate(zip(starts, ends, strict=True)):
        detect_start = (max(0, start - overlap) // grid) * grid
        segments.append(
            Segment(i, start, end, detect_start, min(len(pts), end + overlap), seek(detect_start), seek(start))
        )
    return segments
