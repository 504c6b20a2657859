"""The viewer in a real browser (issue 19): an upload card says what was read, the sliders start at the chosen
image's latent to the last float32 bit, the reconstruction panels carry WCS axes and colour bars (read from the
plotly figure in the page), and the blink panel. Screenshots go to artifacts/screenshots/viewer_*.png (the README's copies live in docs/screenshots).

    nice -n 10 .venv/bin/pytest tests/test_viewer_browser.py -q -x

Served like tests/test_browser.py: 40 embedded-demo stamps (seed 3) encoded with models/demo.pt, Debian chromium.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from dashboard import testing

from .conftest import ROOT, blob_image, open_page
from .test_browser import T, assert_no_errors, goto, wait_idle, wait_rendered

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHOTS = ROOT / "artifacts" / "screenshots"  # copied to docs/screenshots by hand, after a look
# the figure plotly drew, read from its element: traces and layout as plotly.js holds them
FIGURE_JS = """key => {
    const el = document.querySelector(`.st-key-${key} .js-plotly-plot`) ||
               [...document.querySelectorAll('.js-plotly-plot')][0];
    if (!el || !el.data) return null;
    return {data: el.data.map(d => ({type: d.type, showscale: d.showscale, hovertemplate: d.hovertemplate,
                                      colorbar: d.colorbar ? {ticktext: d.colorbar.ticktext,
                                                              title: d.colorbar.title} : null})),
            x: {ticktext: el.layout.xaxis.ticktext, title: el.layout.xaxis.title},
            y: {ticktext: el.layout.yaxis.ticktext, title: el.layout.yaxis.title},
            frames: (el._transitionData && el._transitionData._frames || []).map(f => f.name),
            colorbars: el.querySelectorAll('.colorbar').length,
            xticks: [...el.querySelectorAll('.xtick text')].map(t => t.textContent)};
}"""


@pytest.fixture(scope="module")
def viewer_env(chromium_path, tmp_path_factory):
    return testing.build_demo_cache(tmp_path_factory.mktemp("viewer_browser"), n=40, seed=3)


@pytest.fixture(scope="module")
def viewer_server(viewer_env, tmp_path_factory):
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("ASTROAE_RUNS_ROOT", str(tmp_path_factory.mktemp("runs")))
            with testing.serve(viewer_env["cache"], viewer_env["data_root"], tmp_path_factory.mktemp("logs"),
                               start_timeout=120) as url:
                yield url
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def vpage(browser, viewer_server):
    with open_page(browser, viewer_server, timeout_ms=T) as pg:
        yield pg


def shot(page, name: str, *, height: int | None = None) -> Path:
    """A screenshot of the page grown to its content (or to ``height``) in artifacts/screenshots/viewer_<name>.png."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    full = page.evaluate("""() => Math.max(...[...document.querySelectorAll('[data-testid="stMain"], section')]
        .map(e => e.scrollHeight))""")
    page.set_viewport_size({"width": size["width"], "height": int(height or min(max(full, size["height"]), 6000))})
    wait_rendered(page)
    path = SHOTS / f"viewer_{name}.png"
    page.screenshot(path=str(path))
    page.set_viewport_size(size)
    return path


def _figure(page, key: str) -> dict:
    fig = page.evaluate(FIGURE_JS, key)
    assert fig is not None, f"no plotly figure under .st-key-{key}"
    return fig


def _choose(page, name: str) -> None:
    """Search the Reconstructions picker for one file name: a name that matches one image chooses it."""
    box = page.locator(".st-key-rec_query input")
    box.fill(name)
    box.press("Enter")
    wait_idle(page)
    wait_rendered(page)


def test_reconstruction_panels_have_wcs_axes_colour_bars_and_blink(vpage):
    from playwright.sync_api import expect

    goto(vpage, "reconstructions", "Reconstructions")
    assert_no_errors(vpage)
    fig = _figure(vpage, "rec_fig")
    assert [d["type"] for d in fig["data"]] == ["heatmap"] * 3 and all(d["showscale"] for d in fig["data"])
    assert fig["colorbars"] == 3  # drawn: one bar under every panel
    assert fig["data"][0]["colorbar"]["title"]["text"] == "electron" and fig["data"][0]["colorbar"]["ticktext"]
    assert fig["data"][0]["colorbar"]["ticktext"] == fig["data"][1]["colorbar"]["ticktext"]  # one stretch
    assert "RA" in fig["x"]["title"]["text"] and "Dec" in fig["y"]["title"]["text"]
    ticks = fig["x"]["ticktext"]
    assert fig["xticks"] and "h" in ticks[0] and "m" in ticks[0] and all(t.endswith("s") for t in ticks)
    assert "RA %{customdata[1]" in fig["data"][0]["hovertemplate"]
    expect(vpage.get_by_text("Photometry", exact=False).first).to_be_visible()
    # clip limits at 99.5%, then the blink panel
    vpage.locator(".st-key-rec_clip").click()
    vpage.get_by_role("option", name="99.5%").click()
    wait_idle(vpage)
    wait_rendered(vpage)
    shot(vpage, "reconstructions", height=1500)
    vpage.locator(".st-key-rec_blink label").click()
    wait_idle(vpage)
    wait_rendered(vpage)
    blink = _figure(vpage, "rec_fig")
    assert len(blink["data"]) == 1 and blink["frames"] == ["original", "reconstruction (from the latent)"]
    vpage.get_by_text("▶ Blink").click()
    vpage.wait_for_timeout(1000)
    shot(vpage, "blink", height=1500)
    assert_no_errors(vpage)


def test_the_sliders_start_at_the_chosen_images_latent_exactly(vpage, viewer_env):
    from astroae_core.cache import load_cache

    cache = load_cache(viewer_env["cache"])
    t, z = cache.table, cache.latents()
    stats = cache.latent_stats()
    outside = np.maximum(stats["q01"] - z, z - stats["q99"]).max(axis=1)
    i = int(np.argmax(outside))
    assert outside[i] > 0  # the 1..99% ranges alone would clamp it
    goto(vpage, "reconstructions", "Reconstructions")
    _choose(vpage, Path(str(t["path"].iloc[i])).name)
    vpage.get_by_role("button", name="Start the sliders here").click()
    vpage.locator("h1", has_text="Latent sliders").wait_for()
    wait_idle(vpage)
    wait_rendered(vpage)
    assert_no_errors(vpage)
    def at_latent():
        """The latent the page says the sliders are at, parsed from its caption (None when they have moved)."""
        cap = vpage.get_by_text("At the chosen image's own latent:", exact=False)
        if cap.count() == 0:
            return None
        pairs = re.findall(r"(z\d+) = (\S+?)(?:,|$)", cap.first.inner_text().split(":", 1)[1].strip())
        return np.array([np.float32(v) for _, v in pairs], dtype=np.float32)

    shown = at_latent()
    assert shown is not None and np.array_equal(shown, z[i]), (shown, z[i])  # every float32 bit
    # a rerun sends the browser's slider values back: they are still exactly the latent
    vpage.locator(".st-key-sl_whole label").click()
    wait_idle(vpage)
    wait_rendered(vpage)
    assert np.array_equal(at_latent(), z[i])
    vpage.locator(".st-key-sl_whole label").click()
    wait_idle(vpage)
    wait_rendered(vpage)
    # one step of the first slider moves the image and leaves the latent
    before = vpage.evaluate(testing.IMAGE_CHECKSUM_JS, ".st-key-slider_img img")
    vpage.locator('.st-key-sl_z0 input[type="range"]').focus()
    vpage.keyboard.press("ArrowLeft" if z[i][0] > 0 else "ArrowRight")
    vpage.wait_for_function(f"() => ({testing.IMAGE_CHECKSUM_JS})('.st-key-slider_img img') !== {before!r}",
                            timeout=T)
    wait_idle(vpage)
    assert at_latent() is None
    vpage.locator('.st-key-sl_reset button').click()
    wait_idle(vpage)
    wait_rendered(vpage)
    assert np.array_equal(at_latent(), z[i])
    assert_no_errors(vpage)
    vpage.evaluate("() => document.querySelectorAll('[data-testid=\"stMain\"], section')"
                   ".forEach(e => e.scrollTo(0, 0))")
    shot(vpage, "sliders", height=1300)


def test_an_upload_says_what_was_read_once_per_content(vpage):
    from playwright.sync_api import expect

    rng = np.random.default_rng(11)
    cube = np.stack([blob_image(rng, 96) for _ in range(3)]).astype(np.float32)
    cube[1, 10:14, 20:30] = np.nan
    hdr = fits.Header()
    hdr.update(CTYPE1="RA---TAN", CTYPE2="DEC--TAN", CRVAL1=150.1, CRVAL2=2.2, CRPIX1=48.5, CRPIX2=48.5,
               CDELT1=-3e-5, CDELT2=3e-5, BUNIT="MJy/sr")
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(cube, header=hdr, name="SCI")]).writeto(buf)
    data = buf.getvalue()
    goto(vpage, "", "Datasets & upload")
    vpage.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files([
        {"name": "cube.fits", "mimeType": "application/fits", "buffer": data},
        {"name": "cube_again.fits", "mimeType": "application/fits", "buffer": data},
        {"name": "photo.fits", "mimeType": "application/fits", "buffer": b"\x89PNG\r\n\x1a\n" + bytes(64)}])
    wait_idle(vpage, started_within_ms=5000)
    wait_rendered(vpage)
    card = vpage.locator('[class*="st-key-upload_card_"]')
    expect(card).to_have_count(1)  # the same bytes twice: one card
    expect(card.get_by_text("Read: HDU 1 (SCI), 3 x 96 x 96 pixels, plane 1 of the cube", exact=False)).to_be_visible()
    expect(card.get_by_text("40 NaN or infinite pixels", exact=False)).to_be_visible()
    expect(card.get_by_text("to the model's 187 x 187", exact=False)).to_be_visible()
    expect(card.get_by_text("also uploaded as", exact=False)).to_be_visible()
    err = vpage.locator('[data-testid="stAlertContentError"]')
    expect(err).to_have_count(1)
    assert err.inner_text().strip() == "photo.fits: not a FITS file: it is a PNG image"
    expect(card.get_by_role("button", name="Download the reconstruction", exact=False)).to_be_visible()
    card.scroll_into_view_if_needed()
    SHOTS.mkdir(parents=True, exist_ok=True)
    card.screenshot(path=str(SHOTS / "viewer_upload.png"))
