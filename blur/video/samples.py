"""A few frames per track for the review, in bounded memory."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class _Samples:
    stride: int = 1
    offered: int = 0
    kept: list[tuple[int, float, list[dict[str, Any]]]] = field(default_factory=list)
    last: tuple[int, float, list[dict[str, Any]]] | None = None


class FrameSamples:
    """A few frames per key (a track, or kept/added regions) for the review page, in bounded memory.

    Each key keeps at most `cap` evenly strided frames (halved, with the stride doubled, when full) and
    its latest frame, so `picks` can give the first, a middle and the last frame of any length of video.
    """

    def __init__(self, cap: int = 8) -> None:
        self.cap = cap
        self._keys: dict[str, _Samples] = {}

    def offer(self, key: str, frame: int, seconds: float, entries: list[dict[str, Any]]) -> None:
        """Record `entries` (JSON-ready dicts) seen at `frame` under `key`."""
        samples = self._keys.setdefault(key, _Samples())
        item = (frame, seconds, entries)
        if samples.offered % samples.stride == 0:
            samples.kept.append(item)
            if len(samples.kept) > self.cap:
                samples.kept = samples.kept[::2]
                samples.stride *= 2
        samples.offered += 1
        samples.last = item

    def picks(self) -> list[dict[str, Any]]:
        """The first, a middle and the last sampled frame of every key, as flat entries with frame and time."""
        out: list[dict[str, Any]] = []
        for key, samples in self._keys.items():
            chosen = [samples.kept[0], samples.kept[len(samples.kept) // 2]]
            if samples.last is not None:
                chosen.append(samples.last)
            seen: set[int] = set()
            for frame, seconds, entries in chosen:
                if frame in seen:
                    continue
                seen.add(frame)
                out.extend({"track": key, "frame": frame, "time": round(seconds, 3), **e} for e in entries)
        return out
