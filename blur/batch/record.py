"""The batch record: what the review app needs to show a batch and re-render its files.

Written into the state folder at the end of every run (complete or not), whether or not a report was
asked for: the output folder, the exact settings, the report and review page asked for, and every
file's result with its detections (photos: every mask with its kind and score; videos: the track
spans, with per-frame detections and track boxes in the video's `.npz` record beside it).
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blur import __version__
from blur.batch.workfiles import BATCH_RECORD_KEY
from blur.config import Settings, settings_dict, settings_from_dict
from blur.errors import BlurError
from blur.fsio import open_regular, write_private
from blur.jobs import FileResult

VERSION = 1
MAX_RECORD_BYTES = 256 * 1024 * 1024


class BatchRecordError(BlurError):
    """The batch record (or a report standing in for it) cannot be used."""


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """One output folder's latest batch.

    Attributes:
        output: the output folder.
        settings: the exact settings the outputs were made with.
        results: every file's result, in the batch's order.
        report: the JSON report the run wrote (updated by the review app), if any.
        html: the static review page the run wrote (rewritten by the review app), if any.
        html_with_originals: whether that page shows the originals too.
        meta: the report's run description (version, backend, runtime, machine).
        sources: SHA-256 of each source whose output was written, by absolute source path: a
            re-render uses recorded detections only on the very same original.
        cwd: the folder the run's relative paths (sources and outputs, as in the report) start from.
    """

    output: Path
    settings: Settings
    results: tuple[FileResult, ...]
    report: Path | None = None
    html: Path | None = None
    html_with_originals: bool = False
    meta: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    cwd: Path = field(default_factory=Path.cwd)

    def resolve(self, path: str) -> Path:
        """A source or output path of the results, made absolute."""
        return self.cwd / path

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data (what `record_from_json` reads back)."""
        return {
            BATCH_RECORD_KEY: VERSION,
            "blur_version": __version__,
            "output": os.fsdecode(self.output),
            "settings": settings_dict(self.settings),
            "report": None if self.report is None else os.fsdecode(self.report),
            "html": None if self.html is None else os.fsdecode(self.html),
            "html_with_originals": self.html_with_originals,
            "meta": self.meta,
            "sources": self.sources,
            "cwd": os.fsdecode(self.cwd),
            "files": [r.to_dict(exact=True) for r in self.results],
        }


def _path(value: Any) -> Path | None:
    return None if value is None else Path(str(value))


def record_from_json(data: Any, where: Path) -> BatchRecord:
    """Validate a batch record.

    Raises:
        BatchRecordError: naming `where` and the problem.
    """
    if not isinstance(data, dict) or data.get(BATCH_RECORD_KEY) != VERSION:
        msg = f"{where}: not a blur batch record of this version"
        raise BatchRecordError(msg)
    try:
        files = data["files"]
        if not isinstance(files, list):
            raise TypeError("'files' must be a list")
        return BatchRecord(
            output=Path(str(data["output"])),
            settings=settings_from_dict(data["settings"]),
            results=tuple(FileResult.from_dict(f) for f in files),
            report=_path(data.get("report")),
            html=_path(data.get("html")),
            html_with_originals=bool(data.get("html_with_originals", False)),
            meta=dict(data["meta"]) if isinstance(data.get("meta"), dict) else {},
            sources={str(k): str(v) for k, v in dict(data.get("sources") or {}).items()},
            cwd=Path(str(data["cwd"])),
        )
    except (KeyError, TypeError, ValueError) as exc:
        msg = f"{where}: malformed batch record ({exc})"
        raise BatchRecordError(msg) from exc


def record_from_report(data: Any, where: Path, output: Path) -> BatchRecord:
    """A batch record made from a JSON report (`blur review --report`): its files, settings and meta.

    Raises:
        BatchRecordError: it is not a blur report, or was written by a blur that did not record settings.
    """
    if not isinstance(data, dict) or "blur_version" not in data or not isinstance(data.get("files"), list):
        msg = f"{where}: not a blur report"
        raise BatchRecordError(msg)
    if "settings" not in data:
        msg = f"{where}: this report does not record the settings; run `blur anonymize` again to review it"
        raise BatchRecordError(msg)
    meta = {k: v for k, v in data.items() if k not in ("files", "summary", "settings")}
    try:
        return BatchRecord(
            output=output,
            settings=settings_from_dict(data["settings"]),
            results=tuple(FileResult.from_dict(f) for f in data["files"]),
            report=where,
            meta=meta,
        )
    except ValueError as exc:
        msg = f"{where}: {exc}"
        raise BatchRecordError(msg) from exc


def read_json(path: Path) -> Any:
    """A JSON file that blur wrote (a batch record or a report), read without following links.

    Raises:
        BatchRecordError: it cannot be read or is not JSON.
    """
    try:
        with open_regular(path) as fh:
            raw = fh.read(MAX_RECORD_BYTES + 1)
    except OSError as exc:
        msg = f"{path}: cannot read: {exc.strerror or exc}"
        raise BatchRecordError(msg) from exc
    if len(raw) > MAX_RECORD_BYTES:
        msg = f"{path}: larger than {MAX_RECORD_BYTES >> 20} MiB"
        raise BatchRecordError(msg)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        msg = f"{path}: not valid JSON ({exc})"
        raise BatchRecordError(msg) from exc


def write_record(path: Path, record: BatchRecord) -> None:
    """Write the batch record atomically, readable by this user only.

    Raises:
        OSError: it cannot be written.
    """
    # ASCII escapes keep file names that are not valid UTF-8 exact (as lone surrogates), so the
    # review finds the very same files; a report, for people, cleans them instead.
    data = (json.dumps(record.to_json(), ensure_ascii=True) + "\n").encode("ascii")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        write_private(tmp, data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
