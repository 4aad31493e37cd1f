"""What `blur anonymize` does once options are parsed: progress, messages, resume, report, exit code."""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from blur import __version__
from blur.batch.executors import Executor, LocalExecutor
from blur.batch.journal import BusyError, Journal, clean_partials, locked, merge, split_finished
from blur.batch.pool import BatchOptions
from blur.batch.record import BatchRecord, write_record
from blur.batch.report import summarise, write_report
from blur.batch.state import StateDir, clean_scratch, inside
from blur.batch.target import Target, discover_jobs, state_of, target
from blur.batch.workfiles import JOURNAL_NAME
from blur.config import Settings, settings_dict
from blur.engine import Engine, build_engine
from blur.errors import BlurError
from blur.jobs import FileResult, Job, Plan, Status
from blur.textsafe import printable
from blur.video.segments import SegmentOptions


def _usage_problem(paths: list[Path], output: Path) -> str | None:
    for path in paths:
        if not path.exists() and not path.is_symlink():
            return f"{path}: no such file or folder"
        if path.is_dir() and output.resolve() == path.resolve():
            return f"the output folder {output} is the input folder; choose another one"
        if path.is_dir():
            try:
                path.resolve().relative_to(output.resolve())
            except ValueError:
                continue
            return f"the input folder {path} lies inside the output folder {output}; choose another one"
    if output.exists() and not output.is_dir():
        return f"{output} exists and is not a folder"
    return None


def _safe(path: str) -> str:
    """Show a file name without letting control characters, raw bytes or markup reach the terminal."""
    return escape(printable(path))


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How `blur anonymize` runs besides its settings: workers, a cluster, split videos, resume, state."""

    jobs: int = 0
    cluster: str | None = None
    segments: SegmentOptions = field(default_factory=SegmentOptions)
    force: bool = False
    state_dir: Path | None = None


def _problem(where: Target, html: Path | None, originals: bool, report: Path | None, state: Path | None) -> str | None:
    if where.local:
        assert where.local_inputs is not None and where.local_output is not None
        out = where.local_output
        return (
            _usage_problem(where.local_inputs, out)
            or _html_problem(html, where.local_inputs)
            or _inside_output(out, report, html, state)
        )
    if html is not None and where.local_output is None:
        return "--html needs a local output folder (the review page reads the outputs)"
    if originals and where.local_inputs is None:
        return "--html-with-originals needs local inputs (the review page reads the originals)"
    from blur.batch.remote import usage_problem  # noqa: PLC0415

    inside_out = _inside_output(where.local_output, report, html, state) if where.local_output else None
    return usage_problem(where.inputs, where.output) or inside_out or _html_problem(html, [])


def run_anonymize(
    paths: Sequence[Path | str],
    output: Path | str,
    settings: Settings,
    *,
    report: Path | None,
    quiet: bool,
    console: Console,
    jobs: int = 0,
    html: Path | None = None,
    html_with_originals: bool = False,
    force: bool = False,
    state_dir: Path | None = None,
    run: RunOptions | None = None,
) -> int:
    """Anonymize a batch; return the exit status (0 all ok, 1 any failure, 2 usage error).

    Inputs and the output may be local paths or URLs (object storage). Outputs already completed by
    an interrupted earlier run are verified against the journal and kept (unless `force`); temporary
    files a killed run left behind are removed first. Working files (journal, batch record,
    temporary files) go to the state folder (`state_dir`, or the user state directory), never into
    the output. With `run.cluster` the files are processed on a Dask cluster, with the same results,
    journal and report.
    """
    run = run or RunOptions(jobs=jobs, force=force, state_dir=state_dir)
    try:
        where = target(paths, output)
        problem = _problem(where, html, html_with_originals, report, run.state_dir)
    except BlurError as exc:
        problem = str(exc)
    if problem:
        console.print(f"[red]error:[/red] {_safe(problem)}")
        return 2
    start = time.perf_counter()
    try:
        state = state_of(where, run.state_dir)
        engine = build_engine(settings)
        job_list = discover_jobs(where, state)
    except (BlurError, ValueError) as exc:
        console.print(f"[red]error:[/red] cannot start: {_safe(str(exc))}")
        return 1
    meta = {**_meta(settings, engine.detector), **({"cluster": run.cluster} if run.cluster else {})}
    try:
        with locked(where.local_output or state.path), _executor(settings, engine, run) as executor:
            if where.local_output is not None:
                _clean(where.local_output, state, console)
            results, digests = _resumable(
                job_list, where, state, settings, executor, quiet=quiet, console=console, force=run.force
            )
            if where.local_output is not None:
                record = _record(
                    where.local_output, settings, results, report, html, html_with_originals, meta, digests
                )
                _write_record(state, record, console)
    except (BusyError, OSError, BlurError) as exc:
        console.print(f"[red]error:[/red] {_safe(str(exc))}")
        return 1
    summary = summarise(results, time.perf_counter() - start)
    written = _write_report(report, results, summary, meta, console)
    if html is not None:
        written = _write_review(html, results, settings, html_with_originals, console) and written
    _print_summary(results, summary, where.output, console)
    return 1 if summary.failed or not written else 0


@contextlib.contextmanager
def _executor(settings: Settings, engine: Engine, run: RunOptions) -> Iterator[Executor]:
    """This machine's pool, or a Dask cluster (its module, and Dask, are imported only then)."""
    options = BatchOptions(jobs=run.jobs, segments=run.segments)
    if run.cluster is None:
        yield LocalExecutor(settings, options, engine)
        return
    try:
        from blur.batch.cluster import DaskExecutor  # noqa: PLC0415 - Dask only with --cluster
    except ImportError as exc:
        msg = f'--cluster needs Dask: pip install "blur[cluster]" ({exc})'
        raise BlurError(msg) from exc
    with DaskExecutor(run.cluster, settings, options) as executor:
        yield executor


