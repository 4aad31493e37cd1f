"""Names of the files blur itself writes besides outputs. None of them may ever be published.

Correction sidecars and reports say where faces are; the resume journal holds hashes of the
originals; a review page shows mask positions (and, on request, the originals); temporary files are
unfinished outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

from blur.corrections import SIDECAR_SUFFIX
from blur.fsio import PARTIAL_SUFFIX, open_regular

JOURNAL_NAME = ".blur-journal.jsonl"
"""The resume journal, kept in the state folder while a batch is unfinished (older versions of blur
kept it in the output folder)."""

BATCH_RECORD_NAME = "blur-batch.json"
"""The batch record in the state folder: what the review app needs (sources, outputs, detections)."""

BATCH_RECORD_KEY = "blur_batch"
"""The key that marks a batch record's JSON."""

TRACKS_SUFFIX = ".blur-tracks.npz"
"""A video's detections and tracks, in the state folder."""

REVIEW_GENERATOR = "blur review page"
"""The `<meta name="generator">` of review pages, so `blur audit` can recognise one."""

_SNIFF_BYTES = 4096
_MAX_REPORT_BYTES = 64 * 1024 * 1024


def is_sidecar(path: Path) -> bool:
    """Whether `path` names a correction sidecar (per file or per folder)."""
    return path.name.endswith(SIDECAR_SUFFIX)


def working_file_kind(path: Path) -> str | None:
    """What kind of blur working file `path` is, or None when it is not one.

    Names decide for sidecars, the journal and temporary outputs; reports and review pages are
    recognised from their content.
    """
    name = path.name
    if is_sidecar(path):
        return "correction sidecar (lists where faces and other regions are)"
    if name == JOURNAL_NAME:
        return "blur resume journal (holds SHA-256 hashes of the originals and face positions)"
    if name.endswith(TRACKS_SUFFIX):
        return "blur video detection record (face positions on every frame)"
    if PARTIAL_SUFFIX in name:
        return "unfinished temporary output of an interrupted blur run"
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _json_kind(path)
    if suffix in (".html", ".htm"):
        return "blur review page (shows where faces were masked)" if _is_review(path) else None
    return None


def _json_kind(path: Path) -> str | None:
    try:
        with open_regular(path) as fh:
            raw = fh.read(_MAX_REPORT_BYTES + 1)
        if len(raw) > _MAX_REPORT_BYTES:
            return None
        data = json.loads(raw)
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    if BATCH_RECORD_KEY in data:
        return "blur batch record (source paths, face positions, settings)"
    if "blur_version" in data and "files" in data:
        return "blur report (lists source paths and face positions)"
    return None


def _is_review(path: Path) -> bool:
    try:
        with open_regular(path) as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError:
        return False
    return REVIEW_GENERATOR.encode() in head
