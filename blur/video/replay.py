"""Re-rendering a video without a detection run: each frame gets the detections its record holds.

`ReplayDetection` stands in for `blur.video.detection.FrameDetection` in a `Run`: the same items
in the same order, each frame's `coarse` set from the record and no fine pass. Tracking, keep and
add regions, masking, encoding and verification then run as in a batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from pathlib import Path

from blur.errors import MediaReadError
from blur.types import Detections
from blur.video.prepare import Prepared
from blur.video.record import VideoRecord


class ReplayDetection:
    """The detection stage of a re-render: recorded detections, checked against the frames decoded."""

    parallel = False

    def __init__(self, record: VideoRecord, source: Path) -> None:
        self.record = record
        self.source = source

    def start_full(self, prepared: Prepared) -> Future[list[Detections]] | None:
        """No fine pass is started: the record already holds every frame's detections."""
        return None

    def shutdown(self, *, cancel: bool = False) -> None:
        """Nothing to wait for."""

    def with_coarse(self, items: Iterable[object]) -> Iterator[object]:
        """The same items in the same order, frames with their recorded detections.

        Raises:
            MediaReadError: the video has more frames than the record (the source changed).
        """
        for item in items:
            if isinstance(item, Prepared):
                index = item.frame.index
                if index >= self.record.frames:
                    msg = (
                        f"{self.source}: has more frames than when it was anonymized ({self.record.frames}); "
                        "the source changed: run `blur anonymize` on it again"
                    )
                    raise MediaReadError(msg)
                item.coarse = self.record.detections(index)
                item.fine = None
            yield item

    def fine(self, prepared: Prepared, coarse: Detections) -> Detections:
        """The recorded detections as they are."""
        return coarse
