"""Atomic output files: written under a temporary name in the output folder, renamed when complete."""

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


def temp_path_for(dest: Path) -> Path:
    """A unique hidden temporary name beside `dest`, keeping its extension for encoders that need it."""
    return dest.with_name(f".{dest.stem}.{secrets.token_hex(4)}{PARTIAL_SUFFIX}{dest.suffix}")


@contextlib.contextmanager
def atomic_output(dest: Path) -> Iterator[Path]:
    """Yield a temporary path; on success fsync it and rename it onto `dest`, on error delete it.

    Raises:
        MediaWriteError: the folder cannot be created or the rename fails.
    """
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"{dest.parent}: cannot create output folder: {exc.strerror or exc}"
        raise MediaWriteError(msg) from exc
    tmp = temp_path_for(dest)
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


def write_bytes_atomic(dest: Path, data: bytes) -> None:
    """Write `data` to `dest` atomically.

    Raises:
        MediaWriteError: the disk is full, permission is denied or the rename fails.
    """
    try:
        with atomic_output(dest) as tmp, tmp.open("xb") as fh:
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
