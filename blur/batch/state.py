"""The state folder of an output folder: blur's working files, kept OUTSIDE the output tree.

An output folder must be publishable as it is after any run, complete, failed or killed. So the
resume journal, the record the review app needs (sources, outputs, detections, tracks, settings) and
the temporary files of atomic writes live in a private folder elsewhere:

- `--state DIR` when given;
- otherwise the platform's user state directory, `blur/<first 16 hex of SHA-256 of the resolved
  output path>/`: `$XDG_STATE_HOME` (or `~/.local/state`) on Linux and other POSIX systems,
  `~/Library/Application Support` on macOS.

The folder is created 0700 and must belong to this user; a symbolic link there is refused. Its
files hold face positions and hashes of the originals: `blur audit` flags any of them found elsewhere.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from blur.batch.workfiles import BATCH_RECORD_NAME, JOURNAL_NAME, TRACKS_SUFFIX
from blur.errors import BlurError
from blur.jobs import Job, Plan
from blur.media.kinds import Kind

APP_FOLDER = "blur"


class StateError(BlurError):
    """The state folder cannot be created or is not private to this user."""


def user_state_home(environ: dict[str, str] | None = None, platform: str | None = None) -> Path:
    """The platform's per-user state directory (not yet with blur's own folder in it)."""
    env = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    home = Path(env.get("HOME") or Path.home())
    if platform == "darwin":
        return home / "Library" / "Application Support"
    xdg = env.get("XDG_STATE_HOME", "")
    # The XDG spec: a relative path is invalid and must be ignored.
    return Path(xdg) if xdg and os.path.isabs(xdg) else home / ".local" / "state"


def output_key(output: Path) -> str:
    """16 hex digits naming an output folder's state: SHA-256 of its resolved path."""
    return hashlib.sha256(os.fsencode(output.resolve())).hexdigest()[:16]


def default_state_dir(output: Path) -> Path:
    """Where the state of `output` lives when no `--state` is given."""
    return user_state_home() / APP_FOLDER / output_key(output)


def _private_dir(path: Path) -> None:
    """Create `path` (and missing parents) 0700; refuse a link, a non-folder or someone else's folder.

    Raises:
        StateError: naming the folder and the reason.
    """
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(path)
    except OSError as exc:
        msg = f"{path}: cannot create the state folder: {exc.strerror or exc}"
        raise StateError(msg) from exc
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        msg = f"{path}: the state folder is a link or not a folder; refusing to use it"
        raise StateError(msg)
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        msg = f"{path}: the state folder belongs to another user; refusing to use it"
        raise StateError(msg)
    if stat.S_IMODE(st.st_mode) & 0o077:
        try:
            os.chmod(path, 0o700)
        except OSError as exc:
            msg = f"{path}: cannot make the state folder private: {exc.strerror or exc}"
            raise StateError(msg) from exc


def inside(path: Path, folder: Path) -> bool:
    """Whether `path` (existing or not) is `folder` or lies below it, links resolved."""
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class StateDir:
    """One output folder's private state folder and the names of what it holds."""

    path: Path
    output: Path

    @property
    def journal(self) -> Path:
        """The resume journal (verified finished outputs)."""
        return self.path / JOURNAL_NAME

    @property
    def record(self) -> Path:
        """The batch record the review app reads: sources, outputs, detections, settings."""
        return self.path / BATCH_RECORD_NAME

    @property
    def scratch(self) -> Path:
        """Temporary files of atomic writes (used when on the output's filesystem)."""
        return self.path / "scratch"

    @property
    def tracks(self) -> Path:
        """Per-video detection and track records (`.npz`)."""
        return self.path / "tracks"

    def tracks_file(self, output: Path) -> Path:
        """The detection record of the video written to `output` (named by its place in the output tree)."""
        rel = os.fsencode(os.path.relpath(output, self.output))
        return self.tracks / (hashlib.sha256(rel).hexdigest()[:24] + TRACKS_SUFFIX)

    def same_filesystem(self) -> bool:
        """Whether temporary files in `scratch` can be renamed into the output folder atomically."""
        try:
            return os.stat(self.scratch).st_dev == os.stat(self.output).st_dev
        except OSError:
            return False


def open_state(output: Path, override: Path | None = None, *, create: bool = True) -> StateDir:
    """The state folder of `output` (`override` when given), created private unless `create` is False.

    Raises:
        StateError: it lies inside the output folder, or cannot be created or made private, or
            (with `create` False) does not exist.
    """
    path = override if override is not None else default_state_dir(output)
    path = Path(os.path.abspath(path))
    if inside(path, output):
        msg = f"--state {path} lies inside the output folder {output}; it must stay out of what you publish"
        raise StateError(msg)
    if override is None and create:
        _private_dir(path.parent)  # blur's own folder in the user state directory
    if not create:
        if not path.is_dir():
            msg = f"{path}: no state folder for {output} (run `blur anonymize ... -o {output}` first, or pass --state)"
            raise StateError(msg)
        return StateDir(path, Path(os.path.abspath(output)))
    _private_dir(path)
    for sub in ("scratch", "tracks"):
        _private_dir(path / sub)
    return StateDir(path, Path(os.path.abspath(output)))


def clean_scratch(state: StateDir) -> list[Path]:
    """Delete temporary files a killed run left in the scratch folder (the caller holds the output lock)."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(state.scratch))
    except OSError:
        return removed
    for entry in entries:
        if entry.is_file(follow_symlinks=False) or entry.is_symlink():
            Path(entry.path).unlink(missing_ok=True)
            removed.append(Path(entry.path))
    return removed


def attach(jobs: list[Job], state: StateDir) -> list[Job]:
    """`jobs` with the state folder's scratch folder for atomic writes, and a detection record per video."""
    out: list[Job] = []
    for job in jobs:
        if job.plan is Plan.process and job.output is not None:
            tracks = state.tracks_file(job.output) if job.kind is Kind.video else None
            job = replace(job, scratch=state.scratch, tracks=tracks)
        out.append(job)
    return out
