"""What `blur detect` does once options are parsed: detections only (and starting sidecars), no images written."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from blur.batch.discover import discover
from blur.batch.report import json_ready
from blur.config import DetectorConfig, Settings
from blur.engine import build_engine
from blur.errors import BlurError
from blur.jobs import Job, Plan
from blur.media.kinds import Kind


def _sidecar_note(job: Job, payload: dict[str, Any]) -> tuple[str, bool]:
    """Write `job`'s starting sidecar; return what happened and whether it failed."""
    from blur.corrections import CorrectionsError, sidecar_paths  # noqa: PLC0415
    from blur.sidecar_write import write_new_sidecar  # noqa: PLC0415

    own, _ = sidecar_paths(job.source)
    if own.exists() or own.is_symlink():
        return f"kept the existing sidecar {own}", False
    try:
        return f"wrote {write_new_sidecar(job.source, payload)}", False
    except CorrectionsError as exc:
        return str(exc), True


def _detect_one(job: Job, engine: Any, write_sidecar: bool) -> tuple[dict[str, Any], bool]:
    from blur.media.image import read_photo  # noqa: PLC0415
    from blur.sidecar_write import sidecar_template  # noqa: PLC0415
    from blur.types import Detections  # noqa: PLC0415

    item: dict[str, Any] = {"source": str(job.source), "status": "skipped", "reason": job.reason}
    if job.plan is Plan.fail:
        item["status"] = "failed"
        return item, True
    if job.plan is not Plan.process:
        return item, False
    if job.kind is not Kind.image:
        item["reason"] = "video: use `blur anonymize` (detection-only output covers photos)"
        if write_sidecar:
            item["sidecar"], failed = _sidecar_note(job, sidecar_template(Detections.empty(), None))
            return item, failed
        return item, False
    try:
        photo = read_photo(job.source, job.format)
        dets = engine.detector.detect(photo.rgb)
    except BlurError as exc:
        item.update(status="failed", reason=str(exc))
        return item, True
    h, w = photo.rgb.shape[:2]
    item.update(status="ok", reason="", width=w, height=h, faces=dets.to_list())
    if write_sidecar:
        item["sidecar"], failed = _sidecar_note(job, sidecar_template(dets, (w, h)))
        return item, failed
    return item, False


def run_detect(paths: list[Path], cfg: DetectorConfig, *, write_sidecar: bool = False) -> tuple[int, dict[str, Any]]:
    """Detect faces in photos without writing images; return the exit status and a JSON payload.

    With `write_sidecar`, also write each file's starting correction sidecar (never overwriting one).
    """
    engine = build_engine(Settings(detector=cfg, verify=False))
    files: list[dict[str, Any]] = []
    failed = False
    for job in discover(paths, Path(os.devnull) / "blur-detect-none"):
        item, bad = _detect_one(job, engine, write_sidecar)
        files.append(item)
        failed = failed or bad
    payload = {
        "backend": cfg.backend,
        "runtime": getattr(engine.detector, "runtime", ""),
        "threshold": getattr(engine.detector, "threshold", cfg.threshold),
        "files": files,
    }
    return (1 if failed else 0), json_ready(payload)
