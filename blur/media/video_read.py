"""Reading videos with PyAV: a locked-down demuxer, the stream's description, and every frame in order.

Only local files, opened with the demuxer of the sniffed container (never probed), no network
protocols, no nested demuxers beyond the allowed containers (so no HLS/concat playlists, including
ones hidden in an AVI subtitle chunk), no MOV external data references. Decoding refuses corrupt
frames and content that ends before what the container declares (a truncated file). Frames become
upright 4:2:0 planes in `blur.media.planes`: the display matrix is applied to the pixels, odd sizes
are padded to even by repeating the last row/column, and 10-bit or full-range input is converted.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np

from blur.errors import MediaReadError, UnsupportedMediaError
from blur.media.kinds import Kind, Sniffed, formats_agree, sniff

if TYPE_CHECKING:
    from av.audio.frame import AudioFrame
    from av.audio.stream import AudioStream
    from av.container import InputContainer
    from av.packet import Packet
    from av.video.frame import VideoFrame
    from av.video.stream import VideoStream


DEMUXERS: dict[str, str] = {"mp4": "mov", "mov": "mov", "matroska": "matroska", "webm": "matroska", "avi": "avi"}
"""Sniffed container -> the only FFmpeg demuxer allowed to open it."""


INPUT_OPTIONS: dict[str, str] = {
    "protocol_whitelist": "file",
    "format_whitelist": "mov,matroska,avi",
    "enable_drefs": "0",
    "use_absolute_path": "0",
}
"""Demuxer options: local files only, no nested playlist demuxers, no MOV external references."""


END_SLACK_FRAMES = 3


END_SLACK_SECONDS = Fraction(1, 10)
"""How far the read content may fall short of the declared duration before the file counts as truncated."""


AudioMode = Literal["none", "copy", "encode"]


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """What the input video stream declares.

    Attributes:
        width, height: size of the upright output frames (rotation applied, padded to even).
        rate: exact frame rate (30000/1001 stays a fraction).
        time_base: time base of the input video stream; output timestamps use the same one.
        frames: frame count declared by the container, or None when it does not say.
        duration: declared video duration in time_base units, or None.
        codec: input video codec name.
        quarter_turns: counter-clockwise quarter turns applied to the pixels to make them upright.
        colour: the input's (colorspace, primaries, transfer) codes, kept on the output.
        notes: things worth telling the user (rotation applied, padding, dropped streams).
    """

    width: int
    height: int
    rate: Fraction
    time_base: Fraction
    frames: int | None
    duration: int | None
    codec: str
    quarter_turns: int
    colour: tuple[int, int, int] = (2, 2, 2)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """Audio read between two video frames: packets to copy, or decoded frames to re-encode."""

    packets: tuple[Packet[Any], ...] = ()
    frames: tuple[AudioFrame, ...] = ()


def ffmpeg_reason(exc: BaseException) -> str:
    """What went wrong, without the file name FFmpeg appends to its messages (the report names the file)."""
    reason = getattr(exc, "strerror", None)
    return str(reason) if reason else str(exc)


def check_container(path: Path, fmt: str) -> None:
    """Refuse anything but a supported container whose content matches `fmt`.

    Raises:
        UnsupportedMediaError: `fmt` is not a supported video container, or the content is not it
            (for example an HLS or ffconcat playlist named .mp4).
    """
    if fmt not in DEMUXERS:
        msg = f"{path}: {fmt!r} is not a supported video container (mp4, mov, matroska, webm, avi)"
        raise UnsupportedMediaError(msg)
    try:
        actual = sniff(path)
    except OSError as exc:
        msg = f"{path}: cannot read: {exc.strerror or exc}"
        raise MediaReadError(msg) from exc
    if actual.kind is not Kind.video or not formats_agree(actual, Sniffed(Kind.video, fmt)):
        msg = f"{path}: content is not a {fmt} video (playlists and other containers are refused)"
        raise UnsupportedMediaError(msg)


def open_input(path: Path, fmt: str) -> InputContainer:
    """Open a local video with the demuxer of its sniffed container and the locked-down options.

    Raises:
        UnsupportedMediaError: the container is not allowed or the content does not match it.
        MediaReadError: FFmpeg cannot open it.
    """
    import av

    check_container(path, fmt)
    # An absolute path never parses as a protocol URL ("concat:", "http:"), whatever the file name.
    name = os.path.abspath(path)
    try:
        return av.open(name, "r", format=DEMUXERS[fmt], options=dict(INPUT_OPTIONS), metadata_errors="replace")
    except (av.FFmpegError, OSError) as exc:
        msg = f"{path}: cannot open as {fmt} video: {ffmpeg_reason(exc)}"
        raise MediaReadError(msg) from exc


def video_stream(path: Path, container: InputContainer) -> VideoStream:
    """The main video stream (not a cover picture or thumbnail track).

    Raises:
        MediaReadError: there is none.
    """
    candidates = [s for s in container.streams.video if not (s.disposition.value & s.disposition.attached_pic.value)]
    if not candidates:
        msg = f"{path}: no video stream"
        raise MediaReadError(msg)
    if any(s.codec_context is None for s in candidates):
        msg = f"{path}: a video stream has an unknown codec (damaged file?)"
        raise MediaReadError(msg)
    return max(candidates, key=lambda s: (s.codec_context.width * s.codec_context.height, -s.index))


def declared_picture(path: Path, container: InputContainer) -> tuple[int, int, Fraction | None]:
    """The main video stream's width, height and frame rate as its header declares them, before any
    frame is decoded (0 where the header does not say).

    Raises:
        MediaReadError: there is no video stream.
    """
    stream = video_stream(path, container)
    return stream.codec_context.width or 0, stream.codec_context.height or 0, _rate(stream)


def audio_stream(container: InputContainer) -> AudioStream | None:
    """The first audio stream, if any."""
    return container.streams.audio[0] if container.streams.audio else None


def quarter_turns(path: Path, frame: VideoFrame) -> int:
    """Counter-clockwise quarter turns that make `frame` display upright, from its display matrix.

    Raises:
        UnsupportedMediaError: the matrix mirrors the picture or rotates by a non-right angle.
    """
    from av.sidedata.sidedata import Type

    side_data = cast("Any", frame.side_data)  # PyAV's stub lists motion vectors only
    if Type.DISPLAYMATRIX not in side_data:
        return 0
    matrix = np.frombuffer(bytes(side_data[Type.DISPLAYMATRIX]), np.int32)
    if len(matrix) >= 5 and int(matrix[0]) * int(matrix[4]) - int(matrix[1]) * int(matrix[3]) < 0:
        msg = f"{path}: the display matrix mirrors the picture; mirrored videos are not supported"
        raise UnsupportedMediaError(msg)
    degrees = float(frame.rotation)
    turns = round(degrees / 90.0)
    if abs(degrees - 90.0 * turns) > 1.0:
        msg = f"{path}: rotation of {degrees:g} degrees is not a multiple of 90; not supported"
        raise UnsupportedMediaError(msg)
    return turns % 4


def _rate(stream: VideoStream) -> Fraction | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return Fraction(rate)
    return None


def probe(path: Path, container: InputContainer, first: VideoFrame) -> VideoInfo:
    """Describe the video from its stream and first decoded frame.

    Raises:
        MediaReadError: no frame rate or time base can be determined.
        UnsupportedMediaError: an unsupported rotation.
    """
    stream = video_stream(path, container)
    rate = _rate(stream)
    if rate is None or stream.time_base is None:
        msg = f"{path}: the video declares no frame rate or time base"
        raise MediaReadError(msg)
    turns = quarter_turns(path, first)
    w, h = (first.height, first.width) if turns % 2 else (first.width, first.height)
    notes: list[str] = []
    if turns:
        notes.append(f"rotated {90 * turns} degrees to upright (display matrix applied to the pixels)")
    if w % 2 or h % 2:
        notes.append(f"odd size {w}x{h} padded to {w + w % 2}x{h + h % 2} by repeating the edge")
    dropped = len(container.streams) - 1 - (1 if container.streams.audio else 0)
    if dropped > 0:
        notes.append(f"dropped {dropped} other stream(s) (subtitles, data, attachments, thumbnails)")
    return VideoInfo(
        width=w + w % 2,
        height=h + h % 2,
        rate=rate,
        time_base=Fraction(stream.time_base),
        frames=stream.frames or None,
        duration=stream.duration,
        codec=stream.codec_context.name,
        quarter_turns=turns,
        colour=(int(first.colorspace), int(first.color_primaries), int(first.color_trc)),
        notes=tuple(notes),
    )


def decode_frames(path: Path, container: InputContainer, audio: AudioMode) -> Iterator[VideoFrame | AudioChunk]:
    """Demux the file in order; yield decoded video frames and the audio (packets to copy or frames to re-encode).

    Every stream is demuxed, only to measure how far the file's content reaches; packets of streams
    other than the main video and audio are dropped.

    Raises:
        MediaReadError: a packet fails to decode, a frame is flagged corrupt, or the content ends
            before what the container declares (fewer frames, or a shorter duration): a truncated file.
    """
    import av

    video = video_stream(path, container)
    video.thread_type = "AUTO"
    sound = audio_stream(container) if audio != "none" else None
    reach = _Reach()
    frames = 0
    try:
        for packet in container.demux():
            reach.see(packet)
            if sound is not None and packet.stream.index == sound.index:
                chunk = _audio_chunk(packet, sound, audio)
                if chunk is not None:
                    yield chunk
            elif packet.stream.index == video.index:
                # Empty packets with a timestamp are AVI's dropped-frame markers, counted in its length;
                # PyAV's own end-of-stream packet has no timestamp.
                reach.video_packets += packet.dts is not None or packet.size > 0
                for frame in video.decode(packet):
                    if frame.is_corrupt:
                        msg = f"{path}: frame {frames} is corrupt; refusing to publish a damaged video"
                        raise MediaReadError(msg)
                    frames += 1
                    yield frame
    except av.FFmpegError as exc:
        msg = f"{path}: decode error after {frames} frames: {ffmpeg_reason(exc)}"
        raise MediaReadError(msg) from exc
    reach.check(path, container, video)


class _Reach:
    """How much content the demuxer delivered: video packets and the latest packet end time."""

    def __init__(self) -> None:
        self.video_packets = 0
        self.end: Fraction | None = None

    def see(self, packet: Packet[Any]) -> None:
        if packet.pts is None or packet.time_base is None or packet.size == 0:
            return
        end = (packet.pts + (packet.duration or 0)) * Fraction(packet.time_base)
        self.end = end if self.end is None else max(self.end, end)

    def check(self, path: Path, container: InputContainer, video: VideoStream) -> None:
        """Raise if fewer frames or less time were read than the container declares."""
        # Only MP4/MOV count samples; AVI's length counts time ticks and Matroska rarely says.
        declared = video.frames if container.format.name.startswith("mov") else 0
        if declared and self.video_packets < declared:
            msg = f"{path}: truncated or damaged: read {self.video_packets} of {declared} video frames"
            raise MediaReadError(msg)
        if container.duration is None or self.end is None:
            return
        start = Fraction(container.start_time or 0, 1_000_000)
        length = Fraction(container.duration, 1_000_000)
        rate = _rate(video) or Fraction(25)
        slack = END_SLACK_FRAMES / rate + END_SLACK_SECONDS
        if self.end - start < length - slack:
            ends = float(self.end - start)
            msg = f"{path}: truncated or damaged: content ends at {ends:.2f} s of {float(length):.2f} s"
            raise MediaReadError(msg)


def _audio_chunk(packet: Packet[Any], sound: AudioStream | None, audio: AudioMode) -> AudioChunk | None:
    if audio == "copy":
        return AudioChunk(packets=(packet,)) if packet.size > 0 and packet.dts is not None else None
    if sound is None:
        return None
    decoded = tuple(sound.decode(packet))  # an empty packet flushes the decoder
    return AudioChunk(frames=decoded) if decoded else None
