"""Atomic output files: written under a temporary name in the output folder, renamed when complete."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

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
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(dest: Path, data: bytes) -> None:
    """Write `data` to `dest` atomically.

    Raises:
        MediaWriteError: the disk is full, permission is denied or the rename fails.
    """
    try:
        with atomic_output(dest) as tmp:
            with tmp.open("xb") as fh:
                fh.write(data)
    except OSError as exc:
        msg = f"{dest}: cannot write output: {exc.strerror or exc}"
        raise MediaWriteError(msg) from exc
