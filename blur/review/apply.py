"""Apply the page's corrections: validate them, write them into the sidecars, re-render the changed files.

The page sends, per changed file, the regions of its own sidecar as it wants them (keep regions, add
regions) and the digest of that sidecar as the page loaded it. A keep of a whole video track comes
as `{"track": ID}` and is written as a keep region that follows the track by keyframes. Everything
is checked as `blur anonymize` would check the sidecar; nothing is written for a file whose
corrections are invalid or whose sidecar changed on disk meanwhile. One apply runs at a time, holding
the output folder's lock (a `blur anonymize` into the same folder waits its turn, and vice versa).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from blur.batch.journal import BusyError, locked
from blur.corrections import CorrectionsError, parse_entry, read_own_sidecar
from blur.engine import Engine
from blur.errors import BlurError
from blur.media.kinds import Kind, sniff
from blur.regions import Keyframe, Region, parse_region
from blur.review.batch import ReviewBatch, ReviewFile, record_digest
from blur.review.rerender import render, update_journal, write_back
from blur.sidecar_write import replace_sidecar, sidecar_payload

MAX_REGIONS = 5000
"""Regions per file the page may send."""

TRACK_KEEP_GROWTH = 1.25
"""A kept track's keep region is its boxes grown this much: detections along it stay mostly inside."""

TRACK_KEYFRAMES_PER_SECOND = 5.0


class EditError(BlurError):
    """The page sent corrections that cannot be applied."""


class BatchChangedError(BlurError):
    """The batch record changed on disk since the app loaded it (another `blur anonymize` run)."""


@dataclass(frozen=True, slots=True)
class Edit:
    """One file's corrections as the page wants them."""

    item: ReviewFile
    digest: str
    add: list[Region]
    keep: list[Region]


@dataclass(slots=True)
class Outcome:
    """What became of one file's edit."""

    id: str
    ok: bool
    message: str = ""
    warnings: list[str] = field(default_factory=list)


def _grown(box: np.ndarray, factor: float) -> tuple[float, float, float, float]:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    hw, hh = (box[2] - box[0]) * factor / 2, (box[3] - box[1]) * factor / 2
    return float(cx - hw), float(cy - hh), float(cx + hw), float(cy + hh)


def track_keep(batch: ReviewBatch, item: ReviewFile, ident: int, label: str) -> Region:
    """A keep region that follows video track `ident` by keyframes, over the track's whole span.

    Raises:
        EditError: the file has no detection record or no such track.
    """
    from blur.video.record import RecordError, load_record  # noqa: PLC0415 - only for videos

    if item.output is None:
        msg = f"{item.source}: no output, so no tracks to keep"
        raise EditError(msg)
    try:
        record = load_record(batch.state.tracks_file(item.output))
    except RecordError as exc:
        raise EditError(str(exc)) from exc
    frames, boxes = record.track_path(ident)
    if not len(frames):
        msg = f"{item.source}: no track {ident} (reload the page: tracks change after each re-render)"
        raise EditError(msg)
    times = record.times[frames]
    span = float(times[-1] - times[0])
    every = max(1, math.floor(len(frames) / max(1.0, span * TRACK_KEYFRAMES_PER_SECOND))) if span > 0 else 1
    picks = sorted({*range(0, len(frames), every), len(frames) - 1})
    keyframes = tuple(Keyframe(float(times[i]), _grown(boxes[i], TRACK_KEEP_GROWTH)) for i in picks)
    return Region(keyframes[0].box, label or f"track {ident}", float(times[0]), float(times[-1]), keyframes=keyframes)


def _regions(raw: Any, key: str, batch: ReviewBatch, item: ReviewFile) -> list[Region]:
    if not isinstance(raw, list) or len(raw) > MAX_REGIONS:
        msg = f"{item.source}: '{key}' must be a list of at most {MAX_REGIONS} regions"
        raise EditError(msg)
    regions: list[Region] = []
    for i, entry in enumerate(raw):
        if key == "keep" and isinstance(entry, dict) and set(entry) <= {"track", "label"} and "track" in entry:
            ident = entry["track"]
            if isinstance(ident, bool) or not isinstance(ident, int):
                msg = f"{item.source}: keep[{i}]: 'track' must be a track id"
                raise EditError(msg)
            regions.append(track_keep(batch, item, ident, str(entry.get("label", ""))))
            continue
        try:
            regions.append(parse_region(entry, f"{key}[{i}]"))
        except ValueError as exc:
            raise EditError(f"{item.source}: {exc}") from exc
    return regions


