"""The review app's routes (Starlette). Every request has passed `blur.review.security.Guard` first.

Files are addressed by the opaque ids of `blur.review.batch`; nothing here takes a path from a
request. The page and its scripts are fixed files shipped in the package (`static/`), served by name
from a list made at start. Pictures are previews and crops (`blur.review.images`), video frames come
by index (`blur.review.frames`); the ORIGINAL is served only when the page asks for it with
`which=original` (its on-screen label says it is not for publication).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from blur.engine import Engine
from blur.errors import BlurError
from blur.review import media_routes
from blur.review.apply import EditError, apply_edits, parse_edit
from blur.review.batch import ReviewBatch, detail, summary
from blur.review.frames import VideoFrames
from blur.review.images import PictureCache
from blur.review.page import LOW_SCORE
from blur.review.security import Guard
from blur.video.record import VideoRecord

MAX_BODY = 4 * 1024 * 1024
"""Largest apply request (thousands of regions with keyframes fit easily)."""

STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css"}


@dataclass(slots=True)
class ReviewState:
    """What the routes share: the batch, the engine for re-renders, decoded pictures and open videos."""

    batch: ReviewBatch
    engine: Engine
    pictures: PictureCache = field(default_factory=PictureCache)
    videos: dict[tuple[str, str], VideoFrames] = field(default_factory=dict)
    records: dict[tuple[str, str, int], VideoRecord] = field(default_factory=dict)


def static_files() -> dict[str, tuple[bytes, str]]:
    """The page's files shipped in the package, by name (the only names `/static/` serves)."""
    folder = resources.files("blur.review") / "static"
    files: dict[str, tuple[bytes, str]] = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in STATIC_TYPES:
            files[entry.name] = (entry.read_bytes(), STATIC_TYPES[suffix])
    return files


def _state(request: Request) -> ReviewState:
    state: ReviewState = request.app.state.review
    return state


def index(request: Request) -> Response:
    """The page."""
    body, kind = request.app.state.static["index.html"]
    return Response(body, media_type=kind)


def no_icon(request: Request) -> Response:
    """No favicon (a browser asks for one; answering spares a logged 404)."""
    return Response(status_code=204)


def static(request: Request) -> Response:
    """A script or style sheet of the page, by name from the package's list."""
    found = request.app.state.static.get(request.path_params["name"])
    if found is None or found[1].startswith("text/html"):
        return PlainTextResponse("not found", 404)
    return Response(found[0], media_type=found[1])


def batch_view(request: Request) -> Response:
    """The file list, files to check first on top."""
    batch = _state(request).batch
    items = sorted((batch.files[i] for i in batch.order), key=lambda f: (summary(f)["priority"], f.result.source))
    return JSONResponse(
        {
            "output": str(batch.state.output),
            "low_score": LOW_SCORE,
            "mask_shape": batch.record.settings.mask.shape.value,
            "report": None if batch.report is None else str(batch.report),
            "html": None if batch.html is None else str(batch.html),
            "files": [summary(f) for f in items],
        }
    )


def file_view(request: Request) -> Response:
    """One file's masks, corrections and picture size."""
    state = _state(request)
    item = state.batch.get(request.path_params["file_id"])
    if item is None:
        return PlainTextResponse("not found", 404)
    data = detail(item, state.batch)
    data.update(media_routes.size_of(state, item))
    return JSONResponse(data)


async def apply(request: Request) -> Response:
    """Write the page's corrections into the sidecars and re-render the changed files."""
    length = request.headers.get("content-length")
    if length is None or not length.isdigit() or int(length) > MAX_BODY:
        return PlainTextResponse(f"the request must say its length and be at most {MAX_BODY} bytes", 413)
    body = await request.body()
    if len(body) > MAX_BODY:
        return PlainTextResponse("request too large", 413)
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return PlainTextResponse("not JSON", 400)
    state = _state(request)
    return await run_in_threadpool(_apply, state, payload)


def _apply(state: ReviewState, payload: Any) -> Response:
    batch = state.batch
    raw = payload.get("edits") if isinstance(payload, dict) else None
    if not isinstance(raw, list) or not raw:
        return JSONResponse({"error": "nothing to apply: send {'edits': [...]}"}, 400)
    try:
        edits = [parse_edit(e, batch) for e in raw]
    except EditError as exc:
        return JSONResponse({"error": str(exc)}, 400)
    try:
        outcomes = apply_edits(batch, edits, state.engine)
    except (BlurError, OSError) as exc:  # another blur run holds the output folder, or it is gone
        return JSONResponse({"error": str(exc)}, 409)
    for edit in edits:
        media_routes.forget(state, edit.item)
    files = []
    for edit in edits:
        view = detail(edit.item, batch)
        view.update(media_routes.size_of(state, edit.item))
        files.append(view)
    return JSONResponse(
        {
            "outcomes": [{"id": o.id, "ok": o.ok, "message": o.message, "warnings": o.warnings} for o in outcomes],
            "files": files,
        }
    )


def create_app(batch: ReviewBatch, engine: Engine, *, token: str, port: int) -> Guard:
    """The whole app for `batch`, behind its guard."""
    routes = [
        Route("/", index),
        Route("/static/{name}", static),
        Route("/favicon.ico", no_icon),
        Route("/api/batch", batch_view),
        Route("/api/files/{file_id}", file_view),
        Route("/api/apply", apply, methods=["POST"]),
        *media_routes.routes(),
    ]
    app = Starlette(routes=routes)
    app.state.review = ReviewState(batch, engine)
    app.state.static = static_files()
    return Guard(app, token=token, port=port)
