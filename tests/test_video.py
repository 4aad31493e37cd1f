"""Videos end to end with the real detector and real faces: hidden in every frame, timing, audio and
rotation kept, every other stream and all metadata gone, and failures that leave nothing behind."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from blur.cli import app
from blur.config import Settings
from blur.engine import Engine
from blur.jobs import FileResult, Job, Plan, Status
from blur.media.kinds import Kind
from blur.types import Frame, iou_matrix
from blur.video.pipeline import process_video
from tests.conftest import ssim_gray

RATE = Fraction(30000, 1001)
TIME_BASE = Fraction(1, 30000)

PLANTED = {
    "title": "PLANTED-TITLE-7781",
    "comment": "PLANTED-COMMENT-7782",
    "location": "+52.5163+013.3777/",
    "com.apple.quicktime.location.ISO6709": "+48.8583+002.2944+035.000/",
    "make": "PLANTED-MAKE-7783",
    "model": "PLANTED-MODEL-7784",
    "artist": "PLANTED-ARTIST-7785",
    "creation_time": "2024-06-05T14:30:12.000000Z",
}
STREAM_TITLE = "PLANTED-STREAMTITLE-7787"
ATTACHMENT = b"PLANTED-ATTACHMENT-7788"
SUBTITLE = b"PLANTED-SUBTITLE-7789"

HEAD = (10, 240, 130, 320)
"""Rows y1:y2 and columns x1:x2 of the astronaut picture used as a head (face plus hair and neck)."""
FACE_IN_HEAD = (45, 44, 145, 170)
"""The astronaut's face box (x1, y1, x2, y2) inside that crop."""
HEAD_SCALE = 0.55


@dataclass(frozen=True)
class Spec:
    """How to write a test clip."""

    muxer: str = "mp4"
    suffix: str = ".mp4"
    vcodec: str = "libx264"
    pix_fmt: str = "yuv420p"
    acodec: str | None = "aac"
    subtitle: str | None = "mov_text"
    attachment: bool = False
    frames: int = 30
    size: tuple[int, int] = (320, 240)
    turns: int = 0
    pts: tuple[int, ...] | None = None
    audio_start: float = 0.0
    options: tuple[tuple[str, str], ...] = (("movflags", "use_metadata_tags"),)
    codec_options: tuple[tuple[str, str], ...] = ()


@dataclass
class Clip:
    """A written clip and its ground truth in upright display coordinates."""

    path: Path
    frames: list[Frame]
    faces: list[tuple[int, int, int, int]]
    pts: list[int]
    time_base: Fraction
    spec: Spec
    audio: list[bytes] = field(default_factory=list)


def head_sprite(astro: Frame) -> tuple[Frame, tuple[int, int, int, int]]:
    """The astronaut's head, scaled, and the face box inside it."""
    y1, y2, x1, x2 = HEAD
    crop = astro[y1:y2, x1:x2]
    size = (round(crop.shape[1] * HEAD_SCALE), round(crop.shape[0] * HEAD_SCALE))
    sprite = np.asarray(cv2.resize(crop, size, interpolation=cv2.INTER_AREA), np.uint8)
    face = tuple(round(v * HEAD_SCALE) for v in FACE_IN_HEAD)
    return sprite, face  # type: ignore[return-value]


def background(width: int, height: int) -> Frame:
    """A calm textured background (scikit-image's coffee cup, public domain)."""
    from skimage import data

    return np.asarray(cv2.resize(data.coffee(), (width, height), interpolation=cv2.INTER_AREA), np.uint8)


def render(astro: Frame, n: int, width: int, height: int) -> tuple[list[Frame], list[tuple[int, int, int, int]]]:
    """Frames of a head moving left to right over the background, with the face box per frame."""
    sprite, face = head_sprite(astro)
    sh, sw = sprite.shape[:2]
    base = background(width, height)
    frames, faces = [], []
    y = (height - sh) // 2
    for i in range(n):
        x = round(5 + (width - sw - 10) * i / max(1, n - 1))
        frame = base.copy()
        frame[y : y + sh, x : x + sw] = sprite
        frames.append(frame)
        faces.append((x + face[0], y + face[1], x + face[2], y + face[3]))
    return frames, faces


def write_clip(path: Path, astro: Frame, spec: Spec) -> Clip:
    """Write a clip with a moving face, sine-tone audio, a subtitle, an attachment and planted metadata."""
    frames, faces = render(astro, spec.frames, *spec.size)
    return encode_clip(path, frames, faces, spec)


def encode_clip(path: Path, frames: list[Frame], faces: list[tuple[int, int, int, int]], spec: Spec) -> Clip:
    """Encode upright `frames` as `spec` says (stored sideways when `spec.turns`), with audio and metadata."""
    width, height = spec.size
    with av.open(str(path), "w", format=spec.muxer, options=dict(spec.options)) as out:
        for key, value in PLANTED.items():
            out.metadata[key] = value
        video = out.add_stream(spec.vcodec, rate=RATE, options=dict(spec.codec_options))
        stored_w, stored_h = (height, width) if spec.turns % 2 else (width, height)
        video.width, video.height, video.pix_fmt = stored_w, stored_h, spec.pix_fmt
        video.metadata["title"] = STREAM_TITLE
        # AVI counts frames, not time: one tick per frame there (as real AVI files do).
        tick = 1 if spec.muxer == "avi" else 1001
        time_base = Fraction(1, 90000) if spec.pts else (1 / RATE if spec.muxer == "avi" else TIME_BASE)
        video.time_base = video.codec_context.time_base = time_base
        if spec.turns:
            video.set_display_rotation(90 * spec.turns)
        audio = out.add_stream(spec.acodec, rate=48000) if spec.acodec else None
        subtitle = out.add_mux_stream(spec.subtitle, time_base=Fraction(1, 1000)) if spec.subtitle else None
        if spec.attachment:
            out.add_attachment("cover.txt", "text/plain", ATTACHMENT)
        pts = list(spec.pts) if spec.pts else [i * tick for i in range(spec.frames)]
        for frame, stamp in zip(frames, pts, strict=True):
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.rot90(frame, -spec.turns)), format="rgb24")
            picture.pts = stamp
            out.mux(video.encode(picture))
        out.mux(video.encode())
        if audio is not None:
            _write_tone(out, audio, float((pts[-1] + pts[1] - pts[0]) * time_base), spec.audio_start)
        if subtitle is not None:
            _write_subtitle(out, subtitle, spec.subtitle or "")
    stored_pts, stored_base = _frame_times(path)
    return Clip(path, frames, faces, stored_pts, stored_base, spec, _audio_packets(path))


