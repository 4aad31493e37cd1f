"""Hostile input and faults: each file fails alone with a clear reason, the batch goes on, nothing partial is left.

Cases follow THREAT.md section 7.2, items 20-28.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from blur.audit import Category, audit_file
from blur.audit.run import LazyCheck
from blur.cli import app
from blur.errors import MediaReadError
from blur.fsio import open_regular
from blur.media.image import MAX_PIXELS, read_photo
from blur.sample import crowd
from tests.conftest import ASTRO_FACE, oval_filled, sha256, tree_hashes
from tests.dirty import insert_segments, plain_jpeg, segment
from tests.hostile import (
    blur_cli,
    capabilities_droppable,
    drop_file_capabilities,
    jpeg_bomb,
    limit_file_size,
    png_bomb,
    tiff_bomb,
    ztxt_bomb,
)


def _anonymize(runner: CliRunner, *args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, ["anonymize", *map(str, args), "-j", "1", "-q"])
    return result.exit_code, result.output


def _partials(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if "blur-partial" in p.name] if root.exists() else []


def _outputs(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) if root.exists() else []


def _png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    return buffer.getvalue()


class TestBombs:
    @pytest.mark.parametrize(
        ("name", "fmt", "size"),
        [
            ("png", "PNG", (50_000, 50_000)),
            ("jpeg", "JPEG", (65_500, 65_500)),
            ("tiff", "TIFF", (60_000, 60_000)),
            ("png-just-over", "PNG", (20_000, MAX_PIXELS // 20_000 + 1)),
        ],
    )
    def test_refused_from_the_header(
        self, tmp_path: Path, astro: np.ndarray, name: str, fmt: str, size: tuple[int, int]
    ) -> None:
        """A header declaring more than MAX_PIXELS is refused before any pixel is decoded (fast, no big allocation)."""
        data = {
            "PNG": lambda: png_bomb(*size),
            "JPEG": lambda: jpeg_bomb(*size, plain_jpeg(astro)),
            "TIFF": lambda: tiff_bomb(*size),
        }
        path = tmp_path / f"bomb.{fmt.lower()}"
        path.write_bytes(data[fmt]())
        start = time.perf_counter()
        with pytest.raises(MediaReadError, match="decompression bomb") as info:
            read_photo(path, fmt)
        assert time.perf_counter() - start < 1.0
        assert str(path) in str(info.value)

    def test_batch_continues(self, tmp_path: Path, astro: np.ndarray, runner: CliRunner) -> None:
        """Bombs fail one by one with the file named; the good photo beside them is done; exit 1."""
        src, out = tmp_path / "in", tmp_path / "out"
        src.mkdir()
        (src / "a_png_bomb.png").write_bytes(png_bomb(50_000, 50_000))
        (src / "b_jpeg_bomb.jpg").write_bytes(jpeg_bomb(65_500, 65_500, plain_jpeg(astro)))
        (src / "c_tiff_bomb.tif").write_bytes(tiff_bomb(60_000, 60_000))
        (src / "d_ztxt_bomb.png").write_bytes(png_bomb(64, 64, ztxt_bomb()))
        (src / "good.png").write_bytes(_png(astro))
        code, output = _anonymize(runner, src, "-o", out)
        assert code == 1
        for name in ("a_png_bomb.png", "b_jpeg_bomb.jpg", "c_tiff_bomb.tif", "d_ztxt_bomb.png"):
            assert f"{name}:" in output, name
        assert output.count("refusing a possible decompression bomb") == 3 and "too large for" in output
        assert _outputs(out) == ["good.png"] and not _partials(out)

    def test_audit_bounds_text_inflation(self, tmp_path: Path) -> None:
        """The audit reads a 64 MB zTXt bomb's text without inflating it all."""
        (tmp_path / "z.png").write_bytes(png_bomb(64, 64, ztxt_bomb()))
        start = time.perf_counter()
        result = audit_file(tmp_path / "z.png", LazyCheck(None))
        assert time.perf_counter() - start < 2.0
        assert any(f.category is Category.metadata and "zTXt" in f.where for f in result.findings)


