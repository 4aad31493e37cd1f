"""Bounded fuzzing of the input readers with mutated real files (mat2's pattern, with Hypothesis).

The only acceptable failure of `read_photo` is a clean per-file error (MediaReadError or
UnsupportedMediaError); `sniff_bytes` and the audit's structure parsers must never raise at all.
Examples are derandomized so CI runs are reproducible and bounded (about 10-20 s in all).
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from blur.audit.run import PARSERS
from blur.errors import MediaReadError, UnsupportedMediaError
from blur.media.image import read_photo
from blur.media.kinds import sniff_bytes
from blur.sample import astronaut, jpeg_with_metadata, png_with_text
from tests.dirty import srgb_icc

FORMATS = ("JPEG", "PNG", "TIFF", "WEBP")
FUZZ = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow], database=None
)


@cache
def bases() -> dict[str, bytes]:
    """Small real files (64×64 face crops) carrying metadata, so mutations hit both headers and segments."""
    crop = np.ascontiguousarray(astronaut()[40:200:2, 160:320:2][:64, :64])
    exif = Image.Exif()
    exif[0x010F] = "FuzzCam"
    exif[0x0112] = 6
    files = {"JPEG": jpeg_with_metadata(crop), "PNG": png_with_text(crop, {"Author": "fuzz"})}
    for fmt, options in (("TIFF", {"compression": "tiff_lzw"}), ("WEBP", {"quality": 80})):
        buffer = io.BytesIO()
        Image.fromarray(crop).save(buffer, fmt, exif=exif.tobytes(), icc_profile=srgb_icc(), **options)
        files[fmt] = buffer.getvalue()
    return files


mutations = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.integers(0, 1 << 20), st.integers(0, 255)),
        st.tuples(st.just("cut"), st.integers(0, 1 << 20), st.just(0)),
        st.tuples(st.just("insert"), st.integers(0, 1 << 20), st.binary(min_size=1, max_size=24)),
        st.tuples(st.just("repeat"), st.integers(0, 1 << 20), st.integers(1, 256)),
    ),
    min_size=1,
    max_size=4,
)


def mutate(data: bytes, ops: list[tuple[str, int, object]]) -> bytes:
    """Apply byte-level mutations at positions taken modulo the current length."""
    out = bytearray(data)
    for op, where, arg in ops:
        at = where % max(1, len(out))
        if op == "set" and out:
            out[at] = int(arg)  # type: ignore[call-overload]
        elif op == "cut":
            del out[at:]
        elif op == "insert":
            out[at:at] = bytes(arg)  # type: ignore[call-overload]
        elif op == "repeat":
            out[at:at] = out[at : at + int(arg)]  # type: ignore[call-overload]
    return bytes(out)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the mutated files (each example overwrites its own name)."""
    return tmp_path_factory.mktemp("fuzz")


@pytest.mark.parametrize("fmt", FORMATS)
@FUZZ
@given(ops=mutations)
def test_read_photo_fails_cleanly(fuzz_dir: Path, fmt: str, ops: list[tuple[str, int, object]]) -> None:
    """A mutated photo decodes to an upright RGB array, or raises a per-file error naming the file."""
    path = fuzz_dir / f"m.{fmt.lower()}"
    path.write_bytes(mutate(bases()[fmt], ops))
    try:
        photo = read_photo(path, fmt)
    except (MediaReadError, UnsupportedMediaError) as exc:
        message = str(exc)
    else:
        assert photo.rgb.ndim == 3 and photo.rgb.shape[2] == 3 and photo.rgb.dtype == np.uint8
        return
    assert str(path) in message


@pytest.mark.parametrize("fmt", FORMATS)
@settings(FUZZ, max_examples=300)
@given(ops=mutations)
def test_audit_parsers_never_raise(fmt: str, ops: list[tuple[str, int, object]]) -> None:
    """The audit's raw-bytes parsers turn any damage into findings; they never raise."""
    findings = PARSERS[fmt](mutate(bases()[fmt], ops))
    assert isinstance(findings, list)


