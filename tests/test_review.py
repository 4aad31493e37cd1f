"""The review page: outputs only, every mask outlined, attention cards first, checked in a real headless browser."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from blur.cli import app
from blur.jobs import FileResult, Status
from blur.review.page import ReviewOptions, render_review

CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _images(page_html: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', page_html)


def _decode(src: str) -> np.ndarray:
    data = base64.b64decode(src.split(",", 1)[1])
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def _video(path: Path, rgb: np.ndarray, frames: int = 8) -> None:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = rgb.shape[1], rgb.shape[0], "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory: pytest.TempPathFactory, astro: np.ndarray) -> tuple[Path, Path, str]:
    """A batch with a PNG, a JPEG with odd characters in its name, a TIFF, a kept face and a video, plus its page."""
    root = tmp_path_factory.mktemp("review")
    src, out = root / "shoot", root / "public"
    src.mkdir()
    Image.fromarray(astro).save(src / "a.png")
    Image.fromarray(astro).save(src / "odd name #1 & <x>.jpg")
    Image.fromarray(astro).save(src / "c.tif")
    Image.fromarray(astro).save(src / "kept.png")
    (src / "kept.png.blur.json").write_text(json.dumps({"blur_sidecar": 1, "keep": [{"box": [140, 20, 310, 220]}]}))
    _video(src / "v.mp4", astro[:256, 128:384].copy())
    page = root / "pages" / "review.html"
    result = CliRunner().invoke(app, ["anonymize", str(src), "-o", str(out), "-j", "1", "-q", "--html", str(page)])
    assert result.exit_code == 0, result.output
    return out, page, page.read_text(encoding="utf-8")


class TestPage:
    def test_only_outputs_are_shown(self, reviewed: tuple[Path, Path, str], plain_engine) -> None:
        """Linked images resolve into the output folder; embedded ones (TIFF, video frames) show no detectable face."""
        out, page, text = reviewed
        sources = _images(text)
        assert len(sources) == 4 + 3, sources  # four photos; the video's one track: first, middle and last frame
        for src in sources:
            if src.startswith("data:"):
                pixels = np.asarray(Image.fromarray(_decode(src)).resize((512, 512)))
                assert (plain_engine.detector.detect(pixels).score < 0.5).all(), "an embedded picture shows a face"
                continue
            target = (page.parent / unquote(src)).resolve()
            assert target.parent == out.resolve(), target

    def test_cards_counts_and_highlights(self, reviewed: tuple[Path, Path, str]) -> None:
        """Each card says 'faces found: N'; the kept face is flagged first; the video's track frames are outlined."""
        _, _, text = reviewed
        assert text.count('<article class="card') == 5
        assert "faces found: 1" in text and "KEPT VISIBLE" in text
        first = text.index('<article class="card')
        assert 'class="card kept' in text[first : first + 60], "the kept face needs a look first"
        assert "frames: 8, tracks: 1" in text and "<h3>track 0</h3>" in text
        video_card = text[text.index("v.mp4") :]
        video_card = video_card[: video_card.index("</article>")]
        assert video_card.count("<figure>") == 3 and video_card.count('class="m face"') == 3, video_card[-2000:]
        assert "frame 0 (0.00 s)" in video_card and "frame 7 (0.70 s)" in video_card
        assert 'loading="lazy"' in text and "blur review page" in text
        assert "ORIGINAL" not in text

    def test_low_confidence_and_second_pass_highlighted(self, tmp_path: Path, astro: np.ndarray) -> None:
        """A low-score mask is dashed yellow, a second-pass mask orange, and their cards come before plain ones."""
        Image.fromarray(astro).save(tmp_path / "x.png")
        box = [175.0, 54.0, 275.0, 180.0]
        plain = FileResult(
            str(tmp_path / "p.png"),
            Status.ok,
            str(tmp_path / "x.png"),
            "image",
            faces=1,
            detections=({"box": box, "score": 0.9, "second_pass": False},),
        )
        low = FileResult(
            str(tmp_path / "l.png"),
            Status.ok,
            str(tmp_path / "x.png"),
            "image",
            faces=1,
            detections=({"box": box, "score": 0.31, "second_pass": False},),
        )
        second = FileResult(
            str(tmp_path / "s.png"),
            Status.ok,
            str(tmp_path / "x.png"),
            "image",
            faces=2,
            flagged=1,
            detections=(
                {"box": box, "score": 0.9, "second_pass": False},
                {"box": [10.0, 10.0, 50.0, 60.0], "score": 0.7, "second_pass": True},
            ),
        )
        failed = FileResult(str(tmp_path / "f.png"), Status.failed, None, "image", reason="cannot decode")
        text = render_review([plain, low, second, failed], tmp_path / "r.html", ReviewOptions())
        order = [m.group(1) for m in re.finditer(r'<article class="card ?([a-z ]*)"', text)]
        assert order == ["failed", "second", "low", ""]
        assert '<g class="m low">' in text and '<g class="m second">' in text and "0.31" in text

    def test_originals_only_on_request(self, tmp_path: Path, astro: np.ndarray, runner: CliRunner) -> None:
        """--html-with-originals warns on the terminal and marks the page; it is refused without --html."""
        Image.fromarray(astro).save(tmp_path / "a.png")
        page = tmp_path / "r.html"
        args = ["anonymize", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "-j", "1", "-q"]
        result = runner.invoke(app, [*args, "--html", str(page), "--html-with-originals"])
        assert result.exit_code == 0, result.output
        assert "UNMASKED" in result.output
        text = page.read_text()
        assert "CONTAINS ORIGINAL, UNMASKED PHOTOS" in text and "ORIGINAL: unmasked" in text
        assert runner.invoke(app, [*args, "--html-with-originals"]).exit_code == 2


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)")
def test_page_renders_in_headless_chromium(reviewed: tuple[Path, Path, str], tmp_path: Path) -> None:
    """Opened from disk in headless Chromium, every image loads and the screenshot is a real picture."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    _, page_path, _ = reviewed
    moved = tmp_path / "copy"
    shutil.copytree(page_path.parent.parent, moved)  # the page keeps working when the whole tree is moved
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 6000})
            page.goto((moved / "pages" / "review.html").as_uri())
            page.wait_for_load_state("load")
            # The page's CSP forbids eval, which wait_for_function's polling of a string uses once the first
            # check fails (seen under load): poll from here with evaluate instead.
            for _ in range(200):
                if page.evaluate("Array.from(document.images).every(i => i.complete)"):
                    break
                page.wait_for_timeout(100)
            widths = page.evaluate("Array.from(document.images).map(i => i.naturalWidth)")
            shot = page.screenshot(full_page=True)
        finally:
            browser.close()
    assert len(widths) == 7 and all(w > 0 for w in widths), widths
    with Image.open(io.BytesIO(shot)) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[1] == 1400 and pixels.std() > 20, "the screenshot shows content"
