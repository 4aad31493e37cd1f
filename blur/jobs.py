"""One file's job and what became of it: the contract between the batch and the per-file pipelines.

The batch (`blur.batch`) turns inputs into `Job`s; the photo and video pipelines (`blur.photo`,
`blur.video`) take one `Job` each and return a `FileResult`; the report collects the results.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from blur.media.kinds import Kind


class Plan(str, Enum):
    """What the batch will do with a file."""

    process = "process"
    skip = "skip"
    fail = "fail"


@dataclass(frozen=True, slots=True)
class Remote:
    """Where a job's file lives in object storage (fsspec URLs such as `s3://bucket/shoot/a.jpg`).

    Attributes:
        source: URL of the input, or None when `Job.source` is a local file.
        output: URL of the output, or None when `Job.output` is a local file.
        source_id: the input's size and ETag when it was listed (what the resume journal compares).
        sidecars: URLs of the input's correction sidecars that exist (its own, then its folder's).
    """

    source: str | None = None
    output: str | None = None
    source_id: str = ""
    sidecars: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Job:
    """One input file and its fate.

    Attributes:
        scratch: a private folder outside the output tree for the temporary file of the atomic write
            (used when it is on the output's filesystem; None: beside the output).
        tracks: where a video's per-frame detections and tracks are recorded for the review app
            (None: not recorded).
        remote: the URLs of a file in object storage. `source` and `output` then hold the URLs as
            paths too (unique keys, not for opening); `label` and `output_label` give the URLs.
    """

    source: Path
    output: Path | None
    plan: Plan
    kind: Kind = Kind.unsupported
    format: str = ""
    reason: str = ""
    scratch: Path | None = None
    tracks: Path | None = None
    remote: Remote | None = None

    @property
    def label(self) -> str:
        """The input as the user named it: its path, or its URL."""
        if self.remote is not None and self.remote.source is not None:
            return self.remote.source
        return str(self.source)

    @property
    def output_label(self) -> str | None:
        """The output as the user will find it: its path, or its URL."""
        if self.remote is not None and self.remote.output is not None:
            return self.remote.output
        return None if self.output is None else str(self.output)


class Status(str, Enum):
    """Outcome of one file."""

    ok = "ok"
    failed = "failed"
    skipped = "skipped"


@dataclass(frozen=True, slots=True)
class FileResult:
    """What happened to one input file.

    Attributes:
        faces: faces masked (for video: face detections masked over all frames).
        flagged: faces the second pass still found on the anonymized picture and then masked too.
        frames: frames written (video only).
        tracks: face tracks (video only).
        detections: every mask and kept face (photo), or a few frames per track (video), for reports.
        track_spans: each track's id, first and last frame masked, best score (video only).
        found: the detector's own faces (x1, y1, x2, y2, score) at full precision (photo only), so a
            re-render masks exactly what a fresh run would; kept in the state folder, not in reports.
        traceback: for an internal error (a bug in blur, never a bad file), where it happened.
    """

    source: str
    status: Status
    output: str | None = None
    kind: str = ""
    reason: str = ""
    faces: int = 0
    flagged: int = 0
    seconds: float = 0.0
    frames: int | None = None
    tracks: int | None = None
    notes: tuple[str, ...] = ()
    detections: tuple[dict[str, Any], ...] = field(default=())
    track_spans: tuple[dict[str, Any], ...] = field(default=())
    found: tuple[tuple[float, float, float, float, float], ...] = field(default=())
    traceback: str = ""
    segments: dict[str, Any] | None = None
    """A video split into segments: how many, on how many workers, and the time of each step."""

    def to_dict(self, *, exact: bool = False) -> dict[str, Any]:
        """Return a JSON-ready dict (`exact`: with the full-precision detections, for the state folder)."""
        data = asdict(self)
        data.pop("found")
        if exact:
            data["found"] = [list(row) for row in self.found]
        data["status"] = self.status.value
        data["seconds"] = round(self.seconds, 3)
        data["notes"] = list(self.notes)
        data["detections"] = list(self.detections)
        data["track_spans"] = list(self.track_spans)
        if not self.traceback:
            del data["traceback"]
        if self.segments is None:
            del data["segments"]  # only split videos have them
        return data

    @classmethod
    def from_dict(cls, data: Any) -> FileResult:
        """Read back what `to_dict` wrote (a report, a journal entry, a batch record).

        Raises:
            ValueError: it is not a file result.
        """
        if not isinstance(data, dict) or not isinstance(data.get("source"), str):
            msg = "not a file result (expected an object with a 'source')"
            raise ValueError(msg)
        try:
            output = data.get("output")
            return cls(
                source=data["source"],
                status=Status(data.get("status", "failed")),
                output=None if output is None else str(output),
                kind=str(data.get("kind", "")),
                reason=str(data.get("reason", "")),
                faces=int(data.get("faces", 0)),
                flagged=int(data.get("flagged", 0)),
                seconds=float(data.get("seconds", 0.0)),
                frames=None if data.get("frames") is None else int(data["frames"]),
                tracks=None if data.get("tracks") is None else int(data["tracks"]),
                notes=tuple(str(n) for n in data.get("notes", [])),
                detections=tuple(d for d in data.get("detections", []) if isinstance(d, dict)),
                track_spans=tuple(d for d in data.get("track_spans", []) if isinstance(d, dict)),
                found=tuple(_row(r) for r in data.get("found", [])),
                traceback=str(data.get("traceback", "")),
                segments=data["segments"] if isinstance(data.get("segments"), dict) else None,
            )
        except (TypeError, ValueError) as exc:
            msg = f"{data['source']}: malformed file result ({exc})"
            raise ValueError(msg) from exc


def _row(raw: Any) -> tuple[float, float, float, float, float]:
    """One full-precision detection row.

    Raises:
        ValueError: it is not five numbers.
    """
    if not isinstance(raw, list) or len(raw) != 5:
        msg = f"a detection row must be [x1, y1, x2, y2, score], got {raw!r}"
        raise ValueError(msg)
    x1, y1, x2, y2, score = (float(v) for v in raw)
    return x1, y1, x2, y2, score
