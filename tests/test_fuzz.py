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
