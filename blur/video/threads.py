"""The pipeline's threads: workers that hand their exception to the main thread, and queue hand-offs
that never block forever."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass


@dataclass(frozen=True, slots=True)
class Failure:
    """An exception a thread died of, passed down the queue to the main thread."""

    exc: BaseException


END = object()
"""The marker that ends a queue's items."""


class Worker:
    """A daemon thread that records the exception it dies of."""

    def __init__(self, name: str, target: Callable[[], None]) -> None:
        self.error: BaseException | None = None
        self._target = target
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            self._target()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which re-raises it
            self.error = exc

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self._thread.join()


def put(q: queue.Queue[Any], item: object, stop: threading.Event, peer: Worker | None = None) -> None:
    """Put without blocking forever: give up when stopping or when the consumer died."""
    while not stop.is_set():
        if peer is not None and peer.error is not None:
            raise peer.error
        try:
            q.put(item, timeout=0.1)
        except queue.Full:
            continue
        return


def queued(q: queue.Queue[Any], stop: threading.Event, peer: Worker | None) -> Iterator[object]:
    """Items of `q` up to and including the end marker or a failure; stops early when `stop` is set,
    and raises the exception `peer` (the consumer downstream) died of."""
    while not stop.is_set():
        if peer is not None and peer.error is not None:
            raise peer.error
        try:
            item: object = q.get(timeout=0.1)
        except queue.Empty:
            continue
        yield item
        if item is END or isinstance(item, Failure):
            return
