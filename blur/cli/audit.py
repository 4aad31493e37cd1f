"""What `blur audit` does once options are parsed: run the audit, print a list per file, exit code."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from blur import __version__
from blur.audit import AuditOptions, FaceCheck, FileAudit, Verdict, audit_paths
from blur.batch.report import json_ready
from blur.config import DetectorConfig, Settings
from blur.errors import BlurError
from blur.textsafe import printable

Write = Callable[[str], None]

_LABELS = {Verdict.clean: "CLEAN", Verdict.findings: "FOUND", Verdict.error: "ERROR", Verdict.unchecked: "SKIP"}


def _face_check(cfg: DetectorConfig, options: AuditOptions) -> Callable[[], FaceCheck]:
    def build() -> FaceCheck:
        from blur.engine import build_engine  # noqa: PLC0415 - the detector loads only when a file needs it

        engine = build_engine(Settings(detector=cfg, verify=False))
        return FaceCheck(engine.detector, options.face_threshold, options.every)

    return build


def render_file(result: FileAudit, write: Write) -> None:
    """Print one file's verdict and, indented, each finding."""
    label = _LABELS[result.verdict]
    head = f"{label:<6} {printable(result.path)}"
    if result.format:
        head += f"  ({result.format}"
        head += f", {len(result.findings)} finding(s))" if result.findings else ")"
    if result.reason:
        head += f": {printable(result.reason)}"
    write(head)
    for f in result.findings:
        line = f"  {f.category.value:<13} {printable(f.what)}"
        if f.detail:
            line += f": {printable(f.detail)}"
        if f.where:
            line += f"  [{printable(f.where)}]"
        write(line)


def _summary(results: list[FileAudit]) -> dict[str, int]:
    counts = {v.value: 0 for v in Verdict}
    for r in results:
        counts[r.verdict.value] += 1
    return {"files": len(results), **counts}


def run_audit(
    paths: list[Path], options: AuditOptions, cfg: DetectorConfig, *, as_json: bool, write: Write, console: Console
) -> int:
    """Audit `paths`; return 0 when every checked file is clean, 1 when anything was found, 2 on bad usage."""
    missing = [p for p in paths if not p.exists() and not p.is_symlink()]
    if missing:
        console.print(f"[red]error:[/red] {escape(printable(str(missing[0])))}: no such file or folder")
        return 2
    build = _face_check(cfg, options) if options.faces else None
    try:
        results = audit_paths(paths, options, build, None if as_json else (lambda r: render_file(r, write)))
    except (BlurError, ValueError) as exc:
        console.print(f"[red]error:[/red] cannot load the detector: {escape(printable(str(exc)))}")
        return 1
    summary = _summary(results)
    if as_json:
        payload = {
            "blur_version": __version__,
            "audit": True,
            "summary": summary,
            "files": [r.to_dict() for r in results],
        }
        write(json.dumps(json_ready(payload), indent=2, ensure_ascii=False))
    else:
        write(
            f"audited {summary['files']} file(s): {summary['clean']} clean, {summary['findings']} with findings, "
            f"{summary['error']} could not be checked, {summary['unchecked']} skipped (not photos or videos)"
        )
    bad = summary["findings"] + summary["error"]
    return 1 if bad else 0
