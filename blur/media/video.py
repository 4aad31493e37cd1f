"""Video input and output with PyAV: a locked-down demuxer, upright RGB frames, a fresh metadata-free mux.

Reading: only local files, opened with the demuxer of the sniffed container (never probed), no
network protocols, no nested demuxers beyond the allowed containers (so no HLS/concat playlists,
including ones hidden in an AVI subtitle chunk), no MOV external data references. Frames come out as
upright RGB: the display matrix is applied to the pixels, odd sizes are padded to even by repeating
the last row/column, and 10-bit or full-range input is converted to 8-bit RGB.

Writing: one video stream (H.264 in MP4/MOV/MKV/AVI, VP9 in WebM) with each input frame's own
timestamp and the input's time base and frame rate, plus the audio stream copied packet for packet
(re-encoded only when the container cannot hold it). Nothing else is written: no subtitle, data or
attachment stream, no chapters, no container or stream metadata, no rotation tag, and
`fflags +bitexact` keeps even the muxer's version string out. `verify_output` re-reads the result.
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import numpy.typing as npt

from blur.errors import MediaReadError, MediaWriteError, UnsupportedMediaError
from blur.media.kinds import Kind, Sniffed, formats_agree, sniff
from blur.types import Frame

if TYPE_CHECKING:
    from av.audio.frame import AudioFrame
    from av.audio.stream import AudioStream
    from av.container import InputContainer, OutputContainer
    from av.packet import Packet
    from av.video.frame import VideoFrame
    from av.video.stream import VideoStream

DEMUXERS: dict[str, str] = {"mp4": "mov", "mov": "mov", "matroska": "matroska", "webm": "matroska", "avi": "avi"}
"""Sniffed container -> the only FFmpeg demuxer allowed to open it."""

MUXERS: dict[str, str] = {"mp4": "mp4", "mov": "mov", "matroska": "matroska", "webm": "webm", "avi": "avi"}
"""Sniffed container -> the muxer of the output (same container as the input)."""

INPUT_OPTIONS: dict[str, str] = {
    "protocol_whitelist": "file",
    "format_whitelist": "mov,matroska,avi",
    "enable_drefs": "0",
    "use_absolute_path": "0",
}
"""Demuxer options: local files only, no nested playlist demuxers, no MOV external references."""

OUTPUT_OPTIONS: dict[str, str] = {"fflags": "+bitexact"}
"""Muxer options: write no version strings or creation times."""

X264_PRESET = "veryfast"
"""libx264 speed/size trade-off. Measured on 60 frames of 1080p at CRF 18: veryfast encodes 2.3x as
fast as medium (20.9 vs 9.2 fps here) into a file of the same size (1510 vs 1557 kB) at 47.8 vs
48.9 dB PSNR, both visually lossless."""

VP9_CRF_OFFSET = 13
"""VP9's constant-quality scale is 0-63; x264 CRF 18 maps to VP9 CRF 31, its visually lossless default."""

