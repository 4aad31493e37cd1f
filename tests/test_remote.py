"""Object storage: `s3://` inputs and outputs through moto's S3 server on 127.0.0.1. Faces hidden, metadata
gone, originals untouched, an interrupted run resumed, nothing left in the bucket for a failed file,
and the batch rules (mirror, no overwrite, output inside input) on URLs. Credentials and the endpoint
come from the environment, as from any S3 configuration; none is ever on the command line."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from blur.cli import app
from blur.sample import jpeg_with_metadata
from blur.types import Frame
from tests.conftest import ASTRO_FACE, ssim_gray
from tests.test_photos_cli import PLANTED
from tests.test_video import Spec, write_clip

s3fs = pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A moto S3 server on 127.0.0.1, reached through the standard AWS environment variables only."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    state = tmp_path_factory.mktemp("state")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": f"http://{host}:{port}",
            "NO_PROXY": "127.0.0.1",
            "XDG_STATE_HOME": str(state),  # where the journal of a remote output is kept
        }.items():
            mp.setenv(key, value)
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            mp.delenv(key, raising=False)
        s3fs.S3FileSystem.clear_instance_cache()
        fs = s3fs.S3FileSystem(skip_instance_cache=True)
        yield fs
        s3fs.S3FileSystem.clear_instance_cache()
    server.stop()


def _bucket(fs: Any, name: str) -> str:
    fs.mkdir(name)
    return name


def _png(rgb: Frame) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


def _read(fs: Any, key: str) -> np.ndarray:
    with Image.open(io.BytesIO(fs.cat_file(key))) as image:
        return np.asarray(image.convert("RGB"))


def _keys(fs: Any, bucket: str) -> list[str]:
    fs.invalidate_cache()
    return sorted(k.split("/", 1)[1] for k in fs.find(bucket))


def _anonymize(runner: CliRunner, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["anonymize", *args, "-q", "-j", "1"])
    return result.exit_code, result.output


class TestS3ToS3:
    def test_faces_hidden_metadata_gone_originals_untouched(
        self, s3: Any, tmp_path: Path, astro: Frame, runner: CliRunner
    ) -> None:
        """s3://in → s3://out: the tree mirrored, faces hidden, no planted metadata in the bytes, the
        originals byte-identical, nothing written for the broken file, no working file in the bucket."""
        src, dst = _bucket(s3, "shoot-in"), _bucket(s3, "shoot-out")
        originals = {
            "day1/astro.png": _png(astro),
            "day1/sub/camera.jpg": jpeg_with_metadata(astro),
            "day1/broken.jpg": b"\xff\xd8\xff\xe0" + b"\0" * 100,
            "day1/notes.txt": b"not a photo",
        }
        for key, data in originals.items():
            s3.pipe(f"{src}/{key}", data)
        write_clip(tmp_path / "clip.mp4", astro, Spec(frames=12))
        s3.put_file(str(tmp_path / "clip.mp4"), f"{src}/day1/clip.mp4")
        originals["day1/clip.mp4"] = (tmp_path / "clip.mp4").read_bytes()
        report = tmp_path / "r.json"
        code, out = _anonymize(runner, f"s3://{src}/day1", "-o", f"s3://{dst}/anon", "--report", str(report))
        assert code == 1, out
        assert "s3://shoot-in/day1/broken.jpg" in out
        assert _keys(s3, dst) == ["anon/astro.png", "anon/clip.mp4", "anon/sub/camera.jpg"]
        x1, y1, x2, y2 = ASTRO_FACE
        for key in ("anon/astro.png", "anon/sub/camera.jpg"):
            pixels = _read(s3, f"{dst}/{key}")
            assert ssim_gray(pixels[y1:y2, x1:x2], astro[y1:y2, x1:x2]) < 0.6, key
        raw = s3.cat_file(f"{dst}/anon/sub/camera.jpg")
        assert not [m for m in PLANTED if m in raw]
        for key, data in originals.items():
            assert s3.cat_file(f"{src}/{key}") == data, f"original {key} changed"
        files = {f["source"]: f for f in json.loads(report.read_text())["files"]}
        assert files["s3://shoot-in/day1/astro.png"]["output"] == "s3://shoot-out/anon/astro.png"
        assert files["s3://shoot-in/day1/broken.jpg"]["status"] == "failed"
        assert files["s3://shoot-in/day1/notes.txt"]["status"] == "skipped"


class TestResume:
    def test_interrupted_run_resumes(self, s3: Any, tmp_path: Path, astro: Frame, runner: CliRunner) -> None:
        """A run killed after its first upload: the next run keeps the outputs already uploaded (verified
        by size and ETag against the local journal), does the rest, and leaves no journal behind."""
        src, dst = _bucket(s3, "resume-in"), _bucket(s3, "resume-out")
        for i in range(4):
            s3.pipe(f"{src}/p{i}.png", _png(np.roll(astro, 60 * i, axis=1)))
        argv = [sys.executable, "-m", "blur", "anonymize", f"s3://{src}", "-o", f"s3://{dst}", "-j", "1", "-q"]
        from blur.batch.remote import remote_state

        journal = remote_state(f"s3://{dst}").journal
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 120
        try:  # killed once the first upload is in the journal
            while not (journal.exists() and journal.read_bytes().count(b"\n")):
                assert time.monotonic() < deadline and proc.poll() is None, "the first run ended too soon"
                time.sleep(0.05)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        first = _keys(s3, dst)
        assert 1 <= len(first) < 4, f"the run was not interrupted mid-batch: {first}"
        report = tmp_path / "r.json"
        code, out = _anonymize(runner, f"s3://{src}", "-o", f"s3://{dst}", "--report", str(report))
        assert code == 0, out
        assert "resuming:" in out
        assert _keys(s3, dst) == [f"p{i}.png" for i in range(4)]
        resumed = [f for f in json.loads(report.read_text())["files"] if any("resumed" in n for n in f["notes"])]
        assert {f["output"] for f in resumed} >= {f"s3://{dst}/{k}" for k in first}
        assert not journal.exists(), "the journal must go once every file is done"


class TestFailures:
    def test_failed_files_leave_no_object(
        self, s3: Any, tmp_path: Path, astro: Frame, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A photo that fails to decode, a truncated video and an upload that fails: no object for any of them."""
        src, dst = _bucket(s3, "fail-in"), _bucket(s3, "fail-out")
        s3.pipe(f"{src}/good.png", _png(astro))
        s3.pipe(f"{src}/torn.png", _png(astro)[:3000])
        write_clip(tmp_path / "clip.mp4", astro, Spec(frames=24))
        s3.pipe(f"{src}/cut.mp4", (tmp_path / "clip.mp4").read_bytes()[:-20000])
        code, out = _anonymize(runner, f"s3://{src}", "-o", f"s3://{dst}")
        assert code == 1, out
        assert _keys(s3, dst) == ["good.png"]

        from fsspec.core import url_to_fs

        used, _ = url_to_fs(f"s3://{dst}")  # the filesystem instance blur's own calls get
        real = used.put_file

        def refused(lpath: str, rpath: str, *args: Any, **kwargs: Any) -> Any:
            if rpath.endswith("good.png"):
                raise PermissionError(13, "Access Denied")
            return real(lpath, rpath, *args, **kwargs)

        monkeypatch.setattr(used, "put_file", refused)
        code, out = _anonymize(runner, f"s3://{src}/good.png", "-o", f"s3://{dst}/again")
        assert code == 1 and "cannot upload" in out
        assert _keys(s3, dst) == ["good.png"]


