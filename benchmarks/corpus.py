"""Run `blur anonymize` over the real-world corpus (`benchmarks/corpus_fetch.py`) and report what became of it.

Usage (from the repository root)::

    python benchmarks/corpus_fetch.py                  # once: gather the corpus (ignored by git)
    python benchmarks/corpus.py                        # anonymize, then check every output
    python benchmarks/corpus.py --jobs 2 --no-faces --workdir /tmp/corpus-run

Per input format (by content; animated and multi-picture files apart): how many files came out ok,
were refused (fail closed with a reason: too large, unsupported variant), failed (corrupt, truncated)
or skipped, and how many internal errors (a bug in blur: the target is none). Then, for every
output: whether it has its input's format by content and its frame count, whether `blur audit`
(metadata and, unless `--no-faces`, faces on every frame) finds anything, and whether exiftool (if
installed) finds anything but technical tags. Markdown on stdout, progress on stderr.

This is a measuring instrument, not a test: nothing in tests/ runs or imports it.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from blur.errors import BlurError  # noqa: E402
from blur.media.image import probe_photo  # noqa: E402
from blur.media.kinds import Kind, sniff  # noqa: E402

CORPUS = REPO_ROOT / "benchmarks" / "corpus"

REFUSED = ("refused", "cannot hold", "too large", "not supported", "content is", "cannot read")
"""Words of a reason that says blur declined the file on purpose (fail closed: too large, a variant no
decoder here reads, a mislabelled file), rather than met damage."""

OWN_GROUPS = frozenset({"SourceFile", "System", "File", "ExifTool", "Composite"})
"""exiftool's groups about the file on disk and its own derived values, not the file's content."""

TECHNICAL = frozenset(
    {
        # GIF
        "GIF:AnimationIterations", "GIF:BackgroundColor", "GIF:BitsPerPixel", "GIF:ColorResolutionDepth",
        "GIF:Duration", "GIF:FrameCount", "GIF:GIFVersion", "GIF:HasColorMap", "GIF:ImageHeight", "GIF:ImageWidth",
        "GIF:TransparentColor",
        # JPEG
        "JFIF:JFIFVersion", "JFIF:ResolutionUnit", "JFIF:XResolution", "JFIF:YResolution",
        # PNG / APNG
        "PNG:AnimationFrames", "PNG:AnimationPlays", "PNG:BitDepth", "PNG:ColorType", "PNG:Compression",
        "PNG:Filter", "PNG:ImageHeight", "PNG:ImageWidth", "PNG:Interlace",
        # WebP
        "RIFF:AlphaCompression", "RIFF:AlphaFiltering", "RIFF:AlphaPreprocessing", "RIFF:AnimationLoopCount",
        "RIFF:BackgroundColor", "RIFF:Duration", "RIFF:HorizontalScale", "RIFF:ImageHeight", "RIFF:ImageWidth",
        "RIFF:VP8Version", "RIFF:VerticalScale", "RIFF:WebP_Flags",
        # HEIF / AVIF boxes
        "Meta:PrimaryItemReference", "QuickTime:AV1ConfigurationVersion", "QuickTime:AuxiliaryImageType",
        "QuickTime:AverageFrameRate", "QuickTime:BitDepthChroma", "QuickTime:BitDepthLuma", "QuickTime:ChromaFormat",
        "QuickTime:ChromaSamplePosition", "QuickTime:ColorPrimaries", "QuickTime:ColorProfiles",
        "QuickTime:CompatibleBrands", "QuickTime:ConstantFrameRate", "QuickTime:ConstraintIndicatorFlags",
        "QuickTime:GenProfileCompatibilityFlags", "QuickTime:GeneralLevelIDC", "QuickTime:GeneralProfileIDC",
        "QuickTime:GeneralProfileSpace", "QuickTime:GeneralTierFlag", "QuickTime:HEVCConfigurationVersion",
        "QuickTime:HandlerType", "QuickTime:HighBitDepth", "QuickTime:ImagePixelDepth",
        "QuickTime:ImageSpatialExtent", "QuickTime:InitialDelaySamples", "QuickTime:MajorBrand",
        "QuickTime:MatrixCoefficients", "QuickTime:MediaData", "QuickTime:MediaDataOffset",
        "QuickTime:MediaDataSize", "QuickTime:MinSpatialSegmentationIDC", "QuickTime:MinorVersion",
        "QuickTime:NumTemporalLayers", "QuickTime:ParallelismType", "QuickTime:SeqLevelIdx0",
        "QuickTime:SeqProfile", "QuickTime:SeqTier0", "QuickTime:TemporalIDNested",
        "QuickTime:TransferCharacteristics", "QuickTime:TwelveBit", "QuickTime:ImageGridRows",
        "QuickTime:ImageGridColumns",
    }
)  # fmt: skip
"""Tags describing only how the pixels are stored: what blur's outputs may carry (TIFF baseline tags below)."""

