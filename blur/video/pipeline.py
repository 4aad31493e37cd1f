"""Anonymize one video: decode, detect on every frame, track, mask, encode, in overlapping threads.

The pipeline's steps, each in its own module of `blur.video`:

- `memory`: refuse, from the header, a video whose frames would not fit in memory;
- `prepare` (decode thread): upright 4:2:0 planes, timestamps, the detector's copies, scene cuts;
- `detection` and `schedule`: the coarse pass on every frame, fine passes on some, focused windows
  around small faces, and a second look at weak small faces;
- `tracking`: detections become tracks, masked across gaps and a little before and after;
- `masking`: each frame's boxes painted into its planes;
- `run`: the threads and the lookahead window that hold it together; `blur.media.video_write`
  encodes, muxes and verifies.

Any failure (decode error, truncated input, encoder error, frame count mismatch, failed
verification) raises, so `atomic_output` deletes the partial file and nothing is published.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from blur.corrections import load_corrections
from blur.errors import BlurError, MediaReadError, MediaWriteError, reason_of
from blur.fsio import atomic_output
from blur.jobs import FileResult, Job, Status
from blur.media.video_read import (
    AudioChunk,
    AudioMode,
    audio_stream,
    declared_picture,
    decode_frames,
    open_input,
    probe,
)
from blur.media.video_write import OutputPlan, VideoWriter, choose_audio, encode_spec, verify_output
from blur.video.memory import check_memory
from blur.video.options import VideoOptions
from blur.video.record import DetectionLog, VideoRecord
from blur.video.run import FrameSink, Progress, Run
from blur.video.threads import Worker

if TYPE_CHECKING:
    from av.video.frame import VideoFrame

    from blur.engine import Engine


@dataclass(frozen=True, slots=True)
class VideoStats:
    """What one processed video came to (`peak_window`: most frames held in the lookahead window at once)."""

    frames: int
    faces: int
    tracks: int
    audio: AudioMode
    notes: tuple[str, ...]
    peak_window: int = 0
    samples: tuple[dict[str, Any], ...] = ()
    """A few frames per track (and of kept and added regions) with their boxes, for the review page."""
    log: DetectionLog | None = None
    """Every frame's detections and track boxes, for the review app's timeline and re-renders."""


def _first_frame(
    items: Iterator[VideoFrame | AudioChunk], source: Path
) -> tuple[VideoFrame, list[VideoFrame | AudioChunk]]:
    """Read up to the first video frame; return it and everything read so far (in order)."""
    read: list[VideoFrame | AudioChunk] = []
    for item in items:
        read.append(item)
        if not isinstance(item, AudioChunk):
            return item, read
    msg = f"{source}: no video frame could be decoded"
    raise MediaReadError(msg)


def anonymize_video(
    source: Path,
    dest: Path,
    fmt: str,
    engine: Engine,
    options: VideoOptions | None = None,
    progress: Progress | None = None,
    *,
    label: Path | None = None,
    replay: VideoRecord | None = None,
) -> VideoStats:
    """Write an anonymized copy of `source` (container `fmt`) to `dest`.

    `dest` is written in place: callers wrap it in `atomic_output`. `label` names the output in errors.
    `replay`: re-render with the detections of this record (no detection run).

    Raises:
        BlurError: the input cannot be read completely, the output cannot be written, or the
            written file does not verify.
    """
    options = options or VideoOptions()
    label = label or dest
    settings = engine.settings
    with open_input(source, fmt) as container:
        width, height, rate = declared_picture(source, container)
        if rate is not None:
            check_memory(source, width, height, float(rate), options)
        mode = choose_audio(fmt, audio_stream(container), settings.keep_audio, source)
        items = decode_frames(source, container, mode)
        first, read = _first_frame(items, source)
        info = probe(source, container, first)
        check_memory(source, info.width, info.height, float(info.rate), options)
        corrections = load_corrections(source)
        corrections.check_fits(info.width, info.height, source)
        plan = OutputPlan(fmt, info, encode_spec(fmt, settings.video_crf), mode, audio_stream(container))
        writer = VideoWriter(dest, plan, label=label)
        run = Run(source, info, items, engine, options, corrections, replay)
        written = _drive(run, writer, read, progress)
    if replay is not None and written != replay.frames:
        msg = f"{source}: has {written} frames, {replay.frames} when it was anonymized; the source changed"
        raise MediaReadError(msg)
    verify_output(dest, fmt, frames=written, audio=mode != "none", label=label)
    notes = list(info.notes)
    if run.prepare.timeline.adjusted:
        notes.append(f"{run.prepare.timeline.adjusted} frame timestamps were missing or out of order and were adjusted")
    if mode == "encode":
        notes.append("audio re-encoded: the container cannot hold the original codec")
    return VideoStats(
        written,
        run.faces,
        run.tracker.total_tracks,
        mode,
        tuple(notes),
        run.peak_window,
        tuple(run.samples.picks()),
        run.log,
    )


def run_frames(run: Run, sink: FrameSink, progress: Progress | None = None) -> int:
    """Run `run` over the frames of its own iterator into `sink`; return the frames written.

    Raises:
        BlurError: as `anonymize_video`; nothing usable is left in `sink`.
    """
    return _drive(run, sink, [], progress)


def _drive(run: Run, writer: FrameSink, read: list[VideoFrame | AudioChunk], progress: Progress | None) -> int:
    """Run the pipeline's threads to completion; return the frames written, or raise and leave nothing usable.

    A run that ends early for any reason writes fewer frames than it decoded and is refused below.
    """
    workers = [Worker("blur-decode", lambda: run.decode_loop(read))]
    if run.parallel:
        workers.append(Worker("blur-detect", run.detect_loop))
    encoder = Worker("blur-encode", lambda: run.encode_loop(writer))
    for worker in [*workers, encoder]:
        worker.start()
    try:
        run.main_loop(encoder, progress)
        encoder.join()
        if encoder.error is not None:
            raise encoder.error
    except BaseException:
        run.stop.set()
        for worker in [*workers, encoder]:
            worker.join()
        run.detection.shutdown(cancel=True)
        writer.abort()
        raise
    for worker in workers:
        worker.join()
    run.detection.shutdown()
    decoded = run.prepare.count
    if writer.frames_written != decoded or run.emitted != decoded:
        msg = f"{run.source}: decoded {decoded} frames but wrote {writer.frames_written}; output discarded"
        raise MediaWriteError(msg)
    return decoded


def _save_log(job: Job, log: DetectionLog, output: Path) -> None:
    """Record the run's detections and tracks before the output gets its final name (so an output
    never exists without the record the review needs).

    Raises:
        MediaWriteError: the record cannot be written.
    """
    if job.tracks is None:
        return
    try:
        log.save(job.tracks, {"source": os.path.abspath(job.source), "output": os.path.abspath(output)})
    except OSError as exc:
        msg = f"{job.tracks}: cannot record the video's detections for the review: {exc.strerror or exc}"
        raise MediaWriteError(msg) from exc


def process_video(
    job: Job,
    engine: Engine,
    on_frames: Callable[[Job, int, int | None], None] | None = None,
    replay: VideoRecord | None = None,
) -> FileResult:
    """Anonymize one video job; any failure leaves no output under the final name.

    `replay`: re-render with these recorded detections (no detection run). The run's detections and
    tracks are recorded to `job.tracks` when set.

    Returns:
        A `FileResult` with frames written, face detections masked over all frames and tracks.
    """
    start = time.perf_counter()
    base = FileResult(source=str(job.source), status=Status.failed, kind="video")
    if job.output is None:
        return replace(base, reason="no output path")
    output = job.output
    progress: Progress | None = None
    if on_frames is not None:
        callback = on_frames

        def progress(done: int, total: int | None) -> None:
            callback(job, done, total)

    try:
        with atomic_output(output, job.scratch) as tmp:
            stats = anonymize_video(job.source, tmp, job.format, engine, None, progress, label=output, replay=replay)
            if job.tracks is not None and stats.log is not None:
                _save_log(job, stats.log, output)
    except BlurError as exc:
        reason = reason_of(exc, job.source, output)
        return replace(base, reason=f"{reason}; no output written", seconds=time.perf_counter() - start)
    return replace(
        base,
        status=Status.ok,
        output=str(output),
        faces=stats.faces,
        frames=stats.frames,
        tracks=stats.tracks,
        notes=stats.notes,
        detections=stats.samples,
        track_spans=_spans(stats.log),
        seconds=time.perf_counter() - start,
    )


def _spans(log: DetectionLog | None) -> tuple[dict[str, Any], ...]:
    if log is None:
        return ()
    times = np.asarray(log.times, np.float64)
    return tuple(span.to_dict(times) for span in log.spans())
