"""What an audit finds: findings per file, and the options of a run."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


class Category(str, Enum):
    """Kinds of problem, in the order they are listed."""

    error = "error"
    blur_file = "blur-file"
    face = "face"
    hidden = "hidden-image"
    stream = "extra-stream"
    metadata = "metadata"


class Verdict(str, Enum):
    """The outcome for one file."""

    clean = "clean"
    findings = "findings"
    error = "error"
    unchecked = "unchecked"


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing that should not be published.

    Attributes:
        category: what kind of problem.
        what: a short label ("EXIF GPS", "data after end of image").
        detail: values or names found, already shortened and made printable.
        where: where in the file (segment and offset, chunk, stream, frame range).
        box: for faces, x1, y1, x2, y2 in upright-picture pixels.
        score: for faces, the detector's confidence.
    """

    category: Category
    what: str
    detail: str = ""
    where: str = ""
    box: tuple[float, float, float, float] | None = None
    score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        data: dict[str, Any] = {"category": self.category.value, "what": self.what, "detail": self.detail}
        data["where"] = self.where
        if self.box is not None:
            data["box"] = [round(v, 1) for v in self.box]
        if self.score is not None:
            data["score"] = round(self.score, 4)
        return data


@dataclass(frozen=True, slots=True)
class FileAudit:
    """Everything found in one file."""

    path: str
    verdict: Verdict
    kind: str = ""
    format: str = ""
    findings: tuple[Finding, ...] = ()
    reason: str = ""
    frames_checked: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "path": self.path,
            "verdict": self.verdict.value,
            "kind": self.kind,
            "format": self.format,
            "reason": self.reason,
            "frames_checked": self.frames_checked,
            "findings": [f.to_dict() for f in self.findings],
        }


def verdict_of(findings: list[Finding]) -> Verdict:
    """Clean when nothing was found, an error when the file could not be checked completely."""
    if any(f.category is Category.error for f in findings):
        return Verdict.error
    return Verdict.findings if findings else Verdict.clean


@dataclass(frozen=True, slots=True)
class AuditOptions:
    """How thoroughly to audit.

    Attributes:
        faces: re-detect faces on the pixels.
        face_threshold: the score from which a detection counts as a visible face.
        every: check every Nth video frame (1 = every frame).
        multiscale: run the detector's small-face passes.
    """

    faces: bool = True
    face_threshold: float = 0.5
    every: int = 1
    multiscale: bool = True
