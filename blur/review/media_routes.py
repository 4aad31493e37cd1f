"""The review app's picture routes: previews, crops, video frames, and each frame's masks.

`which=output` (the default) is the published file; `which=original` is the original, upright, for
the page's "original under masks" toggle. Query numbers are checked strictly; a file is only ever
found by its id.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from blur.errors import BlurError
from blur.review.batch import ReviewFile, frame_masks, times_list
from blur.review.frames import VideoFrames
from blur.review.images import PREVIEW_SIDE, CropRequest, crop, downscale, encode_jpeg, photo_size, read_upright
from blur.types import Frame

if TYPE_CHECKING:
    from blur.review.app import ReviewState
    from blur.video.record import VideoRecord

MAX_SIDE = 1 << 16


class BadQuery(ValueError):
    """A query parameter is missing or out of range."""


def _int(request: Request, name: str, low: int, high: int, default: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None and default is not None:
        return default
    if raw is None or not raw.isdigit() or len(raw) > 9 or not low <= int(raw) <= high:
        msg = f"'{name}' must be a whole number from {low} to {high}"
        raise BadQuery(msg)
    return int(raw)


def _which(request: Request) -> str:
    which = request.query_params.get("which", "output")
    if which not in ("output", "original"):
        msg = "'which' must be output or original"
        raise BadQuery(msg)
    return which


def _state(request: Request) -> ReviewState:
    state: ReviewState = request.app.state.review
    return state


def _item(request: Request) -> ReviewFile | None:
    return _state(request).batch.get(request.path_params["file_id"])


def _path(item: ReviewFile, which: str) -> Path:
    if which == "original":
        return item.source
    if item.output is None:
        msg = f"{item.source}: no output"
        raise BadQuery(msg)
    return item.output


def _video(state: ReviewState, item: ReviewFile, which: str) -> VideoFrames:
    key = (item.id, which)
    if key not in state.videos:
        state.videos[key] = VideoFrames(_path(item, which))
    return state.videos[key]


def _record(state: ReviewState, item: ReviewFile) -> VideoRecord:
    from blur.video.record import load_record  # noqa: PLC0415 - videos only

    if item.output is None:
        msg = f"{item.source}: no output"
        raise BadQuery(msg)
    key = (item.id, "record", item.version)
    cached = state.records.get(key)
    if cached is None:
        cached = load_record(state.batch.state.tracks_file(item.output))
        state.records = {k: v for k, v in state.records.items() if k[0] != item.id}
        state.records[key] = cached
    return cached


def _picture(state: ReviewState, item: ReviewFile, which: str, frame: int | None) -> Frame:
    key = (item.id, which, item.version, frame)
    if frame is None:
        return state.pictures.get(key, lambda: read_upright(_path(item, which)))
    return state.pictures.get(key, lambda: _video(state, item, which).frame(frame))


def size_of(state: ReviewState, item: ReviewFile) -> dict[str, Any]:
    """The picture size boxes refer to (and, for a video, its frame count); {} when there is no output."""
    if item.output is None or not item.output.exists():
        return {}
    try:
        if item.result.kind == "image":
            width, height = photo_size(item.output)
            return {"width": width, "height": height}
        first = _picture(state, item, "output", 0)
        return {"width": int(first.shape[1]), "height": int(first.shape[0])}
    except BlurError:
        return {}


def forget(state: ReviewState, item: ReviewFile) -> None:
    """Drop what was opened for a file whose output was just replaced."""
    video = state.videos.pop((item.id, "output"), None)
    if video is not None:
        video.close()


async def _jpeg(request: Request, make: Any) -> Response:
    item = _item(request)
    if item is None:
        return PlainTextResponse("not found", 404)
    try:
        data = await run_in_threadpool(make, _state(request), item, request)
    except BadQuery as exc:
        return PlainTextResponse(str(exc), 400)
    except (BlurError, OSError, ValueError) as exc:
        return PlainTextResponse(f"cannot show it: {exc}", 422)
    return Response(data, media_type="image/jpeg")


def _preview(state: ReviewState, item: ReviewFile, request: Request) -> bytes:
    return encode_jpeg(downscale(_picture(state, item, _which(request), None), PREVIEW_SIDE))


def _frame(state: ReviewState, item: ReviewFile, request: Request) -> bytes:
    index = int(request.path_params["index"])
    return encode_jpeg(downscale(_picture(state, item, _which(request), index), PREVIEW_SIDE))


def _crop(state: ReviewState, item: ReviewFile, request: Request) -> bytes:
    frame = _int(request, "frame", 0, 10**9) if "frame" in request.query_params else None
    box = CropRequest(
        _int(request, "x", 0, MAX_SIDE),
        _int(request, "y", 0, MAX_SIDE),
        _int(request, "w", 1, MAX_SIDE),
        _int(request, "h", 1, MAX_SIDE),
        _int(request, "out", 1, 8192),
    )
    return encode_jpeg(crop(_picture(state, item, _which(request), frame), box))


async def picture(request: Request) -> Response:
    """A photo's preview (long side at most `PREVIEW_SIDE`)."""
    return await _jpeg(request, _preview)


async def crop_view(request: Request) -> Response:
    """Part of a photo or video frame at the resolution it is shown at (`x`, `y`, `w`, `h`, `out` wide)."""
    return await _jpeg(request, _crop)


async def frame_view(request: Request) -> Response:
    """One video frame (long side at most `PREVIEW_SIDE`)."""
    return await _jpeg(request, _frame)


def _video_record(request: Request) -> tuple[ReviewState, ReviewFile, VideoRecord] | Response:
    """The review state, the video file the request names and its detection record, or the error response."""
    item = _item(request)
    if item is None or item.result.kind != "video":
        return PlainTextResponse("not found", 404)
    state = _state(request)
    try:
        return state, item, _record(state, item)
    except (BlurError, BadQuery) as exc:
        return JSONResponse({"error": str(exc)}, 422)


def video_view(request: Request) -> Response:
    """A video's timeline: each frame's time, the scene cuts and the tracks."""
    found = _video_record(request)
    if isinstance(found, Response):
        return found
    state, item, record = found
    return JSONResponse(
        {
            "times": times_list(record.times),
            "cuts": [int(c) for c in record.arrays["cuts"]],
            "spans": [s.to_dict(record.times) for s in record.spans()],
            **size_of(state, item),
        }
    )


def frame_masks_view(request: Request) -> Response:
    """The track boxes masked on one frame (and the detections found on it)."""
    video = _video_record(request)
    if isinstance(video, Response):
        return video
    state, _, record = video
    index = int(request.path_params["index"])
    if index >= record.frames:
        return PlainTextResponse("no such frame", 404)
    boxes, idents = record.track_boxes(index)
    found = record.detections(index)
    return JSONResponse(
        {
            "index": index,
            "time": round(float(record.times[index]), 4),
            "tracks": frame_masks(boxes, idents, state.batch.record),
            "detections": [{"box": d["box"], "score": d["score"]} for d in found.to_list()],
        }
    )


def routes() -> list[Route]:
    """The picture routes."""
    return [
        Route("/api/files/{file_id}/picture", picture),
        Route("/api/files/{file_id}/crop", crop_view),
        Route("/api/files/{file_id}/video", video_view),
        Route("/api/files/{file_id}/frames/{index:int}", frame_view),
        Route("/api/files/{file_id}/frames/{index:int}/masks", frame_masks_view),
    ]
