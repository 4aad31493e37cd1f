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
class Job:
    """One input file and its fate."""

    source: Path
    output: Path | None
    plan: Plan
    kind: Kind = Kind.unsupported
    format: str = ""
    reason: str = ""


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

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        data = asdict(self)
        data["status"] = self.status.value
        data["seconds"] = round(self.seconds, 3)
        data["notes"] = list(self.notes)
        data["detections"] = list(self.detections)
        return data
