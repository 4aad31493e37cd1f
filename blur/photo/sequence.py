"""Pictures with several frames, pages or images (animated GIF, APNG, animated WebP and AVIF, multi-page
TIFF, multi-image HEIF), start to finish, as a short video: every frame searched, faces tracked
across frames, every frame masked, written back in the same format.

- Every frame is searched with the photo detector (`engine.detector`, the multiscale plan): these
  frames are small and few next to a video's, and the photo plan's upscaled detail pass finds the
  small faces a GIF's frames hold (see `benchmarks/animated.py`).
- The detections go through the video tracker (`blur.video.tracking.track_all`), so a face found
  in any frame is masked in every frame of its track: across the frames where the detector missed
  it (a turned head, motion blur) and a little before and after, as in a video. Tracks end at a
  scene cut (`blur.video.cuts`) and where the picture size changes (pages of a TIFF).
- Each frame is then masked and checked by the second pass (`blur.photo.frame.anonymize_frame`); a
  face the second pass still finds is added to that frame's detections and the tracks are rebuilt,
  so it too is masked over its whole track.
- Animations keep their frame count, durations and loop count; a HEIF keeps its primary image.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from blur.anonymize.mask import add_regions
from blur.corrections import Corrections, load_corrections, split_kept
from blur.engine import Engine
from blur.errors import BlurError, reason_of
from blur.fsio import write_bytes_atomic
from blur.jobs import FileResult, Job, Status
from blur.media.animated import ANIMATED_FORMATS, Picture, Pictures, read_pictures
from blur.media.animated_write import encode_pictures
from blur.media.image import PhotoHeader
from blur.media.limits import EncodePlan
from blur.photo.frame import Anonymized, anonymize_frame
from blur.photo.pipeline import correction_notes, listed
from blur.types import Detections
from blur.video.cuts import CutDetector
from blur.video.options import VideoOptions, tracker_config
from blur.video.tracking import track_all

PAGE_RATE = 1.0
"""Pages and images have no timeline: tracks reach one page before and after, and bridge one page."""

DEFAULT_RATE = 10.0
"""Frames per second assumed for an animation whose frames all declare 0 ms."""

MAX_ROWS_PER_FRAME = 50
"""Report rows kept per frame (a crowd over hundreds of frames would make the report enormous)."""


@dataclass(frozen=True, slots=True)
class _Frames:
    """Per-frame inputs of the masking step: sidecar boxes active at each frame, and the frames' times."""

    times: list[float | None]
    corrections: Corrections


def _rate(pictures: Pictures) -> float:
    """Frames per second of an animation (from its median frame duration), or `PAGE_RATE` for pages."""
    if not pictures.timeline:
        return PAGE_RATE
    durations = [f.duration for f in pictures.frames if f.duration > 0]
    return 1000 / statistics.median(durations) if durations else DEFAULT_RATE


def _times(pictures: Pictures) -> list[float | None]:
    """Each frame's start time in seconds (animations), the clock sidecar time ranges use; None for pages."""
    if not pictures.timeline:
        return [None] * len(pictures.frames)
    times: list[float | None] = []
    clock = 0.0
    for frame in pictures.frames:
        times.append(clock)
        clock += frame.duration / 1000
    return times


def _cuts(pictures: Pictures) -> set[int]:
    """Frames where tracks must end: scene cuts, and a change of picture size (pages)."""
    detector = CutDetector()
    cuts: set[int] = set()
    for index, frame in enumerate(pictures.frames):
        if detector(frame.rgb) or (index and frame.rgb.shape != pictures.frames[index - 1].rgb.shape):
            cuts.add(index)
    return cuts


def _detect(pictures: Pictures, engine: Engine, frames: _Frames) -> tuple[list[Detections], list[Detections]]:
    """Faces of every frame less those in keep regions, and the kept ones; a frame identical to the
    one before it (a GIF's pause) reuses its faces."""
    found: list[Detections] = []
    kept: list[Detections] = []
    previous: Picture | None = None
    for frame, seconds in zip(pictures.frames, frames.times, strict=True):
        if previous is not None and previous.rgb.shape == frame.rgb.shape and np.array_equal(previous.rgb, frame.rgb):
            dets = found[-1] if not len(kept[-1]) else Detections.concat([found[-1], kept[-1]])
        else:
            dets = engine.detector.detect(frame.rgb)
        faces, keep = split_kept(dets, frames.corrections.at(seconds)[1])
        found.append(faces)
        kept.append(keep)
        previous = frame
    return found, kept