def _inside_output(output: Path, report: Path | None, html: Path | None, state: Path | None) -> str | None:
    """Refuse working files asked for inside the output folder: it must stay publishable as it is."""
    for option, path in (("--report", report), ("--html", html), ("--state", state)):
        if path is not None and inside(path, output):
            return (
                f"{option} {path} lies inside the output folder {output}; it records where the faces are and "
                "would be published with it: put it elsewhere"
            )
    return None


def _clean(output: Path, state: StateDir, console: Console) -> None:
    """Remove what a killed or older run left: temporary files, and an older blur's journal in the output folder."""
    removed = clean_partials(output) + clean_scratch(state)
    if removed:
        console.print(f"[dim]removed {len(removed)} unfinished temporary file(s) left by an interrupted run[/dim]")
    legacy = output / JOURNAL_NAME
    if legacy.exists() or legacy.is_symlink():
        legacy.unlink()
        console.print(
            "[dim]removed the resume journal an older blur left in the output folder "
            f"(working files now live in {_safe(str(state.path))})[/dim]"
        )


def _absolute(path: Path | None) -> Path | None:
    return None if path is None else Path(os.path.abspath(path))


def _record(
    output: Path,
    settings: Settings,
    results: list[FileResult],
    report: Path | None,
    html: Path | None,
    originals: bool,
    meta: dict[str, Any],
    digests: dict[str, str],
) -> BatchRecord:
    """The batch record: results as in the report, with the folder they are relative to (`blur review`
    may run from another folder), and the other paths absolute."""
    return BatchRecord(
        Path(os.path.abspath(output)),
        settings,
        tuple(results),
        _absolute(report),
        _absolute(html),
        originals,
        meta,
        {os.path.abspath(k): v for k, v in digests.items()},
        Path.cwd(),
    )


def _write_record(state: StateDir, record: BatchRecord, console: Console) -> None:
    try:
        write_record(state.record, record)
    except OSError as exc:
        console.print(
            f"[yellow]warning:[/yellow] cannot record the batch for `blur review` in {_safe(str(state.path))}: "
            f"{_safe(str(exc))}"
        )


def _print_summary(results: list[FileResult], summary: Any, output: str, console: Console) -> None:
    for r in results:
        if r.status is Status.skipped:
            console.print(f"[dim]skipped:[/dim] {_safe(r.source)}: {_safe(r.reason)}")
        elif any(d.get("kept") for d in r.detections):
            console.print(f"[yellow]note:[/yellow] {_safe(r.source)}: faces left visible by keep regions (see report)")
    flagged = f", {summary.flagged_files} flagged by the second pass" if summary.flagged_files else ""
    console.print(
        f"{summary.ok} ok, {summary.failed} failed, {summary.skipped} skipped; "
        f"{summary.faces} faces masked{flagged}; {summary.seconds:.1f}s. Output: {_safe(output)}"
    )


def _write_report(
    report: Path | None, results: list[FileResult], summary: Any, meta: dict[str, Any], console: Console
) -> bool:
    if report is None:
        return True
    try:
        write_report(report, results, summary, meta)
    except OSError as exc:
        console.print(f"[red]error:[/red] cannot write the report {_safe(str(report))}: {_safe(str(exc))}")
        return False
    return True


