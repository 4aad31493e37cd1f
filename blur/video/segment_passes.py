"""A segment's two passes, each run as a task by any worker: detect (with the overlaps) and encode.

Both decode their frames with the same locked-down demuxer as a whole-file run, starting at a
keyframe, and check every frame against the plan's timestamps: a frame missing, repeated or out of
place raises `SegmentError` (the video is then processed whole). The detection pass is the video
pipeline itself (`blur.video.run.Run`: detection, the fine-pass schedule, scene cuts, tracking,
keep regions) with a sink that keeps no pictures; the encode pass masks with `blur.video.masking`
and encodes exactly as `blur.media.video_write.VideoWriter` configures its stream.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from blur.corrections import load_corrections
from blur.errors import MediaReadError, MediaWriteError
from blur.media.planes import Planes, to_planes
from blur.media.video_read import AudioChunk, open_input, video_stream
from blur.media.video_write import MUXERS, encode_spec
from blur.types import Detections
from blur.video.masking import mask_frame
from blur.video.memory import check_memory
from blur.video.options import VideoOptions
from blur.video.pipeline import run_frames
from blur.video.prepare import Timeline
from blur.video.run import Run
from blur.video.segment_boxes import FrameBoxes, SegmentBoxes
from blur.video.segments import Boxes, Segment, SegmentError, SegmentTask

if TYPE_CHECKING:
    from av.video.codeccontext import VideoCodecContext
    from av.video.frame import VideoFrame

    from blur.engine import Engine


PacketData = tuple[bytes, int, int, int, bool]
"""One encoded frame: its bytes, pts, dts, duration (in the video's time base) and whether it is a keyframe."""


@dataclass(frozen=True, slots=True)
class EncodedSegment:
    """An encode pass's result: the segment's encoded frames in decode order, and its stream header."""

    index: int
    extradata: bytes
    packets: tuple[PacketData, ...]
    frames: int
    faces: int
    seconds: float
    worker: str


def worker_name() -> str:
    """Which worker ran a task: the Dask worker's address, or this machine and process."""
    distributed = sys.modules.get("distributed")  # never imported here: a Dask worker has it already
    if distributed is not None:
        try:
            return str(distributed.get_worker().address)
        except ValueError:
            pass
    return f"{platform.node()}:{os.getpid()}"


def segment_frames(source: Path, task: SegmentTask, start: int, end: int, seek: int | None) -> Iterator[VideoFrame]:
    """Decode frames `start` to `end` (frame numbers of the whole video), starting at the keyframe `seek`.

    Raises:
        SegmentError: a frame is missing, out of place or not in the plan.
        MediaReadError: a decode error or a corrupt frame.
    """
    import av

    want = start
    with open_input(source, task.fmt) as container:
        video = video_stream(source, container)
        video.thread_type = "AUTO"
        try:
            if seek is not None:
                container.seek(seek, stream=video, backward=True, any_frame=False)
            for frame in container.decode(video):
                index = None if frame.pts is None else task.index_of(frame.pts)
                if index is None:
                    if frame.pts is not None and frame.pts < task.pts_of(start):
                        continue  # decoded from the keyframe before the frames wanted
                    msg = f"{source}: frame at pts {frame.pts} is not in the segment plan"
                    raise SegmentError(msg)
                if index < want:
                    continue
                if index != want:
                    msg = f"{source}: expected frame {want}, decoded frame {index} (segment {task.segment.index})"
                    raise SegmentError(msg)
                if frame.is_corrupt:
                    msg = f"{source}: frame {index} is corrupt; refusing to publish a damaged video"
                    raise MediaReadError(msg)
                yield frame
                want += 1
                if want == end:
                    return
        except av.FFmpegError as exc:
            msg = f"{source}: decode error at frame {want}: {exc}"
            raise MediaReadError(msg) from exc
    msg = f"{source}: the video ended at frame {want}, before frame {end} (segment {task.segment.index})"
    raise SegmentError(msg)


class _NoPictures:
    """A sink for the detection pass: counts the frames, keeps nothing."""

    def __init__(self) -> None:
        self.frames_written = 0

    def write_frame(self, planes: Planes, pts: int, duration: int) -> None:
        self.frames_written += 1

    def write_audio(self, chunk: AudioChunk) -> None:
        return

    def close(self) -> None:
        return

    def abort(self) -> None:
        return


def detect_segment(
    engine: Engine, source: Path, task: SegmentTask, options: VideoOptions | None = None
) -> SegmentBoxes:
    """The detection pass: every frame `task` covers (with the overlaps) through detection and tracking.

    Raises:
        BlurError: the frames cannot be read, or a sidecar is invalid.
    """
    start = time.perf_counter()
    seg = task.segment
    # Segments already run side by side: one detection thread each.
    options = replace(options or VideoOptions(), parallel=False)
    check_memory(source, task.info.width, task.info.height, float(task.info.rate), options)
    corrections = load_corrections(source)
    corrections.check_fits(task.info.width, task.info.height, source)
    frames = segment_frames(source, task, seg.detect_start, seg.detect_end, seg.detect_seek)
    run = Run(source, task.info, frames, engine, options, corrections)
    run.first_pts = task.first_pts  # sidecar times count from the video's first frame, not the segment's
    tracked: dict[int, Detections] = {}
    found: dict[int, Detections] = {}
    cuts: list[int] = []

    def keep_boxes(index: int, boxes: Detections) -> None:
        tracked[seg.detect_start + index] = boxes

    def keep_faces(index: int, faces: Detections, cut: bool) -> None:
        frame = seg.detect_start + index
        if seg.start <= frame < seg.end:
            found[frame] = faces
            if cut:
                cuts.append(frame)

    run.on_boxes, run.on_track = keep_boxes, keep_faces
    written = run_frames(run, _NoPictures())
    expected = seg.detect_end - seg.detect_start
    if written != expected or len(tracked) != expected:
        msg = f"{source}: segment {seg.index} saw {written} of {expected} frames"
        raise SegmentError(msg)
    samples = tuple(
        {**s, "frame": s["frame"] + seg.detect_start, "track": f"{seg.index}.{s['track']}"}
        for s in run.samples.picks()
        if seg.start <= s["frame"] + seg.detect_start < seg.end
    )
    return SegmentBoxes(
        seg.index,
        FrameBoxes.pack(tracked),
        FrameBoxes.pack(found),
        _logged(run, seg),
        tuple(cuts),
        run.tracker.cfg.high,
        run.tracker.total_tracks,
        samples,
        time.perf_counter() - start,
        worker_name(),
    )


def _logged(run: Run, seg: Segment) -> FrameBoxes:
    """The faces the run recorded before keep regions, in the segment's own frames (frame numbers of the video)."""
    arrays = run.log.arrays({})
    frames = arrays["det_frame"].astype(np.int64) + seg.detect_start
    own = (frames >= seg.start) & (frames < seg.end)
    per_frame: dict[int, Detections] = {}
    for frame in np.unique(frames[own]).tolist():
        rows = frames == frame
        per_frame[int(frame)] = Detections.from_arrays(arrays["det_box"][rows], arrays["det_score"][rows])
    return FrameBoxes.pack(per_frame)


class SegmentEncoder:
    """The video encoder of one segment, configured as `VideoWriter` configures its output stream."""

    def __init__(self, task: SegmentTask, crf: int, label: Path) -> None:
        import av

        info, spec = task.info, encode_spec(task.fmt, crf)
        self.spec = spec
        self.label = label
        self.time_base = info.time_base
        self.packets: list[PacketData] = []
        ctx = cast("VideoCodecContext", av.CodecContext.create(spec.codec, "w"))
        # What `OutputContainer.add_stream` and `VideoWriter._add_video` set, in the same order.
        ctx.width, ctx.height, ctx.pix_fmt = info.width, info.height, spec.pix_fmt
        ctx.bit_rate, ctx.bit_rate_tolerance = 0, 128000
        ctx.framerate = info.rate
        ctx.time_base = info.time_base
        ctx.colorspace, ctx.color_primaries, ctx.color_trc = info.colour
        ctx.color_range = spec.color_range
        if _needs_global_header(task.fmt):
            ctx.flags |= av.codec.context.Flags.global_header
        ctx.options = dict(spec.options)
        self.ctx = ctx

    def write(self, planes: Planes, pts: int, duration: int) -> None:
        """Encode one picture at `pts`."""
        import av

        try:
            frame = av.VideoFrame.from_ndarray(planes.packed(), format="yuv420p")
            if self.spec.pix_fmt != "yuv420p":
                frame = frame.reformat(
                    format=self.spec.pix_fmt, src_color_range=1, dst_color_range=self.spec.color_range
                )
            frame.pts, frame.duration, frame.time_base = pts, duration, self.time_base
            self._keep(self.ctx.encode(frame))
        except (av.FFmpegError, ValueError) as exc:
            msg = f"{self.label}: cannot encode frame at pts {pts}: {exc}"
            raise MediaWriteError(msg) from exc

    def finish(self) -> bytes:
        """Flush the encoder; return its stream header (extradata)."""
        import av

        try:
            self._keep(self.ctx.encode(None))
        except (av.FFmpegError, ValueError) as exc:
            msg = f"{self.label}: cannot finish a segment: {exc}"
            raise MediaWriteError(msg) from exc
        return bytes(self.ctx.extradata or b"")

    def _keep(self, packets: list[Any]) -> None:
        for p in packets:
            if p.pts is None or p.dts is None:
                msg = f"{self.label}: the encoder gave a frame without timestamps"
                raise MediaWriteError(msg)
            self.packets.append((bytes(p), int(p.pts), int(p.dts), int(p.duration or 0), bool(p.is_keyframe)))


def _needs_global_header(fmt: str) -> bool:
    import av

    flags = int(av.format.ContainerFormat(MUXERS[fmt], "w").flags)
    return bool(flags & int(cast("Any", av.format.Flags.global_header).value))


def encode_segment(
    engine: Engine, source: Path, task: SegmentTask, boxes: dict[int, Boxes], label: Path
) -> EncodedSegment:
    """The encode pass: the segment's own frames, masked with `boxes` and the sidecar's add regions, encoded.

    Raises:
        BlurError: the frames cannot be read or encoded, or a sidecar is invalid.
    """
    start = time.perf_counter()
    seg, info, settings = task.segment, task.info, engine.settings
    corrections = load_corrections(source)
    corrections.check_fits(info.width, info.height, source)
    encoder = SegmentEncoder(task, settings.video_crf, label)
    timeline = Timeline(info)
    faces = written = 0
    for index, frame in enumerate(segment_frames(source, task, seg.start, seg.end, seg.encode_seek), seg.start):
        planes = to_planes(frame, info.quarter_turns, info.colour[0])
        if (planes.width, planes.height) != (info.width, info.height):
            msg = f"{source}: frame {index} changes size; videos that change size are not supported"
            raise MediaReadError(msg)
        pts, duration = timeline.place(frame)
        seconds = float((pts - task.first_pts) * info.time_base)
        add = corrections.at(seconds)[0] if corrections.add else None
        ellipse = corrections.ellipses_at(seconds) if add is not None and len(add) else None
        found = boxes.get(index)
        dets = Detections.empty() if found is None else Detections.from_arrays(found, np.ones(len(found), np.float32))
        if len(dets) or (add is not None and len(add)):
            planes = mask_frame(planes, dets, add, settings.mask, info.colour[0], ellipse)
        faces += len(dets)
        encoder.write(planes, pts, duration)
        written += 1
    extradata = encoder.finish()
    if written != seg.end - seg.start or len(encoder.packets) != written:
        msg = f"{source}: segment {seg.index} encoded {len(encoder.packets)} of {seg.end - seg.start} frames"
        raise MediaWriteError(msg)
    return EncodedSegment(
        seg.index, extradata, tuple(encoder.packets), written, faces, time.perf_counter() - start, worker_name()
    )
