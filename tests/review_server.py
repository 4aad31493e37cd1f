"""Helpers for the review-app tests: a real server on 127.0.0.1 in a thread, and Chromium for the page."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from blur.batch.state import open_state
from blur.engine import build_engine
from blur.review.batch import ReviewBatch, load_batch
from blur.review.serve import prepare

CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)"
)


@dataclass(frozen=True, slots=True)
class Running:
    """A review server running in a thread."""

    url: str
    base: str
    port: int
    token: str
    batch: ReviewBatch
    address: tuple[str, int]

    @contextlib.contextmanager
    def client(self) -> Iterator[httpx.Client]:
        """An HTTP client that has made the first visit (it holds the session cookie)."""
        with httpx.Client(base_url=self.base, timeout=120) as client:
            first = client.get(self.url)
            assert first.status_code == 303, first.text
            yield client


@contextlib.contextmanager
def serving(output: Path, state: Path | None = None, report: Path | None = None) -> Iterator[Running]:
    """Serve the batch written to `output` on a free port until the block ends."""
    batch = load_batch(open_state(output, state, create=False), report)
    served = prepare(batch, build_engine(batch.record.settings))
    thread = threading.Thread(target=served.server.run, kwargs={"sockets": [served.sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not served.server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            msg = "the review server did not start"
            raise RuntimeError(msg)
        time.sleep(0.02)
    try:
        address = served.sock.getsockname()
        yield Running(served.url, f"http://127.0.0.1:{served.port}", served.port, served.token, batch, address)
    finally:
        served.server.should_exit = True
        thread.join(timeout=20)
        served.sock.close()
