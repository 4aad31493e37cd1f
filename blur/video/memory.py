"""How much memory a video's frames take, and the refusal of videos that would not fit."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from blur.errors import MediaReadError
from blur.video.options import DEFAULT_THRESHOLD, VideoOptions, tracker_config

if TYPE_CHECKING:
    pass


MEMORY_SHARE = 0.5
"""The largest share of the machine's memory one video's frames may take (`check_memory`)."""


UNKNOWN_MEMORY = 4 * 2**30
"""The memory assumed where the system does not say how much it has."""


CODEC_FACTOR = 2
"""The decoder's and encoder's own picture buffers (reference and lookahead frames) come to about as
much again as the frames the pipeline holds: peak RSS 1.05 GB on the 1080p street clip and 2.0 GB on
it scaled to 4K, where the pipeline holds 0.18 and 0.72 GB of frames."""


def held_frames(options: VideoOptions, rate: float) -> int:
    """How many decoded frames a video at `rate` fps may hold in memory at once: the lookahead window
    (the tracker's horizon, about a second of frames, plus a detector batch), the queues between the
    threads, the frame each thread is working on and the one the decode thread holds back (to know
    the clip's last frame)."""
    horizon = tracker_config(options, DEFAULT_THRESHOLD, rate).horizon
    return horizon + options.batch + 3 * options.queue + 4


def frame_memory(width: int, height: int, rate: float, options: VideoOptions) -> int:
    """Bytes of picture data a width×height video at `rate` fps needs at once (4:2:0, 1.5 bytes a pixel)."""
    return CODEC_FACTOR * held_frames(options, rate) * width * height * 3 // 2


def memory_limit() -> int:
    """Bytes of picture data one video may take: `MEMORY_SHARE` of the machine's physical memory."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        total = 0
    return int(MEMORY_SHARE * (total if total > 0 else UNKNOWN_MEMORY))


def _fps(rate: float) -> str:
    """A frame rate as people write it: 30, 29.97, 1000000."""
    return f"{rate:.3f}".rstrip("0").rstrip(".")


def check_memory(source: Path, width: int, height: int, rate: float, options: VideoOptions) -> None:
    """Refuse a video whose frames, at the size and rate it declares, would not fit in memory.

    The lookahead must span a second of frames, so memory grows with frame size times frame rate
    (`frame_memory`: 1080p at 30 fps about 0.4 GB, 4K at 120 fps 3.8 GB, 8K at 30 fps or 1080p at
    960 fps 6.2 GB). Checked from the header before a frame is decoded, and again from the first
    decoded frame: a small file can declare 15000 px square frames (two of them took 5.3 GB) or a
    million frames a second, and would otherwise exhaust memory halfway through a batch.

    Raises:
        MediaReadError: the frames would need more than `memory_limit()`.
    """
    need = frame_memory(width, height, rate, options)
    limit = memory_limit()
    if need > limit:
        msg = (
            f"{source}: {width}x{height} at {_fps(rate)} fps would need about {need / 1e9:.1f} GB of memory for "
            f"its frames (the lookahead spans a second of frames); this machine allows {limit / 1e9:.1f} GB "
            "(half its memory), so the video is refused (a copy at a smaller size or frame rate, or a machine with "
            "more memory, would do)"
        )
        raise MediaReadError(msg)