TIFF_BASELINE = frozenset(
    {
        "BitsPerSample", "Compression", "ExtraSamples", "ImageHeight", "ImageWidth", "PhotometricInterpretation",
        "PlanarConfiguration", "RowsPerStrip", "SamplesPerPixel", "StripByteCounts", "StripOffsets",
    }
)  # fmt: skip


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _label(path: Path) -> str:
    """The input's format by content, with "animated" / "multi-picture" where it holds several frames."""
    try:
        sniffed = sniff(path)
    except OSError:
        return "unreadable"
    if sniffed.kind is Kind.unsupported:
        return "other"
    if sniffed.kind is Kind.video:
        return f"video/{sniffed.format}"
    frames = _frames(path, sniffed.format)
    if frames is not None and frames > 1:
        return f"{sniffed.format} ({'animated' if sniffed.format in ('GIF', 'PNG', 'WEBP', 'AVIF') else 'multi'})"
    return sniffed.format


def _frames(path: Path, fmt: str) -> int | None:
    try:
        return probe_photo(path, fmt).frames
    except BlurError:
        return None


def _outcome(entry: dict[str, Any]) -> str:
    if entry["status"] in ("ok", "skipped"):
        return str(entry["status"])
    reason = str(entry.get("reason", ""))
    if reason.startswith(("internal error", "worker failed")):
        return "internal"
    if any(word in reason for word in REFUSED):
        return "refused"
    return "failed"


def _exiftool(out: Path) -> dict[str, list[str]]:
    """Non-technical tags exiftool finds in each output (empty lists: clean); {} when exiftool is absent."""
    if shutil.which("exiftool") is None:
        return {}
    run = subprocess.run(
        ["exiftool", "-j", "-a", "-G1", "-u", "-ee", "-r", str(out)], capture_output=True, text=True, check=False
    )
    found: dict[str, list[str]] = {}
    for item in json.loads(run.stdout or "[]"):
        extra = []
        for key in item:
            group, _, name = key.partition(":")
            if group in OWN_GROUPS or key in TECHNICAL:
                continue
            if group.startswith("IFD") and name in TIFF_BASELINE:
                continue
            extra.append(f"{key}={str(item[key])[:40]}")
        found[str(Path(item["SourceFile"]).resolve())] = extra
    return found