def _frame_times(path: Path) -> tuple[list[int], Fraction]:
    """Timestamps of the frames as the container stores them (MKV rounds to milliseconds)."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        return [f.pts for f in container.decode(video)], Fraction(video.time_base)


def _write_tone(out: Any, stream: Any, seconds: float, start: float = 0.0) -> None:
    """A 440 Hz tone from `start` seconds to the end of the video."""
    rate = stream.codec_context.sample_rate
    t = np.arange(int(rate * (seconds - start))) / rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
    frame = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
    frame.sample_rate, frame.pts = rate, round(start * rate)
    out.mux(stream.encode(frame))
    out.mux(stream.encode())


def _write_subtitle(out: Any, stream: Any, codec: str) -> None:
    data = struct.pack(">H", len(SUBTITLE)) + SUBTITLE if codec == "mov_text" else SUBTITLE
    packet = av.Packet(data)
    packet.stream, packet.pts, packet.dts, packet.duration = stream, 0, 0, 400
    packet.time_base = Fraction(1, 1000)
    out.mux(packet)


def _audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return []
        return [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]


def run(clip: Clip, engine: Engine, out_dir: Path, fmt: str, on_frames: Any = None) -> tuple[FileResult, Path]:
    """Process a clip as the batch does; return the result and the output path."""
    output = out_dir / clip.path.name
    job = Job(clip.path, output, Plan.process, Kind.video, fmt)
    return process_video(job, engine, on_frames), output


@dataclass
class Decoded:
    """What a written output holds."""

    frames: list[Frame]
    pts: list[int]
    time_base: Fraction
    rate: Fraction | None
    streams: list[str]
    codec: str
    audio: list[bytes]
    audio_codec: str | None
    rotation: int
    metadata: dict[str, str]
    stream_metadata: list[dict[str, str]]
    duration: float


def decode(path: Path) -> Decoded:
    """Read back every frame and property of an output video."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames, pts, rotations = [], [], set()
        for frame in container.decode(video):
            frames.append(frame.to_ndarray(format="rgb24"))
            pts.append(frame.pts)
            rotations.add(frame.rotation)
        audio = container.streams.audio[0] if container.streams.audio else None
        return Decoded(
            frames=frames,
            pts=pts,
            time_base=Fraction(video.time_base),
            rate=video.average_rate,
            streams=[s.type for s in container.streams],
            codec=video.codec_context.name,
            audio=_audio_packets(path),
            audio_codec=audio.codec_context.name if audio else None,
            rotation=rotations.pop() if len(rotations) == 1 else -1,
            metadata=dict(container.metadata),
            stream_metadata=[dict(s.metadata) for s in container.streams],
            duration=float((container.duration or 0) / 1_000_000),
        )


def hidden(out: Frame, clean: Frame, box: tuple[int, int, int, int]) -> bool:
    """The face in `box` is unrecognisable: SSIM against the clean face < 0.6 and its centre filled."""
    x1, y1, x2, y2 = box
    if ssim_gray(out[y1:y2, x1:x2], clean[y1:y2, x1:x2]) >= 0.6:
        return False
    cx, cy, rx, ry = (x1 + x2) // 2, (y1 + y2) // 2, (x2 - x1) // 4, (y2 - y1) // 4
    centre = out[cy - ry : cy + ry, cx - rx : cx + rx]
    return bool((centre.max(axis=2) < 48).mean() > 0.95)


def planted_strings(spec: Spec) -> list[bytes]:
    """Every identifying string planted in a clip."""
    strings = [v.encode() for v in PLANTED.values()] + [STREAM_TITLE.encode(), SUBTITLE]
    return [*strings, ATTACHMENT] if spec.attachment else strings


def assert_clean(source: Path, output: Path, spec: Spec) -> None:
    """Strings present in the input are absent from the output's bytes."""
    data_in, data_out = source.read_bytes(), output.read_bytes()
    present = [s for s in planted_strings(spec) if s in data_in]
    assert len(present) >= 3, "the test clip must really carry planted metadata"
    leaked = [s for s in present if s in data_out]
    assert not leaked, f"planted strings survived: {leaked}"


# ----------------------------------------------------------------------------------------- MP4


@pytest.fixture(scope="module")
def mp4_case(
    tmp_path_factory: pytest.TempPathFactory, astro: Frame, engine: Engine
) -> tuple[Clip, FileResult, Decoded]:
    """A 29.97 fps MP4 shot sideways (90° display matrix) with AAC, mov_text and metadata, processed once."""
    root = tmp_path_factory.mktemp("mp4")
    (root / "in").mkdir()
    spec = Spec(size=(240, 320), turns=1, frames=36)
    clip = write_clip(root / "in" / "phone.mp4", astro, spec)
    calls: list[tuple[int, int | None]] = []
    result, output = run(clip, engine, root / "out", "mp4", lambda _job, done, total: calls.append((done, total)))
    assert result.status is Status.ok, result.reason
    decoded = decode(output)
    decoded.metadata["_progress"] = json.dumps(calls)
    return clip, result, decoded


