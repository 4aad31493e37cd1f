"""The review page in headless Chromium, driven through its automation hooks, checked on the pixels written.

Photo: on the sample batch, click a detected mask (keep), drag a region onto the background (add), apply:
the kept face matches the original, the added region is masked, the sidecar holds both, and a later plain
`blur anonymize` with that sidecar writes the same pixels. Video: keep the track, add a region for a time
range, apply: frames inside and outside the range. A 45 MP picture zooms to 4x without the page ever
requesting the full image.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from blur.cli import app
from blur.media.image import read_photo
from blur.review.images import MAX_CROP_PIXELS, PREVIEW_SIDE
from blur.sample import crowd, make_sample
from tests.conftest import ASTRO_FACE, ssim_gray
from tests.review_server import BROWSER_ARGS, CHROMIUM, needs_chromium, serving

pytestmark = needs_chromium

BACKGROUND = (20, 380, 120, 480)
"""The suit in the 512x512 portrait: no face, so a region added there must come out filled."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium (never a downloaded browser)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _anonymize(runner: CliRunner, *args: str) -> None:
    result = runner.invoke(app, ["anonymize", *args, "-j", "1", "-q"])
    assert result.exit_code == 0, result.output


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _open(browser: Any, url: str, source: str, width: int = 1280, height: int = 900) -> Any:
    """A page on the app with `source` (as in the report) shown; every failed request or script error fails."""
    page = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # A picture superseded before it arrived (stepping through frames) is aborted by the browser: not an error.
    page.on(
        "requestfailed",
        lambda r: None if r.failure == "net::ERR_ABORTED" else errors.append(f"{r.url}: {r.failure}"),
    )
    page.errors = errors
    page.goto(url)
    page.wait_for_selector("body[data-state=ready]")
    page.locator("#file-list li", has_text=source).locator("button").click()
    page.wait_for_selector(f'#stage[data-file="{source}"]')
    return page


def _drag(page: Any, box: tuple[float, float, float, float], width: int) -> None:
    """With the add tool, drag from one corner of `box` (picture pixels) to the other."""
    left, top, shown = page.eval_on_selector(
        "#overlay", "e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.width]; }"
    )
    scale = shown / width
    page.keyboard.press("a")
    assert page.get_attribute('[data-tool="add"]', "aria-pressed") == "true"
    page.mouse.move(left + box[0] * scale, top + box[1] * scale)
    page.mouse.down()
    page.mouse.move(left + box[2] * scale, top + box[3] * scale, steps=6)
    page.mouse.up()
    page.keyboard.press("Escape")


def _apply(page: Any) -> None:
    page.click('[data-action="apply"]')
    page.wait_for_selector("body[data-state=applied], body[data-state=error]", timeout=120_000)
    assert page.get_attribute("body", "data-state") == "applied", page.inner_text("#message")
    assert not page.errors, page.errors


def _kinds(page: Any) -> list[str]:
    kinds: list[str] = page.eval_on_selector_all("[data-region]", "els => els.map(e => e.dataset.kind)")
    return kinds


CROWD_BACKGROUND = (60, 760, 260, 960)
"""Plain background below the sample crowd's portraits."""


def test_keep_and_add_on_a_photo(browser: Any, tmp_path: Path, runner: CliRunner) -> None:
    """On the sample's crowd picture, keep the largest face and add a box on the background, apply: that face
    matches the original, every other face is still masked, the box is filled, the sidecar holds both, the
    report is updated, and a later plain `blur anonymize` with that sidecar writes the same pixels."""
    make_sample(tmp_path / "sample")
    out, report = tmp_path / "out", tmp_path / "report.json"
    _anonymize(runner, str(tmp_path / "sample"), "-o", str(out), "--report", str(report))
    source = next(f["source"] for f in json.loads(report.read_text())["files"] if f["source"].endswith("crowd.jpg"))
    faces = crowd()[1]
    kept_face = max(faces, key=lambda b: b[2] - b[0])
    with serving(out) as run:
        page = _open(browser, run.url, source)
        masks = page.locator('[data-region][data-kind="detected"]')
        widths = [masks.nth(i).bounding_box()["width"] for i in range(masks.count())]
        assert len(widths) >= len(faces)
        masks.nth(widths.index(max(widths))).click()
        assert _kinds(page).count("kept") == 1
        _drag(page, CROWD_BACKGROUND, 1600)
        assert _kinds(page).count("added") == 1
        _apply(page)
        assert _kinds(page).count("kept") == 1 and _kinds(page).count("added") == 1, "the re-rendered file's regions"
        page.close()
    original = read_photo(Path(source), "JPEG").rgb
    written = _pixels(out / "crowd" / "astronauts_crowd.jpg")
    x1, y1, x2, y2 = kept_face
    assert ssim_gray(written[y1:y2, x1:x2], original[y1:y2, x1:x2]) >= 0.9, "the kept face is visible"
    for fx1, fy1, fx2, fy2 in faces:
        if (fx1, fy1, fx2, fy2) != kept_face:
            assert ssim_gray(written[fy1:fy2, fx1:fx2], original[fy1:fy2, fx1:fx2]) < 0.5, "another face shows"
    bx1, by1, bx2, by2 = CROWD_BACKGROUND
    assert written[by1 + 3 : by2 - 3, bx1 + 3 : bx2 - 3].max() < 24, "the added region is filled"
    sidecar = json.loads(Path(source + ".blur.json").read_text())
    (keep,), (added,) = sidecar["keep"], sidecar["add"]
    assert keep["box"][0] <= x1 and keep["box"][1] <= y1 and keep["box"][2] >= x2 and keep["box"][3] >= y2
    assert np.allclose(added["box"], CROWD_BACKGROUND, atol=4), added
    assert sidecar["size"] == [1600, 1000]
    updated = next(f for f in json.loads(report.read_text())["files"] if f["source"] == source)
    assert [d["kept"] for d in updated["detections"] if not d["added"]].count(True) == 1, "the report is updated"
    assert not [p for p in out.rglob("*") if p.name.startswith(".")], "nothing of blur's in the output folder"
    again = tmp_path / "again"
    _anonymize(runner, source, "-o", str(again))
    assert np.array_equal(_pixels(again / "astronauts_crowd.jpg"), written), "a plain rerun gives the same pixels"


