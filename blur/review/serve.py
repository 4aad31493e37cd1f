"""Start the review app: a socket on 127.0.0.1 only, the token, and a uvicorn server to run in this thread.

The socket is bound before the server starts, so the port (random when none is asked for) is known
for the printed URL and for the guard's Host check. uvicorn runs without access log (the first
URL carries the token), without proxy headers, websockets or lifespan: plain HTTP/1.1 on loopback.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import uvicorn

from blur.engine import Engine
from blur.review.app import create_app
from blur.review.batch import ReviewBatch
from blur.review.security import new_token

HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Served:
    """A ready server: call `server.run(sockets=[sock])` (blocks until stopped; Ctrl-C stops it)."""

    server: uvicorn.Server
    sock: socket.socket
    url: str
    port: int
    token: str


def bind(port: int = 0) -> socket.socket:
    """A listening TCP socket on 127.0.0.1 (`port` 0: a free one).

    Raises:
        OSError: the port is taken or cannot be bound.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((HOST, port))
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


def prepare(batch: ReviewBatch, engine: Engine, port: int = 0) -> Served:
    """Bind, make the token and the app, and build the server (not started).

    Raises:
        OSError: the port cannot be bound.
    """
    sock = bind(port)
    bound = int(sock.getsockname()[1])
    token = new_token()
    app = create_app(batch, engine, token=token, port=bound)
    config = uvicorn.Config(
        app,
        host=HOST,
        port=bound,
        http="h11",
        ws="none",
        lifespan="off",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        log_level="warning",
        timeout_graceful_shutdown=2,
    )
    return Served(uvicorn.Server(config), sock, f"http://{HOST}:{bound}/?token={token}", bound, token)
