"""A long video split into segments and run as tasks on any runner (local processes or Dask workers).

    plan ──> detect segment 0..n (overlaps included) ──> track the whole video here, in order ──>
    encode segment i once it is tracked and its neighbours' passes are in (the boxes' union) ──>
    join here, in order ──> publish

The detect and encode passes are `blur.video.segment_passes`; the plan and the union are
`blur.video.segments`; the join is `blur.video.join`. Encoded segments come back as results and wait
in a private folder until the join, so memory holds one segment at a time. The output is published
as a whole-file run publishes it (atomic rename, or one upload). If the frames a segment decodes are
not the ones its plan expects (`SegmentError`), the video is processed whole instead, with a note.
"""

from __future__ import annotations

import os
import pickle
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from blur.batch.executors import InlineRunner, ProcessRunner, Runner, TaskFuture, drive, job_task
from blur.batch.pool import BatchOptions, OnFrames, guarded
from blur.batch.staging import STAGED, private_folder, run_staged, stage_input, upload
from blur.engine import Engine
from blur.errors import BlurError, MediaWriteError
from blur.fsio import atomic_output
from blur.jobs import FileResult, Job, Remote, Status
from blur.video.join import join_segments
from blur.video.record import DetectionLog
from blur.video.segment_boxes import SegmentBoxes, WholeTracks, detection_log, union_boxes
from blur.video.segment_passes import EncodedSegment, detect_segment, encode_segment
from blur.video.segments import (
    Boxes,
    SegmentError,
    SegmentOptions,
    SegmentPlan,
    SegmentTask,
    neighbours,
    plan_segments,
)


def _relabelled(exc: BlurError, names: dict[str, str]) -> BlurError:
    text = _show_text(str(exc), names)
    return SegmentError(text) if isinstance(exc, SegmentError) else BlurError(text)


def detect_task(engine: Engine, job: Job, task: SegmentTask) -> SegmentBoxes:
    """A segment's detection pass on a worker (its input staged once per video and process)."""
    with STAGED.use(job) as (source, names):
        try:
            return detect_segment(engine, source, task)
        except BlurError as exc:
            raise _relabelled(exc, names) from None


def encode_task(engine: Engine, job: Job, task: SegmentTask, boxes: dict[int, Boxes]) -> EncodedSegment:
    """A segment's encode pass on a worker."""
    with STAGED.use(job) as (source, names):
        try:
            return encode_segment(engine, source, task, boxes, Path(job.output_label or job.label))
        except BlurError as exc:
            raise _relabelled(exc, names) from None


def video_task(engine: Engine, job: Job, options: SegmentOptions) -> FileResult | SegmentPlan:
    """On a worker: the video's segment plan, or, when it is not split, the video processed whole."""
    try:
        with STAGED.use(job) as (source, names):
            return _plan_or_whole(engine, job, options, source, names, None)
    except BlurError:
        return guarded(job, engine)  # it fails whole as well, with the usual message


def _plan_or_whole(
    engine: Engine,
    job: Job,
    options: SegmentOptions,
    source: Path,
    names: dict[str, str],
    on_frames: OnFrames | None,
) -> FileResult | SegmentPlan:
    """The plan of a video to split, or the video processed whole (with the reason it was not split)."""
    plan, why = plan_segments(source, job.format, engine.settings, options)
    if plan is not None:
        return plan
    if job.remote is not None and job.remote.source is not None:
        result = run_staged(job, lambda local: guarded(local, engine, on_frames), staged=(source, names))
    else:
        result = guarded(job, engine, on_frames)
    return replace(result, notes=(*result.notes, why)) if why else result


def _elapsed(start: float) -> float:
    return round(time.perf_counter() - start, 3)


