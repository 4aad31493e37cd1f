"""`--cluster`: the batch as tasks on a Dask cluster (an existing scheduler, or a `LocalCluster`).

Every photo, every video and every segment of a long video is a task. Each worker process loads and
checks the model once (`BlurPlugin`) and refuses to work when its blur version or model differs
from this client's. The client keeps everything a local run keeps: it discovers the files, keeps
the journal, shows progress, joins split videos and writes the report; workers read inputs and
write outputs themselves (a shared folder reached under the same path, or object storage).

A worker that dies mid-file is replaced by its nanny and the scheduler runs its task again
elsewhere; outputs are still written under a temporary name and renamed, or uploaded in one piece,
so a killed attempt leaves no partial output under the final name, and the batch sweeps any
temporary file it left. Dask runs pickled code: whoever can reach the scheduler can run code on
every worker, so a scheduler must only listen on a private network, with TLS (docs/cluster.md).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from distributed import Client, LocalCluster
from distributed import wait as dask_wait

from blur.batch.cluster_workers import PLUGIN_NAME, BlurPlugin, ClusterError, Fingerprint, fingerprint, on_worker
from blur.batch.executors import Runner, TaskFuture, drive, job_task
from blur.batch.pool import BatchOptions, OnFrames, OnResult, not_processed
from blur.batch.segmented import SplitVideo, video_task
from blur.batch.staging import private_folder, stage_input
from blur.config import Settings
from blur.errors import BlurError, reason_of
from blur.jobs import FileResult, Job, Plan, Status
from blur.media.kinds import Kind
from blur.video.segments import SegmentPlan

if TYPE_CHECKING:
    from collections.abc import Callable, Collection


T = TypeVar("T")

LOCAL = "local"
"""The `--cluster` value that starts a `LocalCluster` on this machine."""


class DaskRunner:
    """Tasks on a Dask cluster."""

    def __init__(self, client: Client, retries: int = 1) -> None:
        self.client = client
        self.retries = retries

    @property
    def workers(self) -> int:
        """Threads across the cluster's workers."""
        info = self.client.scheduler_info(n_workers=-1)
        return sum(int(w.get("nthreads", 1)) for w in info.get("workers", {}).values()) or 1

    def submit(self, fn: Callable[..., T], *args: Any) -> TaskFuture[T]:
        """Run `fn(engine, *args)` on some worker (again elsewhere if that worker dies)."""
        future: TaskFuture[T] = self.client.submit(on_worker, fn, *args, pure=False, retries=self.retries)
        return future

    def wait(self, futures: Collection[TaskFuture[Any]]) -> set[TaskFuture[Any]]:
        """Block until one of `futures` is done."""
        done, _ = dask_wait(list(futures), return_when="FIRST_COMPLETED")
        return set(done)


def _failed(job: Job, exc: BaseException) -> FileResult:
    if isinstance(exc, BlurError):
        reason = f"{reason_of(exc, job.label, job.output_label)}; no output written"
    else:
        reason = f"task failed on the cluster ({type(exc).__name__}: {exc}); no output written"
    return FileResult(source=job.label, status=Status.failed, kind=job.kind.value, reason=reason)


@dataclass
class _OneTask:
    """A photo (or a video processed whole): one task."""

    job: Job
    task_job: Job
    result: FileResult | None = None

    def start(self, runner: Runner) -> list[TaskFuture[Any]]:
        return [runner.submit(job_task, self.task_job)]

    def advance(self, runner: Runner, future: TaskFuture[Any]) -> list[TaskFuture[Any]]:
        try:
            self.result = future.result()
        except Exception as exc:  # noqa: BLE001 - a lost or failed task fails its file, not the batch
            self.result = _failed(self.job, exc)
        return []