class TestMp4:
    def test_face_hidden_in_every_frame(self, mp4_case: tuple[Clip, FileResult, Decoded]) -> None:
        """The moving face is unrecognisable in every single output frame."""
        clip, _, out = mp4_case
        visible = [
            i
            for i, (f, c, b) in enumerate(zip(out.frames, clip.frames, clip.faces, strict=True))
            if not hidden(f, c, b)
        ]
        assert visible == []

    def test_background_untouched(self, mp4_case: tuple[Clip, FileResult, Decoded]) -> None:
        """Pixels far from the face keep their content (only re-encoding noise)."""
        clip, _, out = mp4_case
        diff = np.abs(out.frames[0][:40].astype(int) - clip.frames[0][:40].astype(int)).mean()
        assert diff < 8

    def test_frame_count_timestamps_rate_and_duration_kept(self, mp4_case: tuple[Clip, FileResult, Decoded]) -> None:
        """Same frames, same timestamps, exactly 30000/1001 fps and the same duration."""
        clip, result, out = mp4_case
        assert result.frames == len(out.frames) == clip.spec.frames
        assert [p * out.time_base for p in out.pts] == [p * clip.time_base for p in clip.pts]
        assert out.rate == RATE
        assert out.duration == pytest.approx(clip.spec.frames * 1001 / 30000, abs=0.05)

    def test_rotation_applied_to_pixels(self, mp4_case: tuple[Clip, FileResult, Decoded]) -> None:
        """A sideways-stored phone video comes out upright in its pixels, with no rotation tag left."""
        _, result, out = mp4_case
        assert out.frames[0].shape[:2] == (320, 240)
        assert out.rotation == 0
        assert any("rotated" in note for note in result.notes)

    def test_audio_stream_copied_packet_for_packet(self, mp4_case: tuple[Clip, FileResult, Decoded]) -> None:
        """The AAC track is remuxed, not re-encoded: every packet is byte-identical."""
        clip, _, out = mp4_case
        assert out.audio_codec == "aac"
        assert out.audio == clip.audio
        assert len(out.audio) > 10

    def test_only_video_and_audio_streams(self, mp4_case: tuple[Clip, FileResult, Decoded]) -> None:
        """The subtitle stream is gone: exactly one video and one audio stream remain."""
        _, _, out = mp4_case
        assert sorted(out.streams) == ["audio", "video"]
        assert out.codec == "h264"

    def test_no_metadata_survives(self, mp4_case: tuple[Clip, FileResult, Decoded], tmp_path: Path) -> None:
        """No planted string is in the output's bytes, and no tag beyond the technical ones is set."""
        clip, result, out = mp4_case
        assert result.output is not None
        assert_clean(clip.path, Path(result.output), clip.spec)
        tags = set(out.metadata) - {"_progress"}
        assert tags <= {"major_brand", "minor_version", "compatible_brands"}
        for stream_tags in out.stream_metadata:
            assert set(stream_tags) <= {"language", "handler_name", "vendor_id"}
        assert b"Lavf" not in Path(result.output).read_bytes()

    def test_report_counts_frames_faces_and_tracks(self, mp4_case: tuple[Clip, FileResult, Decoded]) -> None:
        """The result counts frames written, face detections masked (one per frame here) and tracks."""
        clip, result, _ = mp4_case
        assert result.kind == "video"
        assert result.faces >= clip.spec.frames
        assert result.tracks is not None and 1 <= result.tracks <= 3

    def test_progress_reports_frames(self, mp4_case: tuple[Clip, FileResult, Decoded]) -> None:
        """Progress is reported per frame, ending at the total."""
        clip, _, out = mp4_case
        calls = json.loads(out.metadata["_progress"])
        assert [done for done, _ in calls] == list(range(1, clip.spec.frames + 1))
        assert calls[-1][1] == clip.spec.frames


# ------------------------------------------------------------------------------------ containers


CONTAINERS = [
    pytest.param(Spec(muxer="mov", suffix=".mov", options=()), "mov", "h264", "aac", id="mov"),
    pytest.param(Spec(suffix=".m4v"), "mp4", "h264", "aac", id="m4v"),
    pytest.param(
        Spec(muxer="matroska", suffix=".mkv", subtitle="subrip", attachment=True, options=()),
        "matroska",
        "h264",
        "aac",
        id="mkv",
    ),
    pytest.param(
        Spec(muxer="webm", suffix=".webm", vcodec="libvpx-vp9", acodec="libopus", subtitle="webvtt", options=()),
        "webm",
        "vp9",
        "opus",
        id="webm",
    ),
    pytest.param(
        Spec(
            muxer="avi",
            suffix=".avi",
            vcodec="mjpeg",
            pix_fmt="yuvj420p",
            acodec="pcm_s16le",
            subtitle=None,
            options=(),
        ),
        "avi",
        "mjpeg",
        "pcm_s16le",
        id="avi",
    ),
]


@pytest.mark.parametrize(("spec", "fmt", "vcodec", "acodec"), CONTAINERS)
def test_container_round_trip(
    spec: Spec, fmt: str, vcodec: str, acodec: str, tmp_path: Path, astro: Frame, engine: Engine
) -> None:
    """Each container comes back as itself: expected codecs, audio copied, face hidden, metadata gone."""
    clip = write_clip(tmp_path / f"clip{spec.suffix}", astro, replace(spec, frames=20))
    result, output = run(clip, engine, tmp_path / "out", fmt)
    assert result.status is Status.ok, result.reason
    out = decode(output)
    assert output.suffix == spec.suffix
    assert (out.codec, out.audio_codec) == (vcodec, acodec)
    assert sorted(out.streams) == ["audio", "video"]
    assert out.audio == clip.audio
    assert len(out.frames) == result.frames == 20
    assert [p * out.time_base for p in out.pts] == [p * clip.time_base for p in clip.pts]
    assert all(hidden(f, c, b) for f, c, b in zip(out.frames, clip.frames, clip.faces, strict=True))
    assert_clean(clip.path, output, clip.spec)


def test_audio_reencoded_when_the_container_cannot_hold_it(tmp_path: Path, astro: Frame, engine: Engine) -> None:
    """AAC inside a WebM-labelled file cannot be copied into WebM, so it is re-encoded to Opus, and
    audio that starts half a second after the picture still starts there (lip sync)."""
    source = tmp_path / "aac.mkv"
    spec = Spec(muxer="matroska", suffix=".mkv", subtitle=None, options=(), frames=30, audio_start=0.5)
    write_clip(source, astro, spec)
    data = source.read_bytes().replace(b"\x42\x82\x88matroska", b"\x42\x82\x88webm\x00\x00\x00\x00", 1)
    assert b"webm" in data[:64]
    webm = tmp_path / "aac.webm"
    webm.write_bytes(data)
    result, output = run(Clip(webm, [], [], [], TIME_BASE, Spec()), engine, tmp_path / "out", "webm")
    assert result.status is Status.ok, result.reason
    out = decode(output)
    assert (out.codec, out.audio_codec) == ("vp9", "opus")
    assert len(out.frames) == 30
    assert any("re-encoded" in note for note in result.notes)
    # Where the tone starts, input and output (each codec's priming samples aside: under 25 ms).
    assert abs(_sound_start(webm) - 0.5) < 0.025
    assert abs(_sound_start(output) - _sound_start(webm)) < 0.025


