"""Real-browser tests: the app served by ``streamlit run`` on a small cache, driven by Playwright with Debian's chromium.

Every page renders with no error element; moving a latent slider changes the decoded image's pixels; a click on a
map point shows that image; a FITS upload shows its reconstruction. Skipped where /usr/bin/chromium or Playwright is
missing (CI installs chromium first: .ci/run).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import ROOT
from .test_app_pages import build_env

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [pytest.mark.slow, pytest.mark.browser]
PAGES = {"": "Datasets & upload", "reconstructions": "Reconstructions", "metrics": "Metrics",
         "sliders": "Latent sliders", "latent_map": "Latent map"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")
    info = build_env(tmp_path_factory.mktemp("browser"), skip_mode="none", epochs=3)
    port = _free_port()
    env = {**os.environ, "ASTROAE_DATA_ROOT": str(info["data_root"]), "ASTROAE_CACHE": str(info["cache"])}
    log = open(info["data_root"].parent / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"),
                             "--server.headless", "true", "--server.port", str(port),
                             "--server.address", "127.0.0.1"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if urllib.request.urlopen(base + "/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the app did not start: " + (info["data_root"].parent / "server.log").read_text()[-2000:])
        yield {**info, "base": base}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM),
                              args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield b
        b.close()


def settle(page, *, min_charts: int = 0, timeout: float = 120) -> None:
    """Wait until the script finished: no spinner, every plotly chart drawn, every image loaded."""
    page.wait_for_selector("h1", timeout=timeout * 1000)
    quiet, end = 0, time.time() + timeout
    while time.time() < end:
        charts = page.locator('[data-testid="stPlotlyChart"]').count()
        drawn = page.locator('[data-testid="stPlotlyChart"] .main-svg').count()
        busy = page.locator('[data-testid="stSpinner"]').count()
        images = page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        quiet = quiet + 1 if (not busy and charts >= min_charts and drawn >= charts and images) else 0
        if quiet >= 4:
            return
        time.sleep(0.5)
    raise AssertionError("the page did not settle")


def errors_on(page) -> list[str]:
    return page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]').all_inner_texts()


def test_every_page_renders_without_errors(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    for path, title in PAGES.items():
        page.goto(f"{server['base']}/{path}")
        settle(page, min_charts=0 if path == "" else 1)
        assert page.locator("h1").first.inner_text() == title
        assert errors_on(page) == [], (path, errors_on(page))
    page.close()


def test_a_slider_changes_the_decoded_image(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    page.goto(f"{server['base']}/sliders")
    settle(page, min_charts=3)
    chart = page.locator(".st-key-slider_img")
    before = chart.screenshot()
    page.locator('[data-testid="stSlider"]').nth(0).locator("input").first.focus()
    for _ in range(30):
        page.keyboard.press("ArrowRight")
    settle(page, min_charts=3)
    assert chart.screenshot() != before
    assert errors_on(page) == []
    page.close()


def test_a_click_on_the_map_shows_that_image(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    page.goto(f"{server['base']}/latent_map")
    settle(page, min_charts=1)
    point = page.evaluate("""() => {
        const gd = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
        const fl = gd._fullLayout, tr = gd._fullData[0], r = gd.getBoundingClientRect();
        return {x: r.left + fl.xaxis._offset + fl.xaxis.d2p(tr.x[2]),
                y: r.top + fl.yaxis._offset + fl.yaxis.d2p(tr.y[2]), id: tr.customdata[2][0]};
    }""")
    page.mouse.move(point["x"], point["y"])
    page.mouse.click(point["x"], point["y"])
    page.get_by_text(f"Chosen: {point['id']}.fits").wait_for(timeout=60000)
    settle(page, min_charts=1)
    assert errors_on(page) == []
    page.close()


def test_an_upload_shows_its_reconstruction(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 2000})
    page.goto(server["base"] + "/")
    settle(page)
    fits_file = sorted(Path(server["data"]).glob("*.fits"))[4]
    page.locator('input[type="file"]').set_input_files(str(fits_file))
    page.get_by_text("Placed on the map").wait_for(timeout=120000)
    settle(page, min_charts=1)
    assert page.locator('[data-testid="stPlotlyChart"]').count() == 1
    assert page.get_by_text(fits_file.name).count() >= 1
    assert errors_on(page) == []
    page.close()
