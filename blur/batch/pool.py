"""Run a whole batch: photos across a process pool, videos one at a time (a long one split into
segments across worker processes: `blur.batch.segmented`). Never prints."""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace

from blur.config import Settings
from blur.engine import Engine, build_engine
from blur.jobs import FileResult, Job, Plan, Status
from blur.media.kinds import Kind
from blur.photo.pipeline import process_photo
from blur.video.segments import SegmentOptions

OnResult = Callable[[FileResult], None]
OnFrames = Callable[[Job, int, int | None], None]
"""Called with (job, frames done, total frames or None) while a video is processed."""

_WORKER_ENGINE: Engine | None = None


@dataclass(frozen=True, slots=True)
class BatchOptions:
    """How the batch runs: worker processes for photos and video segments (0 = one per core), and
    when a video is split into segments."""

    jobs: int = 0
    segments: SegmentOptions = field(default_factory=SegmentOptions)


def not_processed(job: Job) -> FileResult:
    """The result of a job that is skipped or failed before it runs."""
    status = Status.skipped if job.plan is Plan.skip else Status.failed
    return FileResult(source=job.label, status=status, kind=job.kind.value, reason=job.reason)


def guarded(job: Job, engine: Engine, on_frames: OnFrames | None = None) -> FileResult:
    """Process one job (staged through a private folder when it is remote); an unexpected exception
    fails the file instead of the batch."""
    start = time.perf_counter()
    try:
        if job.remote is not None:
            from blur.batch.staging import run_staged  # noqa: PLC0415 - fsspec only for URLs

            return run_staged(job, lambda local: guarded(local, engine, on_frames))
        if job.kind is Kind.video:
            from blur.video.pipeline import process_video  # noqa: PLC0415 - PyAV only when needed

            return process_video(job, engine, on_frames)
        return process_photo(job, engine)
    except Exception as exc:  # noqa: BLE001 - fail closed on anything unforeseen
        if job.output is not None and job.remote is None:
            for folder in (job.output.parent, job.scratch):
                for partial in folder.glob(f".{job.output.stem}.*.blur-partial*") if folder else ():
                    partial.unlink(missing_ok=True)
        reason = (
            f"internal error ({type(exc).__name__}: {exc}); no output written. This is a bug in blur: please report it"
        )
        return FileResult(
            source=job.label,
            status=Status.failed,
            kind=job.kind.value,
            reason=reason,
            seconds=time.perf_counter() - start,
            traceback="".join(traceback.format_exception(exc)),
        )


def _init_worker(settings: Settings, threads: int) -> None:
    global _WORKER_ENGINE
    detector = replace(settings.detector, threads=threads)
    _WORKER_ENGINE = build_engine(replace(settings, detector=detector))


def worker_engine() -> Engine:
    """This worker process's engine (built by the pool's initializer)."""
    if _WORKER_ENGINE is None:  # pragma: no cover - initializer always runs first
        msg = "worker engine missing"
        raise RuntimeError(msg)
    return _WORKER_ENGINE


def _work(job: Job) -> FileResult:
    return guarded(job, worker_engine())


def run_batch(
    jobs: list[Job],
    settings: Settings,
    options: BatchOptions,
    on_result: OnResult | None = None,
    on_frames: OnFrames | None = None,
    engine: Engine | None = None,
) -> list[FileResult]:
    """Process every job and return results in input order.

    Photos run in `options.jobs` worker processes (each builds its detector once); videos run in
    this process, since their decode, detect and encode already overlap, except that a video long
    enough to be split (`options.segments`) has its segments run in worker processes.
    """
    emit = on_result or (lambda _r: None)
    results: dict[int, FileResult] = {}
    photos = [(i, j) for i, j in enumerate(jobs) if j.plan is Plan.process and j.kind is Kind.image]
    videos = [(i, j) for i, j in enumerate(jobs) if j.plan is Plan.process and j.kind is Kind.video]
    for i, job in enumerate(jobs):
        if job.plan is not Plan.process:
            results[i] = not_processed(job)
            emit(results[i])
    cores = os.cpu_count() or 1
    workers = min(options.jobs or cores, len(photos))
    if workers > 1:
        _run_pool(photos, settings, workers, max(1, cores // workers), results, emit)
    elif photos or videos:
        engine = engine or build_engine(settings)
        for i, job in photos:
            results[i] = guarded(job, engine)
            emit(results[i])
    if videos:
        from blur.batch.segmented import run_video  # noqa: PLC0415 - PyAV only when needed

        engine = engine or build_engine(settings)
        for i, job in videos:
            results[i] = run_video(job, engine, options, on_frames)
            emit(results[i])
    return [results[i] for i in range(len(jobs))]


def _run_pool(
    photos: list[tuple[int, Job]],
    settings: Settings,
    workers: int,
    threads: int,
    results: dict[int, FileResult],
    emit: OnResult,
) -> None:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, context, initializer=_init_worker, initargs=(settings, threads)) as pool:
        futures: dict[Future[FileResult], int] = {pool.submit(_work, job): i for i, job in photos}
        for future in as_completed(futures):
            i = futures[future]
            try:
                results[i] = future.result()
            except Exception as exc:  # noqa: BLE001 - a dead worker fails its file, not the batch
                job = photos[[k for k, _ in photos].index(i)][1]
                results[i] = FileResult(
                    source=job.label,
                    status=Status.failed,
                    kind="image",
                    reason=f"worker failed ({type(exc).__name__}: {exc}); no output written",
                )
            emit(results[i])
