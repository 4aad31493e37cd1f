"""`--cluster`: a real Dask `LocalCluster` of worker processes gives the local pool's outputs, report and
exit code; a worker killed mid-file leaves no partial or duplicate output; a worker with another blur
or model is refused; without `--cluster` Dask is not even imported."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from rich.console import Console
from typer.testing import CliRunner

from blur.cli import app
from blur.sample import jpeg_with_metadata
from blur.types import Frame
from tests.test_segments import psnr, write_crossing
from tests.test_video import Spec, decode, hidden, write_clip

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """A LocalCluster of two single-threaded worker processes on 127.0.0.1, shared by this module."""
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    )
    try:
        yield str(cluster.scheduler_address)
    finally:
        cluster.close()


def _mixed(folder: Path, astro: Frame) -> dict[str, Any]:
    """Photos (one with planted metadata), a short video, a video long enough to split, a broken JPEG, a text file."""
    folder.mkdir()
    Image.fromarray(astro).save(folder / "astro.png")
    (folder / "sub").mkdir()
    (folder / "sub" / "camera.jpg").write_bytes(jpeg_with_metadata(astro))
    write_clip(folder / "short.mp4", astro, Spec(frames=20))
    frames, boxes = write_crossing(folder / "long.mp4", astro)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 200)
    (folder / "notes.txt").write_text("not a photo")
    return {"frames": frames, "boxes": boxes}


def _normalised(report: Path, root: Path) -> list[dict[str, Any]]:
    """A report's files without what may differ between two runs: times, and which worker ran a segment."""
    files = json.loads(report.read_text())["files"]
    for entry in files:
        entry.pop("seconds")
        if "segments" in entry:
            entry["segments"] = {k: v for k, v in entry["segments"].items() if k in ("segments", "overlap_frames")}
        entry["notes"] = [re.sub(r"run on \d+ worker\(s\)", "run on N worker(s)", n) for n in entry["notes"]]
        for key in ("source", "output"):
            entry[key] = entry[key] and entry[key].replace(str(root), "ROOT")
        # Pillow names the file descriptor it read from, a number that differs from process to process.
        entry["reason"] = re.sub(r"name=\d+", "name=N", entry["reason"].replace(str(root), "ROOT"))
    return files


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


class TestLocalCluster:
    def test_same_outputs_report_and_exit_code_as_the_local_pool(
        self, tmp_path: Path, astro: Frame, runner: CliRunner, no_partials: list[Path]
    ) -> None:
        """`--cluster local` with 2 worker processes: the same output files (photos pixel for pixel, videos
        frame for frame within x264's run-to-run noise), the same report and exit 1 for the broken file."""
        truth = _mixed(tmp_path / "in", astro)
        common = ["--split-after", "2", "--segment-seconds", "1", "-j", "2", "-q"]
        runs = {}
        for name, extra in (("pool", []), ("cluster", ["--cluster", "local"])):
            out = tmp_path / name
            no_partials.append(out)
            args = ["anonymize", str(tmp_path / "in"), "-o", str(out), "--report", str(tmp_path / f"{name}.json")]
            runs[name] = runner.invoke(app, [*args, *common, *extra])
        assert runs["pool"].exit_code == runs["cluster"].exit_code == 1, runs["cluster"].output
        assert "broken.jpg" in runs["cluster"].output
        pool, cluster = tmp_path / "pool", tmp_path / "cluster"
        names = sorted(str(p.relative_to(cluster)) for p in cluster.rglob("*") if p.is_file())
        assert names == sorted(str(p.relative_to(pool)) for p in pool.rglob("*") if p.is_file())
        assert [n for n in names if not n.startswith(".")] == ["astro.png", "long.mp4", "short.mp4", "sub/camera.jpg"]
        for photo in ("astro.png", "sub/camera.jpg"):
            assert np.array_equal(_pixels(pool / photo), _pixels(cluster / photo)), photo
        for video in ("short.mp4", "long.mp4"):
            a, b = decode(pool / video), decode(cluster / video)
            assert a.pts == b.pts and a.audio == b.audio
            assert min(psnr(x, y) for x, y in zip(a.frames, b.frames, strict=True)) > 40.0, video
        out = decode(cluster / "long.mp4")
        for i, (clean, masked) in enumerate(zip(truth["frames"], out.frames, strict=True)):
            assert all(hidden(masked, clean, box) for box in truth["boxes"][i]), f"frame {i}"
        assert _normalised(tmp_path / "pool.json", tmp_path / "pool") == _normalised(
            tmp_path / "cluster.json", tmp_path / "cluster"
        )
        report = json.loads((tmp_path / "cluster.json").read_text())
        assert report["cluster"] == "local"
        split = next(f for f in report["files"] if f["source"].endswith("long.mp4"))
        assert split["segments"]["segments"] == 5 and set(split["segments"]["seconds"]) >= {"detect", "encode", "join"}

    def test_local_cluster_listens_on_this_machine_only(self, tmp_path: Path, astro: Frame) -> None:
        """A `LocalCluster` started by blur binds its scheduler to 127.0.0.1, never to a public address."""
        from blur.batch.cluster import DaskExecutor
        from blur.batch.discover import discover
        from blur.batch.pool import BatchOptions
        from blur.config import Settings

        Image.fromarray(astro).save(tmp_path / "a.png")
        with DaskExecutor("local", Settings(), BatchOptions(jobs=1)) as executor:
            assert executor.scheduler.startswith("tcp://127.0.0.1:")
            results = executor.run(discover([tmp_path / "a.png"], tmp_path / "out"))
        assert [r.status.value for r in results] == ["ok"]