@settings(FUZZ, max_examples=500)
@given(head=st.one_of(st.binary(max_size=64), st.builds(mutate, st.sampled_from(list(bases().values())), mutations)))
def test_sniff_never_raises(head: bytes) -> None:
    """Sniffing any 64 bytes returns a kind; it never raises."""
    assert sniff_bytes(head[:64]).kind.value in ("image", "video", "unsupported")


@cache
def video_bases() -> dict[str, bytes]:
    """Small real clips (a face crop, 6 frames, with a tone) in the containers blur reads."""
    import av

    from tests.test_video import _write_tone

    crop = np.ascontiguousarray(astronaut()[40:200:2, 160:320:2][:64, :64])
    files: dict[str, bytes] = {}
    for name, codec, audio in (("mp4", "libx264", "aac"), ("webm", "libvpx-vp9", "libopus"), ("avi", "mjpeg", None)):
        buffer = io.BytesIO()
        with av.open(buffer, "w", format=name) as out:
            stream = out.add_stream(codec, rate=10)
            stream.width, stream.height = 64, 64
            stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
            sound = out.add_stream(audio, rate=48000) if audio else None
            out.metadata["title"] = "fuzz"
            for i in range(6):
                frame = av.VideoFrame.from_ndarray(np.roll(crop, i, axis=1), format="rgb24")
                frame.pts = i
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
            if sound is not None:
                _write_tone(out, sound, 0.6)
        files[name] = buffer.getvalue()
    return files


def read_video(path: Path) -> int:
    """The read side of `anonymize_video`: sniff, open, probe, decode every frame to planes. Returns frames."""
    from blur.media.kinds import sniff
    from blur.media.planes import to_planes
    from blur.media.video_read import AudioChunk, audio_stream, decode_frames, open_input, probe
    from blur.media.video_write import choose_audio

    sniffed = sniff(path)
    if sniffed.kind.value != "video":
        raise UnsupportedMediaError(f"{path}: no longer a video")
    frames = 0
    with open_input(path, sniffed.format) as container:
        mode = choose_audio(sniffed.format, audio_stream(container), keep=True, path=path)
        info = None
        for item in decode_frames(path, container, mode):
            if isinstance(item, AudioChunk):
                continue
            info = info or probe(path, container, item)
            planes = to_planes(item, info.quarter_turns, info.colour[0])
            assert planes.y.dtype == np.uint8
            frames += 1
    return frames


@pytest.mark.parametrize("fmt", ["mp4", "webm", "avi"])
@settings(FUZZ, max_examples=200)
@given(ops=mutations)
def test_read_video_fails_cleanly(fuzz_dir: Path, fmt: str, ops: list[tuple[str, int, object]]) -> None:
    """A mutated clip decodes, or raises a per-file error naming the file: never another exception."""
    from blur.errors import BlurError

    path = fuzz_dir / f"m.{fmt}"
    path.write_bytes(mutate(video_bases()[fmt], ops))
    try:
        frames = read_video(path)
    except BlurError as exc:
        message = str(exc)
    else:
        assert frames >= 0
        return
    assert str(path) in message


@pytest.mark.parametrize("fmt", ["mp4", "webm", "avi"])
@settings(FUZZ, max_examples=150)
@given(ops=mutations)
def test_audit_video_never_raises(fuzz_dir: Path, fmt: str, ops: list[tuple[str, int, object]]) -> None:
    """The audit of a mutated clip (tags, streams, covers) turns any damage into findings; it never raises."""
    from blur.audit.video import video_findings

    path = fuzz_dir / f"a.{fmt}"
    path.write_bytes(mutate(video_bases()[fmt], ops))
    findings, _ = video_findings(path, fmt, None)
    assert isinstance(findings, list)
