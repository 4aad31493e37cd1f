"""What the CLI commands do once options are parsed: progress, messages, report, exit code."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from blur import __version__
from blur.batch import BatchOptions, run_batch
from blur.config import DetectorConfig, Settings
from blur.discover import Job, Plan, discover
from blur.errors import BlurError
from blur.media.kinds import Kind
from blur.pipeline import build_engine
from blur.report import FileResult, Status, summarise, write_report
from blur.textsafe import printable


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


def run_anonymize(
    paths: list[Path],
    output: Path,
    settings: Settings,
    *,
    report: Path | None,
    jobs: int,
    quiet: bool,
    console: Console,
) -> int:
    """Anonymize a batch; return the exit status (0 all ok, 1 any failure, 2 usage error)."""
    problem = _usage_problem(paths, output)
    if problem:
        console.print(f"[red]error:[/red] {_safe(problem)}")
        return 2
    start = time.perf_counter()
    try:
        engine = build_engine(settings)
    except (BlurError, ValueError) as exc:
        console.print(f"[red]error:[/red] cannot load the detector: {_safe(str(exc))}")
        return 1
    job_list = discover(paths, output)
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
    video_tasks: dict[Path, TaskID] = {}

    def on_result(result: FileResult) -> None:
        if result.status is Status.failed:
            progress.console.print(f"[red]failed:[/red] {_safe(result.source)}: {_safe(result.reason)}")
        if result.status is not Status.skipped:
            progress.advance(files_task)

    def on_frames(job: Job, done: int, total: int | None) -> None:
        task = video_tasks.get(job.source)
        if task is None:
            task = progress.add_task(f"  {_safe(job.source.name)} (frames)", total=total)
            video_tasks[job.source] = task
        progress.update(task, completed=done, total=total)

    with progress:
        files_task = progress.add_task("files", total=len(processed))
        results = run_batch(job_list, settings, BatchOptions(jobs=jobs), on_result, on_frames, engine=engine)
    summary = summarise(results, time.perf_counter() - start)
    if report is not None:
        write_report(report, results, summary, _meta(settings, engine.detector))
    skipped = [r for r in results if r.status is Status.skipped]
    for r in skipped:
        console.print(f"[dim]skipped:[/dim] {_safe(r.source)}: {_safe(r.reason)}")
    flagged = f", {summary.flagged_files} flagged by the second pass" if summary.flagged_files else ""
    console.print(
        f"{summary.ok} ok, {summary.failed} failed, {summary.skipped} skipped; "
        f"{summary.faces} faces masked{flagged}; {summary.seconds:.1f}s. Output: {_safe(str(output))}"
    )
    return 1 if summary.failed else 0


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
    }


def run_detect(paths: list[Path], cfg: DetectorConfig) -> tuple[int, dict[str, Any]]:
    """Detect faces in photos without writing images; return the exit status and a JSON payload."""
    from blur.media.image import read_photo  # noqa: PLC0415
    from blur.pipeline import build_engine as _build  # noqa: PLC0415

    engine = _build(Settings(detector=cfg, verify=False))
    files: list[dict[str, Any]] = []
    failed = False
    for job in discover(paths, Path(os.devnull) / "blur-detect-none"):
        item: dict[str, Any] = {"source": str(job.source), "status": "skipped", "reason": job.reason}
        if job.plan is Plan.process and job.kind is Kind.image:
            try:
                photo = read_photo(job.source, job.format)
                dets = engine.detector.detect(photo.rgb)
            except BlurError as exc:
                item.update(status="failed", reason=str(exc))
                failed = True
            else:
                h, w = photo.rgb.shape[:2]
                item.update(status="ok", reason="", width=w, height=h, faces=dets.to_list())
        elif job.plan is Plan.process:
            item["reason"] = "video: use `blur anonymize` (detection-only output covers photos)"
        elif job.plan is Plan.fail:
            item["status"] = "failed"
            failed = True
        files.append(item)
    payload = {
        "backend": cfg.backend,
        "runtime": getattr(engine.detector, "runtime", ""),
        "threshold": getattr(engine.detector, "threshold", cfg.threshold),
        "files": files,
    }
    return (1 if failed else 0), payload
