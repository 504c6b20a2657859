"""Real-browser tests: the app served by ``streamlit run`` on a demo cache, driven by Playwright in Debian's chromium.

The session fixture generates a small embedded-demo set (``python -m astroae_core demo-data --n 40 --seed 3``, GalSim
stamps with a catalog and a few injected oddities) in a temporary folder and encodes it with the shipped
``models/demo.pt``; the server runs on a free port with ``ASTROAE_CACHE`` and ``ASTROAE_DATA_ROOT`` pointing at them
and is stopped (its process group) at the end. Every test checks what the page shows and that no Streamlit
exception or error alert is on it. Full-page screenshots of every page go to ``artifacts/screenshots/<page>.png``.

    nice -n 10 .venv/bin/pytest tests/test_browser.py -q -x

Chromium comes from Debian (``apt-get install chromium``), not from ``playwright install``; where it is missing the
tests skip, except under CI (env ``CI`` set), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from dashboard import testing

from .conftest import ROOT, open_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = testing.CHROMIUM
SHOTS = ROOT / "artifacts" / "screenshots"
# (url path, title, screenshot name); st.navigation names a page's URL after its file, the default page is "/"
PAGES = [
    ("", "Datasets & upload", "datasets"),
    ("reconstructions", "Reconstructions", "reconstructions"),
    ("metrics", "Metrics", "metrics"),
    ("sliders", "Latent sliders", "latent_sliders"),
    ("latent_map", "Latent map", "latent_map"),
    ("outliers", "Outlier review", "outliers"),
    ("train", "Train", "train"),
]
IDLE = testing.IDLE
SERVER_START_S = 120
T = 60_000  # ms: generous, the test machine is shared
SLIDER_IMG = ".st-key-slider_img img"


# ----------------------------------------------------------------------------------------------------------------
# fixtures: browser available?, the demo cache, the server, chromium


@pytest.fixture(scope="session")
def app_env(chromium_path, tmp_path_factory):
    """40 demo stamps (seed 3, not the shipped model's training set) encoded with models/demo.pt."""
    return testing.build_demo_cache(tmp_path_factory.mktemp("browser"), n=40, seed=3)


@pytest.fixture(scope="session")
def server_logs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("server_logs")


@pytest.fixture(scope="session")
def server(app_env, server_logs, tmp_path_factory):
    """``streamlit run dashboard/app.py`` on the demo cache; yields its base URL."""
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("ASTROAE_RUNS_ROOT", str(tmp_path_factory.mktemp("runs")))  # the Train page's, not runs/
            with testing.serve(app_env["cache"], app_env["data_root"], server_logs,
                               start_timeout=SERVER_START_S) as url:
                yield url
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def page(browser, server):
    """A fresh browser context (so a fresh Streamlit session) per test."""
    with open_page(browser, server, timeout_ms=T) as pg:
        yield pg


# ----------------------------------------------------------------------------------------------------------------
# helpers


def wait_idle(page, *, started_within_ms: int = 1500) -> None:
    """Wait for the script run an action triggered (if it starts within ``started_within_ms``) to finish."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_selector('[data-testid="stApp"]:not([data-test-script-state="notRunning"])',
                               state="attached", timeout=started_within_ms)
    except PlaywrightTimeout:  # the run was over before we looked, or there was none
        pass
    page.wait_for_selector(IDLE, state="attached", timeout=T)


def wait_rendered(page) -> None:
    """Script idle, no element still a loading skeleton (Streamlit loads element code lazily), every visible plotly
    chart drawn, every image loaded, no element left stale."""
    page.wait_for_selector(IDLE, state="attached", timeout=T)
    page.wait_for_function("""() => {
        const vis = el => el.offsetParent !== null;
        const skeletons = ['stSkeletonElement', 'stSkeleton', 'stAppSkeleton'].map(t => `[data-testid="${t}"]`).join();
        if ([...document.querySelectorAll(skeletons)].some(vis)) return false;
        const charts = [...document.querySelectorAll('[data-testid="stPlotlyChart"]')].filter(vis);
        if (!charts.every(c => c.querySelector('.js-plotly-plot .main-svg'))) return false;
        if (![...document.images].every(i => i.complete)) return false;
        return document.querySelectorAll('[data-stale="true"]').length === 0;
    }""", timeout=T)


def goto(page, path: str, title: str) -> None:
    from playwright.sync_api import expect

    page.goto("/" + path)
    expect(page.locator("h1", has_text=title)).to_be_visible(timeout=T)
    wait_rendered(page)


def assert_no_errors(page) -> None:
    exc = page.locator('[data-testid="stException"]')
    assert exc.count() == 0, f"Streamlit exception on {page.url}: {exc.all_inner_texts()}"
    err = page.locator('[data-testid="stAlertContentError"]')
    assert err.count() == 0, f"error message on {page.url}: {err.all_inner_texts()}"


def screenshot(page, name: str) -> Path:
    """A full-page screenshot; Streamlit scrolls inside its main block, so grow the viewport to the content."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    height = page.evaluate("""() => Math.max(document.body.scrollHeight,
        ...[...document.querySelectorAll('[data-testid="stMain"], [data-testid="stAppViewContainer"], section')]
            .map(e => e.scrollHeight))""")
    page.set_viewport_size({"width": size["width"], "height": int(min(max(height, size["height"]), 12000))})
    wait_rendered(page)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)
    return path


def image_checksum(page, sel: str = SLIDER_IMG):
    return page.evaluate(testing.IMAGE_CHECKSUM_JS, sel)


# ----------------------------------------------------------------------------------------------------------------
# tests


def test_every_page_renders_without_errors(page):
    from playwright.sync_api import expect

    goto(page, "", "Datasets & upload")  # then every page by the sidebar, then every page by its URL
    links = page.locator('[data-testid="stSidebarNavLink"]')
    expect(links).to_have_count(len(PAGES), timeout=T)
    for path, title, name in PAGES:
        page.locator('[data-testid="stSidebarNavLink"]', has_text=title).click()
        expect(page.locator("h1", has_text=title)).to_be_visible(timeout=T)
        wait_idle(page)
        wait_rendered(page)
        assert urlparse(page.url).path == "/" + path, page.url
        assert_no_errors(page)
        assert page.locator('[data-testid="stSidebar"]').get_by_text("Latent cache").count() >= 1
        screenshot(page, name)
    for path, title, _ in PAGES:
        goto(page, path, title)
        assert_no_errors(page)


def test_the_metrics_page_shows_what_the_latent_carries(page, app_env):
    from playwright.sync_api import expect

    from astroae_core.cache import load_cache

    goto(page, "metrics", "Metrics")
    assert_no_errors(page)
    ev = load_cache(app_env["cache"]).meta.evaluation
    if "rows" in ev:  # stored at encode time: shown at once
        expect(page.get_by_text("How much of the image the 8 numbers carry", exact=False)).to_be_visible()
        assert page.get_by_role("button", name="Compute the comparison").count() == 0
    else:  # models/demo.pt's training images are not on this machine: the page says why, with no error
        expect(page.get_by_text(ev["error"][:40], exact=False)).to_be_visible()


def test_moving_a_latent_slider_redraws_the_decoded_image(page):
    goto(page, "sliders", "Latent sliders")
    assert_no_errors(page)
    # Streamlit 1.67 draws sliders with react-aria: the focusable thumb is a visually hidden <input type="range">
    thumbs = page.locator('[data-testid="stSlider"] input[type="range"]')
    assert thumbs.count() == 8
    img = page.locator(SLIDER_IMG)
    img.scroll_into_view_if_needed()
    before_src = img.get_attribute("src")
    before = image_checksum(page)
    assert before is not None
    thumb = page.locator('.st-key-sl_z0 input[type="range"]')
    start_value = thumb.input_value()
    thumb.focus()
    for _ in range(3):  # one step is a fifth of a std (dashboard/slider_ranges.py): 15 would reach the end
        page.keyboard.press("ArrowRight")
    page.wait_for_function(f"() => ({testing.IMAGE_CHECKSUM_JS})({SLIDER_IMG!r}) !== {before!r}", timeout=T)
    wait_idle(page)
    wait_rendered(page)
    assert_no_errors(page)
    assert float(thumb.input_value()) > float(start_value)
    assert img.get_attribute("src") != before_src
    assert image_checksum(page) != before, "the decoded image's pixels did not change"

    # slider-to-redraw latency, information only (benchmarks/slider_latency.py measures it properly)
    times = []
    for _ in range(5):
        old = image_checksum(page)
        thumb.focus()
        t0 = time.perf_counter()
        page.keyboard.press("ArrowRight")
        page.wait_for_function(f"() => ({testing.IMAGE_CHECKSUM_JS})({SLIDER_IMG!r}) !== {old!r}", timeout=T,
                               polling="raf")
        times.append((time.perf_counter() - t0) * 1000)
        wait_idle(page, started_within_ms=300)
    print(f"\nslider -> redraw latency (ms): median {statistics.median(times):.0f}, "
          f"min {min(times):.0f}, max {max(times):.0f}, all {[round(x) for x in times]}")
    assert_no_errors(page)


def test_clicking_a_map_point_shows_that_image(page, app_env):
    from playwright.sync_api import expect

    from astroae_core.cache import load_cache

    table = load_cache(app_env["cache"]).table
    goto(page, "latent_map", "Latent map")
    assert_no_errors(page)
    expect(page.get_by_text("Click a point on the map")).to_be_visible()
    gd = page.locator(".js-plotly-plot").first
    gd.scroll_into_view_if_needed()
    # the most isolated point of the first trace (so the click cannot hit a neighbour), in page pixels
    hit = page.evaluate("""() => {
        const gd = document.querySelector('.js-plotly-plot');
        const L = gd._fullLayout, xa = L.xaxis, ya = L.yaxis, tr = gd._fullData[0];
        const r = gd.getBoundingClientRect();
        const pts = Array.from(tr.x, (x, i) =>
            [xa._offset + xa.d2p(x), ya._offset + ya.d2p(tr.y[i]), tr.customdata[i][0]]);
        let best = null, bestD = -1;
        for (const [px, py, id] of pts) {
            if (px < xa._offset + 10 || px > xa._offset + xa._length - 10) continue;
            if (py < ya._offset + 10 || py > ya._offset + ya._length - 10) continue;
            let d = Infinity;
            for (const [qx, qy] of pts) { if (qx === px && qy === py) continue;
                d = Math.min(d, Math.hypot(qx - px, qy - py)); }
            if (d > bestD) { bestD = d; best = {x: r.left + px, y: r.top + py, id: String(id), gap: d}; }
        }
        return best;
    }""")
    assert hit is not None and hit["gap"] > 4, hit
    name = Path(str(table.loc[table["id"].astype(str) == hit["id"], "path"].iloc[0])).name
    page.mouse.move(hit["x"], hit["y"])
    page.mouse.click(hit["x"], hit["y"])
    expect(page.get_by_text(f"Chosen: {name}")).to_be_visible(timeout=T)
    wait_idle(page)
    wait_rendered(page)
    assert_no_errors(page)
    expect(page.get_by_text("Nearest neighbours in latent space", exact=True)).to_be_visible()
    assert page.get_by_role("button", name="Open in Reconstructions").count() == 1


def _upload(page, path: Path) -> None:
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(path))


def test_uploading_fits_shows_its_reconstruction_and_bad_files_a_reason(page, tmp_path):
    from playwright.sync_api import expect

    from astroae_core.demo import generate_demo_data

    generate_demo_data(tmp_path / "fresh", n=1, seed=11, progress=None)  # a stamp the cache has never seen
    good = tmp_path / "upload_galaxy.fits"
    shutil.copy(next((tmp_path / "fresh").glob("*.fits")), good)
    bad = tmp_path / "bad.fits"
    bad.write_text("this is a text file, not a FITS image\n" * 20)

    goto(page, "", "Datasets & upload")
    _upload(page, good)
    card = page.locator('[data-testid="stVerticalBlockBorderWrapper"], [data-testid="stVerticalBlock"]').filter(
        has=page.locator("h4", has_text="upload_galaxy.fits")).last
    expect(page.locator("h4", has_text="upload_galaxy.fits")).to_be_visible(timeout=T)
    wait_idle(page)
    wait_rendered(page)
    assert_no_errors(page)
    chart = card.locator('[data-testid="stPlotlyChart"] .js-plotly-plot')
    expect(chart.first).to_be_visible(timeout=T)
    titles = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')].map(
        gd => gd.data.map(t => t.name).join('|'))""")
    assert any("original" in t and "residual" in t for t in titles), titles
    expect(page.get_by_text("Placed on the map")).to_be_visible()
    expect(page.get_by_text("MSE percentile")).to_be_visible()
    screenshot(page, "datasets_upload")

    # a text file named .fits: an error naming the file and the reason, not a traceback
    page.goto("/")
    expect(page.locator("h1", has_text="Datasets & upload")).to_be_visible(timeout=T)
    wait_rendered(page)
    _upload(page, bad)
    err = page.locator('[data-testid="stAlertContentError"]')
    expect(err).to_have_count(1, timeout=T)
    wait_idle(page)
    text = err.inner_text()
    assert "bad.fits" in text
    reason = text.split("bad.fits", 1)[1].strip(" :\n")
    assert len(reason) > 10, text
    assert "Traceback" not in text
    assert page.locator('[data-testid="stException"]').count() == 0
    screenshot(page, "datasets_bad_upload")


def test_the_server_logged_no_uncaught_exception(server, server_logs):
    """Last: whatever the tests above did, the app raised nothing (Streamlit logs what it redacts in the page)."""
    log = (server_logs / "stderr.txt").read_text(errors="replace") + (server_logs / "stdout.txt").read_text(
        errors="replace")
    assert "Traceback" not in log and "Uncaught app execution" not in log, log[-4000:]