@dataclass
class _VideoFlow:
    """A video: planned on a worker, then processed whole there or split into segment tasks."""

    job: Job
    task_job: Job
    options: BatchOptions
    crf: int
    on_frames: OnFrames | None
    result: FileResult | None = None
    split: SplitVideo | None = None
    folder: Path | None = None
    _asked: float = 0.0
    _names: dict[str, str] = field(default_factory=dict)

    def start(self, runner: Runner) -> list[TaskFuture[Any]]:
        self._asked = time.perf_counter()
        return [runner.submit(video_task, self.task_job, self.options.segments)]

    def advance(self, runner: Runner, future: TaskFuture[Any]) -> list[TaskFuture[Any]]:
        if self.split is not None:
            new = self.split.advance(runner, future)
            self.result = self.split.result
            if self.result is not None:
                self._cleanup()
            return new
        try:
            value = future.result()
        except Exception as exc:  # noqa: BLE001 - a lost or failed task fails its file, not the batch
            self.result = _failed(self.job, exc)
            return []
        if isinstance(value, FileResult):
            self.result = value
            return []
        if not isinstance(value, SegmentPlan):  # pragma: no cover - video_task returns one of the two
            self.result = _failed(self.job, TypeError(type(value).__name__))
            return []
        try:
            source = self._local_source()
        except BlurError as exc:
            self.result = _failed(self.job, exc)
            return []
        planned = time.perf_counter() - self._asked
        self.split = SplitVideo(self.job, self.task_job, source, value, self.crf, planned, self.on_frames, self._names)
        return self.split.start(runner)

    def _local_source(self) -> Path:
        """This client's copy of the input, for the join's audio (a remote input is downloaded here too)."""
        remote = self.task_job.remote
        if remote is None or remote.source is None:
            self._names = {str(self.task_job.source): self.job.label}
            return self.task_job.source
        self.folder = private_folder()
        source, names = stage_input(self.task_job, self.folder)
        self._names = names
        return source

    def _cleanup(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


def _absolute(job: Job, here: bool) -> tuple[Job, dict[str, str]]:
    """`job` with absolute local paths (workers may run elsewhere), and how to show them as the user gave them.

    Workers on other machines (`here` False) get no detection record path: it names this machine's
    state folder (a split video's record is written here by the client)."""
    names: dict[str, str] = {}
    source, output = job.source, job.output
    if job.remote is None or job.remote.source is None:
        source = Path(os.path.abspath(job.source))
        names[str(source)] = str(job.source)
    if output is not None and (job.remote is None or job.remote.output is None):
        output = Path(os.path.abspath(output))
        names[str(output)] = str(job.output)
    tracks = job.tracks if here else None
    moved = replace(job, source=source, output=output, tracks=tracks)
    return moved, {k: v for k, v in names.items() if k != v}


def _as_given(result: FileResult, job: Job, names: dict[str, str]) -> FileResult:
    def swap(text: str) -> str:
        for local, shown in sorted(names.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(local, shown)
        return text

    return replace(
        result,
        source=job.label,
        output=job.output_label if result.status is Status.ok else None,
        reason=swap(result.reason),
        notes=tuple(swap(n) for n in result.notes),
    )


def _visible(result: FileResult, job: Job) -> FileResult:
    """Fail a file whose local output a worker wrote where this client cannot see it (no shared folder)."""
    local = job.output is not None and (job.remote is None or job.remote.output is None)
    if result.status is not Status.ok or not local or os.path.exists(os.path.abspath(str(job.output))):
        return result
    reason = (
        f"a worker reported {job.output} written, but it is not there on this machine; "
        "workers must reach the output folder under the same path (a shared folder), or use an object-store URL"
    )
    return replace(result, status=Status.failed, output=None, reason=reason)


class DaskExecutor:
    """Runs a batch on a Dask cluster: `address` of a scheduler (`tcp://HOST:8786`) or `"local"`.

    Use as a context manager: entering connects (or starts the `LocalCluster`) and registers the
    worker plugin, which raises `ClusterError` when a worker differs from this client.
    """

    def __init__(
        self,
        address: str,
        settings: Settings,
        options: BatchOptions,
        *,
        expected: Fingerprint | None = None,
        retries: int = 1,
        timeout: float = 30.0,
    ) -> None:
        self.address = address
        self.settings = settings
        self.options = options
        self.expected = expected
        self.retries = retries
        self.timeout = timeout
        self.client: Client | None = None
        self.cluster: LocalCluster | None = None

    def __enter__(self) -> DaskExecutor:
        expected = self.expected or fingerprint(self.settings)
        threads = self.settings.detector.threads
        try:
            if self.address == LOCAL:
                cores = os.cpu_count() or 1
                workers = self.options.jobs or cores
                threads = threads or max(1, cores // workers)
                self.cluster = LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                )
                self.client = Client(self.cluster, timeout=self.timeout)
            else:
                self.client = Client(self.address, timeout=self.timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            self.close()
            msg = f"cannot reach the Dask scheduler at {self.address}: {exc}"
            raise ClusterError(msg) from exc
        try:
            self.client.register_plugin(BlurPlugin(self.settings, expected, threads), name=PLUGIN_NAME)
        except ClusterError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            msg = f"the cluster's workers could not load blur's model: {type(exc).__name__}: {exc}"
            raise ClusterError(msg) from exc
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Disconnect (and stop a `LocalCluster` this executor started)."""
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None

    @property
    def scheduler(self) -> str:
        """The scheduler's address."""
        return "" if self.client is None else str(getattr(self.client.scheduler, "address", ""))

    def run(
        self, jobs: list[Job], on_result: OnResult | None = None, on_frames: OnFrames | None = None
    ) -> list[FileResult]:
        """Process `jobs` on the cluster; results in the jobs' order."""
        if self.client is None:
            msg = "DaskExecutor.run needs `with DaskExecutor(...)`"
            raise RuntimeError(msg)
        emit = on_result or (lambda _r: None)
        runner = DaskRunner(self.client, self.retries)
        options = replace(self.options, segments=self.options.segments.for_workers(runner.workers))
        results: dict[int, FileResult] = {}
        flows: list[Any] = []
        where: dict[int, tuple[int, Job, dict[str, str]]] = {}
        for i, job in enumerate(jobs):
            if job.plan is not Plan.process:
                results[i] = not_processed(job)
                emit(results[i])
                continue
            task_job, names = _absolute(job, self.address == LOCAL)
            flow: Any
            if job.kind is Kind.video:
                flow = _VideoFlow(job, task_job, options, self.settings.video_crf, on_frames)
            else:
                flow = _OneTask(job, task_job)
            where[id(flow)] = (i, job, names)
            flows.append(flow)

        def done(flow: Any) -> None:
            i, job, names = where[id(flow)]
            results[i] = _visible(_as_given(flow.result, job, names), job)
            emit(results[i])

        drive(runner, flows, done)
        return [results[i] for i in range(len(jobs))]
