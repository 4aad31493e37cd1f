"""Atomic output files: written under a temporary name, renamed onto the final name when complete.

The temporary file goes into a private scratch folder outside the output tree when one is given and
lies on the same filesystem (so a killed run leaves nothing in the output folder), else beside the
final name (a rename is atomic only within one filesystem)."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from blur.errors import MediaWriteError

PARTIAL_SUFFIX = ".blur-partial"


def temp_path_for(dest: Path, scratch: Path | None = None) -> Path:
    """A unique hidden temporary name for `dest`, keeping its extension for encoders that need it: in
    `scratch` when given, else beside `dest`."""
    name = f".{dest.stem}.{secrets.token_hex(4)}{PARTIAL_SUFFIX}{dest.suffix}"
    return (scratch or dest.parent) / name


def _usable_scratch(scratch: Path | None, folder: Path) -> Path | None:
    """`scratch` if a file there can be renamed into `folder` (same filesystem), else None."""
    if scratch is None:
        return None
    try:
        return scratch if os.stat(scratch).st_dev == os.stat(folder).st_dev else None
    except OSError:
        return None


@contextlib.contextmanager
def atomic_output(dest: Path, scratch: Path | None = None) -> Iterator[Path]:
    """Yield a temporary path; on success fsync it and rename it onto `dest`, on error delete it.

    The temporary path is in `scratch` (a private folder outside the output tree) when that is on
    `dest`'s filesystem, else beside `dest`.

    Raises:
        MediaWriteError: the folder cannot be created or the rename fails.
    """
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"{dest.parent}: cannot create output folder: {exc.strerror or exc}"
        raise MediaWriteError(msg) from exc
    tmp = temp_path_for(dest, _usable_scratch(scratch, dest.parent))
    try:
        yield tmp
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
        _fsync_folder(dest.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync_folder(folder: Path) -> None:
    """Make a rename durable: fsync the folder entry (best effort; some filesystems refuse)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes_atomic(dest: Path, data: bytes, scratch: Path | None = None) -> None:
    """Write `data` to `dest` atomically (the temporary file in `scratch` when possible).

    Raises:
        MediaWriteError: the disk is full, permission is denied or the rename fails.
    """
    try:
        with atomic_output(dest, scratch) as tmp, tmp.open("xb") as fh:
            fh.write(data)
    except OSError as exc:
        msg = f"{dest}: cannot write output: {exc.strerror or exc}"
        raise MediaWriteError(msg) from exc


def open_regular(path: Path) -> BinaryIO:
    """Open an input for reading only if it is a regular file reached without a final symbolic link.

    FIFOs and devices are refused before any read (so nothing blocks), and a file swapped for a link
    after discovery is not followed.

    Raises:
        OSError: it cannot be opened, is a symbolic link, or is not a regular file.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "symbolic link (not followed)", str(path)) from exc
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file (FIFO, device or folder)", str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def write_private(path: Path, data: bytes) -> None:
    """Create `path` with `data`, readable by this user only, and fsync it. It must not exist yet, and a
    link placed at its name is never written through.

    Raises:
        OSError: it exists, or it cannot be written.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
