"""Videos, inspected with PyAV: container and stream tags beyond a technical allowlist, streams beyond
one video (plus one audio) stream, cover pictures, chapters, and faces still visible frame by frame."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blur.audit.faces import FaceCheck, box_text
from blur.audit.model import Category, Finding
from blur.errors import BlurError
from blur.media.planes import to_rgb, upright
from blur.media.video_read import open_input, quarter_turns, video_stream
from blur.textsafe import excerpt
from blur.types import Detections

if TYPE_CHECKING:
    from av.container import InputContainer
    from av.stream import Stream

CONTAINER_TAGS = frozenset({"major_brand", "minor_version", "compatible_brands"})
STREAM_TAGS = frozenset({"language", "duration"})
GENERIC_HANDLERS = frozenset({"", "VideoHandler", "SoundHandler"})
GENERIC_VENDORS = frozenset({"[0][0][0][0]", "FFMP"})
_MUXER = re.compile(r"^Lavf[\d.]*$")
_ENCODER = re.compile(
    r"^(Lavc[\d.]* )?(libx264|libx265|libvpx|libvpx-vp9|libaom-av1|libsvtav1|aac|libopus|opus|libvorbis|"
    r"mjpeg|h264|hevc|vp9|av1|pcm_[a-z0-9]+)$"
)
_LOCATION = ("location", "xyz", "iso6709", "gps")


def _tag_finding(scope: str, key: str, value: str) -> Finding:
    label = "location" if any(k in key.lower() for k in _LOCATION) else "tag"
    return Finding(Category.metadata, f"{scope} {label} '{excerpt(key, 60)}'", excerpt(value), scope)


def _allowed(key: str, value: str, *, stream: bool) -> bool:
    k = key.lower()
    if k == "encoder":
        return bool((_ENCODER if stream else _MUXER).match(value))
    if not stream:
        return k in CONTAINER_TAGS
    if k == "handler_name":
        return value in GENERIC_HANDLERS
    if k == "vendor_id":
        return value in GENERIC_VENDORS
    return k in STREAM_TAGS


def tag_findings(container: InputContainer) -> list[Finding]:
    """Container, stream and chapter metadata that is not on the technical allowlist."""
    findings = [
        _tag_finding("container", k, v) for k, v in container.metadata.items() if not _allowed(k, v, stream=False)
    ]
    for s in container.streams:
        scope = f"stream {s.index} ({s.type})"
        findings += [_tag_finding(scope, k, v) for k, v in s.metadata.items() if not _allowed(k, v, stream=True)]
    chapters: list[Any] = list(container.chapters())
    if chapters:
        titles = ", ".join(excerpt(str(dict(c).get("metadata", {}).get("title", "")), 40) for c in chapters[:8])
        findings.append(Finding(Category.metadata, f"{len(chapters)} chapter(s)", titles, "container"))
    return findings


def _is_cover(s: Stream) -> bool:
    return bool(int(s.disposition) & int(s.disposition.attached_pic))


def _describe(s: Stream) -> str:
    codec = s.codec_context.name if s.codec_context is not None else "unknown codec"
    name = s.metadata.get("filename", "")
    return f"{codec}{', ' + excerpt(name, 40) if name else ''}"


def stream_findings(path: Path, container: InputContainer) -> list[Finding]:
    """Every stream besides the main video stream and the first audio stream."""
    main = video_stream(path, container)
    audio = container.streams.audio[0] if container.streams.audio else None
    findings: list[Finding] = []
    for s in container.streams:
        if s is main or (audio is not None and s is audio):
            continue
        where = f"stream {s.index}"
        if s.type == "video" and _is_cover(s):
            findings.append(Finding(Category.hidden, "cover picture (attached_pic)", _describe(s), where))
        elif s.type == "video":
            findings.append(
                Finding(Category.hidden, "extra video stream (thumbnail or second camera track)", _describe(s), where)
            )
        else:
            findings.append(Finding(Category.stream, f"extra {s.type} stream", _describe(s), where))
    return findings


@dataclass(slots=True)
class _Run:
    """Consecutive checked frames that show a face."""

    first: int
    last: int
    start: float
    end: float
    score: float
    box: tuple[float, float, float, float]


def _range_finding(run: _Run) -> Finding:
    frames = f"frames {run.first}-{run.last}" if run.last != run.first else f"frame {run.first}"
    where = f"{frames} ({run.start:.2f}-{run.end:.2f} s), e.g. box {box_text(run.box)}"
    return Finding(Category.face, "face still visible", f"max score {run.score:.2f}", where, run.box, run.score)


def _extend(run: _Run | None, index: int, t: float, dets: Detections, findings: list[Finding]) -> _Run | None:
    """Grow, close or open a run of frames with faces after one checked frame."""
    if len(dets) == 0:
        if run is not None:
            findings.append(_range_finding(run))
        return None
    best = int(dets.score.argmax())
    x1, y1, x2, y2 = (float(v) for v in dets.xyxy[best])
    score = float(dets.score[best])
    if run is None:
        return _Run(index, index, t, t, score, (x1, y1, x2, y2))
    run.last, run.end = index, t
    if score > run.score:
        run.score, run.box = score, (x1, y1, x2, y2)
    return run


def face_ranges(path: Path, container: InputContainer, check: FaceCheck) -> tuple[list[Finding], int]:
    """Check every `check.every`-th frame of the main video stream; return face ranges and frames checked."""
    import av

    stream = video_stream(path, container)
    stream.thread_type = "AUTO"
    findings: list[Finding] = []
    run: _Run | None = None
    checked = index = 0
    turns: int | None = None
    try:
        for index, frame in enumerate(container.decode(stream)):
            if index % check.every:
                continue
            turns = quarter_turns(path, frame) if turns is None else turns
            dets = check.faces(upright(to_rgb(frame), turns))
            checked += 1
            run = _extend(run, index, float(frame.time or 0.0), dets, findings)
    except (av.FFmpegError, BlurError) as exc:
        findings.append(Finding(Category.error, "video could not be decoded completely", f"after frame {index}: {exc}"))
    if run is not None:
        findings.append(_range_finding(run))
    return findings, checked


def video_findings(path: Path, fmt: str, check: FaceCheck | None) -> tuple[list[Finding], int | None]:
    """Tags, extra streams, cover pictures and (with `check`) visible faces of one video."""
    try:
        container = open_input(path, fmt)
    except BlurError as exc:
        return [Finding(Category.error, "video could not be opened", str(exc))], None
    with container:
        try:
            findings = tag_findings(container) + stream_findings(path, container)
        except BlurError as exc:
            return [Finding(Category.error, "video streams could not be read", str(exc))], None
        if check is None:
            return findings, None
        faces, checked = face_ranges(path, container, check)
    return findings + faces, checked
