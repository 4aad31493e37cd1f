"""Walk the inputs, decide what each file is, and where its output goes.

Rules: folders are walked recursively without following symbolic links; the output folder is never
read as input; an output that would land on an input file is refused; two inputs mapping to one
output are both named in the error.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from blur.batch.workfiles import is_sidecar
from blur.jobs import Job, Plan
from blur.media.kinds import Kind, Sniffed, extension_kind, formats_agree, sniff


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def _classify(source: Path) -> tuple[Plan, Sniffed, str]:
    """Decide from extension and content whether a regular file is processed, skipped or failed."""
    claimed = extension_kind(source)
    try:
        actual = sniff(source)
    except OSError as exc:
        return Plan.fail, claimed, f"cannot read: {exc.strerror or exc}"
    return verdict(claimed, actual)


def verdict(claimed: Sniffed, actual: Sniffed) -> tuple[Plan, Sniffed, str]:
    """Process, skip or fail a file from what its extension claims and what its first bytes are."""
    if claimed.kind is Kind.unsupported:
        if actual.kind is Kind.unsupported:
            return Plan.skip, actual, "not a supported photo or video"
        return Plan.process, actual, ""
    if actual.kind is Kind.unsupported:
        return Plan.fail, claimed, f"content is not {claimed.format} as its extension says (unrecognised data)"
    if not formats_agree(claimed, actual):
        return Plan.fail, claimed, f"content is {actual.format} but the extension says {claimed.format}"
    return Plan.process, actual, ""


def _walk(root: Path, exclude: tuple[Path, ...]) -> list[Path]:
    """Every entry below `root`, sorted, not descending into linked folders or into `exclude`."""
    found: list[Path] = []
    excluded = {e.resolve() for e in exclude}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        keep: list[str] = []
        for name in sorted(dirnames):
            sub = here / name
            if sub.is_symlink():
                found.append(sub)  # reported as skipped, never followed
            elif sub.resolve() not in excluded:
                keep.append(name)
        dirnames[:] = keep
        # Correction sidecars belong to their photos: applied, never processed, listed or copied.
        found.extend(here / f for f in sorted(filenames) if not is_sidecar(Path(f)))
    return found


def _job(source: Path, output: Path, inputs: set[Path]) -> Job:
    try:
        st = os.lstat(source)
    except OSError as exc:
        return Job(source, None, Plan.fail, reason=f"cannot stat: {exc.strerror or exc}")
    if stat.S_ISLNK(st.st_mode):
        return Job(source, None, Plan.skip, reason="symbolic link (not followed)")
    if not stat.S_ISREG(st.st_mode):
        return Job(source, None, Plan.skip, reason="not a regular file")
    if is_sidecar(source):
        return Job(source, None, Plan.skip, reason="correction sidecar (applied to its photo or video, never copied)")
    if output.exists() and (_same_file(source, output) or output.resolve() in inputs):
        return Job(source, None, Plan.fail, reason=f"output {output} is an input file; refusing to overwrite it")
    plan, sniffed, reason = _classify(source)
    return Job(source, output if plan is Plan.process else None, plan, sniffed.kind, sniffed.format, reason)


def discover(paths: list[Path], out_dir: Path, exclude: tuple[Path, ...] = ()) -> list[Job]:
    """Expand input files and folders into jobs whose outputs mirror each input folder under `out_dir`.

    Folders are never walked into `out_dir` or `exclude` (the state folder)."""
    pairs: list[tuple[Path, Path]] = []
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            for entry in _walk(path, (out_dir, *exclude)):
                pairs.append((entry, out_dir / entry.relative_to(path)))
        else:
            pairs.append((path, out_dir / path.name))
    pairs = _dedupe(pairs)
    inputs = {src.resolve() for src, _ in pairs if src.exists()}
    jobs = [_job(src, dst, inputs) for src, dst in pairs]
    return finish_jobs(jobs, out_dir)


def finish_jobs(jobs: list[Job], out_dir: Path) -> list[Job]:
    """Fail jobs whose output leads outside `out_dir` through a link, and the later of two jobs with one output."""
    return _refuse_collisions(_confine(jobs, out_dir))


def _confine(jobs: list[Job], out_dir: Path) -> list[Job]:
    """Fail jobs whose output folder leads outside `out_dir` (a linked subfolder): never write through a link."""
    confined: list[Job] = []
    for job in jobs:
        if job.output is not None and not _inside(job.output.parent, out_dir):
            reason = f"output folder {job.output.parent} leads outside {out_dir} through a symbolic link; refusing"
            job = Job(job.source, None, Plan.fail, job.kind, job.format, reason, remote=job.remote)
        confined.append(job)
    return confined


def _dedupe(pairs: list[tuple[Path, Path]]) -> list[tuple[Path, Path]]:
    """Keep the first occurrence of a source reached through several inputs."""
    seen: set[Path] = set()
    kept: list[tuple[Path, Path]] = []
    for src, dst in pairs:
        key = src.parent.resolve() / src.name  # resolve the folder, not a link itself
        if key not in seen:
            seen.add(key)
            kept.append((src, dst))
    return kept


def _refuse_collisions(jobs: list[Job]) -> list[Job]:
    seen: dict[Path, str] = {}
    result: list[Job] = []
    for job in jobs:
        if job.output is None:
            result.append(job)
            continue
        key = job.output.resolve()
        if key in seen:
            reason = f"output {job.output} would also be written by {seen[key]}; rename one of them"
            result.append(Job(job.source, None, Plan.fail, job.kind, job.format, reason, remote=job.remote))
            continue
        seen[key] = job.label
        result.append(job)
    return result
