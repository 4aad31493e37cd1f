"""Joining encoded segments into one fresh file, with the input's audio copied once.

The output is set up as `blur.media.video_write.VideoWriter` sets up a whole-file output (same
muxer options, stream, time base, frame rate and colour tags, no metadata); the segments' encoded
frames are muxed into it in order, with the input's audio packets interleaved by time. Every
segment's stream header must equal the output's, so a stream the decoder could not read is never
published; the written file is then verified (streams, tags, frame count) and its timestamps are
compared with the input's, frame by frame.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from blur.errors import MediaWriteError
from blur.media.video_read import DEMUXERS, INPUT_OPTIONS, audio_stream, open_input
from blur.media.video_write import MUXERS, OUTPUT_OPTIONS, encode_spec, verify_output
from blur.video.segment_passes import EncodedSegment
from blur.video.segments import SegmentPlan

if TYPE_CHECKING:
    from av.audio.stream import AudioStream
    from av.container import InputContainer, OutputContainer
    from av.packet import Packet
    from av.video.stream import VideoStream


def _video_stream(out: OutputContainer, plan: SegmentPlan, crf: int) -> VideoStream:
    """The output video stream, exactly as `VideoWriter._add_video` makes it."""
    info, spec = plan.info, encode_spec(plan.fmt, crf)
    stream = cast("VideoStream", out.add_stream(spec.codec, rate=info.rate, options=dict(spec.options)))
    stream.width, stream.height, stream.pix_fmt = info.width, info.height, spec.pix_fmt
    stream.time_base = info.time_base
    stream.codec_context.time_base = info.time_base
    ctx = stream.codec_context
    ctx.colorspace, ctx.color_primaries, ctx.color_trc = info.colour
    ctx.color_range = spec.color_range
    return stream


def _audio(container: InputContainer, stream: AudioStream | None) -> Iterator[Packet[Any]]:
    """The input's audio packets, as a whole-file run copies them."""
    if stream is None:
        return
    for packet in container.demux(stream):
        if packet.size > 0 and packet.dts is not None:
            yield packet


class _Muxer:
    """Writes the segments' video packets and the input's audio packets in time order."""

    def __init__(
        self, out: OutputContainer, video: VideoStream, audio: AudioStream | None, time_base: Fraction, label: Path
    ) -> None:
        self.out, self.video, self.audio, self.label = out, video, audio, label
        self.time_base = time_base
        """The encoders' time base (the input's); the muxer may store another one."""
        self.last_dts: int | None = None
        self.frames = 0
        self.header: bytes | None = None

    def segment(self, seg: EncodedSegment, audio: Iterator[Packet[Any]], pending: list[Packet[Any]]) -> None:
        import av

        tb = self.time_base
        for data, pts, dts, duration, key in seg.packets:
            # A new encoder starts its decode timestamps a little before its first frame: keep them
            # increasing across the join (and never after the frame's own time).
            if self.last_dts is not None and dts <= self.last_dts:
                dts = self.last_dts + 1
            if dts > pts:
                msg = f"{self.label}: segment {seg.index} cannot be joined (decode time after display time)"
                raise MediaWriteError(msg)
            self.last_dts = dts
            self._audio_before(dts * tb, audio, pending)
            packet = av.Packet(data)
            packet.pts, packet.dts, packet.duration, packet.time_base = pts, dts, duration, tb
            packet.is_keyframe = key
            packet.stream = self.video
            self.out.mux(packet)
            self.frames += 1
            self._check_header(seg)

    def _check_header(self, seg: EncodedSegment) -> None:
        if self.header is None:
            self.header = bytes(self.video.codec_context.extradata or b"")
        if seg.extradata != self.header:
            msg = f"{self.label}: segment {seg.index} was encoded with another stream header; cannot join"
            raise MediaWriteError(msg)

    def _audio_before(self, when: Fraction, audio: Iterator[Packet[Any]], pending: list[Packet[Any]]) -> None:
        """Mux the audio packets that start before `when` (seconds)."""
        while True:
            if not pending:
                nxt = next(audio, None)
                if nxt is None:
                    return
                pending.append(nxt)
            packet = pending[0]
            if Fraction(packet.dts or 0) * Fraction(packet.time_base or 1) >= when:
                return
            self.rest([pending.pop(0)])

    def rest(self, packets: Iterable[Packet[Any]]) -> None:
        """Mux audio packets as they are."""
        for packet in packets:
            if self.audio is not None:
                packet.stream = self.audio
                self.out.mux(packet)


def join_segments(
    source: Path, dest: Path, plan: SegmentPlan, segments: Iterable[EncodedSegment], crf: int, *, label: Path
) -> int:
    """Write the encoded `segments` (in order) and the input's audio to `dest`; return the frames written.

    `dest` is written in place: callers wrap it in `atomic_output`.

    Raises:
        MediaWriteError: a segment cannot be joined, or the joined file does not verify.
        MediaReadError: the input's audio cannot be read.
    """
    import av

    copy_audio = plan.audio == "copy"
    with open_input(source, plan.fmt) as container:
        audio_in = audio_stream(container) if copy_audio else None
        try:
            with av.open(str(dest), "w", format=MUXERS[plan.fmt], options=dict(OUTPUT_OPTIONS)) as out:
                video = _video_stream(out, plan, crf)
                audio_out = out.add_stream_from_template(audio_in) if audio_in is not None else None
                muxer = _Muxer(out, video, audio_out, plan.info.time_base, label)
                audio, pending = _audio(container, audio_in), cast("list[Packet[Any]]", [])
                for seg in segments:
                    muxer.segment(seg, audio, pending)
                muxer.rest([*pending, *audio])
        except (av.FFmpegError, OSError, ValueError) as exc:
            msg = f"{label}: cannot join the segments: {exc}"
            raise MediaWriteError(msg) from exc
    if muxer.frames != len(plan.pts):
        msg = f"{label}: joined {muxer.frames} frames, the input has {len(plan.pts)}"
        raise MediaWriteError(msg)
    verify_output(dest, plan.fmt, frames=muxer.frames, audio=audio_in is not None, label=label)
    _check_times(dest, plan, label)
    return muxer.frames


def _check_times(path: Path, plan: SegmentPlan, label: Path) -> None:
    """The joined file's frames have exactly the input's timestamps."""
    import av

    with av.open(
        os.path.abspath(path), "r", format=DEMUXERS[plan.fmt], options=dict(INPUT_OPTIONS), metadata_errors="replace"
    ) as out:
        video = out.streams.video[0]
        scale = Fraction(video.time_base or 1) / plan.info.time_base
        pts = sorted(p.pts * scale for p in out.demux(video) if p.size > 0 and p.pts is not None)
    if pts != list(plan.pts):
        pairs = enumerate(zip(pts, plan.pts, strict=False))
        differ = next((i for i, (a, b) in pairs if a != b), min(len(pts), len(plan.pts)))
        msg = f"{label}: output failed verification: frame {differ} has another timestamp than the input's"
        raise MediaWriteError(msg)