def _sound_start(path: Path) -> float:
    """Seconds from the first video frame to the first audible audio sample."""
    with av.open(str(path)) as container:
        first_video = next(container.decode(container.streams.video[0]))
        start = float(first_video.pts * first_video.time_base)
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams.audio[0]):
            samples = np.abs(frame.to_ndarray()).max(axis=0)
            loud = np.nonzero(samples > 0.05)[0]
            if len(loud):
                return float(frame.pts * frame.time_base) + loud[0] / frame.sample_rate - start
    raise AssertionError(f"{path}: no audible audio")


def test_reencoded_audio_keeps_gaps_and_never_steps_back() -> None:
    """Re-encoded audio frames keep their own times (a gap stays a gap); one with no timestamp, or one
    that would overlap the audio before it (damaged files), follows straight on instead."""
    from blur.media.video_write import place_audio

    def frame(pts: int | None) -> av.AudioFrame:
        f = av.AudioFrame(format="flt", layout="mono", samples=1024)
        f.sample_rate, f.pts, f.time_base = 48000, pts, Fraction(1, 48000)
        return f

    frames = [frame(p) for p in (None, 1024, 4096, 4608, None, 24000)]
    end = None
    for f in frames:
        end = place_audio(f, end)
    assert [f.pts for f in frames] == [0, 1024, 4096, 5120, 6144, 24000]
    assert end == Fraction(24000 + 1024, 48000)
    # Timestamps in another time base are read in it (a 0.5 s start in 1/1000 units).
    late = frame(500)
    late.time_base = Fraction(1, 1000)
    assert place_audio(late, Fraction(1, 10)) == Fraction(1, 2) + Fraction(1024, 48000) and late.pts == 500


def test_no_audio_drops_the_audio(tmp_path: Path, astro: Frame, engine: Engine) -> None:
    """With keep_audio off the output holds the video stream only."""
    clip = write_clip(tmp_path / "clip.mp4", astro, Spec(frames=10))
    silent = replace(engine, settings=replace(engine.settings, keep_audio=False))
    result, output = run(clip, silent, tmp_path / "out", "mp4")
    assert result.status is Status.ok, result.reason
    assert decode(output).streams == ["video"]


def test_variable_frame_rate_timestamps_kept(tmp_path: Path, astro: Frame, engine: Engine) -> None:
    """Irregular frame timestamps (VFR) are copied exactly, frame by frame."""
    steps = [3000, 3003, 4500, 1500, 6006, 3000] * 3
    pts = tuple(int(v) for v in np.cumsum([0, *steps]))
    clip = write_clip(tmp_path / "vfr.mp4", astro, Spec(frames=len(pts), pts=pts))
    result, output = run(clip, engine, tmp_path / "out", "mp4")
    assert result.status is Status.ok, result.reason
    out = decode(output)
    assert [p * out.time_base for p in out.pts] == [p * clip.time_base for p in clip.pts]


