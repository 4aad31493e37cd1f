"""Working files live in a private state folder outside the output tree: the output folder is always publishable."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from blur.batch.state import StateError, default_state_dir, open_state, output_key, user_state_home
from blur.batch.workfiles import BATCH_RECORD_NAME, JOURNAL_NAME
from blur.cli import app


def _inputs(folder: Path, astro: np.ndarray, *, broken: bool = True) -> Path:
    folder.mkdir()
    Image.fromarray(astro).save(folder / "a.png")
    if broken:
        (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder


class TestLocation:
    def test_platform_directories(self, tmp_path: Path) -> None:
        """XDG_STATE_HOME when absolute, ~/.local/state otherwise, ~/Library/Application Support on macOS."""
        home = str(tmp_path)
        assert user_state_home({"HOME": home, "XDG_STATE_HOME": "/x/state"}, "linux") == Path("/x/state")
        assert user_state_home({"HOME": home, "XDG_STATE_HOME": "relative"}, "linux") == tmp_path / ".local" / "state"
        assert user_state_home({"HOME": home}, "linux") == tmp_path / ".local" / "state"
        assert user_state_home({"HOME": home, "XDG_STATE_HOME": "/x"}, "darwin") == (
            tmp_path / "Library" / "Application Support"
        )

    def test_keyed_by_resolved_output_and_private(self, tmp_path: Path, private_state: Path) -> None:
        """The folder is blur/<16 hex of SHA-256 of the resolved output path>, created 0700 with its parent."""
        (tmp_path / "out").mkdir()
        (tmp_path / "alias").symlink_to(tmp_path / "out")
        state = open_state(tmp_path / "alias")
        assert state.path == private_state / "blur" / output_key(tmp_path / "out")
        assert len(output_key(tmp_path / "out")) == 16 and default_state_dir(tmp_path / "out") == state.path
        for folder in (state.path, state.path.parent, state.scratch, state.tracks):
            assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700, folder

    def test_refuses_links_and_the_output_tree(self, tmp_path: Path) -> None:
        """--state inside the output folder, or a link in its place, is refused."""
        (tmp_path / "out").mkdir()
        with pytest.raises(StateError, match="inside the output folder"):
            open_state(tmp_path / "out", tmp_path / "out" / "state")
        (tmp_path / "elsewhere").mkdir()
        (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
        with pytest.raises(StateError, match="link"):
            open_state(tmp_path / "out", tmp_path / "link")
        loose = tmp_path / "loose"
        loose.mkdir(mode=0o755)
        open_state(tmp_path / "out", loose)
        assert stat.S_IMODE(os.stat(loose).st_mode) == 0o700, "an existing state folder is made private"


class TestPublishable:
    def test_failed_run_leaves_nothing_of_blur_in_the_output(
        self, tmp_path: Path, runner: CliRunner, astro: np.ndarray
    ) -> None:
        """A batch with a failure keeps its journal and batch record in the state folder, none in the output."""
        src = _inputs(tmp_path / "in", astro)
        out = tmp_path / "out"
        result = runner.invoke(app, ["anonymize", str(src), "-o", str(out), "-j", "1", "-q"])
        assert result.exit_code == 1, result.output
        assert sorted(p.name for p in out.rglob("*")) == ["a.png"]
        state = default_state_dir(out)
        assert (state / JOURNAL_NAME).is_file() and (state / BATCH_RECORD_NAME).is_file()
        record = json.loads((state / BATCH_RECORD_NAME).read_text())
        assert {Path(f["source"]).name: f["status"] for f in record["files"]} == {"a.png": "ok", "broken.jpg": "failed"}
        assert stat.S_IMODE(os.stat(state / BATCH_RECORD_NAME).st_mode) == 0o600

    def test_explicit_state_folder_and_temporary_files(
        self, tmp_path: Path, runner: CliRunner, astro: np.ndarray
    ) -> None:
        """--state DIR holds the working files; leftovers of a killed run there and in the output are removed."""
        src = _inputs(tmp_path / "in", astro, broken=False)
        out, state = tmp_path / "out", tmp_path / "state"
        (state / "scratch").mkdir(parents=True)
        (state / "scratch" / ".a.0123abcd.blur-partial.png").write_bytes(b"half")
        out.mkdir()
        (out / ".a.89abcdef.blur-partial.png").write_bytes(b"half")
        (out / JOURNAL_NAME).write_text("{}\n")  # an older blur's journal
        result = runner.invoke(app, ["anonymize", str(src), "-o", str(out), "-j", "1", "-q", "--state", str(state)])
        assert result.exit_code == 0, result.output
        assert sorted(p.name for p in out.iterdir()) == ["a.png"]
        assert not list((state / "scratch").iterdir())
        assert (state / BATCH_RECORD_NAME).is_file() and not (state / JOURNAL_NAME).exists()
        assert not default_state_dir(out).exists(), "the default location is not used when --state is given"
        assert "older blur" in result.output

    @pytest.mark.parametrize("option", ["--report", "--html", "--state"])
    def test_working_files_inside_output_refused(
        self, tmp_path: Path, runner: CliRunner, astro: np.ndarray, option: str
    ) -> None:
        """A report, review page or state folder asked for inside the output folder is a usage error (exit 2)."""
        src = _inputs(tmp_path / "in", astro, broken=False)
        out = tmp_path / "out"
        target = out / ("r.json" if option == "--report" else "r.html" if option == "--html" else "state")
        result = runner.invoke(app, ["anonymize", str(src), "-o", str(out), "-q", option, str(target)])
        assert result.exit_code == 2 and "inside the output folder" in result.output
        assert not out.exists() or not list(out.iterdir())

    def test_state_inside_input_is_not_walked(self, tmp_path: Path, runner: CliRunner, astro: np.ndarray) -> None:
        """A state folder placed inside an input folder is never read as input."""
        src = _inputs(tmp_path / "in", astro, broken=False)
        state = src / "state"
        result = runner.invoke(
            app, ["anonymize", str(src), "-o", str(tmp_path / "out"), "-j", "1", "-q", "--state", str(state)]
        )
        assert result.exit_code == 0, result.output
        assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == ["a.png"]