def _worker_pids(address: str) -> dict[str, int]:
    with distributed.Client(address, timeout=30) as client:
        return {k: int(v) for k, v in client.run(os.getpid).items()}


def _holder(pids: dict[str, int]) -> int | None:
    """The worker process that has a temporary video output open (beside the output, or in the scratch
    folder of the output's state folder), if any."""
    for pid in pids.values():
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if "blur-partial" in target and target.endswith(".mp4"):
                    return pid
        except OSError:
            continue
    return None


class TestWorkerLoss:
    def test_worker_killed_mid_file(self, tmp_path: Path, astro: Frame, scheduler: str) -> None:
        """A worker killed while it writes a video: the task runs again on a worker, the batch ends with
        every file done once, and no temporary or partial file is left."""
        from blur.cli.anonymize import RunOptions, run_anonymize
        from blur.config import Settings

        src = tmp_path / "in"
        src.mkdir()
        write_clip(src / "walk.mp4", astro, Spec(frames=150, size=(640, 360)))
        for i in range(3):
            Image.fromarray(np.roll(astro, 40 * i, axis=1)).save(src / f"p{i}.png")
        out = tmp_path / "out"
        pids = _worker_pids(scheduler)
        codes: list[int] = []
        state = tmp_path / "state"
        run = RunOptions(cluster=scheduler, state_dir=state)
        with open(os.devnull, "w") as devnull:
            console = Console(file=devnull, force_terminal=False)
            worker = threading.Thread(
                target=lambda: codes.append(
                    run_anonymize(
                        [src], out, Settings(), report=tmp_path / "r.json", quiet=True, console=console, run=run
                    )
                )
            )
            worker.start()
            killed = None
            deadline = time.monotonic() + 120
            while killed is None and worker.is_alive() and time.monotonic() < deadline:
                killed = _holder(pids)
                if killed is None:
                    time.sleep(0.02)
            if killed is not None:
                os.kill(killed, signal.SIGKILL)
            worker.join(timeout=300)
        assert killed is not None, "the video finished before a worker could be killed mid-file"
        assert codes == [0]
        assert killed not in _worker_pids(scheduler).values()
        files = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
        assert files == ["p0.png", "p1.png", "p2.png", "walk.mp4"]
        report = json.loads((tmp_path / "r.json").read_text())
        assert sorted(Path(f["source"]).name for f in report["files"]) == ["p0.png", "p1.png", "p2.png", "walk.mp4"]
        assert len(decode(out / "walk.mp4").frames) == 150
        assert not list((state / "scratch").iterdir()), "the killed attempt's temporary file must be swept"


class TestVersions:
    def test_worker_with_another_blur_is_refused(
        self, tmp_path: Path, astro: Frame, runner: CliRunner, scheduler: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A client whose blur version differs from the workers' stops before any file is read: exit 1,
        a message naming both versions, nothing written."""
        import blur.batch.cluster_workers as workers

        monkeypatch.setattr(workers, "__version__", "9.9.9-client")
        Image.fromarray(astro).save(tmp_path / "a.png")
        result = runner.invoke(
            app, ["anonymize", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--cluster", scheduler, "-q"]
        )
        assert result.exit_code == 1
        assert "runs blur" in result.output and "9.9.9-client" in result.output
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())

    def test_worker_refuses_tasks_without_a_checked_engine(self, scheduler: str) -> None:
        """A task that reaches a worker whose blur plugin did not set up refuses to run, with the reason."""
        from blur.batch.cluster_workers import PLUGIN_NAME, BlurPlugin, ClusterError, Fingerprint, on_worker
        from blur.config import Settings

        wrong = Fingerprint("0.0.0-other", "centerface", "0" * 64)
        with distributed.Client(scheduler, timeout=30) as client:
            with pytest.raises(ClusterError, match="install the same blur"):
                client.register_plugin(BlurPlugin(Settings(), wrong, 1), name=PLUGIN_NAME)
            future = client.submit(on_worker, len, pure=False)
            with pytest.raises(ClusterError, match=r"0\.0\.0-other"):
                future.result()
            client.unregister_worker_plugin(PLUGIN_NAME)


def test_dask_not_imported_without_cluster(tmp_path: Path, astro: Frame) -> None:
    """Without --cluster a run never imports Dask (nor fsspec): the local pool is what runs."""
    Image.fromarray(astro).save(tmp_path / "a.png")
    code = (
        "import sys\n"
        "from blur.cli import app\n"
        "try:\n"
        f"    app(['anonymize', {str(tmp_path / 'a.png')!r}, '-o', {str(tmp_path / 'out')!r}, '-q', '-j', '1'])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "print(sorted(m for m in ('distributed', 'dask', 'fsspec', 's3fs') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "out" / "a.png").is_file()


def test_output_a_client_cannot_see_fails_the_file(tmp_path: Path) -> None:
    """A worker that wrote a local output the client cannot see (no shared folder) fails that file."""
    from blur.batch.cluster import _visible
    from blur.jobs import FileResult, Job, Plan, Status
    from blur.media.kinds import Kind

    job = Job(tmp_path / "in.png", tmp_path / "out" / "in.png", Plan.process, Kind.image, "PNG")
    ok = FileResult(str(job.source), Status.ok, str(job.output), "image")
    seen = _visible(ok, job)
    assert seen.status is Status.failed and seen.output is None and "shared folder" in seen.reason
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "in.png").write_bytes(b"x")
    assert _visible(ok, job) == ok
