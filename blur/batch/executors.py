"""Ways of running a batch: the `Executor` that takes `Job`s and returns `FileResult`s, and the
`Runner` that runs tasks on worker processes, each with its own `Engine` built once.

- `LocalExecutor`: the default, `blur.batch.pool.run_batch` (photos across a process pool, videos
  in this process, a long video's segments across worker processes).
- `blur.batch.cluster.DaskExecutor`: `--cluster`, every file and segment a task on Dask workers.

Both return the same results for the same jobs, so the CLI's progress, journal, report and exit
codes are those of a local run whichever one ran. A `Flow` is one file's work as tasks (a photo is
one task; a split video is many, in steps); `drive` runs flows on a runner as their tasks finish.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from blur.batch.pool import BatchOptions, OnFrames, OnResult, guarded, run_batch, worker_engine
from blur.config import Settings
from blur.engine import Engine
from blur.jobs import FileResult, Job

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class TaskFuture(Protocol[T_co]):
    """A task's pending result (a `concurrent.futures.Future` or a Dask future)."""

    def result(self) -> T_co: ...

    def done(self) -> bool: ...

    def cancel(self) -> Any: ...


class Runner(Protocol):
    """Runs `fn(engine, *args)` on a worker process that has its own engine."""

    @property
    def workers(self) -> int:
        """How many tasks can run at once."""
        ...

    def submit(self, fn: Callable[..., T], *args: Any) -> TaskFuture[T]:
        """Start `fn(engine, *args)` on some worker."""
        ...

    def wait(self, futures: Collection[TaskFuture[Any]]) -> set[TaskFuture[Any]]:
        """Block until at least one of `futures` is done; return those that are."""
        ...


class Executor(Protocol):
    """Runs a batch's jobs; returns one result per job, in the jobs' order."""

    def run(
        self, jobs: list[Job], on_result: OnResult | None = None, on_frames: OnFrames | None = None
    ) -> list[FileResult]:
        """Process `jobs`, calling `on_result` as each finishes and `on_frames` as videos progress."""
        ...


@dataclass
class LocalExecutor:
    """The default: this machine's process pool (`blur.batch.pool.run_batch`)."""

    settings: Settings
    options: BatchOptions
    engine: Engine | None = None

    def run(
        self, jobs: list[Job], on_result: OnResult | None = None, on_frames: OnFrames | None = None
    ) -> list[FileResult]:
        """Process `jobs` on this machine."""
        return run_batch(jobs, self.settings, self.options, on_result, on_frames, engine=self.engine)


def _with_engine(fn: Callable[..., T], *args: Any) -> T:
    return fn(worker_engine(), *args)


class ProcessRunner:
    """Worker processes on this machine (spawned; each builds its engine once)."""

    def __init__(self, settings: Settings, workers: int, threads: int) -> None:
        from blur.batch.pool import _init_worker  # noqa: PLC0415 - the pool's own initializer

        context = multiprocessing.get_context("spawn")
        self._workers = workers
        self._pool = ProcessPoolExecutor(workers, context, initializer=_init_worker, initargs=(settings, threads))

    @property
    def workers(self) -> int:
        """Worker processes."""
        return self._workers

    def submit(self, fn: Callable[..., T], *args: Any) -> TaskFuture[T]:
        """Run `fn(engine, *args)` in a worker process."""
        return self._pool.submit(_with_engine, fn, *args)

    def wait(self, futures: Collection[TaskFuture[Any]]) -> set[TaskFuture[Any]]:
        """Block until one of `futures` is done."""
        done, _ = wait(cast("Collection[Future[Any]]", futures), return_when=FIRST_COMPLETED)
        return set(done)

    def close(self) -> None:
        """Stop the workers (tasks not started are cancelled)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


class InlineRunner:
    """Runs each task at once in this process, with this process's engine (one worker)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def workers(self) -> int:
        """One."""
        return 1

    def submit(self, fn: Callable[..., T], *args: Any) -> TaskFuture[T]:
        """Run `fn(engine, *args)` now; its result or exception is in the returned future."""
        future: Future[T] = Future()
        try:
            future.set_result(fn(self.engine, *args))
        except Exception as exc:  # noqa: BLE001 - handed over in the future, as a worker would
            future.set_exception(exc)
        return future

    def wait(self, futures: Collection[TaskFuture[Any]]) -> set[TaskFuture[Any]]:
        """Every future is already done."""
        return set(futures)


class Flow(Protocol):
    """One file's work as tasks: started, then advanced as each of its tasks finishes."""

    result: FileResult | None

    def start(self, runner: Runner) -> list[TaskFuture[Any]]:
        """Submit the first tasks."""
        ...

    def advance(self, runner: Runner, future: TaskFuture[Any]) -> list[TaskFuture[Any]]:
        """Take a finished task's result; submit what it unblocks. Sets `result` once the file is done."""
        ...


def drive(runner: Runner, flows: Iterable[Flow], done: Callable[[Flow], None]) -> None:
    """Run `flows` on `runner` until each has a result; call `done` with each as it finishes."""
    pending: dict[TaskFuture[Any], Flow] = {}
    for flow in flows:
        for future in flow.start(runner):
            pending[future] = flow
        if flow.result is not None:
            done(flow)
    while pending:
        for future in runner.wait(list(pending)):
            flow = pending.pop(future)
            if flow.result is not None:
                continue  # a task of a file that already failed (cancelled or finishing late)
            for new in flow.advance(runner, future):
                pending[new] = flow
            if flow.result is not None:
                done(flow)


def job_task(engine: Engine, job: Job) -> FileResult:
    """One photo, or one video processed whole, on a worker."""
    return guarded(job, engine)
