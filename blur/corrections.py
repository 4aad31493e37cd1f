"""Manual corrections from sidecar files: regions always masked, and regions whose faces stay visible.

A sidecar is JSON, either per file (`photo.jpg.blur.json`) or per folder (`.blur.json`, with one entry
per file name). Both apply when both exist. Schema, version 1:

    {"blur_sidecar": 1,
     "size": [width, height],                       # optional: refuse if the picture is another size
     "faces": [{"box": [x1, y1, x2, y2], "score": 0.93}],   # informational (written by `blur detect`)
     "add":  [{"box": [x1, y1, x2, y2], "label": "name tag", "start": 0.0, "end": 4.5},
              {"box": [x1, y1, x2, y2], "shape": "ellipse"},
              {"keyframes": [{"time": 1.0, "box": [...]}, {"time": 2.5, "box": [...]}], "start": 1.0, "end": 3.0}],
     "keep": [{"box": [x1, y1, x2, y2], "label": "speaker (consented)"}]}

A folder sidecar is `{"blur_sidecar": 1, "files": {"photo.jpg": {...entry...}}}`. Boxes are in the
upright picture's pixels (for video: the upright output frame). `start`/`end` (seconds) limit a
region to part of a video; photos ignore them. A region with `keyframes` instead of a `box` follows
a moving target in a video (interpolated between keyframes, `blur.regions`); photos refuse it. An
`add` region may be an `ellipse` (inscribed in its box); keep regions are boxes.

`add` regions are always masked (a missed face, a name tag, a badge number, a tattoo). A detection
whose box lies mostly inside a `keep` region is left visible; keep regions are matched by position
only, never by recognising anyone, and never un-mask an `add` region or anything else. Any problem
with a sidecar (bad JSON, unknown key, malformed box) fails the file: a correction is never ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from blur.errors import BlurError
from blur.fsio import open_regular
from blur.regions import Region, RegionShape, parse_region
from blur.types import Detections

SIDECAR_SUFFIX = ".blur.json"
"""Per-photo or per-video corrections: `photo.jpg.blur.json` beside `photo.jpg`."""

FOLDER_SIDECAR = ".blur.json"
"""Corrections for several files of one folder, keyed by file name."""

VERSION = 1
KEEP_INSIDE = 0.6
"""A detection is kept visible when at least this share of its box lies inside one keep region."""

MAX_SIDECAR_BYTES = 8 * 1024 * 1024
_ENTRY_KEYS = frozenset({"size", "faces", "add", "keep", "note"})

Boxes = npt.NDArray[np.float32]


class CorrectionsError(BlurError):
    """A sidecar cannot be used; the file it describes must not be processed."""


@dataclass(frozen=True, slots=True)
class Corrections:
    """Every correction that applies to one file, from all its sidecars."""

    add: tuple[Region, ...] = ()
    keep: tuple[Region, ...] = ()
    size: tuple[int, int] | None = None
    sources: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """No region to add or keep."""
        return not self.add and not self.keep

    def at(self, time_s: float | None = None) -> tuple[Boxes, Boxes]:
        """The add boxes and keep boxes active at `time_s` seconds (None: a photo), each (N, 4) float32;
        moving regions are placed where their keyframes put them at that time."""
        return _boxes(self.add, time_s), _boxes(self.keep, time_s)

    def ellipses_at(self, time_s: float | None = None) -> npt.NDArray[np.bool_]:
        """For each add box of `at(time_s)`, whether it is an ellipse (else a rectangle)."""
        return np.array([r.shape is RegionShape.ellipse for r in self.add if r.active(time_s)], bool)

    @property
    def moving(self) -> bool:
        """Whether any region follows keyframes (a video-only correction)."""
        return any(r.keyframes for r in (*self.add, *self.keep))

    def check_fits(self, width: int, height: int, label: Path) -> None:
        """Refuse corrections made for a picture of another size, or add regions entirely outside it.

        Raises:
            CorrectionsError: the declared size differs, or an add region misses the picture.
        """
        if self.size is not None and self.size != (width, height):
            msg = f"{label}: sidecar is for a {self.size[0]}x{self.size[1]} picture, this one is {width}x{height}"
            raise CorrectionsError(msg)
        for region in self.add:
            x1, y1, x2, y2 = region.extent()
            if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
                msg = f"{label}: add region {[x1, y1, x2, y2]} lies outside the {width}x{height} picture"
                raise CorrectionsError(msg)

    def check_photo(self, label: Path) -> None:
        """Refuse regions that only make sense in a video (keyframes).

        Raises:
            CorrectionsError: a region moves by keyframes.
        """
        if self.moving:
            msg = f"{label}: a sidecar region has 'keyframes', which only apply to videos; give it a 'box'"
            raise CorrectionsError(msg)


def _boxes(regions: tuple[Region, ...], time_s: float | None) -> Boxes:
    rows = [r.box_at(time_s) for r in regions if r.active(time_s)]
    return np.asarray(rows, np.float32).reshape(-1, 4)


def _regions(entry: dict[str, Any], key: str) -> tuple[Region, ...]:
    raw = entry.get(key, [])
    if not isinstance(raw, list):
        msg = f"'{key}' must be a list"
        raise ValueError(msg)
    regions = tuple(parse_region(item, f"{key}[{i}]") for i, item in enumerate(raw))
    if key == "keep":
        for i, region in enumerate(regions):
            if region.shape is not RegionShape.box:
                msg = f"keep[{i}]: keep regions are boxes (faces mostly inside one stay visible); drop 'shape'"
                raise ValueError(msg)
    return regions


def _size(entry: dict[str, Any]) -> tuple[int, int] | None:
    raw = entry.get("size")
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) != 2 or not all(isinstance(v, int) and v > 0 for v in raw):
        msg = "'size' must be [width, height] in pixels"
        raise ValueError(msg)
    return int(raw[0]), int(raw[1])


def parse_entry(entry: Any) -> Corrections:
    """Validate one file's entry.

    Raises:
        ValueError: naming the first problem.
    """
    if not isinstance(entry, dict):
        msg = "an entry must be a JSON object"
        raise ValueError(msg)
    unknown = set(entry) - _ENTRY_KEYS - {"blur_sidecar"}
    if unknown:
        msg = f"unknown key(s) {sorted(unknown)} (expected some of {sorted(_ENTRY_KEYS)})"
        raise ValueError(msg)
    _regions(entry, "faces")  # validated so a hand-edited list cannot hide a typo, otherwise unused
    return Corrections(_regions(entry, "add"), _regions(entry, "keep"), _size(entry))


def _read_json(path: Path) -> Any:
    try:
        with open_regular(path) as fh:
            raw = fh.read(MAX_SIDECAR_BYTES + 1)
    except OSError as exc:
        msg = f"{path}: cannot read sidecar: {exc.strerror or exc}"
        raise CorrectionsError(msg) from exc
    if len(raw) > MAX_SIDECAR_BYTES:
        msg = f"{path}: sidecar larger than {MAX_SIDECAR_BYTES >> 20} MiB"
        raise CorrectionsError(msg)
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        msg = f"{path}: sidecar is not valid JSON ({exc}); fix it or remove it"
        raise CorrectionsError(msg) from exc
    if not isinstance(data, dict) or data.get("blur_sidecar") != VERSION:
        msg = f'{path}: not a blur sidecar (expected an object with "blur_sidecar": {VERSION})'
        raise CorrectionsError(msg)
    return data


def _from_file(path: Path) -> Corrections:
    try:
        return parse_entry(_read_json(path))
    except ValueError as exc:
        raise CorrectionsError(f"{path}: {exc}") from exc


def _from_folder(path: Path, name: str) -> Corrections | None:
    data = _read_json(path)
    unknown = set(data) - {"blur_sidecar", "files", "note"}
    files = data.get("files", {})
    if unknown or not isinstance(files, dict):
        msg = f'{path}: a folder sidecar holds only "blur_sidecar" and a "files" object keyed by file name'
        raise CorrectionsError(msg)
    if name not in files:
        return None
    try:
        return parse_entry(files[name])
    except ValueError as exc:
        raise CorrectionsError(f"{path}: files[{name!r}]: {exc}") from exc


def sidecar_paths(media: Path) -> tuple[Path, Path]:
    """The per-file and per-folder sidecar locations for `media`."""
    return media.with_name(media.name + SIDECAR_SUFFIX), media.with_name(FOLDER_SIDECAR)


def load_parts(media: Path) -> tuple[Corrections, Corrections]:
    """`media`'s corrections from its own sidecar and from its folder's sidecar, apart (empty when absent).

    Raises:
        CorrectionsError: a sidecar exists but is unreadable, a link, not JSON, or malformed.
    """
    own, folder = sidecar_paths(media)
    mine = _from_file(own) if own.exists() or own.is_symlink() else Corrections()
    shared = _from_folder(folder, media.name) if folder.exists() or folder.is_symlink() else None
    return mine, shared or Corrections()


def read_own_sidecar(media: Path) -> dict[str, Any] | None:
    """`media`'s own sidecar as JSON (None when there is none).

    Raises:
        CorrectionsError: it exists but is unreadable, a link, or not a blur sidecar.
    """
    own = sidecar_paths(media)[0]
    if not (own.exists() or own.is_symlink()):
        return None
    data: dict[str, Any] = _read_json(own)
    return data


def load_corrections(media: Path) -> Corrections:
    """All corrections for `media` from its own sidecar and its folder's sidecar (empty when neither exists).

    Raises:
        CorrectionsError: a sidecar exists but is unreadable, a link, not JSON, or malformed.
    """
    own, folder = sidecar_paths(media)
    parts: list[tuple[Path, Corrections]] = []
    if own.exists() or own.is_symlink():
        parts.append((own, _from_file(own)))
    if folder.exists() or folder.is_symlink():
        found = _from_folder(folder, media.name)
        if found is not None:
            parts.append((folder, found))
    sizes = {c.size for _, c in parts if c.size is not None}
    if len(sizes) > 1:
        msg = f"{media}: its sidecars declare different picture sizes {sorted(sizes)}"
        raise CorrectionsError(msg)
    return Corrections(
        add=tuple(r for _, c in parts for r in c.add),
        keep=tuple(r for _, c in parts for r in c.keep),
        size=next(iter(sizes), None),
        sources=tuple(str(p) for p, _ in parts),
    )


def split_kept(dets: Detections, keep: Boxes, inside: float = KEEP_INSIDE) -> tuple[Detections, Detections]:
    """Split detections into those to mask and those a keep region leaves visible.

    A detection is kept when at least `inside` of its box area lies within a single keep region.
    """
    if len(dets) == 0 or len(keep) == 0:
        return dets, Detections.empty()
    a = dets.xyxy
    ix1 = np.maximum(a[:, None, 0], keep[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], keep[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], keep[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], keep[None, :, 3])
    inter = (ix2 - ix1).clip(0) * (iy2 - iy1).clip(0)
    area = np.maximum((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]), 1e-6)
    kept = (inter / area[:, None] >= inside).any(axis=1)
    return dets[~kept], dets[kept]