class TestBrokenFiles:
    def test_truncated_and_corrupt(self, tmp_path: Path, astro: np.ndarray, runner: CliRunner) -> None:
        """JPEGs and PNGs cut at 10/50/90 % and a PNG with a damaged IDAT fail with no output; inputs untouched."""
        src, out = tmp_path / "in", tmp_path / "out"
        src.mkdir()
        jpeg, png = plain_jpeg(astro), _png(astro)
        for pct in (10, 50, 90):
            (src / f"cut{pct}.jpg").write_bytes(jpeg[: len(jpeg) * pct // 100])
            (src / f"cut{pct}.png").write_bytes(png[: len(png) * pct // 100])
        damaged = bytearray(png)
        damaged[len(png) // 2 : len(png) // 2 + 64] = os.urandom(64)
        (src / "damaged.png").write_bytes(bytes(damaged))
        (src / "good.jpg").write_bytes(jpeg)
        before = tree_hashes(src)
        code, output = _anonymize(runner, src, "-o", out)
        assert code == 1
        assert output.count("failed:") == 7
        assert _outputs(out) == ["good.jpg"] and not _partials(out)
        assert tree_hashes(src) == before

    @pytest.mark.parametrize(
        ("name", "content", "reason"),
        [
            ("page.jpg", b"<!doctype html><html><body>hello</body></html>", "not JPEG"),
            ("clip.jpg", b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom" + b"\0" * 64, "content is mp4"),
            ("photo.png", None, "content is JPEG"),
            ("archive.mp4", b"PK\x03\x04" + b"\0" * 64, "not mp4"),
        ],
    )
    def test_content_not_matching_extension(
        self, tmp_path: Path, astro: np.ndarray, runner: CliRunner, name: str, content: bytes | None, reason: str
    ) -> None:
        """Type is decided by content: a mislabelled file fails with both types named, and is never converted."""
        (tmp_path / name).write_bytes(content if content is not None else plain_jpeg(astro))
        code, output = _anonymize(runner, tmp_path / name, "-o", tmp_path / "out")
        assert code == 1 and reason in output, output
        assert _outputs(tmp_path / "out") == []

    def test_corrupt_exif_becomes_a_note(self, tmp_path: Path, astro: np.ndarray) -> None:
        """A JPEG whose EXIF block is cut short still decodes; Pillow's warning becomes a note, never a print."""
        exif = b"Exif\0\0II*\0" + struct.pack("<IH", 8, 5) + struct.pack("<HHII", 0x0112, 3, 1, 6)
        (tmp_path / "e.jpg").write_bytes(insert_segments(plain_jpeg(astro), segment(0xE1, exif)))
        photo = read_photo(tmp_path / "e.jpg", "JPEG")
        assert photo.rgb.shape == (512, 512, 3)
        assert any(n.startswith("decoder warning: Corrupt EXIF") for n in photo.notes), photo.notes

    def test_jpeg_zip_polyglot_processed_and_zip_dropped(
        self, tmp_path: Path, astro: np.ndarray, runner: CliRunner
    ) -> None:
        """Decision: a JPEG with a ZIP appended is processed; the output is a fresh encode, so the ZIP is gone."""
        zip_part = b"PK\x03\x04\x14\0\0\0\0\0" + b"\0" * 16 + b"\x0a\0\0\0secret.txtTOP-SECRET"
        (tmp_path / "poly.jpg").write_bytes(plain_jpeg(astro) + zip_part)
        assert any("ZIP" in f.detail for f in audit_file(tmp_path / "poly.jpg", LazyCheck(None)).findings)
        code, output = _anonymize(runner, tmp_path / "poly.jpg", "-o", tmp_path / "out")
        assert code == 0, output
        raw = (tmp_path / "out" / "poly.jpg").read_bytes()
        assert b"PK\x03\x04" not in raw and b"TOP-SECRET" not in raw and raw.endswith(b"\xff\xd9")
        assert audit_file(tmp_path / "out" / "poly.jpg", LazyCheck(None)).findings == ()

    def test_playlists_named_as_video_refused(self, tmp_path: Path, runner: CliRunner) -> None:
        """HLS and ffconcat playlists named .mp4 that point at a local secret are refused; the secret never leaks."""
        secret = tmp_path / "secret.txt"
        secret.write_bytes(b"TOP-SECRET-CANARY\n" * 50)
        src = tmp_path / "in"
        src.mkdir()
        (src / "hls.mp4").write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile://{secret}\n#EXT-X-ENDLIST\n")
        (src / "concat.mp4").write_text(f"ffconcat version 1.0\nfile '{secret}'\n")
        (src / "hls.m3u8").write_text(f"#EXTM3U\n#EXTINF:1,\n{secret}\n")
        code, output = _anonymize(runner, src, "-o", tmp_path / "out")
        assert code == 1
        assert "hls.mp4" in output and "concat.mp4" in output
        out = tmp_path / "out"
        leaked = [p for p in out.rglob("*") if p.is_file() and b"TOP-SECRET" in p.read_bytes()] if out.exists() else []
        assert _outputs(out) == [] and not leaked


class TestFilesystem:
    def test_links_loops_fifos_and_devices(self, tmp_path: Path, astro: np.ndarray) -> None:
        """Links out of the root, link loops, a FIFO and device paths are skipped with reasons, without hanging."""
        src, out = tmp_path / "in", tmp_path / "out"
        src.mkdir()
        outside = tmp_path / "outside.jpg"
        outside.write_bytes(plain_jpeg(astro))
        (src / "good.jpg").write_bytes(plain_jpeg(astro))
        (src / "escape.jpg").symlink_to(outside)
        (src / "loop1.jpg").symlink_to(src / "loop2.jpg")
        (src / "loop2.jpg").symlink_to(src / "loop1.jpg")
        (src / "dirloop").symlink_to(src, target_is_directory=True)
        os.mkfifo(src / "pipe.jpg")
        (src / "null.jpg").symlink_to("/dev/null")
        done = blur_cli("anonymize", src, "/dev/null", src / "null.jpg", "-o", out, "-j", "1", "-q", timeout=120)
        err = done.stderr.decode()
        assert done.returncode == 0, err
        assert _outputs(out) == ["good.jpg"]
        for name in ("escape.jpg", "loop1.jpg", "loop2.jpg", "dirloop", "null.jpg"):
            assert f"{name}: symbolic link (not followed)" in err, name
        assert "pipe.jpg: not a regular file" in err and "/dev/null: not a regular file" in err

    def test_open_regular_refuses_special_files(self, tmp_path: Path) -> None:
        """The reader itself refuses a FIFO (without blocking) and a final symbolic link, even after discovery."""
        os.mkfifo(tmp_path / "fifo")
        (tmp_path / "link").symlink_to(tmp_path / "fifo")
        with pytest.raises(OSError, match="not a regular file"):
            open_regular(tmp_path / "fifo")
        with pytest.raises(OSError, match="symbolic link"):
            open_regular(tmp_path / "link")
        with pytest.raises(MediaReadError, match="not a regular file"):
            read_photo(Path("/dev/null"), "JPEG")

    def test_planted_output_link_not_written_through(
        self, tmp_path: Path, astro: np.ndarray, runner: CliRunner
    ) -> None:
        """A symlink pre-planted at the output name (pointing at a private file) is replaced, never written through."""
        (tmp_path / "a.jpg").write_bytes(plain_jpeg(astro))
        bashrc = tmp_path / "bashrc"
        bashrc.write_text("export SECRET=1\n")
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "a.jpg").symlink_to(bashrc)
        code, output = _anonymize(runner, tmp_path / "a.jpg", "-o", tmp_path / "out")
        assert code == 0, output
        assert bashrc.read_text() == "export SECRET=1\n"
        assert not (tmp_path / "out" / "a.jpg").is_symlink()

    def test_linked_output_subfolder_not_written_through(
        self, tmp_path: Path, astro: np.ndarray, runner: CliRunner
    ) -> None:
        """An output subfolder that is a link to elsewhere is refused for its files; the link target stays empty."""
        (tmp_path / "in" / "day1").mkdir(parents=True)
        (tmp_path / "in" / "day1" / "a.jpg").write_bytes(plain_jpeg(astro))
        (tmp_path / "in" / "b.jpg").write_bytes(plain_jpeg(astro))
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "day1").symlink_to(elsewhere, target_is_directory=True)
        code, output = _anonymize(runner, tmp_path / "in", "-o", tmp_path / "out")
        assert code == 1 and "leads outside" in output
        assert list(elsewhere.iterdir()) == [] and _outputs(tmp_path / "out") == ["b.jpg", "day1"]

    def test_output_resolving_to_input(self, tmp_path: Path, astro: np.ndarray, runner: CliRunner) -> None:
        """-o as the input folder, via `..` or via a link: exit 2; a hard-linked output name fails (exit 1)."""
        src = tmp_path / "in"
        src.mkdir()
        (src / "a.jpg").write_bytes(plain_jpeg(astro))
        before = tree_hashes(src)
        (tmp_path / "alias").symlink_to(src, target_is_directory=True)
        for out in (src, src / ".." / "in", tmp_path / "alias"):
            assert _anonymize(runner, src, "-o", out)[0] == 2, out
        out = tmp_path / "out"
        out.mkdir()
        os.link(src / "a.jpg", out / "a.jpg")
        code, output = _anonymize(runner, src, "-o", out)
        assert code == 1 and "is an input file" in output
        assert tree_hashes(src) == before and sha256(out / "a.jpg") == before["a.jpg"]


class TestNames:
    def test_hostile_names(self, tmp_path: Path, astro: np.ndarray) -> None:
        """Leading dashes, newlines, ANSI escapes and invalid UTF-8: processed, printed safely, valid JSON report."""
        src, out, report = tmp_path / "in", tmp_path / "out", tmp_path / "report.json"
        src.mkdir()
        names = [b"-o.jpg", b"--output=x.jpg", b"new\nline.jpg", b"\x1b[31mred\x1b[0m.jpg", b"bad\xff\xfename.jpg"]
        for name in names:
            with open(os.path.join(os.fsencode(src), name), "wb") as fh:
                fh.write(plain_jpeg(astro))
        done = blur_cli("anonymize", "-o", out, "--report", report, "-j", "1", "-q", "--", src)
        err = done.stderr
        assert done.returncode == 0, err
        assert sorted(os.listdir(os.fsencode(out))) == sorted(names)
        assert b"\x1b" not in err and b"\xff" not in err
        assert all(line.startswith((b"1", b"2", b"3", b"4", b"5")) for line in err.splitlines()), err
        data = json.loads(report.read_bytes().decode("utf-8", "strict"))
        shown = sorted(Path(f["source"]).name for f in data["files"])
        assert (
            "bad\\xff\\xfename.jpg" in shown
            and "new\nline.jpg" in shown
            and all(f["status"] == "ok" for f in data["files"])
        )


@pytest.fixture
def unprivileged(tmp_path: Path) -> Callable[[], None] | None:
    """How to start a child that file permissions apply to: as root, drop CAP_DAC_OVERRIDE in the child."""
    if os.geteuid() != 0:
        return None
    if not capabilities_droppable(tmp_path / ".probe"):
        pytest.skip("running as root and capabilities cannot be dropped: root ignores file permissions")
    return drop_file_capabilities


class TestPermissions:
    def test_unreadable_input(self, tmp_path: Path, astro: np.ndarray, unprivileged: Callable[[], None] | None) -> None:
        """An input with mode 000 fails with 'Permission denied', named; the other photo is done."""
        src = tmp_path / "in"
        src.mkdir()
        (src / "locked.jpg").write_bytes(plain_jpeg(astro))
        (src / "locked.jpg").chmod(0)
        (src / "open.jpg").write_bytes(plain_jpeg(astro))
        done = blur_cli("anonymize", src, "-o", tmp_path / "out", "-j", "1", "-q", preexec=unprivileged)
        err = done.stderr.decode()
        assert done.returncode == 1
        assert "locked.jpg" in err and "Permission denied" in err
        assert _outputs(tmp_path / "out") == ["open.jpg"]

    def test_unwritable_output(
        self, tmp_path: Path, astro: np.ndarray, unprivileged: Callable[[], None] | None
    ) -> None:
        """An output folder without write permission fails every file with the reason; nothing partial remains."""
        (tmp_path / "a.jpg").write_bytes(plain_jpeg(astro))
        out = tmp_path / "out"
        out.mkdir()
        out.chmod(stat.S_IRUSR | stat.S_IXUSR)
        try:
            done = blur_cli("anonymize", tmp_path / "a.jpg", "-o", out, "-j", "1", "-q", preexec=unprivileged)
        finally:
            out.chmod(0o700)
        err = done.stderr.decode()
        assert done.returncode == 1 and "a.jpg" in err and "Permission denied" in err, err
        assert list(out.iterdir()) == []


class TestDiskFull:
    def _tree(self, src: Path, astro: np.ndarray) -> None:
        src.mkdir()
        (src / "big.png").write_bytes(_png(crowd()[0]))
        (src / "small.jpg").write_bytes(plain_jpeg(astro[::2, ::2].copy()))

    def test_file_size_limit(self, tmp_path: Path, astro: np.ndarray) -> None:
        """RLIMIT_FSIZE below one output's size: that file fails (EFBIG), leaving nothing; the small one is done."""
        src, out = tmp_path / "in", tmp_path / "out"
        self._tree(src, astro)
        done = blur_cli("anonymize", src, "-o", out, "-j", "1", "-q", preexec=limit_file_size(200_000))
        err = done.stderr.decode()
        assert done.returncode == 1, err
        assert "big.png" in err and "File too large" in err
        assert _outputs(out) == ["small.jpg"] and not _partials(out)

    def test_full_tmpfs(self, tmp_path: Path, astro: np.ndarray) -> None:
        """On a 300 kB tmpfs the big output fails with 'No space left', no partial file stays, the small one is done."""
        src, out = tmp_path / "in", tmp_path / "small-disk"
        self._tree(src, astro)
        out.mkdir()
        mount, umount = shutil.which("mount"), shutil.which("umount")
        if mount is None or umount is None or os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root and mount(8)")
        if subprocess.run([mount, "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(out)], capture_output=True).returncode:
            pytest.skip("cannot mount a tmpfs here (needs CAP_SYS_ADMIN)")
        try:
            done = blur_cli("anonymize", src, "-o", out, "-j", "1", "-q")
            err = done.stderr.decode()
            assert done.returncode == 1, err
            assert "big.png" in err and "No space left" in err
            assert _outputs(out) == ["small.jpg"] and not _partials(out)
        finally:
            subprocess.run([umount, str(out)], check=False)


def test_good_photos_beside_hostile_ones_are_anonymized(tmp_path: Path, astro: np.ndarray) -> None:
    """Sanity for the cases above: the good photos they write really are anonymized (face region filled)."""
    (tmp_path / "a.png").write_bytes(_png(astro))
    result = CliRunner().invoke(app, ["anonymize", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "-j", "1", "-q"])
    assert result.exit_code == 0
    assert oval_filled(np.asarray(Image.open(tmp_path / "o" / "a.png").convert("RGB")), ASTRO_FACE)
