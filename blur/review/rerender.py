"""Re-render one file of the batch after its corrections changed, and write back what depends on it.

A photo is re-rendered from the detector's faces recorded by the batch: sidecar corrections, mask,
second pass, encode, verify and atomic write exactly as in `blur anonymize` (the second pass reruns:
it looks at the new picture, it costs one plain pass on a copy of at most 1600 px, and it makes the
output the same as a later `blur anonymize` with the same sidecar). A video is re-rendered from its
detection record: tracking, keep and add regions, masking, encoding and `verify_output` as in a
batch. Either way the original must still be the one the batch hashed, or nothing is rendered.

A file the batch could not process has no recorded detections and no output name: it is refused
(`blur anonymize` again). A re-render that fails removes the previous output: it no longer matches the corrections
the user asked for, and an output folder must only hold what the user would publish.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from blur.batch.journal import Journal, sha256_file
from blur.batch.record import write_record
from blur.batch.report import summarise, write_report
from blur.engine import Engine
from blur.errors import BlurError, reason_of
from blur.jobs import FileResult, Job, Plan, Status
from blur.media.kinds import Kind, sniff
from blur.photo.pipeline import first_pass, process_photo
from blur.review.batch import ReviewBatch, ReviewFile
from blur.review.page import ReviewOptions, write_review


class RerenderError(BlurError):
    """A file cannot be re-rendered (its original changed, its record is missing)."""


def _job(item: ReviewFile, batch: ReviewBatch) -> Job:
    source, output = item.source, item.output
    if item.result.status is not Status.ok or output is None:
        msg = f"{source}: it failed in the batch, so nothing was recorded for it; run `blur anonymize` on it again"
        raise RerenderError(msg)
    try:
        sniffed = sniff(source)
    except OSError as exc:
        msg = f"{source}: cannot read the original: {exc.strerror or exc}"
        raise RerenderError(msg) from exc
    if sniffed.kind not in (Kind.image, Kind.video):
        msg = f"{source}: the original is no longer a photo or video"
        raise RerenderError(msg)
    tracks = batch.state.tracks_file(output) if sniffed.kind is Kind.video else None
    return Job(source, output, Plan.process, sniffed.kind, sniffed.format, scratch=batch.state.scratch, tracks=tracks)


def _check_original(item: ReviewFile, batch: ReviewBatch) -> None:
    expected = batch.record.sources.get(str(item.source))
    if expected is None:
        msg = (
            f"{item.source}: the batch record holds no hash of this original, so its recorded detections "
            "cannot be trusted for it; run `blur anonymize` on it again"
        )
        raise RerenderError(msg)
    try:
        actual = sha256_file(item.source)
    except OSError as exc:
        msg = f"{item.source}: cannot read the original: {exc.strerror or exc}"
        raise RerenderError(msg) from exc
    if actual != expected:
        msg = f"{item.source}: the original changed since the batch; run `blur anonymize` on it again"
        raise RerenderError(msg)


def render(item: ReviewFile, batch: ReviewBatch, engine: Engine) -> FileResult:
    """Re-render one file with its current sidecars; a `FileResult` either way (failed: no output left)."""
    try:
        job = _job(item, batch)
        _check_original(item, batch)
        if job.kind is Kind.image:
            result = process_photo(job, engine, first_pass(item.result))
        else:
            from blur.video.pipeline import process_video  # noqa: PLC0415 - PyAV only for videos
            from blur.video.record import load_record  # noqa: PLC0415

            record = load_record(batch.state.tracks_file(Path(str(job.output))))
            if record.meta.get("source") != str(item.source):
                msg = f"{item.source}: its detection record belongs to another file; run `blur anonymize` again"
                raise RerenderError(msg)
            result = process_video(job, engine, None, record)
    except BlurError as exc:
        reason = reason_of(exc, item.source, item.result.source, item.output)
        result = FileResult(item.result.source, Status.failed, kind=item.result.kind, reason=reason)
    # Paths stay as the report wrote them.
    result = replace(result, source=item.result.source, output=item.result.output if result.output else None)
    if result.status is not Status.ok:
        result = _drop_stale(item, result)
    return result


def _drop_stale(item: ReviewFile, result: FileResult) -> FileResult:
    output = item.output
    if output is None or not (output.exists() or output.is_symlink()):
        return result
    output.unlink()
    note = f"the previous output {item.result.output} was removed: it no longer matched the corrections"
    return replace(result, output=None, notes=(*result.notes, note))


def write_back(batch: ReviewBatch) -> list[str]:
    """Write the batch record, the report and the static review page for the batch's latest results.

    Returns:
        Warnings for what could not be written (the outputs themselves are already in place).
    """
    results = batch.results()
    batch.record = replace(batch.record, results=tuple(results))
    warnings: list[str] = []
    try:
        write_record(batch.state.record, batch.record)
    except OSError as exc:
        warnings.append(f"cannot update the batch record {batch.state.record}: {exc.strerror or exc}")
    if batch.report is not None:
        summary = summarise(results, sum(r.seconds for r in results))
        meta = {k: v for k, v in batch.record.meta.items() if k not in ("summary", "files")}
        try:
            write_report(batch.report, results, summary, meta)
        except OSError as exc:
            warnings.append(f"cannot update the report {batch.report}: {exc.strerror or exc}")
    if batch.html is not None:
        options = ReviewOptions(mask=batch.record.settings.mask, with_originals=batch.record.html_with_originals)
        try:
            write_review(batch.html, results, options)
        except (OSError, BlurError) as exc:
            warnings.append(f"cannot update the review page {batch.html}: {exc}")
    return warnings


def update_journal(batch: ReviewBatch, item: ReviewFile) -> list[str]:
    """Keep an unfinished batch's resume journal current for a re-rendered output (none once complete)."""
    if not batch.state.journal.exists() or item.result.status is not Status.ok or item.output is None:
        return []
    try:
        job = _job(item, batch)
        Journal(batch.state.output, batch.record.settings, batch.state.journal).record(job, item.result)
    except (OSError, BlurError) as exc:
        return [f"cannot update the resume journal: {exc}"]
    return []
