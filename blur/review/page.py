"""The review page: one card per file, the anonymized OUTPUT with every mask outlined and scored.

Cards that need a human look come first: failed files, files where the second pass found a face the
first missed, faces left visible by keep regions, low-confidence masks, and files with no face at
all. Masks are drawn as SVG over the image (coordinates in the output's pixels), so the page needs no
script and works opened from disk. Nothing unmasked is shown unless `with_originals` is set.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from blur.anonymize.mask import head_boxes
from blur.batch.workfiles import REVIEW_GENERATOR
from blur.config import MaskConfig, MaskShape
from blur.errors import BlurError
from blur.fsio import write_bytes_atomic
from blur.jobs import FileResult, Status
from blur.review.media import Picture, original_picture, photo_picture, video_frames
from blur.textsafe import unicode_clean
from blur.types import Detections

LOW_SCORE = 0.5


@dataclass(frozen=True, slots=True)
class ReviewOptions:
    """What the page shows.

    Attributes:
        mask: the mask settings of the run, to outline each mask as it was drawn.
        with_originals: also embed the ORIGINAL photos (unmasked faces): local review only.
        low_score: masks from detections below this score are highlighted.
        side: long side of embedded pictures, in pixels.
        video_frames: frames shown per video when no per-track data exists.
    """

    mask: MaskConfig = field(default_factory=MaskConfig)
    with_originals: bool = False
    low_score: float = LOW_SCORE
    side: int = 480
    video_frames: int = 6


def _e(text: object) -> str:
    return html.escape(unicode_clean(str(text)), quote=True)


def _kind(det: dict[str, Any], low: float) -> str:
    if det.get("added"):
        return "added"
    if det.get("kept"):
        return "kept"
    if det.get("second_pass"):
        return "second"
    return "low" if float(det.get("score", 1.0)) < low else "face"


def _shape(det: dict[str, Any], kind: str, mask: MaskConfig) -> str:
    box = np.asarray([det["box"]], np.float32)
    if kind in ("added", "kept"):
        x1, y1, x2, y2 = box[0].tolist()
        shape = f'<rect x="{x1:.1f}" y="{y1:.1f}" width="{x2 - x1:.1f}" height="{y2 - y1:.1f}"/>'
    else:
        x1, y1, x2, y2 = head_boxes(Detections(box, np.ones(1, np.float32)), mask.scale)[0].tolist()
        if mask.shape is MaskShape.box:
            shape = f'<rect x="{x1:.1f}" y="{y1:.1f}" width="{x2 - x1:.1f}" height="{y2 - y1:.1f}"/>'
        else:
            cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
            shape = f'<ellipse cx="{cx:.1f}" cy="{cy:.1f}" rx="{rx:.1f}" ry="{ry:.1f}"/>'
    label = {"added": "added", "kept": "KEPT VISIBLE"}.get(kind, f"{float(det.get('score', 0)):.2f}")
    return f'<g class="m {kind}">{shape}<text x="{x1:.1f}" y="{max(y1 - 4, 12):.1f}">{_e(label)}</text></g>'


def _figure(picture: Picture, dets: list[dict[str, Any]], options: ReviewOptions, caption: str = "") -> str:
    shapes = "".join(_shape(d, _kind(d, options.low_score), options.mask) for d in dets if "box" in d)
    font = max(picture.width, picture.height) / 24
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return (
        f'<figure><div class="pic"><img src="{_e(picture.src)}" loading="lazy" decoding="async" alt="">'
        f'<svg viewBox="0 0 {picture.width} {picture.height}" preserveAspectRatio="none" '
        f'style="font-size:{font:.1f}px">'
        f"{shapes}</svg></div>{cap}</figure>"
    )


_KINDS = ("face", "low", "second", "kept", "added")


def _counts(result: FileResult, options: ReviewOptions) -> dict[str, int]:
    """Detections of each kind; for video, tracks (or kept/added region sets) of each kind."""
    if result.kind == "video":
        kinds_by_track: dict[str, set[str]] = {}
        for d in result.detections:
            kinds_by_track.setdefault(str(d.get("track", "?")), set()).add(_kind(d, options.low_score))
        return {k: sum(k in found for found in kinds_by_track.values()) for k in _KINDS}
    kinds = [_kind(d, options.low_score) for d in result.detections]
    return {k: kinds.count(k) for k in _KINDS}


def _flags(result: FileResult, counts: dict[str, int]) -> list[str]:
    flags = []
    if result.status is Status.failed:
        flags.append("failed")
    if result.flagged or counts["second"]:
        flags.append("second")
    if counts["kept"]:
        flags.append("kept")
    if counts["low"]:
        flags.append("low")
    if result.status is Status.ok and result.faces == 0 and not counts["kept"]:
        flags.append("none")
    return flags


_PRIORITY = ["failed", "second", "kept", "low", "none"]


def _priority(flags: list[str]) -> int:
    return min((_PRIORITY.index(f) for f in flags), default=len(_PRIORITY))


def attention(result: FileResult, low: float = LOW_SCORE) -> tuple[int, list[str], dict[str, int]]:
    """How urgently a file needs a look (0: first), why (failed, second, kept, low, none), and its masks by kind."""
    counts = _counts(result, ReviewOptions(low_score=low))
    flags = _flags(result, counts)
    return _priority(flags), flags, counts


def _photo_body(result: FileResult, page: Path, options: ReviewOptions) -> str:
    body = _figure(
        photo_picture(Path(str(result.output)), page, options.side), list(result.detections), options, "output"
    )
    if options.with_originals:
        original = original_picture(Path(result.source), options.side)
        body += _figure(original, [], options, "ORIGINAL: unmasked")
    return body


MAX_TRACK_STRIPS = 40
"""Tracks shown per video; the ones needing a look (kept, added, low confidence) come first."""


def _track_order(item: tuple[str, list[dict[str, Any]]], low: float) -> tuple[int, float, str]:
    key, dets = item
    rank = {"kept": 0, "added": 1}.get(key, 2)
    return rank, min(float(d.get("score", 1.0)) for d in dets) if rank == 2 else 0.0, key


def _video_body(result: FileResult, options: ReviewOptions) -> str:
    path = Path(str(result.output))
    per_frame = [d for d in result.detections if "frame" in d and "box" in d]
    if per_frame:
        tracks: dict[str, list[dict[str, Any]]] = {}
        for d in per_frame:
            tracks.setdefault(str(d.get("track", "?")), []).append(d)
        ordered = sorted(tracks.items(), key=lambda kv: _track_order(kv, options.low_score))
        shown = ordered[:MAX_TRACK_STRIPS]
        wanted = sorted({int(d["frame"]) for _, dets in shown for d in dets})
        pictures = {i: (t, p) for i, t, p in video_frames(path, wanted, len(wanted), options.side // 2)}
        strips = []
        for track, dets in shown:
            frames = sorted({int(d["frame"]) for d in dets})
            figs = "".join(
                _figure(
                    pictures[i][1],
                    [d for d in dets if int(d["frame"]) == i],
                    options,
                    f"frame {i} ({pictures[i][0]:.2f} s)",
                )
                for i in frames
                if i in pictures
            )
            title = {"kept": "left visible by keep regions", "added": "regions added from the sidecar"}.get(
                track, f"track {track}"
            )
            strips.append(f'<div class="strip"><h3>{_e(title)}</h3>{figs}</div>')
        more = len(ordered) - len(shown)
        tail = f'<p class="note">{more} more tracks not shown: see the JSON report.</p>' if more > 0 else ""
        return "".join(strips) + tail
    pictures_even = video_frames(path, None, options.video_frames, options.side // 2)
    figs = "".join(_figure(p, [], options, f"frame {i} ({t:.2f} s)") for i, t, p in pictures_even)
    note = (
        "The video pipeline reported no per-frame detections, so masks cannot be outlined: these are "
        f"{len(pictures_even)} evenly spaced frames of the output. Check them, or play the output."
    )
    return f'<p class="note">{_e(note)}</p><div class="strip">{figs}</div>'


def _card(result: FileResult, page: Path, options: ReviewOptions) -> tuple[int, str, str]:
    counts = _counts(result, options)
    flags = _flags(result, counts)
    facts = [f"faces found: {result.faces}"]
    labels = {
        "second": "second pass found",
        "kept": "KEPT VISIBLE",
        "low": f"low confidence (<{options.low_score})",
        "added": "added regions",
    }
    facts += [f"{labels[k]}: {counts[k]}" for k in ("second", "kept", "low", "added") if counts[k]]
    if result.kind == "video":
        facts.append(f"frames: {result.frames}, tracks: {result.tracks}")
    if result.status is Status.failed:
        body = f'<p class="reason">FAILED, no output: {_e(result.reason)}</p>'
    else:
        try:
            body = _video_body(result, options) if result.kind == "video" else _photo_body(result, page, options)
        except (BlurError, OSError, ValueError) as exc:
            body = f'<p class="reason">cannot show the output: {_e(exc)}</p>'
            flags.append("failed")
    notes = "".join(f"<li>{_e(n)}</li>" for n in result.notes)
    head = f'<h2 class="count">{_e(facts[0])}</h2><p class="facts">{_e(" · ".join(facts[1:]))}</p>'
    card = (
        f'<article class="card {" ".join(flags)}"><p class="name">{_e(result.source)}</p>{head}{body}'
        f"{f'<ul>{notes}</ul>' if notes else ''}</article>"
    )
    return _priority(flags), result.source, card


_CSS = """
body{font-family:system-ui,sans-serif;margin:1rem;background:#f4f4f4;color:#111}
.banner{background:#b00020;color:#fff;padding:1rem;font-size:1.4rem;font-weight:bold}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:1rem}
.card{background:#fff;border:4px solid #ccc;border-radius:6px;padding:.6rem;overflow:hidden}
.card.none{border-color:#888}.card.low{border-color:#e6b800}.card.kept{border-color:#1e63d6}
.card.second{border-color:#ff7a00}.card.failed{border-color:#b00020;background:#fde8ea}
.count{font-size:1.8rem;margin:.2rem 0}.name{font-family:monospace;word-break:break-all;margin:0}
.facts{font-weight:bold;margin:.2rem 0}.reason{color:#b00020;font-weight:bold}
figure{margin:.3rem 0}.pic{position:relative;line-height:0}.pic img{width:100%;height:auto;display:block}
.pic svg{position:absolute;inset:0;width:100%;height:100%;overflow:visible}
.m ellipse,.m rect{fill:none;stroke-width:3;vector-effect:non-scaling-stroke}
.m text{paint-order:stroke;stroke:#000;stroke-width:3px;fill:#fff;font-weight:bold}
.face ellipse,.face rect{stroke:#00c853}.low ellipse,.low rect{stroke:#ffd600;stroke-dasharray:6 4}
.second ellipse,.second rect{stroke:#ff7a00}.kept rect{stroke:#1e63d6;stroke-dasharray:8 4}
.added rect{stroke:#aa00ff}.strip{display:flex;gap:.3rem;flex-wrap:wrap}.strip figure{width:48%}
.note{font-style:italic}figcaption{font-size:.8rem;line-height:1.2}
"""


def render_review(results: list[FileResult], page: Path, options: ReviewOptions) -> str:
    """The whole page as HTML text."""
    cards = sorted(_card(r, page, options) for r in results if r.status is not Status.skipped)
    total_faces = sum(r.faces for r in results)
    attention = sum(1 for p, _, _ in cards if p < len(_PRIORITY) - 1)
    banner = (
        '<p class="banner">CONTAINS ORIGINAL, UNMASKED PHOTOS. Local review only: '
        "never publish, upload or share this page.</p>"
        if options.with_originals
        else ""
    )
    legend = (
        "Green: mask; yellow dashed: low-confidence mask; orange: found by the second pass; "
        "blue dashed: face left visible by a keep region; purple: region added from a sidecar."
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="generator" content="{REVIEW_GENERATOR}"><meta name="referrer" content="no-referrer">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src 'self' data: file:; "
        "style-src 'unsafe-inline'\">"
        f"<title>blur review: {len(cards)} files</title><style>{_CSS}</style></head><body>{banner}"
        f"<h1>blur review: {len(cards)} files, {total_faces} faces masked, {attention} to check first</h1>"
        f"<p>{_e(legend)} This page is for review, not for publication.</p>"
        f'<main class="grid">{"".join(card for _, _, card in cards)}</main></body></html>\n'
    )


def write_review(page: Path, results: list[FileResult], options: ReviewOptions) -> None:
    """Write the review page atomically.

    Raises:
        MediaWriteError: it cannot be written.
    """
    write_bytes_atomic(page, render_review(results, page, options).encode("utf-8"))
