"""Resume an interrupted batch: a journal of finished outputs, and cleanup of a killed run's leftovers.

After each output is renamed into place, one JSON line is appended (and fsynced) to the journal in
the output folder's state folder (`blur.batch.state`, never inside the output folder, which must stay
publishable as it is): the output's relative name, size and SHA-256, the source's size and
SHA-256, the SHA-256 of its correction sidecars, a fingerprint of the settings, and the result. On a
re-run an output is skipped only if its entry matches all of these and the output file on disk still
hashes to the recorded value; anything else is redone (the new output atomically replaces the old).

Modification times are deliberately not recorded (a source's mtime is usually its capture time). The
journal holds hashes of the originals and face positions, so it is deleted as soon as a batch ends
with every file done; `blur audit` reports one found anywhere.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from blur import __version__
from blur.config import Settings
from blur.corrections import sidecar_paths
from blur.errors import BlurError
from blur.fsio import PARTIAL_SUFFIX, open_regular
from blur.jobs import FileResult, Job, Status

_PARTIAL = re.compile(r"^\..*\.[0-9a-f]{8}" + re.escape(PARTIAL_SUFFIX) + r"(\.[^.]*)?$")
"""Names `fsio.temp_path_for` gives temporary outputs: `.{stem}.{8 hex}.blur-partial{suffix}`."""

_CHUNK = 1 << 20


class BusyError(Exception):
    """Another blur run holds the output folder."""


def sha256_file(path: Path) -> str:
    """SHA-256 of a regular file's bytes (links and special files raise OSError)."""
    digest = hashlib.sha256()
    with open_regular(path) as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def settings_key(settings: Settings) -> str:
    """A fingerprint of everything that shapes an output: blur's version and every setting."""
    text = json.dumps({"version": __version__, "settings": asdict(settings)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _sidecars_key(source: Path) -> str:
    parts = []
    for path in sidecar_paths(source):
        try:
            parts.append(sha256_file(path))
        except OSError:
            parts.append("-" if not (path.exists() or path.is_symlink()) else "unreadable")
    return ":".join(parts)


def clean_partials(root: Path) -> list[Path]:
    """Delete temporary outputs a killed run left under `root` (only blur's own temporary names)."""
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for dirpath, _dirnames, filenames in os.walk(root, followlinks=False):
        for name in filenames:
            path = Path(dirpath) / name
            if _PARTIAL.match(name) and stat.S_ISREG(os.lstat(path).st_mode):
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """Hold an exclusive lock on the output folder itself for the length of a run (no lock file is left).

    Raises:
        BusyError: another blur run is writing into `root`.
    """
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            msg = f"another blur run is writing into {root}; wait for it to finish"
            raise BusyError(msg) from exc
        yield
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class _Source:
    size: int
    sha256: str
    sidecars: str


class Journal:
    """The finished outputs of one output folder, for one set of settings."""

    def __init__(self, root: Path, settings: Settings, path: Path, *, fresh: bool = False) -> None:
        self.root = root
        self.path = path
        self.key = settings_key(settings)
        self._entries: dict[str, dict[str, Any]] = {} if fresh else self._load()
        self._sources: dict[str, _Source] = {}
        if fresh:
            self.path.unlink(missing_ok=True)

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            with open_regular(self.path) as fh:
                lines = fh.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return {}
        entries: dict[str, dict[str, Any]] = {}
        for line in lines:  # a killed run may have left a torn last line: it is ignored
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and isinstance(entry.get("output"), str):
                entries[entry["output"]] = entry
        return entries

    def _rel(self, job: Job) -> str:
        if job.remote is not None and job.remote.output is not None:
            return job.remote.output  # an object-store output: its URL (the journal is kept locally)
        assert job.output is not None
        return os.fsdecode(os.path.relpath(job.output, self.root))

    def _source(self, job: Job) -> _Source:
        key = job.label
        if key not in self._sources:
            if job.remote is not None and job.remote.source is not None:
                # An object-store input: its size and version (ETag) as listed, sidecars included.
                size, _, version = job.remote.source_id.partition(":")
                self._sources[key] = _Source(int(size or 0), version, "")
            else:
                self._sources[key] = _Source(
                    os.stat(job.source).st_size, sha256_file(job.source), _sidecars_key(job.source)
                )
        return self._sources[key]

    def _output(self, job: Job) -> tuple[int, str]:
        """Size and SHA-256 of the output file (size and version for an object-store output)."""
        if job.remote is not None and job.remote.output is not None:
            from blur.batch.remote import output_identity  # noqa: PLC0415 - fsspec only for URLs

            return output_identity(job.remote.output)
        assert job.output is not None
        return os.lstat(job.output).st_size, sha256_file(job.output)

    def finished(self, job: Job) -> FileResult | None:
        """The recorded result if `job`'s output is complete and current, else None (redo it)."""
        if job.output is None:
            return None
        entry = self._entries.get(self._rel(job))
        if entry is None or entry.get("settings") != self.key:
            return None
        try:
            src = self._source(job)
            current = (src.size, src.sha256, src.sidecars)
            if current != (entry.get("source_size"), entry.get("source_sha256"), entry.get("sidecars")):
                return None
            if self._output(job) != (entry.get("output_size"), entry.get("output_sha256")):
                return None
        except (OSError, BlurError):
            return None
        return _result(entry.get("result"), job)

    def record(self, job: Job, result: FileResult) -> None:
        """Append `result`'s output to the journal (fsynced), after its atomic rename.

        Raises:
            OSError: the journal cannot be written (the output stays; a re-run redoes it).
        """
        if job.output is None or result.status is not Status.ok:
            return
        src = self._source(job)
        size, digest = self._output(job)
        entry = {
            "output": self._rel(job),
            "output_size": size,
            "output_sha256": digest,
            "source_size": src.size,
            "source_sha256": src.sha256,
            "sidecars": src.sidecars,
            "settings": self.key,
            "result": result.to_dict(exact=True),
        }
        line = (json.dumps(entry, ensure_ascii=True) + "\n").encode()
        rel = self._rel(job)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._entries[rel] = entry

    def source_digests(self) -> dict[str, str]:
        """SHA-256 of every source this journal hashed (each finished or recorded job's), by source path."""
        return {source: entry.sha256 for source, entry in self._sources.items()}

    def remove(self) -> None:
        """Delete the journal (the batch is complete)."""
        self.path.unlink(missing_ok=True)


def _result(data: Any, job: Job) -> FileResult | None:
    if not isinstance(data, dict):
        return None
    try:
        recorded = FileResult.from_dict({**data, "source": job.label})
    except ValueError:
        return None
    return replace(
        recorded,
        status=Status.ok,
        output=job.output_label,
        reason="",
        notes=(*recorded.notes, "resumed: output of an earlier run, verified by SHA-256"),
    )


def split_finished(jobs: list[Job], journal: Journal) -> tuple[list[Job], dict[Path, FileResult]]:
    """Jobs still to run (in order), and the recorded results of outputs already complete and current."""
    pending: list[Job] = []
    done: dict[Path, FileResult] = {}
    for job in jobs:
        result = journal.finished(job) if job.output is not None else None
        if result is None:
            pending.append(job)
        else:
            done[job.source] = result
    return pending, done


def merge(jobs: list[Job], done: dict[Path, FileResult], ran: list[FileResult]) -> list[FileResult]:
    """Resumed and new results together, in the order of `jobs`."""
    fresh = iter(ran)
    return [done[job.source] if job.source in done else next(fresh) for job in jobs]