def _audit(out: Path, faces: bool) -> dict[str, dict[str, Any]]:
    args = [sys.executable, "-m", "blur", "audit", "--json", str(out)] + ([] if faces else ["--no-faces"])
    run = subprocess.run(args, capture_output=True, text=True, check=False, env=_env())
    return {str(Path(f["path"]).resolve()): f for f in json.loads(run.stdout)["files"]}


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _row(label: str, entries: list[dict[str, Any]]) -> str:
    counts = collections.Counter(e["outcome"] for e in entries)
    written = [e for e in entries if e["outcome"] == "ok"]
    same = sum(e["same_format"] for e in written)
    frames = sum(e["same_frames"] for e in written)
    audit = sum(e["audit_clean"] for e in written)
    exif = [e for e in written if e["exiftool_clean"] is not None]
    exif_text = f"{sum(e['exiftool_clean'] for e in exif)}/{len(exif)}" if exif else "n/a"
    cells = [label, len(entries), counts["ok"], counts["refused"], counts["failed"], counts["skipped"]]
    cells += [counts["internal"], f"{same}/{len(written)}", f"{frames}/{len(written)}", f"{audit}/{len(written)}"]
    return "| " + " | ".join(str(c) for c in [*cells, exif_text]) + " |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="corpus folder (with files/ and manifest.json)")
    parser.add_argument("--jobs", type=int, default=0, help="blur anonymize --jobs (0: blur's default)")
    parser.add_argument("--no-faces", action="store_true", help="audit metadata only (much faster)")
    parser.add_argument("--workdir", type=Path, help="keep outputs and reports here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write every file's row as JSON")
    args = parser.parse_args()
    files = args.corpus / "files"
    if not files.is_dir():
        print(f"no corpus at {files}: run benchmarks/corpus_fetch.py first; nothing measured")
        return 0
    work = args.workdir or Path(tempfile.mkdtemp(prefix="blur-corpus-"))
    out, report = work / "out", work / "report.json"
    if out.exists():
        shutil.rmtree(out)
    load = os.getloadavg()[0]
    command = [sys.executable, "-m", "blur", "anonymize", str(files), "-o", str(out), "--report", str(report), "-q"]
    command += ["--jobs", str(args.jobs)] if args.jobs else []
    _log(f"running: {' '.join(command)}")
    start = time.perf_counter()
    subprocess.run(command, check=False, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    entries = json.loads(report.read_text())["files"]
    _log(f"anonymized in {seconds:.0f} s; auditing the outputs")
    audits = _audit(out, not args.no_faces) if out.exists() else {}
    exif = _exiftool(out) if out.exists() else {}
    rows: list[dict[str, Any]] = []
    for entry in entries:
        source = Path(entry["source"])
        row = {"file": str(source.relative_to(files)), "label": _label(source), "outcome": _outcome(entry)}
        row["reason"] = entry.get("reason", "")
        if row["outcome"] == "ok":
            output = Path(entry["output"]).resolve()
            fmt_in, fmt_out = sniff(source), sniff(output)
            row["same_format"] = fmt_in == fmt_out
            row["same_frames"] = fmt_in.kind is Kind.video or _frames(source, fmt_in.format) == _frames(
                output, fmt_out.format
            )
            audit = audits.get(str(output), {})
            row["audit_clean"] = audit.get("verdict") == "clean"
            row["audit"] = [f"{f['category']}: {f['what']} {f['detail']}"[:120] for f in audit.get("findings", [])]
            row["exiftool"] = exif.get(str(output))
            row["exiftool_clean"] = None if str(output) not in exif else not exif[str(output)]
        rows.append(row)
    by_label: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for row in rows:
        by_label[row["label"]].append(row)
    print(f"## blur on the corpus: {len(rows)} files, {seconds:.0f} s (load average before: {load:.1f}, "
          f"{os.cpu_count()} cores)\n")  # fmt: skip
    print("| input (by content) | files | ok | refused | failed | skipped | internal errors | same format "
          "| same frames | audit clean | exiftool clean |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for label in sorted(by_label):
        print(_row(label, by_label[label]))
    print(_row("**all**", rows))
    _details(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


def _details(rows: list[dict[str, Any]]) -> None:
    sections = [
        ("Internal errors (target: none)", [r for r in rows if r["outcome"] == "internal"], "reason"),
        ("Outputs not in their input's format", [r for r in rows if r.get("same_format") is False], "label"),
        ("Outputs with another frame count", [r for r in rows if r.get("same_frames") is False], "label"),
        ("Outputs the audit does not pass", [r for r in rows if r.get("audit_clean") is False], "audit"),
        ("Outputs with non-technical exiftool tags", [r for r in rows if r.get("exiftool_clean") is False], "exiftool"),
    ]
    for title, found, key in sections:
        print(f"\n### {title}: {len(found)}\n")
        for row in found:
            print(f"- `{row['file']}`: {row.get(key)}")
    reasons = collections.Counter(
        (r["outcome"], r["reason"].split(":")[0][:70]) for r in rows if r["outcome"] in ("refused", "failed", "skipped")
    )
    print("\n### Why files were not written (grouped by the start of the reason)\n")
    for (outcome, reason), count in reasons.most_common():
        print(f"- {outcome}, {count}x: {reason}")


if __name__ == "__main__":
    raise SystemExit(main())