class TestRules:
    def test_batch_rules_hold_on_urls(self, s3: Any, tmp_path: Path, astro: Frame, runner: CliRunner) -> None:
        """Same folder in and out, input inside output, an output that would replace its input, and
        credentials in a URL are refused; an output inside the input is never read back as input."""
        bucket = _bucket(s3, "rules")
        s3.pipe(f"{bucket}/shoot/a.png", _png(astro))
        assert _anonymize(runner, f"s3://{bucket}/shoot", "-o", f"s3://{bucket}/shoot")[0] == 2
        assert _anonymize(runner, f"s3://{bucket}/shoot", "-o", f"s3://{bucket}")[0] == 2
        code, out = _anonymize(runner, "s3://AKIAKEY:hunter2@rules/shoot", "-o", f"s3://{bucket}/x")
        assert code == 2 and "credentials" in out and "hunter2" not in out
        code, out = _anonymize(runner, f"s3://{bucket}/shoot/a.png", "-o", f"s3://{bucket}/shoot")
        assert code == 1 and "is an input file" in out
        assert s3.cat_file(f"{bucket}/shoot/a.png") == _png(astro)
        report = tmp_path / "r.json"
        for _ in range(2):
            code, out = _anonymize(
                runner, f"s3://{bucket}/shoot", "-o", f"s3://{bucket}/shoot/anon", "--report", str(report)
            )
            assert code == 0, out
            assert [f["source"] for f in json.loads(report.read_text())["files"]] == [f"s3://{bucket}/shoot/a.png"]
        assert _keys(s3, bucket) == ["shoot/a.png", "shoot/anon/a.png"]

    def test_unsafe_key_never_leaves_a_local_output_folder(
        self, s3: Any, tmp_path: Path, astro: Frame, runner: CliRunner
    ) -> None:
        """An object named `shoot/../../evil.png` is failed, not mirrored outside the local output folder."""
        bucket = _bucket(s3, "unsafe")
        s3.pipe(f"{bucket}/shoot/ok.png", _png(astro))
        s3.pipe(f"{bucket}/shoot/../../evil.png", _png(astro))
        listed = _keys(s3, bucket)
        if not any(".." in k for k in listed):
            pytest.skip(f"this S3 normalised the key: {listed}")
        out = tmp_path / "deep" / "out"
        code, text = _anonymize(runner, f"s3://{bucket}/shoot", "-o", str(out))
        assert code == 1 and "cannot be mirrored safely" in text
        assert sorted(p.name for p in tmp_path.rglob("*.png")) == ["ok.png"]

    def test_local_to_s3_and_back(self, s3: Any, tmp_path: Path, astro: Frame, runner: CliRunner) -> None:
        """A local folder uploaded as anonymized copies, and a bucket prefix downloaded as them."""
        bucket = _bucket(s3, "mixed")
        (tmp_path / "in" / "sub").mkdir(parents=True)
        Image.fromarray(astro).save(tmp_path / "in" / "sub" / "a.png")
        assert _anonymize(runner, str(tmp_path / "in"), "-o", f"s3://{bucket}/up")[0] == 0
        assert _keys(s3, bucket) == ["up/sub/a.png"]
        assert _anonymize(runner, f"s3://{bucket}/up", "-o", str(tmp_path / "down"))[0] == 0
        assert (tmp_path / "down" / "sub" / "a.png").is_file()
        x1, y1, x2, y2 = ASTRO_FACE
        pixels = np.asarray(Image.open(tmp_path / "down" / "sub" / "a.png").convert("RGB"))
        assert ssim_gray(pixels[y1:y2, x1:x2], astro[y1:y2, x1:x2]) < 0.6