class _Spool:
    """Encoded segments waiting in a private folder for the join (memory holds one at a time)."""

    def __init__(self) -> None:
        self.folder = private_folder()

    def keep(self, seg: EncodedSegment) -> None:
        with (self.folder / f"{seg.index:06d}.segment").open("xb") as fh:
            pickle.dump(seg, fh, protocol=pickle.HIGHEST_PROTOCOL)

    def segments(self, count: int) -> Iterator[EncodedSegment]:
        """The segments in order, each deleted once read."""
        for i in range(count):
            path = self.folder / f"{i:06d}.segment"
            with path.open("rb") as fh:
                seg = pickle.load(fh)  # written by this process, in its private folder
            path.unlink()
            yield seg

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _publish(flow: SplitVideo, spool: _Spool) -> dict[str, float]:
    """Join the spooled segments and publish the output as a whole-file run does; return the steps' times.

    Raises:
        BlurError: the join, its verification or the upload failed (nothing published).
    """
    job, times, start = flow.job, {}, time.perf_counter()
    label = Path(job.output_label or "")
    segments = spool.segments(len(flow.plan.segments))
    if job.remote is not None and job.remote.output is not None:
        local = spool.folder / "out" / label.name
        local.parent.mkdir()
        join_segments(flow.source, local, flow.plan, segments, flow.crf, label=label)
        times["join"] = _elapsed(start)
        uploaded = time.perf_counter()
        upload(local, job.remote.output)
        times["upload"] = _elapsed(uploaded)
    elif job.output is not None:
        with atomic_output(job.output, job.scratch) as tmp:
            join_segments(flow.source, tmp, flow.plan, segments, flow.crf, label=label)
            _save_log(flow, job.output)  # before the output gets its final name, as a whole-file run does
        times["join"] = _elapsed(start)
    return times


def _save_log(flow: SplitVideo, output: Path) -> None:
    """Record the video's detections and tracks for the review app (`job.tracks`), as a whole-file run does.

    Raises:
        MediaWriteError: the record cannot be written.
    """
    job = flow.job
    if job.tracks is None or flow.log is None:
        return
    try:
        flow.log.save(job.tracks, {"source": os.path.abspath(job.source), "output": os.path.abspath(output)})
    except OSError as exc:
        msg = f"{job.tracks}: cannot record the video's detections for the review: {exc.strerror or exc}"
        raise MediaWriteError(msg) from exc