def parse_edit(raw: Any, batch: ReviewBatch) -> Edit:
    """One file's edit from the page's JSON.

    Raises:
        EditError: an unknown file id, or malformed regions.
    """
    if not isinstance(raw, dict) or set(raw) - {"id", "digest", "add", "keep"}:
        msg = "each edit is an object with 'id', 'digest', 'add' and 'keep'"
        raise EditError(msg)
    item = batch.get(str(raw.get("id", "")))
    if item is None:
        msg = "unknown file id"
        raise EditError(msg)
    digest = raw.get("digest")
    if not isinstance(digest, str):
        msg = f"{item.source}: missing the sidecar digest the page loaded"
        raise EditError(msg)
    return Edit(
        item,
        digest,
        _regions(raw.get("add", []), "add", batch, item),
        _regions(raw.get("keep", []), "keep", batch, item),
    )


def _photo_size(item: ReviewFile) -> tuple[int, int] | None:
    """The upright picture's size for a photo's sidecar (refused later on a resized copy); None for videos."""
    from PIL import Image  # noqa: PLC0415

    if item.result.kind != "image" or item.output is None:
        return None
    try:
        fmt = sniff(item.output)
        if fmt.kind is not Kind.image or fmt.format not in ("JPEG", "PNG", "WEBP", "TIFF"):
            return None
        with Image.open(item.output, formats=[fmt.format]) as image:
            return int(image.size[0]), int(image.size[1])
    except OSError:
        return None


def write_sidecar(edit: Edit) -> Path:
    """Write the edit into the file's own sidecar, keeping its other keys, if it is unchanged on disk.

    Raises:
        CorrectionsError: it changed on disk (`SidecarChangedError`), or the result is not a valid sidecar.
    """
    base = read_own_sidecar(edit.item.source)
    size = _photo_size(edit.item) if base is None or base.get("size") is None else None
    payload = sidecar_payload(edit.add, edit.keep, size, base)
    parse_entry(payload)  # what `blur anonymize` will read: checked before anything is written
    return replace_sidecar(edit.item.source, payload, edit.digest)


def apply_edits(batch: ReviewBatch, edits: list[Edit], engine: Engine) -> list[Outcome]:
    """Write each edit's sidecar and re-render its file; then the record, report and static page.

    Raises:
        BusyError: a `blur anonymize` run holds the output folder.
        BatchChangedError: the batch was run again since the app started.
    """
    outcomes: list[Outcome] = []
    with batch.lock, locked(batch.state.output):
        if record_digest(batch.state) != batch.record_digest:
            msg = (
                f"the batch in {batch.state.output} was run again since this page loaded; nothing was applied: "
                "restart `blur review` to see the new run"
            )
            raise BatchChangedError(msg)
        for edit in edits:
            outcomes.append(_apply_one(batch, edit, engine))
        warnings = write_back(batch) if edits else []
        batch.record_digest = record_digest(batch.state)
    for outcome in outcomes:
        outcome.warnings += warnings
    return outcomes


def _apply_one(batch: ReviewBatch, edit: Edit, engine: Engine) -> Outcome:
    item = edit.item
    try:
        write_sidecar(edit)
    except (CorrectionsError, ValueError) as exc:
        return Outcome(item.id, False, str(exc))
    item.result = render(item, batch, engine)
    item.version += 1
    if item.result.status.value != "ok":
        return Outcome(item.id, False, item.result.reason)
    return Outcome(item.id, True, warnings=update_journal(batch, item))


__all__ = ["BatchChangedError", "BusyError", "Edit", "EditError", "Outcome", "apply_edits", "parse_edit", "track_keep"]