class TestClusterOnS3:
    def test_split_video_and_photo_on_a_local_cluster(
        self, s3: Any, tmp_path: Path, astro: Frame, runner: CliRunner
    ) -> None:
        """`--cluster local` on s3:// in and out: workers download their own inputs, a long video is split
        across them and joined here, and the outputs appear in the bucket whole, with faces hidden."""
        from tests.test_segments import write_crossing
        from tests.test_video import decode, hidden

        src, dst = _bucket(s3, "cluster-in"), _bucket(s3, "cluster-out")
        frames, boxes = write_crossing(tmp_path / "long.mp4", astro)
        s3.put_file(str(tmp_path / "long.mp4"), f"{src}/long.mp4")
        s3.pipe(f"{src}/a.png", _png(astro))
        report = tmp_path / "r.json"
        args = ["--cluster", "local", "--split-after", "2", "--segment-seconds", "1", "--report", str(report)]
        result = runner.invoke(app, ["anonymize", f"s3://{src}", "-o", f"s3://{dst}", "-q", "-j", "2", *args])
        assert result.exit_code == 0, result.output
        assert _keys(s3, dst) == ["a.png", "long.mp4"]
        files = {f["source"]: f for f in json.loads(report.read_text())["files"]}
        assert files[f"s3://{src}/long.mp4"]["segments"]["segments"] == 5
        s3.get_file(f"{dst}/long.mp4", str(tmp_path / "out.mp4"))
        out = decode(tmp_path / "out.mp4")
        assert len(out.frames) == len(frames)
        for i, (clean, masked) in enumerate(zip(frames, out.frames, strict=True)):
            assert all(hidden(masked, clean, box) for box in boxes[i]), f"frame {i}"