@dataclass
class SplitVideo:
    """One split video's tasks, advanced step by step as they finish (a `Flow`).

    About 180 lines, over the usual 150: it is one state machine (detect every segment, track the
    whole video, encode every segment, join; or fall back to a whole-file run), and each step is a short
    method over the same few fields; the work itself lives in `blur.video.segments` and `segment_passes`.

    Attributes:
        job: the video as the batch knows it (its labels and output).
        task_job: the video as workers get it (absolute paths, or a local copy of a remote input).
        source: this process's local copy of the input (for the join's audio).
        names: local paths to show as the user's names in messages.
    """

    job: Job
    task_job: Job
    source: Path
    plan: SegmentPlan
    crf: int
    planned: float = 0.0
    on_frames: OnFrames | None = None
    names: dict[str, str] = field(default_factory=dict)
    result: FileResult | None = None
    _tasks: dict[Any, tuple[str, int]] = field(default_factory=dict)
    _boxes: dict[int, SegmentBoxes] = field(default_factory=dict)
    _encoding: set[int] = field(default_factory=set)
    _encoded: dict[int, tuple[int, int, float, str]] = field(default_factory=dict)
    _spool: _Spool | None = None
    _times: dict[str, float] = field(default_factory=dict)
    _start: float = 0.0
    _why: str = ""
    _tracks: WholeTracks | None = None
    log: DetectionLog | None = None
    """The video's record for the review app, made once every segment is detected."""

    def start(self, runner: Runner) -> list[TaskFuture[Any]]:
        """Submit every segment's detection pass."""
        self._start = time.perf_counter()
        self._spool = _Spool()
        self._tracks = WholeTracks(self.plan)
        return [self._submit(runner, "detect", i) for i in range(len(self.plan.segments))]

    def _submit(self, runner: Runner, step: str, i: int) -> TaskFuture[Any]:
        task = self.plan.task(i)
        future: TaskFuture[Any]
        if step == "detect":
            future = runner.submit(detect_task, self.task_job, task)
        elif step == "encode":
            assert self._tracks is not None
            passes = [self._boxes[j] for j in neighbours(self.plan, i)]
            boxes = union_boxes(task.segment, passes, self._tracks.take(task.segment))
            future = runner.submit(encode_task, self.task_job, task, boxes)
        else:
            future = runner.submit(job_task, self.task_job)
        self._tasks[future] = (step, i)
        return future

    def advance(self, runner: Runner, future: TaskFuture[Any]) -> list[TaskFuture[Any]]:
        """Take one finished task; submit the encode passes it unblocks; join when all are encoded."""
        if future not in self._tasks:
            return []  # a task of the split given up (cancelled, or finished before it could be)
        step, i = self._tasks.pop(future)
        try:
            value = future.result()
        except SegmentError as exc:
            return self._whole(runner, str(exc))
        except Exception as exc:  # noqa: BLE001 - a failed or lost task fails the file, not the batch
            self._fail(f"{_show(exc, self.names)}")
            return []
        if step == "whole":
            self._finish_whole(value)
            return []
        if step == "detect":
            assert self._tracks is not None
            self._boxes[i] = value
            self._tracks.add(value)
            self._times["detect"] = _elapsed(self._start)
            ready = [s.index for s in self.plan.segments if s.index not in self._encoding and self._ready(s.index)]
            self._encoding.update(ready)
            return [self._submit(runner, "encode", j) for j in ready]
        self._keep(value)
        if len(self._encoded) == len(self.plan.segments):
            self._times["encode"] = _elapsed(self._start)
            self._join()
        return []

    def _ready(self, i: int) -> bool:
        """Segment `i` can be encoded: its neighbours' passes are in, and the whole video is tracked past it."""
        assert self._tracks is not None
        seg = self.plan.segments[i]
        return self._tracks.final_until >= seg.end and all(j in self._boxes for j in neighbours(self.plan, i))

    def _keep(self, seg: EncodedSegment) -> None:
        assert self._spool is not None
        self._spool.keep(seg)
        self._encoded[seg.index] = (seg.frames, seg.faces, seg.seconds, seg.worker)
        if self.on_frames is not None:
            done = sum(frames for frames, _, _, _ in self._encoded.values())
            self.on_frames(self.job, done, len(self.plan.pts))

    def _join(self) -> None:
        assert self._spool is not None and self._tracks is not None
        self.log = detection_log(self.plan, list(self._boxes.values()), self._tracks)
        try:
            self._times.update(_publish(self, self._spool))
        except BlurError as exc:
            self._fail(f"{_show(exc, self.names)}; no output written")
            return
        self._succeed()

    def _succeed(self) -> None:
        detect = list(self._boxes.values())
        encoded = self._encoded.values()
        workers = {b.worker for b in detect} | {w for _, _, _, w in encoded}
        n = len(self.plan.segments)
        total = time.perf_counter() - self._start + self.planned
        note = f"split into {n} segments of about {self._length():.0f} s, run on {len(workers)} worker(s)"
        self.result = FileResult(
            source=self.job.label,
            status=Status.ok,
            output=self.job.output_label,
            kind="video",
            faces=sum(faces for _, faces, _, _ in encoded),
            seconds=total,
            frames=len(self.plan.pts),
            tracks=self._tracks.tracks if self._tracks is not None else 0,
            notes=(*self.plan.info.notes, note),
            detections=tuple(s for b in sorted(detect, key=lambda b: b.index) for s in b.samples),
            track_spans=_spans(self.log),
            segments={
                "segments": n,
                "workers": len(workers),
                "overlap_frames": self.plan.overlap,
                "seconds": {"plan": round(self.planned, 3), **self._times},
                "task_seconds": {
                    "detect": round(sum(b.seconds for b in detect), 3),
                    "encode": round(sum(s for _, _, s, _ in encoded), 3),
                },
            },
        )
        self._cleanup()

    def _length(self) -> float:
        seconds = float((self.plan.pts[-1] - self.plan.pts[0]) * self.plan.info.time_base)
        return seconds / len(self.plan.segments)

    def _whole(self, runner: Runner, why: str) -> list[TaskFuture[Any]]:
        """The frames were not the planned ones: cancel the segments and process the video whole."""
        if "whole" in self._times:
            return []
        for future in list(self._tasks):
            future.cancel()
        self._tasks.clear()
        self._times["whole"] = 0.0
        self._why = _show(SegmentError(why), self.names)
        return [self._submit(runner, "whole", 0)]

    def _finish_whole(self, result: FileResult) -> None:
        notes = (*(_show_text(n, self.names) for n in result.notes), f"not split ({self._why}); processed whole")
        self.result = replace(
            result,
            source=self.job.label,
            output=self.job.output_label if result.status is Status.ok else None,
            reason=_show_text(result.reason, self.names),
            notes=notes,
        )
        self._cleanup()

    def _fail(self, reason: str) -> None:
        for name in (self.job.label, self.job.output_label):
            if name and reason.startswith(f"{name}: "):
                reason = reason[len(name) + 2 :]  # the report names the file once
        for future in list(self._tasks):
            future.cancel()
        self._tasks.clear()
        self.result = FileResult(source=self.job.label, status=Status.failed, kind="video", reason=reason)
        self._cleanup()

    def _cleanup(self) -> None:
        if self._spool is not None:
            self._spool.remove()
            self._spool = None