def test_ten_bit_input_converted(tmp_path: Path, astro: Frame, engine: Engine) -> None:
    """10-bit video is read and written as 8-bit 4:2:0 H.264, face hidden."""
    clip = write_clip(
        tmp_path / "deep.mkv",
        astro,
        Spec(muxer="matroska", suffix=".mkv", pix_fmt="yuv420p10le", subtitle=None, options=(), frames=12),
    )
    result, output = run(clip, engine, tmp_path / "out", "matroska")
    assert result.status is Status.ok, result.reason
    with av.open(str(output)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"
    out = decode(output)
    assert all(hidden(f, c, b) for f, c, b in zip(out.frames, clip.frames, clip.faces, strict=True))


@pytest.mark.parametrize(
    ("pix_fmt", "x264_params"),
    [
        pytest.param("yuv422p", "", id="4:2:2"),
        pytest.param("yuv444p", "", id="4:4:4"),
        pytest.param("yuvj420p", "", id="full-range"),
        pytest.param("yuv420p", "interlaced=1:tff=1", id="interlaced"),
        pytest.param("yuv420p", "open-gop=1:bframes=3:b-pyramid=normal:keyint=8", id="open-gop-b-frames"),
    ],
)
def test_other_encodings_keep_every_frame_and_hide_the_face(
    pix_fmt: str, x264_params: str, tmp_path: Path, astro: Frame, engine: Engine
) -> None:
    """4:2:2, 4:4:4, full-range, interlaced and open-GOP B-frame H.264 (THREAT case 17): every frame
    out with its timestamp, as 8-bit 4:2:0, the face hidden in each."""
    options = (("x264-params", x264_params),) if x264_params else ()
    clip = write_clip(tmp_path / "odd.mp4", astro, Spec(pix_fmt=pix_fmt, codec_options=options, frames=24))
    with av.open(str(clip.path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.pix_fmt == pix_fmt
        first = next(container.decode(stream))
        assert first.interlaced_frame == ("interlaced" in x264_params)
    result, output = run(clip, engine, tmp_path / "out", "mp4")
    assert result.status is Status.ok, result.reason
    out = decode(output)
    assert out.pts == clip.pts
    with av.open(str(output)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"
    assert all(hidden(f, c, b) for f, c, b in zip(out.frames, clip.frames, clip.faces, strict=True))
    # Colours read right: the background above the head keeps its values (only re-encoding noise).
    assert np.abs(out.frames[0][:40].astype(int) - clip.frames[0][:40].astype(int)).mean() < 8


def test_odd_size_padded_to_even(tmp_path: Path, astro: Frame, engine: Engine) -> None:
    """An odd-sized video is padded by one repeated row/column and said so in the notes."""
    clip = write_clip(
        tmp_path / "odd.mkv",
        astro,
        Spec(muxer="matroska", suffix=".mkv", vcodec="ffv1", size=(321, 241), subtitle=None, options=(), frames=10),
    )
    result, output = run(clip, engine, tmp_path / "out", "matroska")
    assert result.status is Status.ok, result.reason
    out = decode(output)
    assert out.frames[0].shape[:2] == (242, 322)
    assert any("padded" in note for note in result.notes)


# ---------------------------------------------------------------------------------- fail closed


def _truncate(path: Path, share: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * share)])


@pytest.mark.parametrize(
    ("spec", "fmt"),
    [
        pytest.param(Spec(options=()), "mp4", id="mp4-index-at-end"),
        pytest.param(Spec(options=(("movflags", "+faststart"),)), "mp4", id="mp4-faststart"),
        pytest.param(Spec(muxer="matroska", suffix=".mkv", subtitle=None, options=()), "matroska", id="mkv"),
    ],
)
def test_truncated_video_fails_without_output(
    spec: Spec, fmt: str, tmp_path: Path, astro: Frame, engine: Engine, no_partials: list[Path]
) -> None:
    """A file cut short fails: no output under the final name and no temporary file left."""
    clip = write_clip(tmp_path / f"cut{spec.suffix}", astro, replace(spec, frames=30))
    _truncate(clip.path, 0.6)
    result, output = run(clip, engine, tmp_path / "out", fmt)
    no_partials.append(tmp_path / "out")
    assert result.status is Status.failed
    assert result.source == str(clip.path) and str(clip.path) not in result.reason  # the file named once
    assert not output.exists()


def test_corrupt_middle_fails(tmp_path: Path, astro: Frame, engine: Engine) -> None:
    """Damaged bytes in the middle of the video data fail the file (decode error or short read)."""
    clip = write_clip(tmp_path / "bad.mp4", astro, Spec(options=(("movflags", "+faststart"),), frames=30))
    data = bytearray(clip.path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 3000] = bytes((b * 7 + 13) % 256 for b in data[middle : middle + 3000])
    clip.path.write_bytes(bytes(data))
    result, output = run(clip, engine, tmp_path / "out", "mp4")
    assert result.status is Status.failed
    assert not output.exists()


def _fast_clip(path: Path, rate: int, frames: int = 20, size: tuple[int, int] = (320, 240)) -> Path:
    """A tiny clip that declares `rate` frames a second (its timestamps one tick apart)."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=rate, options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = *size, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), i * 10, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode())
    return path


def test_video_whose_frames_cannot_fit_in_memory_is_refused_before_decoding(
    tmp_path: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 30 kB file declaring a million frames a second would need a lookahead of a million frames
    (230 GB at 320x240): refused from its header, with the reason, before any frame is decoded."""
    import blur.video.pipeline as vp
    from blur.errors import MediaReadError

    clip = _fast_clip(tmp_path / "fast.mp4", 10**6)

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("a frame was decoded")

    monkeypatch.setattr(vp, "decode_frames", no_decoding)
    dest = tmp_path / "out.mp4"
    reason = r"fast\.mp4: 320x240 at 1000000 fps would need about 230\.[0-9] GB of memory"
    with pytest.raises(MediaReadError, match=reason):
        vp.anonymize_video(clip, dest, "mp4", engine)
    assert not dest.exists()


def test_cli_refuses_a_video_too_large_for_memory_and_goes_on(tmp_path: Path, astro: Frame, runner: Any) -> None:
    """The refused video fails the run (exit 1, no output, the reason in the report); the rest of the
    batch is processed."""
    folder = tmp_path / "in"
    folder.mkdir()
    _fast_clip(folder / "fast.mp4", 10**6)
    write_clip(folder / "street.mp4", astro, Spec(frames=12))
    out_dir, report = tmp_path / "out", tmp_path / "report.json"
    args = ["anonymize", str(folder), "-o", str(out_dir), "--jobs", "1", "--quiet", "--report", str(report)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    files = {Path(f["source"]).name: f for f in json.loads(report.read_text())["files"]}
    assert files["fast.mp4"]["status"] == "failed"
    assert "320x240 at 1000000 fps would need about" in files["fast.mp4"]["reason"]
    assert "refused" in files["fast.mp4"]["reason"]
    assert not (out_dir / "fast.mp4").exists()
    assert files["street.mp4"]["status"] == "ok"
    assert (out_dir / "street.mp4").is_file()


def test_memory_needed_grows_with_frame_size_and_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a video's picture data takes at once, against a machine of 16 GB (8 GB allowed): 1080p at
    30 fps about 0.4 GB, 4K at 120 fps 3.8 GB, 8K at 30 fps or 1080p at 960 fps 6.2 GB (allowed); 8K
    at 240 fps (27 GB) and 15000 px square frames at 30 fps (42 GB) refused."""
    import blur.video.memory as vp
    from blur.errors import MediaReadError
    from blur.video.options import DEFAULT_THRESHOLD, VideoOptions, tracker_config

    options = VideoOptions()
    horizon = tracker_config(options, DEFAULT_THRESHOLD, 30).horizon
    assert vp.held_frames(options, 30) == horizon + options.batch + 3 * options.queue + 4
    assert vp.frame_memory(1920, 1080, 30, options) < 0.4e9
    assert vp.frame_memory(1920, 1080, 960, options) > 15 * vp.frame_memory(1920, 1080, 30, options)
    monkeypatch.setattr(vp, "memory_limit", lambda: 8 * 10**9)
    for width, height, rate in [(1920, 1080, 29.97), (3840, 2160, 120), (7680, 4320, 30), (1920, 1080, 960)]:
        vp.check_memory(Path("ok.mp4"), width, height, rate, options)
    for width, height, rate in [(7680, 4320, 240), (15000, 15000, 30), (320, 240, 10**6)]:
        with pytest.raises(MediaReadError, match="refused"):
            vp.check_memory(Path("big.mp4"), width, height, rate, options)
    monkeypatch.undo()
    assert vp.memory_limit() >= vp.MEMORY_SHARE * 2**30


@pytest.mark.parametrize(
    ("name", "content", "fmt"),
    [
        pytest.param("list.mp4", "ffconcat version 1.0\nfile '{secret}'\n", "mp4", id="ffconcat-as-mp4"),
        pytest.param("live.mkv", "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n{secret}\n", "matroska", id="hls"),
    ],
)
def test_playlist_pointing_at_a_local_file_is_refused(
    name: str, content: str, fmt: str, tmp_path: Path, astro: Frame, engine: Engine, runner: Any
) -> None:
    """A playlist dressed as a video never makes FFmpeg read the file it points at."""
    secret = write_clip(tmp_path / "secret.mp4", astro, Spec(frames=5))
    evil = tmp_path / "in" / name
    evil.parent.mkdir()
    evil.write_text(content.format(secret=secret.path))
    result, output = run(Clip(evil, [], [], [], TIME_BASE, Spec()), engine, tmp_path / "direct", fmt)
    assert result.status is Status.failed
    assert "not a" in result.reason
    assert not output.exists()
    cli = runner.invoke(app, ["anonymize", str(evil.parent), "-o", str(tmp_path / "out"), "--jobs", "1", "--quiet"])
    assert cli.exit_code == 1, cli.output
    assert not (tmp_path / "out" / name).exists()


# ------------------------------------------------------------------------------------ no leaks


def _smear(sprite: Frame, length: int) -> Frame:
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2] = 1.0 / length
    return np.asarray(cv2.filter2D(sprite, -1, kernel), np.uint8)


def occluded_scene(astro: Frame) -> tuple[list[Frame], list[tuple[int, int, int, int]], list[float], set[int]]:
    """A face crossing a pole, motion-blurred in two bursts, then a scene cut to another background.

    Returns the frames, the face box per frame, the share of the face in view, and the blurred frames.
    """
    from skimage import data

    sprite, face = head_sprite(astro)
    sh, sw = sprite.shape[:2]
    first = background(320, 240)
    second = np.asarray(cv2.resize(data.rocket(), (320, 240), interpolation=cv2.INTER_AREA), np.uint8)
    pole = (150, 168)
    blurred = {11, 12, 13, 22, 23, 24}
    frames, faces, visible = [], [], []
    for i in range(40):
        if i < 30:
            x, y, base, drawn = 5 + 7 * i, (240 - sh) // 2, first, _smear(sprite, 31) if i in blurred else sprite
        else:
            x, y, base, drawn = 200, 30, second, sprite
        frame = base.copy()
        frame[y : y + sh, x : x + sw] = drawn
        box = (x + face[0], y + face[1], x + face[2], y + face[3])
        hidden_cols = max(0, min(box[2], pole[1]) - max(box[0], pole[0])) if i < 30 else 0
        if i < 30:
            frame[:, pole[0] : pole[1]] = (90, 90, 96)
        frames.append(frame)
        faces.append(box)
        visible.append(1 - hidden_cols / (box[2] - box[0]))
    return frames, faces, visible, blurred


def test_no_leak_where_the_detector_misses_the_face(tmp_path: Path, astro: Frame, engine: Engine) -> None:
    """Frames where the detector finds no face (motion blur) are still masked by the track, pole and cut included."""
    from blur.video.options import LOW_FRACTION, threshold_of, video_detector

    frames, faces, visible, blurred = occluded_scene(astro)
    detector = video_detector(engine, threshold_of(engine.detector) * LOW_FRACTION)
    high = threshold_of(engine.detector)
    missed = [i for i in sorted(blurred) if not (detector.detect(frames[i]).score >= high).any()]
    assert len(missed) >= 3, "the clip must make the detector miss the face, or it tests nothing"
    clip = encode_clip(tmp_path / "pole.mp4", frames, faces, Spec(frames=len(frames), subtitle=None))
    result, output = run(clip, engine, tmp_path / "out", "mp4")
    assert result.status is Status.ok, result.reason
    out = decode(output)
    leaked = [
        i
        for i, (f, c, b, v) in enumerate(zip(out.frames, frames, faces, visible, strict=True))
        if v >= 0.5 and not hidden(f, c, b)
    ]
    assert leaked == []
    assert result.tracks is not None and result.tracks >= 2, "the scene cut starts a new track"


TINY_FACE = 14
"""Width in pixels of the face in `tiny_face_scene`: after H.264, CenterFace scores it 0.03-0.22 at
its own size (never the 0.3 that starts a track, often the 0.1 that continues one)."""


def tiny_face_scene(astro: Frame, n: int = 24) -> tuple[list[Frame], list[tuple[int, int, int, int]]]:
    """A 720p clip with the astronaut's face 13 px wide walking slowly across: a face far away in a crowd shot."""
    y1, y2, x1, x2 = HEAD
    scale = TINY_FACE / (FACE_IN_HEAD[2] - FACE_IN_HEAD[0])
    crop = astro[y1:y2, x1:x2]
    size = (round(crop.shape[1] * scale), round(crop.shape[0] * scale))
    sprite = np.asarray(cv2.resize(crop, size, interpolation=cv2.INTER_AREA), np.uint8)
    fx1, fy1, fx2, fy2 = (round(v * scale) for v in FACE_IN_HEAD)
    base = background(1280, 720)
    frames, faces = [], []
    for i in range(n):
        x, y = 600 + 2 * i, 300
        frame = base.copy()
        frame[y : y + sprite.shape[0], x : x + sprite.shape[1]] = sprite
        frames.append(frame)
        faces.append((x + fx1, y + fy1, x + fx2, y + fy2))
    return frames, faces


def test_tiny_face_searched_again_at_twice_the_size(
    tmp_path: Path, astro: Frame, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 14 px face scores too low at its own size to start a track; the fine pass's weak small faces
    are searched again, upscaled 2x, so it is hidden in every frame. Without that second look it is not."""
    from blur.video import detection, pipeline
    from blur.video.options import LOW_FRACTION, VideoOptions, threshold_of, video_detector

    frames, faces = tiny_face_scene(astro)
    clip = encode_clip(tmp_path / "tiny.mp4", frames, faces, Spec(frames=len(frames), size=(1280, 720), subtitle=None))
    high = threshold_of(engine.detector)
    detector = video_detector(engine, high * LOW_FRACTION)
    scores = []
    for frame, box in zip(decode(clip.path).frames, faces, strict=True):
        dets = detector.detect(frame)
        near = dets[iou_matrix(dets.xyxy, np.array([box], np.float32))[:, 0] > 0.2]
        scores.append(float(near.score.max()) if len(near) else 0.0)
    assert max(scores) < high, f"the face must be too small to start a track at its own size: {scores}"
    weak = sum(s >= high * LOW_FRACTION for s in scores)
    assert weak >= 3, f"the fine pass must see it as a weak face on some frames: {scores}"

    def leaked(out_dir: Path) -> list[int]:
        result, output = run(clip, engine, out_dir, "mp4")
        assert result.status is Status.ok, result.reason
        out = decode(output).frames
        return [i for i, (f, c, b) in enumerate(zip(out, frames, faces, strict=True)) if not hidden(f, c, b)]

    assert leaked(tmp_path / "out") == []
    monkeypatch.setattr(detection, "CONFIRM_SIDE", 0)
    # The clip is under a second long: without the second look, only the weak-detection tail of its last
    # half-second would mask the face, so that is turned off too to show what the second look does.
    monkeypatch.setattr(pipeline, "VideoOptions", lambda: VideoOptions(tail_seconds=0))
    assert len(leaked(tmp_path / "off")) == len(frames), "without the second look the face stays visible"


def test_confirm_windows_hold_each_weak_face() -> None:
    """One window per weak face, shared where a face sits well inside an earlier window, moved inside the frame."""
    from blur.types import Detections
    from blur.video.schedule import CONFIRM_WINDOW, confirm_windows

    weak = Detections.from_arrays(
        np.array([[100, 100, 110, 112], [104, 102, 114, 114], [0, 0, 8, 10], [1275, 715, 1280, 720]], np.float32),
        np.full(4, 0.2, np.float32),
    )
    windows = confirm_windows(weak, 1280, 720)
    assert windows == [(73, 74, 137, 138), (0, 0, 64, 64), (1216, 656, 1280, 720)]
    assert all(x1 - x0 == CONFIRM_WINDOW and y1 - y0 == CONFIRM_WINDOW for x0, y0, x1, y1 in windows)
    assert confirm_windows(weak, 40, 30) == [(0, 0, 40, 30)]
    assert confirm_windows(Detections.empty(), 1280, 720) == []


@pytest.mark.parametrize("mode", ["pixelate", "blur"])
def test_other_looks_hide_the_face(mode: str, tmp_path: Path, astro: Frame, engine: Engine) -> None:
    """Pixelate and blur (fill first, then stylise) also leave no recognisable face in any frame."""
    from blur.config import MaskMode

    looks = replace(engine, settings=replace(engine.settings, mask=replace(engine.settings.mask, mode=MaskMode(mode))))
    clip = write_clip(tmp_path / "clip.mp4", astro, Spec(frames=10, subtitle=None))
    result, output = run(clip, looks, tmp_path / "out", "mp4")
    assert result.status is Status.ok, result.reason
    out = decode(output)
    for frame, clean, (x1, y1, x2, y2) in zip(out.frames, clip.frames, clip.faces, strict=True):
        assert ssim_gray(frame[y1:y2, x1:x2], clean[y1:y2, x1:x2]) < 0.6


def test_fill_is_painted_into_luma_and_chroma() -> None:
    """A solid fill sets every masked luma sample and every chroma sample a masked pixel uses; nothing else."""
    from blur.config import MaskConfig
    from blur.media.planes import Planes, planes_to_rgb
    from blur.video.masking import mask_planes

    rng = np.random.default_rng(0)
    planes = Planes(
        rng.integers(16, 236, (8, 8), dtype=np.uint8),
        rng.integers(16, 240, (4, 4), dtype=np.uint8),
        rng.integers(16, 240, (4, 4), dtype=np.uint8),
    )
    mask = np.zeros((8, 8), bool)
    mask[3:5, 3:5] = True
    out = mask_planes(planes, mask, MaskConfig(), colorspace=1)
    assert (out.y[mask] == 16).all()
    assert (out.y[~mask] == planes.y[~mask]).all()
    assert (out.u[1:3, 1:3] == 128).all() and (out.v[1:3, 1:3] == 128).all()
    assert out.u[0, 0] == planes.u[0, 0]
    assert (planes_to_rgb(out, 1)[mask] <= 2).all(), "black in RGB too"


def test_face_windows_paint_what_a_full_frame_mask_paints() -> None:
    """The video path paints each face in its own even-aligned window, in place; the pixels are those
    of one full-frame mask, faces at the frame's edges and overlapping faces included."""
    from blur.anonymize.mask import build_mask, mask_pieces
    from blur.config import MaskConfig, MaskShape
    from blur.media.planes import Planes
    from blur.types import Detections
    from blur.video.masking import fill_planes, mask_planes

    rng = np.random.default_rng(3)
    h, w = 240, 320
    for shape in MaskShape:
        for _ in range(20):
            n = int(rng.integers(1, 12))
            xy = rng.uniform(-30, [w, h], (n, 2))
            dets = Detections.from_arrays(
                np.hstack([xy, xy + rng.uniform(1, 90, (n, 2))]).astype(np.float32), np.ones(n, np.float32)
            ).clipped(w, h)
            packed = rng.integers(16, 236, (h * 3 // 2, w), dtype=np.uint8)
            cfg = MaskConfig(shape=shape)
            want = mask_planes(Planes.unpack(packed.copy(), w, h), build_mask(dets, h, w, cfg), cfg, colorspace=1)
            planes = Planes.unpack(packed, w, h)
            got = fill_planes(planes, mask_pieces(dets, h, w, cfg, align=2), (16, 128, 128))
            assert got is planes and np.shares_memory(got.packed(), packed)
            assert np.array_equal(got.packed(), want.packed())


def test_lookahead_window_stays_bounded(tmp_path: Path, engine: Engine) -> None:
    """A long clip is never held whole: at most the tracker's horizon plus one detector batch is buffered."""
    from blur.video.options import VideoOptions, threshold_of, tracker_config
    from blur.video.pipeline import anonymize_video

    frames = [np.full((48, 64, 3), (i * 3) % 255, np.uint8) for i in range(240)]
    clip = encode_clip(tmp_path / "long.mp4", frames, [(0, 0, 1, 1)] * 240, Spec(size=(64, 48), frames=240))
    options = VideoOptions()
    stats = anonymize_video(clip.path, tmp_path / "out.mp4", "mp4", engine, options)
    horizon = tracker_config(options, threshold_of(engine.detector), float(RATE)).horizon
    assert stats.frames == 240
    assert stats.peak_window <= horizon + options.batch


# -------------------------------------------------------------------------------------- the CLI


def test_cli_photo_and_video_in_one_batch(tmp_path: Path, astro: Frame, runner: Any, no_partials: list[Path]) -> None:
    """`blur anonymize` handles a photo and a video in one folder and reports frames and faces."""
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(astro).save(folder / "portrait.jpg", quality=92)
    write_clip(folder / "street.mp4", astro, Spec(frames=20))
    report = tmp_path / "report.json"
    out_dir = tmp_path / "out"
    args = ["anonymize", str(folder), "-o", str(out_dir), "--jobs", "1", "--quiet", "--report", str(report)]
    result = runner.invoke(app, args)
    no_partials.append(out_dir)
    assert result.exit_code == 0, result.output
    files = {Path(f["source"]).name: f for f in json.loads(report.read_text())["files"]}
    assert files["street.mp4"]["status"] == "ok"
    assert files["street.mp4"]["frames"] == 20
    assert files["street.mp4"]["faces"] >= 20
    assert files["street.mp4"]["tracks"] >= 1
    assert files["portrait.jpg"]["faces"] >= 1
    assert (out_dir / "street.mp4").is_file()
    assert (out_dir / "portrait.jpg").is_file()


def test_cli_truncated_video_exit_1(tmp_path: Path, astro: Frame, runner: Any) -> None:
    """A truncated video makes the run exit 1 and writes no output for it."""
    folder = tmp_path / "in"
    folder.mkdir()
    clip = write_clip(folder / "cut.mp4", astro, Spec(frames=20, options=(("movflags", "+faststart"),)))
    _truncate(clip.path, 0.5)
    result = runner.invoke(app, ["anonymize", str(folder), "-o", str(tmp_path / "out"), "--jobs", "1", "--quiet"])
    assert result.exit_code == 1, result.output
    assert not (tmp_path / "out" / "cut.mp4").exists()


def test_settings_default_keeps_audio() -> None:
    """Audio is kept unless asked otherwise (deface#66: "sound is gone")."""
    assert Settings().keep_audio is True


@pytest.mark.slow
def test_parallel_detection_gives_the_same_output(
    tmp_path: Path, astro: Frame, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Detection off the main thread (a coarse thread, full fine passes run ahead of need) writes
    exactly the frames the one-thread pipeline writes, on a 720p clip where the fine pass finds a
    small face that the coarse pass cannot; between full passes, focused passes search only a
    window around it, and it stays hidden on every frame."""
    from blur.video.options import VideoOptions
    from blur.video.pipeline import anonymize_video
    from blur.video.schedule import FineSchedule

    focused: list[list[tuple[int, int, int, int]]] = []
    windows_of = FineSchedule.focus_windows

    def record(schedule: FineSchedule, index: int) -> list[tuple[int, int, int, int]]:
        windows = windows_of(schedule, index)
        if windows:
            focused.append(windows)
        return windows

    monkeypatch.setattr(FineSchedule, "focus_windows", record)

    if not getattr(engine.detector, "thread_safe", False):
        pytest.skip("the detector is not thread-safe (OpenCV fallback): parallel detection is never used")
    frames, faces = render(astro, 16, 1280, 720)
    sprite, face = head_sprite(astro)
    small = np.asarray(cv2.resize(sprite, (sprite.shape[1] // 3, sprite.shape[0] // 3)), np.uint8)
    y, x = 40, 1100
    for frame in frames:
        frame[y : y + small.shape[0], x : x + small.shape[1]] = small
    clip = encode_clip(tmp_path / "hd.mp4", frames, faces, Spec(size=(1280, 720), frames=16, subtitle=None))
    outputs, stats = [], []
    for parallel in (False, True):
        dest = tmp_path / f"out-{parallel}.mp4"
        stats.append(anonymize_video(clip.path, dest, "mp4", engine, VideoOptions(parallel=parallel)))
        outputs.append(decode(dest).frames)
    assert stats[0].faces == stats[1].faces and stats[0].tracks == stats[1].tracks
    # Frames 2, 6, 10 and 14 of each run got a focused pass: one 256 px window holding the small face.
    assert len(focused) == 8, focused
    for windows in focused:
        assert len(windows) == 1
        x0, y0, x1, y1 = windows[0]
        assert (x1 - x0, y1 - y0) == (256, 256) and x0 <= x and y0 <= y
    assert len(outputs[0]) == len(outputs[1]) == 16
    for serial_frame, parallel_frame in zip(*outputs, strict=True):
        assert np.array_equal(serial_frame, parallel_frame)
    # The small face (about 10 px in the coarse copy) is hidden: the fine pass ran and counted.
    fx1, fy1, fx2, fy2 = (x + face[0] // 3, y + face[1] // 3, x + face[2] // 3, y + face[3] // 3)
    assert all(hidden(f, c, (fx1, fy1, fx2, fy2)) for f, c in zip(outputs[1], frames, strict=True))
    coarse_only = tmp_path / "coarse.mp4"
    anonymize_video(clip.path, coarse_only, "mp4", engine, VideoOptions(parallel=True, fine_side=0))
    assert not any(hidden(f, c, (fx1, fy1, fx2, fy2)) for f, c in zip(decode(coarse_only).frames, frames, strict=True))


def test_parallel_detection_fails_closed(tmp_path: Path, astro: Frame, engine: Engine) -> None:
    """A truncated video fails in the parallel pipeline too, and its threads stop."""
    import threading

    from blur.errors import BlurError
    from blur.video.options import VideoOptions
    from blur.video.pipeline import anonymize_video

    if not getattr(engine.detector, "thread_safe", False):
        pytest.skip("the detector is not thread-safe (OpenCV fallback): parallel detection is never used")
    clip = write_clip(tmp_path / "cut.mp4", astro, Spec(options=(), frames=30, size=(960, 540)))
    _truncate(clip.path, 0.6)
    with pytest.raises(BlurError, match=r"cut\.mp4"):
        anonymize_video(clip.path, tmp_path / "out.mp4", "mp4", engine, VideoOptions(parallel=True))
    assert not any(t.name.startswith("blur-") for t in threading.enumerate())
