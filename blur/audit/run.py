"""Audit files about to be published, whoever made them. Never prints; returns one `FileAudit` per file."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from blur.audit.avif import avif_findings
from blur.audit.exif import tiff_findings
from blur.audit.faces import FaceCheck, photo_faces
from blur.audit.gif import gif_findings
from blur.audit.heif import heif_findings
from blur.audit.jpeg import jpeg_findings
from blur.audit.model import AuditOptions, Category, FileAudit, Finding, Verdict, verdict_of
from blur.audit.png import png_findings
from blur.audit.riff import webp_findings
from blur.audit.video import video_findings
from blur.batch.workfiles import working_file_kind
from blur.fsio import open_regular
from blur.media.kinds import HEAD_BYTES, Kind, Sniffed, extension_kind, formats_agree, sniff_bytes

MAX_PHOTO_BYTES = 1 << 30
"""Photos above 1 GiB are not read into memory for the structure check."""

PARSERS: dict[str, Callable[[bytes], list[Finding]]] = {
    "JPEG": jpeg_findings,
    "PNG": png_findings,
    "WEBP": webp_findings,
    "TIFF": tiff_findings,
    "HEIF": heif_findings,
    "AVIF": avif_findings,
    "GIF": gif_findings,
}

OnFile = Callable[[FileAudit], None]


class LazyCheck:
    """Builds the face detector the first time a file needs it (metadata-only runs never load it)."""

    def __init__(self, build: Callable[[], FaceCheck] | None) -> None:
        self._build = build
        self._check: FaceCheck | None = None

    def get(self) -> FaceCheck | None:
        """The face check, or None when faces are not checked."""
        if self._build is not None and self._check is None:
            self._check = self._build()
        return self._check


def collect(paths: list[Path]) -> list[Path]:
    """Files named directly, plus everything below named folders (sorted; linked folders not entered)."""
    found: list[Path] = []
    for path in paths:
        if not (path.is_dir() and not path.is_symlink()):
            found.append(path)
            continue
        for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
            here = Path(dirpath)
            dirnames.sort()
            found.extend(here / d for d in dirnames if (here / d).is_symlink())
            found.extend(here / f for f in sorted(filenames))
    return found


def _read(path: Path) -> bytes:
    with open_regular(path) as fh:
        data = fh.read(MAX_PHOTO_BYTES + 1)
    if len(data) > MAX_PHOTO_BYTES:
        msg = f"larger than {MAX_PHOTO_BYTES >> 20} MiB"
        raise OSError(msg)
    return data


def _structure(fmt: str, data: bytes) -> list[Finding]:
    try:
        return PARSERS[fmt](data)
    except Exception as exc:  # noqa: BLE001 - a parser bug must fail the file (exit 1), never pass it or stop the run
        return [Finding(Category.error, f"{fmt} structure could not be checked", f"{type(exc).__name__}: {exc}")]


def _photo(path: Path, fmt: str, data: bytes, check: LazyCheck) -> tuple[list[Finding], int | None]:
    """Structure findings and faces of a photo, and the frames (pages, images) whose faces were checked."""
    findings = _structure(fmt, data)
    face_check = check.get()
    if face_check is None:
        return findings, None
    faces, checked = photo_faces(path, fmt, face_check)
    return findings + faces, checked


def _mismatch(path: Path, actual: Sniffed) -> list[Finding]:
    claimed = extension_kind(path)
    if claimed.kind is Kind.unsupported or formats_agree(claimed, actual):
        return []
    return [Finding(Category.metadata, "content does not match the extension", f"{actual.format}, named {path.suffix}")]


def audit_file(path: Path, check: LazyCheck) -> FileAudit:
    """Audit one path: blur's own working files, photo and video structure, and visible faces."""
    name = str(path)
    try:
        mode = os.lstat(path).st_mode
    except OSError as exc:
        return FileAudit(name, Verdict.error, reason=f"cannot stat: {exc.strerror or exc}")
    if stat.S_ISLNK(mode):
        return FileAudit(name, Verdict.unchecked, reason="symbolic link (not followed)")
    if not stat.S_ISREG(mode):
        return FileAudit(name, Verdict.unchecked, reason="not a regular file")
    kind = working_file_kind(path)
    if kind is not None:
        return FileAudit(
            name, Verdict.findings, "blur", findings=(Finding(Category.blur_file, kind, "do not publish"),)
        )
    try:
        data = _read(path)
    except OSError as exc:
        return FileAudit(name, Verdict.error, reason=f"cannot read: {exc.strerror or exc}")
    actual = sniff_bytes(data[:HEAD_BYTES])
    if actual.kind is Kind.unsupported:
        claimed = extension_kind(path)
        if claimed.kind is not Kind.unsupported:
            reason = f"content is not {claimed.format} as its extension says"
            return FileAudit(name, Verdict.error, claimed.kind.value, claimed.format, reason=reason)
        return FileAudit(name, Verdict.unchecked, reason="not a photo or video")
    findings = _mismatch(path, actual)
    frames: int | None = None
    if actual.kind is Kind.image:
        found, frames = _photo(path, actual.format, data, check)
        findings += found
        frames = frames if frames is not None and frames > 1 else None
    else:
        del data
        found, frames = video_findings(path, actual.format, check.get())
        findings += found
    ordered = sorted(findings, key=lambda f: list(Category).index(f.category))
    return FileAudit(name, verdict_of(ordered), actual.kind.value, actual.format, tuple(ordered), frames_checked=frames)


def audit_paths(
    paths: list[Path], options: AuditOptions, build_check: Callable[[], FaceCheck] | None, on_file: OnFile | None = None
) -> list[FileAudit]:
    """Audit every file under `paths`; `build_check` makes the face detector (None: no face check)."""
    check = LazyCheck(build_check if options.faces else None)
    results = []
    for path in collect(paths):
        result = audit_file(path, check)
        results.append(result)
        if on_file is not None:
            on_file(result)
    return results