def _resumable(
    job_list: list[Job],
    where: Target,
    state: StateDir,
    settings: Settings,
    executor: Executor,
    *,
    quiet: bool,
    console: Console,
    force: bool,
) -> tuple[list[FileResult], dict[str, str]]:
    """Skip verified finished outputs, run the rest, keep the journal (in the state folder).

    Returns:
        Every file's result, and the SHA-256 of each source whose output was written.
    """
    journal = Journal(where.local_output or state.path, settings, state.journal, fresh=force)
    pending, done = split_finished(job_list, journal)
    if done:
        console.print(
            f"[dim]resuming: {len(done)} output(s) already complete and verified; use --force to redo them[/dim]"
        )
    by_source = {j.label: j for j in pending}
    warned: list[str] = []

    def record(result: FileResult) -> None:
        job = by_source.get(result.source)
        if job is None or result.status is not Status.ok:
            return
        try:
            journal.record(job, result)
        except (OSError, BlurError) as exc:
            if not warned:
                warned.append(str(exc))
                console.print(f"[yellow]warning:[/yellow] cannot update the resume journal: {_safe(str(exc))}")

    ran = _run_with_progress(pending, executor, quiet=quiet, console=console, record=record)
    if where.local_output is not None:
        clean_partials(where.local_output)  # a worker killed mid-file may have left its temporary file
        clean_scratch(state)
    results = merge(job_list, done, ran)
    if all(r.status is not Status.failed for r in results):
        journal.remove()
    return results, journal.source_digests()


def _run_with_progress(
    job_list: list[Job],
    executor: Executor,
    *,
    quiet: bool,
    console: Console,
    record: Callable[[FileResult], None],
) -> list[FileResult]:
    processed = [j for j in job_list if j.plan is Plan.process]
    show = console.is_terminal and not quiet
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not show,
        transient=True,
    )
    video_tasks: dict[str, TaskID] = {}

    def on_result(result: FileResult) -> None:
        record(result)
        if result.status is Status.failed:
            progress.console.print(f"[red]failed:[/red] {_safe(result.source)}: {_safe(result.reason)}")
        if result.status is not Status.skipped:
            progress.advance(files_task)

    def on_frames(job: Job, done: int, total: int | None) -> None:
        task = video_tasks.get(job.label)
        if task is None:
            name = job.label.rstrip("/").rsplit("/", 1)[-1]
            task = progress.add_task(f"  {_safe(name)} (frames)", total=total)
            video_tasks[job.label] = task
        progress.update(task, completed=done, total=total)

    with progress:
        files_task = progress.add_task("files", total=len(processed))
        return executor.run(job_list, on_result, on_frames)


def _html_problem(html: Path | None, paths: list[Path]) -> str | None:
    if html is None:
        return None
    if html.suffix.lower() not in (".html", ".htm"):
        return f"--html {html}: the review page must end in .html"
    if html.exists():
        for path in paths:
            inputs = [path] if not path.is_dir() else []
            if any(os.path.samefile(html, p) for p in inputs if p.exists()):
                return f"--html {html} is an input file; choose another name"
    return None


def _write_review(html: Path, results: list[FileResult], settings: Settings, originals: bool, console: Console) -> bool:
    from blur.review.page import ReviewOptions, write_review  # noqa: PLC0415 - only when a page is asked for

    if originals:
        console.print(
            "[bold red]warning:[/bold red] --html-with-originals puts UNMASKED faces into "
            f"{_safe(str(html))}: keep it on this machine, never publish or share it"
        )
    try:
        write_review(html, results, ReviewOptions(mask=settings.mask, with_originals=originals))
    except (OSError, BlurError) as exc:
        console.print(f"[red]error:[/red] cannot write the review page {_safe(str(html))}: {_safe(str(exc))}")
        return False
    console.print(f"review page: {_safe(str(html))} (for review only, not for publication)")
    return True


def _meta(settings: Settings, detector: Any) -> dict[str, Any]:
    return {
        "blur_version": __version__,
        "backend": settings.detector.backend,
        "runtime": getattr(detector, "runtime", ""),
        "mode": settings.mask.mode.value,
        "mask_scale": settings.mask.scale,
        "multiscale": settings.detector.multiscale,
        "verify": settings.verify,
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores",
        "settings": settings_dict(settings),
    }