ALLOWED_CONTAINER_TAGS = frozenset({"major_brand", "minor_version", "compatible_brands", "encoder"})
ALLOWED_STREAM_TAGS = frozenset({"language", "handler_name", "vendor_id", "duration", "encoder"})
"""Technical tags FFmpeg reports on a fresh mux; anything else in the output fails verification."""

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
class Planes:
    """An upright, even-sized 8-bit 4:2:0 picture in limited range: luma and half-size chroma planes.

    Frames stay in this form from decoder to encoder (half the memory of RGB, and no colour
    conversion for frames without faces): only the detector's small copies are RGB.
    """

    y: npt.NDArray[np.uint8]
    u: npt.NDArray[np.uint8]
    v: npt.NDArray[np.uint8]
    base: npt.NDArray[np.uint8] | None = field(default=None, compare=False, repr=False)
    """The packed array that y, u and v are views of (set by `unpack`), so `packed` need not copy."""

    @property
    def width(self) -> int:
        """Width in pixels."""
        return int(self.y.shape[1])

    @property
    def height(self) -> int:
        """Height in pixels."""
        return int(self.y.shape[0])

    def packed(self) -> npt.NDArray[np.uint8]:
        """The planes one after the other, shaped (height * 3/2, width) as PyAV's yuv420p arrays are."""
        if self.base is not None:
            return self.base
        flat = np.concatenate([self.y.ravel(), self.u.ravel(), self.v.ravel()])
        return flat.reshape(self.height * 3 // 2, self.width)

    @classmethod
    def unpack(cls, packed: npt.NDArray[np.uint8], width: int, height: int) -> Planes:
        """Split a (height * 3/2, width) yuv420p array into planes."""
        flat = packed.reshape(-1)
        luma, chroma = width * height, (width // 2) * (height // 2)
        y = flat[:luma].reshape(height, width)
        u = flat[luma : luma + chroma].reshape(height // 2, width // 2)
        v = flat[luma + chroma : luma + 2 * chroma].reshape(height // 2, width // 2)
        whole = packed.shape == (height * 3 // 2, width) and packed.flags.c_contiguous
        return cls(y, u, v, packed if whole else None)

    def turned(self, turns: int) -> Planes:
        """The picture rotated by `turns` counter-clockwise quarter turns."""
        if not turns:
            return self
        return Planes(*(np.ascontiguousarray(np.rot90(p, turns)) for p in (self.y, self.u, self.v)))


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    """One decoded video frame: upright 4:2:0 pixels and its own timestamp."""

    index: int
    planes: Planes
    pts: int
    duration: int


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """Audio read between two video frames: packets to copy, or decoded frames to re-encode."""

    packets: tuple[Packet[Any], ...] = ()
    frames: tuple[AudioFrame, ...] = ()


@dataclass(frozen=True, slots=True)
class EncodeSpec:
    """The video encoder for an output container.

    Attributes:
        codec: FFmpeg encoder name.
        options: encoder options.
        pix_fmt: pixel format handed to the encoder.
        color_range: 1 limited ("MPEG", video), 2 full ("JPEG", MJPEG).
    """

    codec: str
    options: dict[str, str] = field(default_factory=dict)
    pix_fmt: str = "yuv420p"
    color_range: int = 1


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
        msg = f"{path}: cannot open as {fmt} video: {exc}"
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


def upright(rgb: Frame, turns: int) -> Frame:
    """Rotate by `turns` counter-clockwise quarter turns and pad odd sizes to even; returns a new array."""
    out = np.rot90(rgb, turns) if turns else rgb
    h, w = out.shape[:2]
    if h % 2 or w % 2:
        out = np.pad(out, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return np.ascontiguousarray(out)


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


def to_rgb(frame: VideoFrame, size: tuple[int, int] | None = None) -> Frame:
    """Decoded frame -> 8-bit RGB (optionally scaled to `size`), honouring its colour matrix and range."""
    width, height = size or (frame.width, frame.height)
    rgb = frame.to_ndarray(
        width=width, height=height, format="rgb24", src_color_range=frame.color_range or None, interpolation="AREA"
    )
    return np.asarray(rgb, np.uint8)


LIMITED_RANGES = (0, 1)
"""FFmpeg's colour ranges read as limited: unspecified and MPEG."""


def to_planes(frame: VideoFrame, turns: int, colorspace: int) -> Planes:
    """Decoded frame -> upright, even-sized 8-bit limited-range 4:2:0 planes (10-bit and full range included).

    Odd sizes go through RGB so that the last row/column can be repeated (4:2:0 needs even sizes).
    """
    if frame.width % 2 or frame.height % 2:
        return rgb_to_planes(upright(to_rgb(frame), turns), colorspace)
    if frame.format.name != "yuv420p" or frame.color_range not in LIMITED_RANGES:
        frame = frame.reformat(format="yuv420p", src_color_range=frame.color_range or None, dst_color_range=1)
    # Already 8-bit limited-range 4:2:0 (nearly every camera file): the decoder's planes as they are.
    return Planes.unpack(np.asarray(frame.to_ndarray(), np.uint8), frame.width, frame.height).turned(turns)


def rgb_to_planes(rgb: Frame, colorspace: int) -> Planes:
    """Even-sized RGB -> limited-range 4:2:0 planes with colour matrix `colorspace`."""
    import av

    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    yuv = frame.reformat(format="yuv420p", dst_colorspace=colorspace, dst_color_range=1)
    return Planes.unpack(np.asarray(yuv.to_ndarray(), np.uint8), rgb.shape[1], rgb.shape[0])


def planes_to_rgb(planes: Planes, colorspace: int) -> Frame:
    """Limited-range 4:2:0 planes with colour matrix `colorspace` -> RGB."""
    import av

    frame = av.VideoFrame.from_ndarray(planes.packed(), format="yuv420p")
    rgb = frame.to_ndarray(format="rgb24", src_colorspace=colorspace, src_color_range=1)
    return np.asarray(rgb, np.uint8)


@functools.cache
def yuv_of(colour: tuple[int, int, int], colorspace: int) -> tuple[int, int, int]:
    """The limited-range (Y, U, V) of an RGB colour under colour matrix `colorspace`."""
    planes = rgb_to_planes(np.full((2, 2, 3), colour, np.uint8), colorspace)
    return int(planes.y[0, 0]), int(planes.u[0, 0]), int(planes.v[0, 0])


def detector_copy(frame: VideoFrame, size: tuple[int, int], turns: int) -> Frame:
    """An upright RGB copy of `frame` scaled to `size` (upright width, height) for the detector."""
    stored = (size[1], size[0]) if turns % 2 else size
    rgb = to_rgb(frame, stored)
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


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
        msg = f"{path}: decode error after {frames} frames: {exc}"
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


def encode_spec(fmt: str, crf: int) -> EncodeSpec:
    """The video encoder for container `fmt` at quality `crf` (x264 scale, lower is better).

    H.264 in MP4, MOV and Matroska; VP9 in WebM; MJPEG in AVI. AVI stores no timestamps (frame i
    shows at i / fps), and FFmpeg reads H.264 in AVI one frame late whatever the encoder does, so
    AVI gets intra-only MJPEG, whose frames read back exactly where they were written. Its
    quantiser is fixed from `crf` (18 -> 3, visually lossless; 51 -> 8).
    """
    if fmt == "webm":
        vp9_crf = min(63, crf + VP9_CRF_OFFSET)
        opts = {"crf": str(vp9_crf), "b": "0", "deadline": "good", "cpu-used": "5", "row-mt": "1"}
        return EncodeSpec("libvpx-vp9", opts)
    if fmt == "avi":
        q = str(min(31, max(2, round(crf / 6))))
        return EncodeSpec("mjpeg", {"qmin": q, "qmax": q}, pix_fmt="yuvj420p", color_range=2)
    return EncodeSpec("libx264", {"crf": str(crf), "preset": X264_PRESET})


def audio_target(fmt: str) -> str:
    """The encoder used when the input audio codec cannot be stored in container `fmt`."""
    return "libopus" if fmt == "webm" else "aac"


def choose_audio(fmt: str, source: AudioStream | None, keep: bool, path: Path) -> AudioMode:
    """Copy the audio when container `fmt` can hold its codec, re-encode it otherwise, or drop it.

    Raises:
        MediaReadError: the audio is to be kept but its codec is unknown (a damaged file).
    """
    import av

    if source is None or not keep:
        return "none"
    context = source.codec_context
    if context is None or not context.name:
        msg = f"{path}: the audio stream's codec is unknown (damaged file?); use --no-audio to drop it"
        raise MediaReadError(msg)
    with av.open(io.BytesIO(), "w", format=MUXERS[fmt]) as probe_out:
        supported = probe_out.supported_codecs
    return "copy" if context.name in supported else "encode"


def place_audio(frame: AudioFrame, end: Fraction | None) -> Fraction:
    """Keep a decoded audio frame at its own time, or move it to `end` (seconds: where the audio before
    it ends) when it has no timestamp or would overlap that audio; return where it ends now.

    Gaps stay gaps. A damaged file's timestamps that step back would otherwise make the muxer
    refuse the whole video.
    """
    base = frame.time_base or Fraction(1, frame.sample_rate)
    start = None if frame.pts is None else frame.pts * base
    if start is None or (end is not None and start < end):
        start = end or Fraction(0)
        frame.pts, frame.time_base = round(start / base), base
    return start + Fraction(frame.samples, frame.sample_rate)


@dataclass(frozen=True, slots=True)
class OutputPlan:
    """Everything the writer needs besides the destination."""

    fmt: str
    info: VideoInfo
    spec: EncodeSpec
    audio_mode: AudioMode
    audio_source: AudioStream | None


class VideoWriter:
    """A fresh output container: one encoded video stream plus, optionally, the input's audio.

    Frames must arrive in display order with strictly increasing timestamps in `info.time_base`.
    """

    def __init__(self, dest: Path, plan: OutputPlan, *, label: Path) -> None:
        import av

        self.label = label
        self.plan = plan
        self.frames_written = 0
        self._closed = False
        self._audio: AudioStream | None = None
        self._audio_end: Fraction | None = None
        """Where the audio written so far ends, in seconds (re-encoded audio)."""
        try:
            self._out: OutputContainer = av.open(str(dest), "w", format=MUXERS[plan.fmt], options=dict(OUTPUT_OPTIONS))
            self._video = self._add_video(plan.info, plan.spec)
            if plan.audio_source is not None and plan.audio_mode != "none":
                self._audio = self._add_audio(plan.audio_source, plan.audio_mode)
        except (av.FFmpegError, OSError, ValueError) as exc:
            self.abort()
            msg = f"{label}: cannot start the output video: {exc}"
            raise MediaWriteError(msg) from exc

    def _add_video(self, info: VideoInfo, spec: EncodeSpec) -> VideoStream:
        stream = cast("VideoStream", self._out.add_stream(spec.codec, rate=info.rate, options=dict(spec.options)))
        stream.width, stream.height, stream.pix_fmt = info.width, info.height, spec.pix_fmt
        stream.time_base = info.time_base
        stream.codec_context.time_base = info.time_base
        ctx = stream.codec_context
        ctx.colorspace, ctx.color_primaries, ctx.color_trc = info.colour
        ctx.color_range = spec.color_range
        return stream

    def _add_audio(self, source: AudioStream, mode: AudioMode) -> AudioStream:
        if mode == "copy":
            return self._out.add_stream_from_template(source)
        target = audio_target(self.plan.fmt)
        rate = 48000 if target == "libopus" else source.codec_context.sample_rate or 48000
        stream = cast("AudioStream", self._out.add_stream(target, rate=rate))
        stream.layout = source.codec_context.layout
        return stream

    def write_frame(self, planes: Planes, pts: int, duration: int) -> None:
        """Encode one picture at timestamp `pts` (in the input's time base).

        Raises:
            MediaWriteError: the encoder or the disk fails.
        """
        import av

        try:
            frame = av.VideoFrame.from_ndarray(planes.packed(), format="yuv420p")
            if self.plan.spec.pix_fmt != "yuv420p":
                frame = frame.reformat(
                    format=self.plan.spec.pix_fmt, src_color_range=1, dst_color_range=self.plan.spec.color_range
                )
            frame.pts = pts
            frame.duration = duration
            frame.time_base = self.plan.info.time_base
            self._mux_video(self._video.encode(frame))
        except (av.FFmpegError, OSError, ValueError) as exc:
            msg = f"{self.label}: cannot encode frame at pts {pts}: {exc}"
            raise MediaWriteError(msg) from exc

    def _mux_video(self, packets: list[Packet[Any]]) -> None:
        self._out.mux(packets)
        self.frames_written += len(packets)

    def write_audio(self, chunk: AudioChunk) -> None:
        """Copy audio packets unchanged, or encode decoded audio frames.

        Raises:
            MediaWriteError: the audio does not fit the output or the disk fails.
        """
        import av

        if self._audio is None:
            return
        try:
            for packet in chunk.packets:
                packet.stream = self._audio
                self._out.mux(packet)
            for frame in chunk.frames:
                # The decoded timestamps go to the encoder, which resamples and counts on from them:
                # audio that starts after the video (or before it) stays where it was.
                self._audio_end = place_audio(frame, self._audio_end)
                self._out.mux(self._audio.encode(frame))
        except (av.FFmpegError, OSError, ValueError) as exc:
            msg = f"{self.label}: cannot write audio: {exc}"
            raise MediaWriteError(msg) from exc

    def close(self) -> None:
        """Flush the encoders and finish the file.

        Raises:
            MediaWriteError: flushing or closing fails.
        """
        import av

        try:
            self._mux_video(self._video.encode(None))
            if self._audio is not None and self.plan.audio_mode == "encode":
                self._out.mux(self._audio.encode(None))
            self._out.close()
        except (av.FFmpegError, OSError, ValueError) as exc:
            self.abort()
            msg = f"{self.label}: cannot finish the output video: {exc}"
            raise MediaWriteError(msg) from exc
        self._closed = True

    def abort(self) -> None:
        """Close without caring about the result (the caller deletes the file)."""
        if self._closed or not hasattr(self, "_out"):
            return
        self._closed = True
        try:
            self._out.close()
        except Exception:  # noqa: BLE001 - already failing; the caller deletes the partial file
            return


@dataclass(frozen=True, slots=True)
class OutputCheck:
    """What `verify_output` found in a written file."""

    video_packets: int
    audio_packets: int


def verify_output(path: Path, fmt: str, *, frames: int, audio: bool, label: Path) -> OutputCheck:
    """Re-read a finished output: exactly one video stream (+ audio), `frames` frames, no stray tags.

    Raises:
        MediaWriteError: anything differs.
    """
    import av

    try:
        with av.open(
            os.path.abspath(path), "r", format=DEMUXERS[fmt], options=dict(INPUT_OPTIONS), metadata_errors="replace"
        ) as out:
            problem = _stream_problem(out, audio)
            tags = _stray_tags(out)
            counts = {"video": 0, "audio": 0}
            for packet in out.demux():
                if packet.size > 0:
                    counts[packet.stream.type] = counts.get(packet.stream.type, 0) + 1
    except (av.FFmpegError, OSError) as exc:
        msg = f"{label}: the written video cannot be read back: {exc}"
        raise MediaWriteError(msg) from exc
    if problem is None and tags:
        problem = f"unexpected metadata {sorted(tags)}"
    if problem is None and counts["video"] != frames:
        problem = f"{counts['video']} video frames written, {frames} expected"
    if problem is not None:
        msg = f"{label}: output failed verification: {problem}"
        raise MediaWriteError(msg)
    return OutputCheck(counts["video"], counts["audio"])


def _stream_problem(out: InputContainer, audio: bool) -> str | None:
    kinds = sorted(s.type for s in out.streams)
    expected = ["audio", "video"] if audio else ["video"]
    return None if kinds == expected else f"streams {kinds}, expected {expected}"


def _stray_tags(out: InputContainer) -> set[str]:
    stray = {k for k in out.metadata if k.lower() not in ALLOWED_CONTAINER_TAGS}
    for stream in out.streams:
        stray |= {f"{stream.type}:{k}" for k in stream.metadata if k.lower() not in ALLOWED_STREAM_TAGS}
    return stray