def _mask(
    pictures: Pictures, boxes: list[Detections], engine: Engine, frames: _Frames
) -> tuple[list[Picture], list[Anonymized]]:
    """Every frame masked (tracked boxes, sidecar regions), each checked by the second pass."""
    out: list[Picture] = []
    results: list[Anonymized] = []
    for frame, frame_boxes, seconds in zip(pictures.frames, boxes, frames.times, strict=True):
        h, w = frame.rgb.shape[:2]
        added, keep = frames.corrections.at(seconds)
        ellipses = frames.corrections.ellipses_at(seconds)
        extra = add_regions(np.zeros((h, w), bool), added, ellipses) if len(added) else None
        result = anonymize_frame(frame.rgb, frame_boxes, engine, extra=extra, keep=keep)
        results.append(result)
        out.append(replace(frame, rgb=result.frame))
    return out, results


def _rows(results: list[Anonymized], kept: list[Detections], frames: _Frames) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for index, (result, keep, seconds) in enumerate(zip(results, kept, frames.times, strict=True)):
        added, ellipses = frames.corrections.at(seconds)[0], frames.corrections.ellipses_at(seconds)
        rows += listed(result, keep, added, ellipses, frame=index)[:MAX_ROWS_PER_FRAME]
    return rows


@dataclass(frozen=True, slots=True)
class Sequenced:
    """What became of a multi-frame picture.

    Attributes:
        pictures: the masked frames, ready to encode.
        results: each frame's masks: `detections` are the tracked boxes, `flagged` what the last second
            pass still found (masked in that frame).
        kept: each frame's faces left visible by sidecar keep regions.
        tracks: faces followed across frames.
        flagged: faces the second pass found, over every frame (before and after re-tracking).
    """

    pictures: Pictures
    results: list[Anonymized]
    kept: list[Detections]
    tracks: int
    flagged: int


def anonymize_pictures(pictures: Pictures, engine: Engine, corrections: Corrections | None = None) -> Sequenced:
    """Detect, track and mask every frame, check each with the second pass (and track what it finds)."""
    frames = _Frames(_times(pictures), corrections or Corrections())
    dets, kept = _detect(pictures, engine, frames)
    cfg = tracker_config(VideoOptions(), 0.0, _rate(pictures))  # every photo-detector face starts a track
    cuts = _cuts(pictures)
    boxes, tracks = track_all(dets, cuts, cfg)
    masked, results = _mask(pictures, boxes, engine, frames)
    flagged = sum(len(r.flagged) for r in results)
    if flagged:
        # Faces only the second pass found are tracked too, then every frame is masked again.
        dets = [Detections.concat([d, r.flagged]) for d, r in zip(dets, results, strict=True)]
        boxes, tracks = track_all(dets, cuts, cfg)
        masked, results = _mask(pictures, boxes, engine, frames)
        flagged += sum(len(r.flagged) for r in results)
    return Sequenced(replace(pictures, frames=tuple(masked)), results, kept, tracks, flagged)


def process_pictures(job: Job, engine: Engine, header: PhotoHeader, plan: EncodePlan) -> FileResult:
    """Anonymize every frame, page or image of one file and write it back in its format; any failure
    leaves no output."""
    start = time.perf_counter()
    base = FileResult(source=str(job.source), status=Status.failed, kind="image", frames=header.frames)
    if job.output is None:
        return replace(base, reason="no output path")
    try:
        corrections = load_corrections(job.source)
        for w, h in sorted(set(header.sizes)):
            corrections.check_fits(w, h, job.source)
        if header.format not in ANIMATED_FORMATS:
            corrections.check_photo(job.source)  # pages have no timeline: no keyframes
        pictures = read_pictures(job.source, header)
        done = anonymize_pictures(pictures, engine, corrections)
        data = encode_pictures(done.pictures, engine.settings.jpeg_quality, plan)
        write_bytes_atomic(job.output, data, job.scratch)
    except BlurError as exc:
        return replace(base, reason=reason_of(exc, job.source), seconds=time.perf_counter() - start)
    frames = _Frames(_times(pictures), corrections)
    added = sum(len(corrections.at(t)[0]) for t in frames.times)
    what = "frames" if pictures.timeline else "pages" if pictures.format == "TIFF" else "images"
    notes = [f"{len(pictures.frames)} {what}, every one anonymized", *pictures.notes]
    notes += correction_notes(corrections, sum(len(k) for k in done.kept), added)
    return replace(
        base,
        status=Status.ok,
        output=str(job.output),
        faces=sum(len(r.detections) + len(r.flagged) for r in done.results),
        flagged=done.flagged,
        tracks=done.tracks,
        seconds=time.perf_counter() - start,
        notes=tuple(notes),
        detections=tuple(_rows(done.results, done.kept, frames)),
    )
