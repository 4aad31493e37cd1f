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
"""The resume journal kept in the output folder while a batch is unfinished."""

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
    if PARTIAL_SUFFIX in name:
        return "unfinished temporary output of an interrupted blur run"
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "blur report (lists source paths and face positions)" if _is_report(path) else None
    if suffix in (".html", ".htm"):
        return "blur review page (shows where faces were masked)" if _is_review(path) else None
    return None


def _is_report(path: Path) -> bool:
    try:
        with open_regular(path) as fh:
            raw = fh.read(_MAX_REPORT_BYTES + 1)
        if len(raw) > _MAX_REPORT_BYTES:
            return False
        data = json.loads(raw)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "blur_version" in data and "files" in data


def _is_review(path: Path) -> bool:
    try:
        with open_regular(path) as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError:
        return False
    return REVIEW_GENERATOR.encode() in head
