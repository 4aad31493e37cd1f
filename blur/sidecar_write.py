"""Writing sidecars: a starting sidecar for `blur detect --write-sidecar`, and the review app's corrections.

Both write atomically, never through a link, readable by this user only (a sidecar says where faces
are). The review app's writes are conditional: a sidecar that changed on disk since the page read
it is never overwritten silently.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

from blur.corrections import (
    MAX_SIDECAR_BYTES,
    SIDECAR_SUFFIX,
    VERSION,
    CorrectionsError,
    parse_entry,
    sidecar_paths,
)
from blur.fsio import open_regular, write_private
from blur.regions import Region, region_json
from blur.types import Detections


def sidecar_template(dets: Detections, size: tuple[int, int] | None) -> dict[str, Any]:
    """A starting sidecar for a user to edit: the detections as `faces`, and empty `add`/`keep` lists.

    `size` (width, height) is recorded so the sidecar is refused for a resized copy; None for videos.
    """
    return {
        "blur_sidecar": VERSION,
        "note": "Boxes are x1, y1, x2, y2 in pixels of the upright picture. 'add': always masked "
        "(missed faces, name tags, badge numbers, tattoos). 'keep': faces mostly inside stay visible "
        "(consenting speakers, public officials). 'faces' is for reference only. For video, a region "
        "may carry 'start' and 'end' in seconds, and 'keyframes' instead of 'box' to follow a moving target.",
        "size": None if size is None else list(size),
        "faces": dets.to_list(),
        "add": [],
        "keep": [],
    }


def write_new_sidecar(media: Path, payload: dict[str, Any]) -> Path:
    """Write `media`'s own sidecar; never overwrites an existing one and never writes through a link.

    Raises:
        CorrectionsError: a sidecar (or link) is already there, or it cannot be written.
    """
    dest = media.with_name(media.name + SIDECAR_SUFFIX)
    if dest.exists() or dest.is_symlink():
        msg = f"{dest}: a sidecar already exists; edit it or delete it first (not overwritten)"
        raise CorrectionsError(msg)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    data = (json.dumps(payload, indent=2) + "\n").encode()
    try:
        write_private(tmp, data)
        os.link(tmp, dest)  # fails if dest appeared meanwhile: never overwrites
    except OSError as exc:
        msg = f"{dest}: cannot write sidecar: {exc.strerror or exc}"
        raise CorrectionsError(msg) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return dest


class SidecarChangedError(CorrectionsError):
    """A sidecar changed on disk since it was read; it is not overwritten."""


def sidecar_digest(media: Path) -> str:
    """SHA-256 of `media`'s own sidecar as it is on disk now; "" when there is none.

    Raises:
        CorrectionsError: it exists but cannot be read (or is a link).
    """
    own = sidecar_paths(media)[0]
    if not (own.exists() or own.is_symlink()):
        return ""
    try:
        with open_regular(own) as fh:
            return hashlib.sha256(fh.read(MAX_SIDECAR_BYTES + 1)).hexdigest()
    except OSError as exc:
        msg = f"{own}: cannot read sidecar: {exc.strerror or exc}"
        raise CorrectionsError(msg) from exc


def sidecar_payload(
    add: list[Region], keep: list[Region], size: tuple[int, int] | None, base: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A per-file sidecar holding `add` and `keep`, keeping the other keys of `base` (an existing sidecar)."""
    payload: dict[str, Any] = {"blur_sidecar": VERSION}
    payload.update({k: v for k, v in (base or {}).items() if k in ("note", "faces", "size")})
    if size is not None:
        payload["size"] = list(size)
    payload["add"] = [region_json(r) for r in add]
    payload["keep"] = [region_json(r) for r in keep]
    return payload


def replace_sidecar(media: Path, payload: dict[str, Any], expected: str) -> Path:
    """Write `media`'s own sidecar atomically, only if it is still the one whose digest was `expected`
    ("" for none): a sidecar edited by someone else meanwhile is never overwritten silently.

    Raises:
        SidecarChangedError: it changed on disk (or appeared, or was deleted) since it was read.
        CorrectionsError: the payload is not a valid sidecar, or it cannot be written.
    """
    dest = sidecar_paths(media)[0]
    try:
        parse_entry(payload)
    except ValueError as exc:
        raise CorrectionsError(f"{dest}: {exc}") from exc
    data = (json.dumps(payload, indent=2) + "\n").encode()
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.tmp")
    try:
        write_private(tmp, data)
        if sidecar_digest(media) != expected:
            msg = f"{dest}: changed on disk since it was loaded; not overwritten (reload to see the new version)"
            raise SidecarChangedError(msg)
        os.replace(tmp, dest)  # replaces a name, never writes through a link placed there
    except OSError as exc:
        msg = f"{dest}: cannot write sidecar: {exc.strerror or exc}"
        raise CorrectionsError(msg) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return dest
