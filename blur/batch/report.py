"""The batch report: counts over the results, and the JSON file."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from blur.jobs import FileResult, Status
from blur.textsafe import unicode_clean


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts over a batch."""

    ok: int
    failed: int
    skipped: int
    faces: int
    flagged_files: int
    seconds: float


def summarise(results: list[FileResult], seconds: float) -> Summary:
    """Count outcomes and faces."""
    return Summary(
        ok=sum(r.status is Status.ok for r in results),
        failed=sum(r.status is Status.failed for r in results),
        skipped=sum(r.status is Status.skipped for r in results),
        faces=sum(r.faces for r in results),
        flagged_files=sum(r.flagged > 0 for r in results),
        seconds=seconds,
    )


def write_report(path: Path, results: list[FileResult], summary: Summary, meta: dict[str, Any]) -> None:
    """Write the JSON report atomically."""
    payload = {
        **meta,
        "summary": {**asdict(summary), "seconds": round(summary.seconds, 3)},
        "files": [r.to_dict() for r in results],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(json_ready(payload), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def json_ready(value: Any) -> Any:
    """Return `value` with every string made UTF-8 encodable (file names may hold undecodable bytes)."""
    if isinstance(value, str):
        return unicode_clean(value)
    if isinstance(value, dict):
        return {json_ready(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value
