"""Resume after a crash: a journal of verified outputs, cleanup of partial files, one run per output folder."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from blur.batch.journal import Journal, clean_partials, locked, sha256_file
from blur.batch.state import default_state_dir
from blur.batch.workfiles import JOURNAL_NAME
from blur.cli import app
from blur.config import Settings
from blur.jobs import FileResult, Job, Plan, Status
from blur.media.kinds import Kind
from tests.conftest import ASTRO_FACE, oval_filled


def _job(src: Path, out: Path) -> Job:
    return Job(src, out, Plan.process, Kind.image, "PNG")


def _ok(job: Job) -> FileResult:
    return FileResult(
        str(job.source), Status.ok, str(job.output), "image", faces=1, detections=({"box": [1, 2, 3, 4]},)
    )


def _journal(out: Path, settings: Settings | None = None, *, fresh: bool = False) -> Journal:
    return Journal(out, settings or Settings(), out.parent / "state" / JOURNAL_NAME, fresh=fresh)


@pytest.fixture
def pair(tmp_path: Path, astro: np.ndarray) -> tuple[Job, Path]:
    """A source photo, its (already written) output, and the output folder."""
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "state").mkdir()
    Image.fromarray(astro).save(tmp_path / "in" / "a.png")
    Image.fromarray(astro[::-1]).save(tmp_path / "out" / "a.png")
    return _job(tmp_path / "in" / "a.png", tmp_path / "out" / "a.png"), tmp_path / "out"


class TestJournal:
    def test_finished_only_when_everything_matches(self, pair: tuple[Job, Path]) -> None:
        """A recorded output is skipped until its bytes, its source, its sidecar or the settings change."""
        job, out = pair
        _journal(out).record(job, _ok(job))
        resumed = _journal(out).finished(job)
        assert resumed is not None and resumed.faces == 1 and "resumed" in resumed.notes[-1]
        assert _journal(out, replace(Settings(), jpeg_quality=80)).finished(job) is None, "other settings"
        assert _journal(out, fresh=True).finished(job) is None, "--force"
        _journal(out).record(job, _ok(job))
        sidecar = job.source.with_name("a.png.blur.json")
        sidecar.write_text('{"blur_sidecar": 1, "add": []}')
        assert _journal(out).finished(job) is None, "a sidecar appeared"
        sidecar.unlink()
        assert job.output is not None
        with job.output.open("ab") as fh:
            fh.write(b"\0")
        assert _journal(out).finished(job) is None, "the output changed"

    def test_changed_source_and_torn_line(self, pair: tuple[Job, Path]) -> None:
        """A changed source is redone; a half-written last journal line (a kill mid-append) is ignored."""
        job, out = pair
        _journal(out).record(job, _ok(job))
        with (out.parent / "state" / JOURNAL_NAME).open("a") as fh:
            fh.write('{"output": "b.png", "output_sha')
        assert _journal(out).finished(job) is not None
        with job.source.open("ab") as fh:
            fh.write(b"\0")
        assert _journal(out).finished(job) is None

    def test_no_capture_times_recorded(self, pair: tuple[Job, Path]) -> None:
        """The journal holds sizes and hashes, never a source's modification time (usually its capture time)."""
        job, out = pair
        _journal(out).record(job, _ok(job))
        entry = json.loads((out.parent / "state" / JOURNAL_NAME).read_text())
        assert entry["source_sha256"] == sha256_file(job.source)
        assert not [k for k in entry if "time" in k]

    def test_clean_partials_only_removes_blur_temporaries(self, tmp_path: Path) -> None:
        """Temporary outputs of a killed run are removed; a user's own dotfiles are not."""
        (tmp_path / "sub").mkdir()
        ours = [tmp_path / ".a.0123abcd.blur-partial.jpg", tmp_path / "sub" / ".b.deadbeef.blur-partial.mp4"]
        theirs = [tmp_path / ".a.jpg", tmp_path / "a.blur-partial.notes"]
        for path in ours + theirs:
            path.write_bytes(b"x")
        assert sorted(clean_partials(tmp_path)) == sorted(ours)
        assert all(p.exists() for p in theirs)

    def test_second_run_on_same_output_refused(self, tmp_path: Path, astro: np.ndarray, runner: CliRunner) -> None:
        """While one run holds the output folder, another run into it stops with a message (exit 1)."""
        Image.fromarray(astro).save(tmp_path / "a.png")
        with locked(tmp_path / "out"):
            result = runner.invoke(app, ["anonymize", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "-q"])
        assert result.exit_code == 1 and "another blur run" in result.output


def _launch(src: Path, out: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "blur", "anonymize", str(src), "-o", str(out), "-j", "1", "-q", "--no-multiscale"]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)


def _check_invariants(out: Path, face: tuple[int, int, int, int]) -> dict[str, tuple[int, int]]:
    """Every final-named output decodes and is masked; every journal entry matches its file. Returns identities."""
    finals = [p for p in out.iterdir() if not p.name.startswith(".")] if out.exists() else []
    for path in finals:
        with Image.open(path) as image:
            image.load()
            pixels = np.asarray(image.convert("RGB"))
        assert oval_filled(pixels, face), f"{path.name}: face not filled"
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")] if out.exists() else True, (
        "a killed run leaves no working file in the output folder"
    )
    journal = default_state_dir(out) / JOURNAL_NAME
    lines = journal.read_text().splitlines() if journal.exists() else []
    recorded = {}
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        assert sha256_file(out / entry["output"]) == entry["output_sha256"], entry["output"]
        st = os.stat(out / entry["output"])
        recorded[entry["output"]] = (st.st_ino, st.st_mtime_ns)
    return recorded


@pytest.mark.slow
def test_killed_at_random_then_resumed(tmp_path: Path, astro: np.ndarray) -> None:
    """SIGKILL at random moments in a batch of 8, then re-run: it finishes, skips verified outputs, no partials."""
    rng = random.Random(20240605)
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    big = Image.fromarray(astro).resize((1024, 1024))
    for i in range(8):
        big.save(src / f"p{i}.png")
    face = tuple(2 * v for v in ASTRO_FACE)
    kills = []
    recorded: dict[str, tuple[int, int]] = {}
    for _ in range(4):
        proc = _launch(src, out)
        delay = rng.uniform(0.8, 5.0)
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        kills.append(round(delay, 2))
        recorded = _check_invariants(out, face)  # type: ignore[arg-type]
    proc = _launch(src, out)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, (kills, err.decode())
    assert sorted(p.name for p in out.iterdir()) == [f"p{i}.png" for i in range(8)], "no journal, no partial file"
    _check_invariants(out, face)  # type: ignore[arg-type]
    for name, identity in recorded.items():
        st = os.stat(out / name)
        assert (st.st_ino, st.st_mtime_ns) == identity, f"{name} was redone although the journal verified it"
    if recorded:
        assert f"resuming: {len(recorded)} output(s)" in err.decode(), err.decode()
