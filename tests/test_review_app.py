"""The review app over raw HTTP: the guard refuses what it must and writes nothing; apply writes sidecars and
re-renders; the command prints its address and stops on Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from blur.batch.state import default_state_dir
from blur.batch.workfiles import BATCH_RECORD_NAME
from blur.cli import app
from tests.conftest import ASTRO_FACE, sha256, ssim_gray, tree_hashes
from tests.review_server import Running, serving

FACE_KEEP = [140, 20, 310, 220]


@pytest.fixture
def tiny(tmp_path: Path, astro: np.ndarray, runner: CliRunner) -> tuple[Path, Path, Path]:
    """One anonymized 512x512 portrait (single pass): its source, output folder and report."""
    src, out, report = tmp_path / "in", tmp_path / "out", tmp_path / "report.json"
    src.mkdir()
    Image.fromarray(astro).save(src / "a.png")
    result = runner.invoke(
        app, ["anonymize", str(src), "-o", str(out), "-j", "1", "-q", "--no-multiscale", "--report", str(report)]
    )
    assert result.exit_code == 0, result.output
    return src, out, report


def _other_address() -> str | None:
    """A non-loopback IPv4 address of this machine, if it has one (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            address = str(probe.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def _snapshot(src: Path, out: Path) -> dict[str, dict[str, str]]:
    """Every byte the app could change: inputs and sidecars, outputs, the state folder."""
    return {"src": tree_hashes(src), "out": tree_hashes(out), "state": tree_hashes(default_state_dir(out))}


def _file(client: httpx.Client) -> dict[str, object]:
    files = client.get("/api/batch").json()["files"]
    assert len(files) == 1
    detail: dict[str, object] = client.get(f"/api/files/{files[0]['id']}").json()
    return detail


def _keep_edit(detail: dict[str, object]) -> dict[str, object]:
    corrections = detail["corrections"]
    assert isinstance(corrections, dict)
    return {"id": detail["id"], "digest": corrections["digest"], "add": [], "keep": [{"box": FACE_KEEP}]}


def _post(run: Running, client: httpx.Client, body: object, **headers: str) -> httpx.Response:
    base = {"origin": run.base, "content-type": "application/json"}
    return client.post("/api/apply", content=json.dumps(body), headers={**base, **headers})


class TestGuard:
    """Each refusal comes with nothing written: inputs, sidecars, outputs and state are byte-identical."""

    def test_no_token_and_wrong_token(self, tiny: tuple[Path, Path, Path]) -> None:
        src, out, _ = tiny
        before = _snapshot(src, out)
        with serving(out) as run, httpx.Client(base_url=run.base) as bare:
            for path in ("/", "/api/batch", "/static/main.js", "/favicon.ico"):
                assert bare.get(path).status_code == 403, path
            assert bare.post("/api/apply", json={"edits": []}, headers={"origin": run.base}).status_code == 403
            wrong = bare.get("/?token=" + "x" * len(run.token))
            assert wrong.status_code == 403 and "set-cookie" not in wrong.headers
            assert bare.get(f"/api/batch?token={run.token}").status_code == 403, "the token opens only /"
            with httpx.Client(base_url=run.base, cookies={f"blur_review_{run.port}": "nope"}) as forged:
                assert forged.get("/api/batch").status_code == 403
        assert _snapshot(src, out) == before

    def test_first_visit_sets_a_strict_httponly_cookie(self, tiny: tuple[Path, Path, Path]) -> None:
        _, out, _ = tiny
        with serving(out) as run:
            first = httpx.get(run.url)
            assert first.status_code == 303 and first.headers["location"] == "/", "the token leaves the URL"
            cookie = first.headers["set-cookie"]
            assert cookie.startswith(f"blur_review_{run.port}={run.token};")
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
            with run.client() as client:
                page = client.get("/")
            assert page.status_code == 200 and "blur review" in page.text
            csp = page.headers["content-security-policy"]
            assert csp.startswith("default-src 'self'") and "unsafe-inline" not in csp
            assert page.headers["x-content-type-options"] == "nosniff" and page.headers["cache-control"] == "no-store"

    def test_foreign_host_refused(self, tiny: tuple[Path, Path, Path]) -> None:
        """DNS rebinding: a request naming another host (or another port) is refused even with the cookie."""
        src, out, _ = tiny
        before = _snapshot(src, out)
        with serving(out) as run, run.client() as client:
            for host in ("evil.example", f"evil.example:{run.port}", f"127.0.0.1:{run.port + 1}", "[::1]"):
                assert client.get("/api/batch", headers={"host": host}).status_code == 421, host
            detail = _file(client)
            edit = {"edits": [_keep_edit(detail)]}
            assert _post(run, client, edit, host=f"evil.example:{run.port}").status_code == 421
            assert client.get("/api/batch", headers={"host": f"localhost:{run.port}"}).status_code == 200
        assert _snapshot(src, out) == before

    def test_foreign_origin_on_apply_refused(self, tiny: tuple[Path, Path, Path]) -> None:
        """An apply from another origin, with no origin, or not as JSON is refused; nothing is written."""
        src, out, _ = tiny
        before = _snapshot(src, out)
        with serving(out) as run, run.client() as client:
            edit = {"edits": [_keep_edit(_file(client))]}
            for origin in ("http://evil.example", f"http://127.0.0.1:{run.port + 1}", "null"):
                assert _post(run, client, edit, origin=origin).status_code == 403, origin
            bare = {"content-type": "application/json"}
            assert client.post("/api/apply", content=json.dumps(edit), headers=bare).status_code == 403
            assert _post(run, client, edit, **{"content-type": "text/plain"}).status_code == 415
        assert _snapshot(src, out) == before

    def test_traversal_ids_refused(self, tiny: tuple[Path, Path, Path]) -> None:
        """Files are found by opaque id only: paths in place of ids reach nothing."""
        src, out, _ = tiny
        secret = src.parent / "secret.txt"
        secret.write_text("TOP-SECRET")
        before = _snapshot(src, out)
        with serving(out) as run, run.client() as client:
            for path in (
                "/api/files/..%2F..%2Fsecret.txt",
                "/api/files/%2e%2e/picture",
                f"/api/files/{src / 'a.png'}/picture",
                "/api/files/a.png/crop?x=0&y=0&w=9&h=9&out=9",
                "/static/..%2Fapp.py",
                "/static/%2e%2e%2fapp.py",
                "/static/index.html",
            ):
                response = client.get(path)
                assert response.status_code == 404, path
                assert b"TOP-SECRET" not in response.content and b"import" not in response.content
            for bad_id in ("../secret.txt", str(secret), "a.png"):
                edit = {"id": bad_id, "digest": "", "add": [{"box": [0, 0, 5, 5]}], "keep": []}
                response = _post(run, client, {"edits": [edit]})
                assert response.status_code == 400 and "unknown file id" in response.json()["error"]
        assert _snapshot(src, out) == before

    def test_bound_to_loopback_only(self, tiny: tuple[Path, Path, Path]) -> None:
        """The socket listens on 127.0.0.1; the machine's other address (when it has one) gets no answer."""
        _, out, _ = tiny
        with serving(out) as run:
            assert run.address == ("127.0.0.1", run.port)
            other = _other_address()
            if other is not None:
                with (
                    pytest.raises((ConnectionRefusedError, TimeoutError)),
                    socket.create_connection((other, run.port), timeout=2),
                ):
                    pass

    def test_page_has_no_inline_script_or_style(self, tiny: tuple[Path, Path, Path]) -> None:
        """The CSP forbids inline code; the shipped page has none (every script is a module file)."""
        _, out, _ = tiny
        with serving(out) as run, run.client() as client:
            page = client.get("/").text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), "an inline script"
        assert "<style" not in page and not re.search(r"\sstyle=", page) and not re.search(r"\son[a-z]+=", page)


class TestApply:
    def test_apply_writes_sidecar_and_rerenders(self, tiny: tuple[Path, Path, Path], astro: np.ndarray) -> None:
        """Keeping the face over HTTP writes the sidecar, re-renders the output (face visible), updates the report
        and the batch record, and leaves nothing of blur's in the output folder."""
        src, out, report = tiny
        with serving(out) as run, run.client() as client:
            response = _post(run, client, {"edits": [_keep_edit(_file(client))]})
            assert response.status_code == 200, response.text
            outcome = response.json()["outcomes"][0]
            assert outcome["ok"], outcome
        sidecar = json.loads((src / "a.png.blur.json").read_text())
        assert sidecar["keep"] == [{"box": [float(v) for v in FACE_KEEP]}] and sidecar["size"] == [512, 512]
        with Image.open(out / "a.png") as image:
            pixels = np.asarray(image.convert("RGB"))
        x1, y1, x2, y2 = ASTRO_FACE
        assert ssim_gray(pixels[y1:y2, x1:x2], astro[y1:y2, x1:x2]) > 0.99, "the kept face is visible"
        entry = json.loads(report.read_text())["files"][0]
        assert [d["kept"] for d in entry["detections"]] == [True] and entry["faces"] == 0
        record = json.loads((default_state_dir(out) / BATCH_RECORD_NAME).read_text())
        assert [d["kept"] for d in record["files"][0]["detections"]] == [True]
        assert sorted(p.name for p in out.iterdir()) == ["a.png"]

    def test_static_page_follows(self, tmp_path: Path, astro: np.ndarray, runner: CliRunner) -> None:
        """A batch run with --html gets its static page rewritten after an apply: the kept face is shown as kept."""
        src, out, page = tmp_path / "in", tmp_path / "out", tmp_path / "pages" / "review.html"
        src.mkdir()
        Image.fromarray(astro).save(src / "a.png")
        args = ["anonymize", str(src), "-o", str(out), "-j", "1", "-q", "--no-multiscale", "--html", str(page)]
        assert runner.invoke(app, args).exit_code == 0
        assert "KEPT VISIBLE" not in page.read_text()
        with serving(out) as run, run.client() as client:
            response = _post(run, client, {"edits": [_keep_edit(_file(client))]})
            assert response.json()["outcomes"][0]["ok"], response.text
        assert "KEPT VISIBLE" in page.read_text()

    def test_batch_run_again_meanwhile(self, tiny: tuple[Path, Path, Path], runner: CliRunner) -> None:
        """`blur anonymize` ran into the folder again after the app started: apply refuses (409), writes nothing."""
        src, out, _ = tiny
        with serving(out) as run, run.client() as client:
            edit = _keep_edit(_file(client))
            args = ["anonymize", str(src), "-o", str(out), "-j", "1", "-q", "--no-multiscale", "--force"]
            assert runner.invoke(app, args).exit_code == 0
            before = _snapshot(src, out)
            response = _post(run, client, {"edits": [edit]})
        assert response.status_code == 409 and "run again" in response.json()["error"]
        assert _snapshot(src, out) == before

    def test_changed_sidecar_is_not_overwritten(self, tiny: tuple[Path, Path, Path]) -> None:
        """A sidecar edited on disk after the page loaded is left as it is; the user is told; no re-render."""
        src, out, _ = tiny
        with serving(out) as run, run.client() as client:
            edit = _keep_edit(_file(client))
            theirs = '{"blur_sidecar": 1, "add": [{"box": [0, 0, 50, 50]}]}\n'
            (src / "a.png.blur.json").write_text(theirs)
            output_before = sha256(out / "a.png")
            response = _post(run, client, {"edits": [edit]})
            outcome = response.json()["outcomes"][0]
        assert not outcome["ok"] and "changed on disk" in outcome["message"]
        assert (src / "a.png.blur.json").read_text() == theirs
        assert sha256(out / "a.png") == output_before

    @pytest.mark.parametrize(
        ("region", "message"),
        [
            ({"box": [10, 10, 5, 50]}, "x2 > x1"),
            ({"box": [0, 0, 9, 9], "shape": "star"}, "'box' or 'ellipse'"),
            ({"box": [0, 0, 9, 9], "path": "/etc/passwd"}, "unknown key"),
        ],
    )
    def test_invalid_regions_refused(
        self, tiny: tuple[Path, Path, Path], region: dict[str, object], message: str
    ) -> None:
        """Regions are validated as `blur anonymize` validates sidecars; nothing is written for a bad one."""
        src, out, _ = tiny
        before = _snapshot(src, out)
        with serving(out) as run, run.client() as client:
            detail = _file(client)
            edit = {**_keep_edit(detail), "keep": [], "add": [region]}
            response = _post(run, client, {"edits": [edit]})
        assert response.status_code == 400 and message in response.json()["error"]
        assert _snapshot(src, out) == before


class TestCommand:
    def test_prints_url_serves_and_stops_on_ctrl_c(self, tiny: tuple[Path, Path, Path]) -> None:
        """`blur review OUT --no-browser` prints http://127.0.0.1:PORT/?token=..., serves it, exits 0 on SIGINT."""
        _, out, _ = tiny
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        argv = [sys.executable, "-m", "blur", "review", str(out), "--no-browser"]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().strip()
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\?token=[A-Za-z0-9_-]{40,}", url), url
            assert httpx.get(url).status_code == 303
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=20)
            assert proc.returncode == 0 and "stopped" in err, err
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()

    def test_unknown_output_folder(self, tmp_path: Path, runner: CliRunner) -> None:
        """No batch recorded for the folder: a clear message and exit 1; a missing folder is a usage error."""
        (tmp_path / "out").mkdir()
        result = runner.invoke(app, ["review", str(tmp_path / "out"), "--no-browser"])
        assert result.exit_code == 1 and "blur anonymize" in result.output
        assert runner.invoke(app, ["review", str(tmp_path / "missing"), "--no-browser"]).exit_code == 2
