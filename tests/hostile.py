"""Helpers for hostile-input tests: hand-built bomb headers, and the CLI run in a separate process."""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk with its CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int, extra: bytes = b"") -> bytes:
    """A PNG header declaring width×height RGB pixels, with a few bytes of (valid) compressed data."""
    ihdr = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return (
        b"\x89PNG\r\n\x1a\n" + ihdr + extra + png_chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + png_chunk(b"IEND", b"")
    )


def ztxt_bomb(megabytes: int = 64) -> bytes:
    """A zTXt chunk that inflates to `megabytes` MB of zeros."""
    return png_chunk(b"zTXt", b"Comment\0\0" + zlib.compress(b"\0" * (megabytes << 20), 9))


def jpeg_bomb(width: int, height: int, real: bytes) -> bytes:
    """A real JPEG whose frame header (SOF0) is rewritten to declare width×height."""
    at = real.find(b"\xff\xc0")
    return real[: at + 5] + struct.pack(">HH", height, width) + real[at + 9 :]


def tiff_bomb(width: int, height: int) -> bytes:
    """A minimal uncompressed TIFF declaring width×height 8-bit RGB, with one tiny strip."""
    entries = [
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, 1, 8),
        (259, 3, 1, 1),
        (262, 3, 1, 2),
        (273, 4, 1, 200),
        (277, 3, 1, 3),
        (278, 4, 1, height),
        (279, 4, 1, 64),
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        ifd += struct.pack("<HHI", tag, typ, count) + (
            struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value)
        )
    ifd += struct.pack("<I", 0)
    body = b"II*\0" + struct.pack("<I", 8) + ifd
    return body.ljust(200, b"\0") + b"\x80" * 64


def drop_file_capabilities() -> None:
    """preexec_fn: remove root's power to ignore file permissions from the child (it keeps uid 0)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def limit_file_size(limit: int) -> Callable[[], None]:
    """preexec_fn: files larger than `limit` bytes cannot be written (write fails with EFBIG, no signal)."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def blur_cli(
    *args: str | bytes | Path, preexec: Callable[[], None] | None = None, timeout: float = 240, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run `python -m blur ARGS` in a fresh process; arguments may be bytes (undecodable file names)."""
    argv: list[str | bytes] = [
        sys.executable,
        "-m",
        "blur",
        *(os.fspath(a) if isinstance(a, Path) else a for a in args),
    ]
    env = {**os.environ, "COLUMNS": "200", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(argv, capture_output=True, timeout=timeout, preexec_fn=preexec, env=env, cwd=cwd, check=False)


def capabilities_droppable(probe: Path) -> bool:
    """Whether a child with dropped capabilities is really refused a file with mode 000 (else skip)."""
    probe.write_text("x")
    probe.chmod(0)
    code = "import sys\ntry:\n open(sys.argv[1]).read()\nexcept PermissionError:\n sys.exit(3)\n"
    try:
        done = subprocess.run([sys.executable, "-c", code, str(probe)], preexec_fn=drop_file_capabilities, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        probe.chmod(0o600)
    return done.returncode == 3
