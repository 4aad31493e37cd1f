"""Video frames by index for the review app's scrubber: from the output, or (toggle) from the original.

Frames are counted in presentation order from 0, as the pipeline counts them. Each file gets one open
decoder: the next frame is decoded straight on, a jump seeks to the nearest keyframe before it (the
presentation times of every frame come from one pass over the packets, without decoding). Originals
are turned upright and padded to even sizes as the pipeline did, so boxes line up on either.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blur.errors import MediaReadError
from blur.media.kinds import sniff
from blur.media.planes import to_rgb, upright
from blur.media.video_read import open_input, quarter_turns, video_stream
from blur.types import Frame

if TYPE_CHECKING:
    from av.container import InputContainer
    from av.video.frame import VideoFrame
    from av.video.stream import VideoStream


class VideoFrames:
    """One video's frames by index, decoded on demand (one caller at a time)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._container: InputContainer | None = None
        self._stream: VideoStream | None = None
        self._frames: Iterator[Any] | None = None
        self._next = 0
        self._pts: list[int] = []
        self._turns: int | None = None

    def _open(self) -> tuple[InputContainer, VideoStream]:
        if self._container is None or self._stream is None:
            fmt = sniff(self.path).format
            self._container = open_input(self.path, fmt)
            self._stream = video_stream(self.path, self._container)
            self._pts = sorted(p.pts for p in self._container.demux(self._stream) if p.pts is not None and p.size > 0)
            self._container.seek(0)
            self._frames = None
        return self._container, self._stream

    def close(self) -> None:
        """Release the decoder."""
        with self._lock:
            if self._container is not None:
                self._container.close()
            self._container = self._stream = self._frames = None

    @property
    def count(self) -> int:
        """Frames in the file (from its packets)."""
        with self._lock:
            self._open()
            return len(self._pts)

    def frame(self, index: int) -> Frame:
        """Frame `index`, upright RGB.

        Raises:
            MediaReadError: no such frame, or it cannot be decoded.
        """
        import av

        with self._lock:
            try:
                return self._frame(index)
            except av.FFmpegError as exc:
                self._frames = None
                msg = f"{self.path}: cannot decode frame {index}: {exc}"
                raise MediaReadError(msg) from exc

    def _frame(self, index: int) -> Frame:
        container, stream = self._open()
        if not 0 <= index < len(self._pts):
            msg = f"{self.path}: no frame {index} (it has {len(self._pts)})"
            raise MediaReadError(msg)
        if self._frames is None or index < self._next or index > self._next + 30:
            self._seek(container, stream, index)
        frames = self._frames
        if frames is None:  # pragma: no cover - set by _seek
            msg = f"{self.path}: the decoder is not open"
            raise MediaReadError(msg)
        for frame in frames:
            at = self._index_of(frame)
            self._next = at + 1
            if at == index:
                return self._rgb(frame)
            if at > index:
                break
        self._frames = None
        msg = f"{self.path}: frame {index} could not be decoded"
        raise MediaReadError(msg)

    def _seek(self, container: InputContainer, stream: VideoStream, index: int) -> None:
        container.seek(self._pts[index], stream=stream, backward=True, any_frame=False)
        self._frames = container.decode(stream)
        self._next = 0

    def _index_of(self, frame: VideoFrame) -> int:
        if frame.pts is None:
            return self._next
        return max(0, bisect.bisect_left(self._pts, frame.pts))

    def _rgb(self, frame: VideoFrame) -> Frame:
        if self._turns is None:
            self._turns = quarter_turns(self.path, frame)
        return upright(to_rgb(frame), self._turns)