def _video(path: Path, rgb: np.ndarray, frames: int, rate: int = 10) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = rgb.shape[1], rgb.shape[0], "yuv420p"
        stream.options = {"crf": "12"}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _frames(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as video:
        return [frame.to_ndarray(format="rgb24") for frame in video.decode(video=0)]


def _diff(a: np.ndarray, b: np.ndarray, box: tuple[int, int, int, int]) -> float:
    x1, y1, x2, y2 = box
    return float(np.abs(a[y1:y2, x1:x2].astype(np.int16) - b[y1:y2, x1:x2]).mean())


def _step(page: Any, key: str, times: int) -> None:
    for _ in range(times):
        before = page.get_attribute("#stage", "data-frame")
        page.keyboard.press(key)
        page.wait_for_selector(f'#stage:not([data-frame="{before}"])')  # the CSP forbids eval: no wait_for_function


SMALL_FACE = (599, 155, 649, 218)
"""The second, half-size portrait's face in the video frame (pasted at x 512, y 128)."""


def _two_faces(astro: np.ndarray) -> np.ndarray:
    frame = np.full((512, 768, 3), 90, np.uint8)
    frame[:, :512] = astro
    frame[128:384, 512:768] = cv2.resize(astro, (256, 256), interpolation=cv2.INTER_AREA)
    return frame


def test_keep_a_track_and_add_a_timed_region_on_a_video(
    browser: Any, tmp_path: Path, runner: CliRunner, astro: np.ndarray
) -> None:
    """Keep the large face's track, add a region from frame 5 to frame 10, apply: that face is visible in every
    frame while the other stays masked (re-rendered from the recorded detections), the region is filled in
    frames 5-10 only."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    _video(src / "v.mp4", _two_faces(astro), 20)
    _anonymize(runner, str(src), "-o", str(out), "--no-multiscale")
    source = str(src / "v.mp4")
    with serving(out) as run:
        page = _open(browser, run.url, source)
        tracks = page.locator('[data-region][data-kind="detected"][data-track]')
        tracks.nth(1).wait_for()
        page.wait_for_selector('#stage[data-picture="ready"]')
        assert tracks.count() == 2 and page.locator("#timeline .track").count() == 2, "both tracks, on the timeline"
        lefts = [_left(page, tracks.nth(i)) for i in range(2)]
        tracks.nth(lefts.index(min(lefts))).click()
        # Opening the file from the list reloads it (the page had opened it first): until that frame's masks
        # arrive, the overlay is drawn without tracks. Wait for the kept track before reading the regions.
        page.locator('[data-region][data-kind="kept"]').wait_for()
        assert sorted(_kinds(page)) == ["detected", "kept"]
        _step(page, ".", 5)
        _drag(page, BACKGROUND, 768)
        page.click('[data-region][data-kind="added"]')  # select it
        _step(page, ".", 5)
        page.keyboard.press("]")
        _apply(page)
        page.close()
    frames, originals = _frames(out / "v.mp4"), _frames(src / "v.mp4")
    assert len(frames) == len(originals) == 20
    inner = (BACKGROUND[0] + 4, BACKGROUND[1] + 4, BACKGROUND[2] - 4, BACKGROUND[3] - 4)
    for i, (written, original) in enumerate(zip(frames, originals, strict=True)):
        assert _diff(written, original, ASTRO_FACE) < 6, f"frame {i}: the kept face is visible"
        assert _diff(written, original, SMALL_FACE) > 40, f"frame {i}: the other face is still masked"
        filled = _diff(written, original, inner) > 30
        assert filled == (5 <= i <= 10), f"frame {i}: region filled={filled}"
    sidecar = json.loads((src / "v.mp4.blur.json").read_text())
    (keep,), (added,) = sidecar["keep"], sidecar["add"]
    assert keep["keyframes"] and keep["start"] <= 0.0 and keep["end"] >= 1.9, "the whole track is kept"
    assert (added["start"], added["end"]) == (0.5, 1.0)


def _left(page: Any, region: Any) -> float:
    """A region's left edge on screen. The overlay is redrawn as the frame and its data arrive, and an
    element measured in the middle of a redraw has no box yet: ask again until it has one."""
    for _ in range(100):
        box = region.bounding_box()
        if box is not None:
            return float(box["x"])
        page.wait_for_timeout(50)
    raise AssertionError("the region never got a box on screen")


def _big_picture(path: Path, astro: np.ndarray) -> tuple[int, int]:
    """A synthetic 45 MP JPEG: a gradient with astronaut portraits at three sizes."""
    width, height = 8192, 5504
    x = np.linspace(0, 200, width, dtype=np.float32)
    y = np.linspace(0, 200, height, dtype=np.float32)
    rgb = np.empty((height, width, 3), np.uint8)
    rgb[..., 0] = x[None, :].astype(np.uint8)
    rgb[..., 1] = y[:, None].astype(np.uint8)
    rgb[..., 2] = 96
    for px, py, side in ((500, 400, 512), (3000, 2000, 256), (6000, 4000, 128)):
        rgb[py : py + side, px : px + side] = cv2.resize(astro, (side, side), interpolation=cv2.INTER_AREA)
    Image.fromarray(rgb).save(path, quality=85)
    return width, height


def test_45_megapixels_zoom_without_the_full_image(
    browser: Any, tmp_path: Path, runner: CliRunner, astro: np.ndarray
) -> None:
    """Fit, then zoom to 4x on a small face: the page loads a preview and crops, never the whole picture,
    and the crop shows the output's own full-resolution pixels."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    width, height = _big_picture(src / "big.jpg", astro)
    _anonymize(runner, str(src), "-o", str(out), "--no-multiscale", "--no-verify")
    images: list[tuple[str, bytes]] = []
    with serving(out) as run:
        page = _open(browser, run.url, str(src / "big.jpg"))
        page.on(
            "response",
            lambda r: images.append((r.url, r.body())) if r.headers.get("content-type") == "image/jpeg" else None,
        )
        page.wait_for_selector('#stage[data-picture="ready"]')
        left, top = page.eval_on_selector(
            "#overlay", "e => { const r = e.getBoundingClientRect(); return [r.left, r.top]; }"
        )
        fit = float(page.get_attribute("#stage", "data-scale"))
        face = (3000 + 128, 2000 + 60)  # the 256 px portrait's face
        page.mouse.move(left + face[0] * fit, top + face[1] * fit)
        while float(page.get_attribute("#stage", "data-scale")) < 3.99:
            page.mouse.wheel(0, -400)
            page.wait_for_timeout(50)
        page.wait_for_selector("#detail:not([hidden])", timeout=30_000)
        page.keyboard.press("ArrowLeft")
        page.wait_for_timeout(800)
        assert float(page.get_attribute("#stage", "data-scale")) == pytest.approx(4.0)
        assert not page.errors, page.errors
        page.close()
    sizes = []
    for url, body in images:
        with Image.open(io.BytesIO(body)) as image:
            sizes.append((url, image.size))
    assert any("/picture?" in url for url, _ in sizes) and any("/crop?" in url for url, _ in sizes), sizes
    for url, (w, h) in sizes:
        assert w * h <= MAX_CROP_PIXELS and (w < width or h < height), f"{url} sent {w}x{h} pixels"
        if "/picture?" in url:
            assert max(w, h) <= PREVIEW_SIDE, url
    url, body = next((u, b) for u, b in reversed(images) if "/crop?" in u)
    query = dict(part.split("=") for part in url.split("?", 1)[1].split("&"))
    x, y, w, h = (int(query[k]) for k in ("x", "y", "w", "h"))
    assert w * 4 <= 1280 * 1.05 and h * 4 <= 900, "a crop of the view at 4x, not of the picture"
    with Image.open(io.BytesIO(body)) as image:
        detail = np.asarray(image.convert("RGB"))
    written = _pixels(out / "big.jpg")[y : y + h, x : x + w]
    assert detail.shape == written.shape, "full resolution at 4x"
    assert np.abs(detail.astype(np.int16) - written).mean() < 3, "the crop shows the output's own pixels"