def _spans(log: DetectionLog | None) -> tuple[dict[str, Any], ...]:
    if log is None:
        return ()
    times = np.asarray(log.times, np.float64)
    return tuple(span.to_dict(times) for span in log.spans())


def _show(exc: BaseException, names: dict[str, str]) -> str:
    return _show_text(str(exc), names)


def _show_text(text: str, names: dict[str, str]) -> str:
    for local, shown in sorted(names.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(local, shown)
    return text


def local_job(job: Job, source: Path) -> Job:
    """`job` for this machine's worker processes: the local copy of its input, its output as it is."""
    output = Remote(output=job.remote.output) if job.remote is not None and job.remote.output else None
    return replace(job, source=source, remote=output)


def run_video(job: Job, engine: Engine, options: BatchOptions, on_frames: OnFrames | None) -> FileResult:
    """One video on this machine: whole in this process, or split across worker processes when long enough."""
    segments = options.segments.for_workers(options.jobs or os.cpu_count() or 1)
    if not segments.split_after:
        return guarded(job, engine, on_frames)
    options = replace(options, segments=segments)
    start = time.perf_counter()
    folder = private_folder()
    try:
        try:
            source, names = stage_input(job, folder)
            planned = _plan_or_whole(engine, job, options.segments, source, names, on_frames)
        except BlurError:
            return guarded(job, engine, on_frames)  # fails whole too, with the usual message
        if isinstance(planned, FileResult):
            return planned
        return _run_split(job, engine, options, planned, source, {**names, str(source): job.label}, start, on_frames)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run_split(
    job: Job,
    engine: Engine,
    options: BatchOptions,
    plan: SegmentPlan,
    source: Path,
    names: dict[str, str],
    start: float,
    on_frames: OnFrames | None,
) -> FileResult:
    cores = os.cpu_count() or 1
    workers = max(1, min(options.jobs or cores, len(plan.segments)))
    threads = max(1, cores // workers)
    runner: Runner = InlineRunner(engine) if workers == 1 else ProcessRunner(engine.settings, workers, threads)
    planned = time.perf_counter() - start
    crf = engine.settings.video_crf
    flow = SplitVideo(job, local_job(job, source), source, plan, crf, planned, on_frames, names)
    try:
        drive(runner, [flow], lambda _flow: None)
    finally:
        if isinstance(runner, ProcessRunner):
            runner.close()
    assert flow.result is not None
    return flow.result
