"""Moving a remote job's bytes: its input (with its sidecars) staged into a private local folder for the
pipeline, and its output uploaded whole once it is written and verified.

The pipelines only ever see local files. An input from object storage is downloaded into a private
folder (mode 0700: it holds an original, faces and all) in the worker's own scratch space (a Dask
worker's local directory, which Dask clears when a killed worker is replaced) or the system's
temporary folder, and the folder is deleted when the job ends. An output for object storage is
written there first, verified by the pipeline, then sent with one `put`: an S3 object appears only
when its upload completes (one PUT, or a multipart upload completed at the end and aborted on
failure), so a failed or killed worker leaves no partial object under the final name.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import sys
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from blur.batch.remote import RemoteError, filesystem
from blur.errors import reason_of
from blur.jobs import FileResult, Job, Status

Work = Callable[[Job], FileResult]
"""The pipeline run on a job whose files are local."""


def scratch() -> Path | None:
    """Where this process keeps private working folders: a Dask worker's local directory, else the system's."""
    distributed = sys.modules.get("distributed")  # never imported here: a Dask worker has it already
    if distributed is not None:
        try:
            return Path(distributed.get_worker().local_directory)
        except ValueError:
            pass
    return None


def private_folder() -> Path:
    """A new folder only this user can read (mkdtemp makes it 0700)."""
    return Path(tempfile.mkdtemp(prefix="blur-stage-", dir=scratch()))


def _download(url: str, dest: Path, expected: str) -> None:
    """Copy one object to `dest`.

    Raises:
        RemoteError: it cannot be read, or its size differs from when it was listed.
    """
    fs, path = filesystem(url)
    try:
        fs.get_file(path, str(dest))
    except (OSError, ValueError) as exc:
        msg = f"{url}: cannot read: {exc}"
        raise RemoteError(msg) from exc
    size = expected.split(":", 1)[0]
    if size.isdigit() and dest.stat().st_size != int(size):
        msg = f"{url}: changed while the batch ran ({dest.stat().st_size} bytes, {size} when listed)"
        raise RemoteError(msg)


def upload(local: Path, url: str) -> None:
    """Send a finished output to `url` in one `put` (whole or not at all).

    Raises:
        RemoteError: the upload failed (no object is left under `url`).
    """
    fs, path = filesystem(url)
    try:
        fs.put_file(str(local), path)
    except (OSError, ValueError) as exc:
        msg = f"{url}: cannot upload: {exc}"
        raise RemoteError(msg) from exc


def stage_input(job: Job, folder: Path) -> tuple[Path, dict[str, str]]:
    """Download a remote job's input and sidecars into `folder`, under the input's own name (the
    folder sidecar names files); return the local input and a map of local paths to URLs."""
    remote = job.remote
    if remote is None or remote.source is None:
        return job.source, {}
    name = PurePosixPath(remote.source).name
    local = folder / name
    names = {str(local): remote.source}
    _download(remote.source, local, remote.source_id)
    for url in remote.sidecars:
        sidecar = folder / PurePosixPath(url).name
        _download(url, sidecar, "")
        names[str(sidecar)] = url
    return local, names


def relabel(result: FileResult, job: Job, names: dict[str, str]) -> FileResult:
    """`result` as the user should read it: the job's URLs instead of the private local copies."""

    def swap(text: str) -> str:
        for local, url in sorted(names.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(local, url)
        return text

    output = job.output_label if result.status is Status.ok else None
    return replace(
        result,
        source=job.label,
        output=output,
        reason=swap(result.reason),
        notes=tuple(swap(n) for n in result.notes),
    )


def run_staged(job: Job, work: Work, staged: tuple[Path, dict[str, str]] | None = None) -> FileResult:
    """Run `work` on a job whose input or output is remote: stage, run on local files, upload, relabel.

    `staged` is an input already downloaded (with its map of local paths to URLs). Anything that
    goes wrong fails the file; nothing is uploaded unless the output was written and verified, and
    the private folder is always deleted.
    """
    remote = job.remote
    if remote is None:
        return work(job)
    folder = private_folder()
    try:
        source, names = staged if staged is not None else stage_input(job, folder)
        names = dict(names)
        output = job.output
        if remote.output is not None and job.output is not None:
            output = folder / "out" / PurePosixPath(remote.output).name
            names[str(output)] = remote.output
        result = work(replace(job, source=source, output=output, remote=None))
        if result.status is Status.ok and remote.output is not None and output is not None:
            upload(output, remote.output)
        return relabel(result, job, names)
    except RemoteError as exc:
        reason = f"{reason_of(exc, remote.source, remote.output)}; no output written"
        return FileResult(source=job.label, status=Status.failed, kind=job.kind.value, reason=reason)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class StagedInputs:
    """The inputs of the last remote videos this process worked on, kept for their next segment tasks.

    At most `keep` inputs are kept; the least recently used one not in use is deleted first.
    """

    def __init__(self, keep: int = 2) -> None:
        self.keep = keep
        self._lock = threading.Lock()
        self._kept: OrderedDict[tuple[str, str], _Kept] = OrderedDict()

    @contextlib.contextmanager
    def use(self, job: Job) -> Iterator[tuple[Path, dict[str, str]]]:
        """The local copy of `job`'s input (downloaded once per video and process) and its map of
        local paths to URLs; a local input is itself.

        Raises:
            RemoteError: it cannot be downloaded.
        """
        remote = job.remote
        if remote is None or remote.source is None:
            yield job.source, {}
            return
        key = (remote.source, remote.source_id)
        with self._lock:
            kept = self._kept.get(key)
            if kept is None:
                kept = self._kept[key] = _Kept(private_folder())
            self._kept.move_to_end(key)
            kept.users += 1
        try:
            with kept.lock:
                if kept.path is None:
                    kept.path, kept.names = stage_input(job, kept.folder)
            yield kept.path, kept.names
        finally:
            with self._lock:
                kept.users -= 1
                self._trim()

    def _trim(self) -> None:
        idle = [k for k, v in self._kept.items() if v.users == 0]
        while len(self._kept) > self.keep and idle:
            shutil.rmtree(self._kept.pop(idle.pop(0)).folder, ignore_errors=True)
        for key in [k for k, v in self._kept.items() if v.users == 0 and v.path is None]:
            shutil.rmtree(self._kept.pop(key).folder, ignore_errors=True)  # a download that failed

    def clear(self) -> None:
        """Delete every kept copy that is not in use."""
        with self._lock:
            for key in [k for k, v in self._kept.items() if v.users == 0]:
                shutil.rmtree(self._kept.pop(key).folder, ignore_errors=True)


@dataclass
class _Kept:
    folder: Path
    path: Path | None = None
    names: dict[str, str] = field(default_factory=dict)
    users: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


STAGED = StagedInputs()
"""This process's kept inputs (segment tasks of one video usually follow each other on a worker)."""
atexit.register(STAGED.clear)
