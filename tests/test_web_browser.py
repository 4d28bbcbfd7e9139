"""The web studio end to end in real headless Chromium (Debian's ``chromium``, driven by Playwright).

Starts ``impasto serve`` on a free port with its own data dir, then in the browser: uploads a photo, stylises it
with a preset and sees the result, downloads it, paints with tiny random VGG weights and watches the preview
change, cancels (the job shows cancelled and keeps an image), stylises a small animated GIF as a video, runs a
tiny optimiser study and takes a screenshot of every tab into the test's tmp folder.

Skipped, with the reason, where the ``playwright`` package or a chromium binary is missing (``.ci/run`` installs
Debian's chromium; ``make test`` installs playwright through the ``test`` extra).

``IMPASTO_WEB_SCREENSHOTS=DIR`` also writes the five tab screenshots as ``DIR/web-<tab>.png`` (the README's are
``docs/``), with a paint run on the default network so the pictures look like what a user sees.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip
TABS = {"stylize": "stylise", "paint": "paint", "video": "video", "generate": "generate", "compare": "optimisers"}


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pictures(folder: Path) -> dict[str, Path]:
    """A photo-like content image, a stripy style image and a small animated GIF (a 'video'), made here."""
    import numpy as np
    from PIL import Image, ImageDraw

    h, w = 240, 320
    y, x = np.mgrid[0:h, 0:w] / np.array([h, w]).reshape(2, 1, 1)
    sky = np.stack([90 + 120 * y, 150 + 80 * y, 235 - 40 * y], -1)
    photo = Image.fromarray(sky.clip(0, 255).astype(np.uint8))
    d = ImageDraw.Draw(photo)
    d.polygon([(0, 200), (90, 110), (170, 190), (240, 120), (320, 200), (320, 240), (0, 240)], fill=(70, 110, 60))
    d.ellipse((230, 30, 280, 80), fill=(255, 220, 90))
    d.rectangle((60, 170, 110, 215), fill=(170, 60, 50))
    d.polygon([(55, 170), (85, 145), (115, 170)], fill=(110, 40, 40))
    files = {"photo": folder / "photo.png", "style": folder / "style.png", "video": folder / "clip.gif"}
    photo.save(files["photo"])
    # a "painting": short curved brush strokes in a few colours
    rng = np.random.default_rng(3)
    style = Image.new("RGB", (220, 220), (28, 44, 96))
    ds = ImageDraw.Draw(style)
    palette = [(242, 196, 56), (230, 120, 40), (70, 130, 200), (240, 236, 210), (30, 70, 140), (190, 60, 60)]
    for _ in range(900):
        cx, cy, r = *rng.uniform(0, 220, 2), rng.uniform(6, 16)
        a0 = rng.uniform(0, 360)
        colour = palette[int(rng.integers(len(palette)))]
        ds.arc(
            (cx - r, cy - r, cx + r, cy + r), a0, a0 + rng.uniform(60, 160), fill=colour, width=int(rng.integers(2, 5))
        )
    style.save(files["style"])
    frames = []
    for t in range(8):
        f = photo.resize((160, 120))
        ImageDraw.Draw(f).ellipse((10 + 15 * t, 20, 40 + 15 * t, 50), fill=(255, 255, 255))
        frames.append(f)
    frames[0].save(files["video"], save_all=True, append_images=frames[1:], duration=100, loop=0)
    return files


@pytest.fixture
def studio(tmp_path: Path):
    """``impasto serve`` on a free port (a tiny random VGG-19 registered as the paint network ``tiny-vgg19``)."""
    sys.path.insert(0, str(Path(__file__).parent))
    import tiny_weights as tw

    weights = tw.write(tw.vgg_state(widths=(8, 12, 16, 16, 16)), tmp_path / "tiny-vgg19.pth")
    port = _free_port()
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115
    cmd = [
        sys.executable, "-m", "impasto", "serve", "--port", str(port), "--data-dir", str(tmp_path / "studio"),
        "--paint-model-file", f"tiny-vgg19={weights}",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{base}/api/health", timeout=2) as r:
                if json.load(r).get("ok"):
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            log.close()
            pytest.fail(f"impasto serve did not start: {(tmp_path / 'server.log').read_text()[-2000:]}")
        time.sleep(0.2)
    try:
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def browser_parts():  # noqa: ANN201
    """Playwright and the chromium binary, or a skip saying which is missing (checked before the server starts)."""
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.skip("the browser test needs the playwright package (pip install playwright)")
    chromium = _chromium()
    if chromium is None:
        pytest.skip("the browser test needs a chromium binary (Debian: apt-get install chromium)")
    return expect, sync_playwright, chromium


def test_studio_in_chromium(browser_parts, studio: str, tmp_path: Path) -> None:  # noqa: ANN001
    expect, sync_playwright, chromium = browser_parts
    docs = os.environ.get("IMPASTO_WEB_SCREENSHOTS")
    files = _pictures(tmp_path)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    timings: dict[str, float] = {}

    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        except Exception as exc:  # noqa: BLE001 - a chromium that cannot start on this machine
            pytest.skip(f"chromium at {chromium} does not start: {str(exc).splitlines()[0]}")
        page = browser.new_page(viewport={"width": 1280, "height": 800}, accept_downloads=True)
        page_errors: list[str] = []
        page.on("pageerror", lambda e: page_errors.append(str(e)))
        expect.set_options(timeout=120_000)

        # -- the page loads and is interactive ------------------------------------------------------------
        t0 = time.perf_counter()
        page.goto(studio + "/")
        page.wait_for_selector("html[data-ready=true]", timeout=60_000)
        timings["page_interactive_s"] = time.perf_counter() - t0
        timings["page_interactive_in_page_ms"] = page.evaluate("window.impastoReadyAt")
        expect(page.locator("#st-gallery button")).to_have_count(26)
        expect(page.locator("#health")).to_contain_text("cpu")
        # the missing BigGAN weights are shown with the command that installs them
        expect(page.locator("#panel-generate .cap-off")).to_contain_text("impasto models download")
        expect(page.locator("#gn-go")).to_be_disabled()

        # -- an error from the API is one sentence on the page ----------------------------------------------
        page.click("#st-go")
        expect(page.locator("#error")).to_be_visible()
        expect(page.locator("#error-text")).to_have_text("Choose a photo to stylise first.")

        # -- Stylise: upload, preset 7, the result appears, download it ------------------------------------
        page.set_input_files("#st-content", str(files["photo"]))
        expect(page.locator("#panel-stylize .drop.filled img")).to_be_visible()
        page.click("#st-gallery button[data-preset='7']")
        expect(page.locator("#st-gallery button[data-preset='7']")).to_have_attribute("aria-pressed", "true")
        page.select_option("#st-size", "512")
        t0 = time.perf_counter()
        page.click("#st-go")
        result = page.locator("#st-stage img.shown")
        expect(result).to_be_visible()
        page.wait_for_function("document.querySelector('#st-stage img.shown').naturalWidth > 0")
        timings["stylize_512_on_screen_s"] = time.perf_counter() - t0
        expect(page.locator("#error")).to_be_hidden()
        assert page.evaluate("document.querySelector('#st-stage img.shown').naturalWidth") == 512
        expect(page.locator("#st-status")).to_contain_text("done")
        expect(page.locator("#jobs-list .job[data-kind=stylize][data-state=done]")).to_have_count(1)
        with page.expect_download() as dl:
            page.click("#st-download")
        saved = tmp_path / "downloaded.png"
        dl.value.save_as(saved)
        from PIL import Image

        with Image.open(saved) as im:
            assert im.size == (512, 384)
        page.wait_for_timeout(300)
        page.screenshot(path=str(shots / "web-stylise.png"))

        # -- Paint: tiny VGG, the preview changes, cancel keeps an image ----------------------------------
        page.click("#tab-paint")
        page.set_input_files("#pt-content", str(files["photo"]))
        expect(page.locator("#panel-paint .drop.filled img")).to_be_visible()
        page.set_input_files("#pt-styles", str(files["style"]))
        expect(page.locator("#pt-style-list .weight")).to_have_count(1)
        if docs:  # the look a user gets: the default network
            page.fill("#pt-size", "192")
            page.fill("#pt-iters", "400")
        else:
            expect(page.locator("#pt-model option[value='tiny-vgg19']")).to_have_count(1)
            page.select_option("#pt-model", "tiny-vgg19")
            page.fill("#pt-size", "64")
            page.fill("#pt-iters", "20000")
        page.fill("#pt-every", "1")
        t0 = time.perf_counter()
        page.click("#pt-go")
        preview = page.locator("#pt-stage img.shown")
        expect(preview).to_be_visible()
        timings["paint_first_preview_s"] = time.perf_counter() - t0
        first = preview.get_attribute("src")
        assert first and "/preview" in first
        page.wait_for_function(
            "s => { const i = document.querySelector('#pt-stage img.shown'); return i && i.src.indexOf(s) < 0 }",
            arg=first, timeout=120_000,
        )  # fmt: skip
        second = preview.get_attribute("src")
        assert second != first and "/preview" in second
        page.wait_for_function("document.querySelector('#pt-stage img.shown').naturalWidth > 0")
        if docs:
            page.wait_for_function(
                "() => /iteration (\\d+)/.test(document.querySelector('#pt-status').textContent) &&"
                " +RegExp.$1 >= 120", timeout=300_000,
            )  # fmt: skip
        page.screenshot(path=str(shots / "web-paint-running.png"))
        expect(page.locator("#pt-cancel")).to_be_enabled()
        page.click("#pt-cancel")
        expect(page.locator("#pt-status")).to_contain_text("cancelled")
        expect(page.locator("#pt-status")).to_contain_text("latest image is kept")
        expect(page.locator("#jobs-list .job[data-kind=paint][data-state=cancelled]")).to_have_count(1)
        kept = page.locator("#pt-stage img.shown")
        expect(kept).to_have_attribute("src", _contains("/result"))
        page.wait_for_function("document.querySelector('#pt-stage img.shown').naturalWidth > 0")
        expect(page.locator("#pt-download")).to_be_visible()
        with page.expect_download() as dl:
            page.click("#pt-download")
        dl.value.save_as(tmp_path / "painting.png")
        with Image.open(tmp_path / "painting.png") as im:
            assert max(im.size) == (192 if docs else 64)
        page.wait_for_timeout(300)
        page.screenshot(path=str(shots / "web-paint.png"))

        # -- Video: an animated GIF, preset 7, progress with frames per second, the result ----------------
        page.click("#tab-video")
        page.set_input_files("#vd-content", str(files["video"]))
        expect(page.locator("#panel-video .drop.filled img")).to_be_visible()
        page.select_option("#vd-preset", "7")
        page.select_option("#vd-size", "256")
        page.click("#vd-go")
        expect(page.locator("#vd-status")).to_contain_text("done")
        expect(page.locator("#vd-download")).to_be_visible()
        expect(page.locator("#jobs-list .job[data-kind=video][data-state=done]")).to_have_count(1)
        page.wait_for_timeout(800)
        page.screenshot(path=str(shots / "web-video.png"))

        # -- Generate: disabled here (no BigGAN weights), with the install command -------------------------
        page.click("#tab-generate")
        expect(page.locator("#panel-generate .cap-off")).to_be_visible()
        page.screenshot(path=str(shots / "web-generate.png"))

        # -- Optimisers: a tiny study, its plots and grid ---------------------------------------------------
        page.click("#tab-compare")
        page.set_input_files("#cp-content", str(files["photo"]))
        page.set_input_files("#cp-style", str(files["style"]))
        expect(page.locator("#panel-compare .drop.filled img")).to_have_count(2)
        page.fill("#cp-iters", "30" if docs else "6")
        page.fill("#cp-size", "96" if docs else "32")
        page.click("#cp-go")
        expect(page.locator("#cp-status")).to_contain_text("done", timeout=300_000)
        expect(page.locator("#cp-stage figure img").first).to_be_visible()
        page.wait_for_function(
            "[...document.querySelectorAll('#cp-stage figure img')].every(i => i.complete && i.naturalWidth > 0)"
        )
        assert page.locator("#cp-files a").count() >= 3
        page.screenshot(path=str(shots / "web-optimisers.png"))

        # -- the job list: re-run and delete ----------------------------------------------------------------
        stylize_jobs = page.locator("#jobs-list .job[data-kind=stylize]")
        stylize_jobs.first.locator("[data-action=rerun]").click()
        expect(stylize_jobs).to_have_count(2)
        expect(page.locator("#st-status")).to_contain_text("done")
        stylize_jobs.first.locator("[data-action=delete]").click()
        expect(stylize_jobs).to_have_count(1)
        expect(page.locator("#error")).to_be_hidden()
        assert not page_errors, page_errors
        browser.close()

    (tmp_path / "timings.json").write_text(json.dumps(timings, indent=1))
    print("web studio timings:", json.dumps(timings))
    for shot in sorted(shots.iterdir()):
        assert shot.stat().st_size > 10_000, shot  # a real picture, not a blank page
    if docs:
        out = Path(docs)
        out.mkdir(parents=True, exist_ok=True)
        for name in ("stylise", "paint", "video", "generate", "optimisers"):
            source = shots / ("web-paint-running.png" if name == "paint" else f"web-{name}.png")
            _small_png(source, out / f"web-{name}.png")


def _small_png(source: Path, target: Path) -> None:
    """A screenshot as a 256-colour PNG (a third of the size, no visible change on a UI)."""
    from PIL import Image

    with Image.open(source) as im:
        im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            target, optimize=True
        )


def _contains(text: str):  # noqa: ANN202
    import re

    return re.compile(re.escape(text))
