"""Real-browser tests of the shared subset and the exports (Debian chromium through Playwright, the app served by
``streamlit run`` on 40 demo stamps): a search chooses the image it names; a filter from the sidebar changes the
map's points and the gallery and shows as a chip; the subset downloads as CSV with every column; a SAMP hub started
here (no internet) receives the subset as a VOTable. Screenshots: artifacts/screenshots/subset_*.png (the README's copies live in docs/screenshots).

    nice -n 10 .venv/bin/pytest tests/test_subset_browser.py -q -x
"""

from __future__ import annotations

import io
from urllib.parse import urlparse

import pandas as pd
import pytest

from dashboard import testing

from .conftest import ROOT, local_samp_hub, open_page
from .test_browser import assert_no_errors, goto, wait_idle, wait_rendered

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHOTS = ROOT / "artifacts" / "screenshots"  # copied to docs/screenshots by hand, after a look
T = 60_000

MAP_POINTS_JS = """() => {
    const el = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
    if (!el || !el.data) return null;
    const ids = new Set();
    for (const tr of el.data) {
        if (tr.name === 'uploads' || !tr.customdata) continue;
        for (const cd of tr.customdata) ids.add(String(Array.isArray(cd) ? cd[0] : cd));
    }
    return ids.size;
}"""


@pytest.fixture(scope="module")
def samp_hub(tmp_path_factory):
    """A SAMP hub of our own and a client recording what it receives, standing in for TOPCAT (the app's server,
    started after, inherits ``SAMP_HUB``)."""
    with pytest.MonkeyPatch.context() as mp, \
            local_samp_hub(tmp_path_factory.mktemp("samp"), mp, client_name="topcat-standin") as received:
        yield received


@pytest.fixture(scope="module")
def server(chromium_path, samp_hub, tmp_path_factory):
    env = testing.build_demo_cache(tmp_path_factory.mktemp("subset_browser"), n=40, seed=3)
    logs = tmp_path_factory.mktemp("subset_logs")
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("ASTROAE_RUNS_ROOT", str(tmp_path_factory.mktemp("runs")))
            with testing.serve(env["cache"], env["data_root"], logs, start_timeout=120) as url:
                yield url, env
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def page(browser, server):
    with open_page(browser, server[0], timeout_ms=T, accept_downloads=True) as pg:
        yield pg


def _table(server):
    from astroae_core.cache import load_cache

    return load_cache(server[1]["cache"]).table


def _choose(page, scope, label: str, option: str) -> None:
    """Pick ``option`` in the select box (or multiselect) labelled ``label`` inside ``scope``."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    box = scope.get_by_role("combobox", name=label)
    for attempt in range(3):  # a click that lands while the page reruns does not open the list
        wait_idle(page)
        box.click()
        try:
            page.get_by_role("listbox").first.wait_for(state="visible", timeout=10_000)
            break
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    box.fill(option)
    page.get_by_role("option", name=option, exact=True).first.click()
    wait_idle(page)


def _add_kind_filter(page, kind: str) -> None:
    from playwright.sync_api import expect

    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("Add a filter").click()
    expect(sidebar.get_by_role("combobox", name="Column")).to_be_visible()
    _choose(page, sidebar, "Column", "kind (catalog)")
    _choose(page, sidebar, "Is one of", kind)
    page.keyboard.press("Escape")
    sidebar.get_by_role("button", name="Add filter").click()
    wait_idle(page)
    wait_rendered(page)


def test_search_selects_the_image_it_names(page, server):
    from playwright.sync_api import expect

    t = _table(server)
    goto(page, "reconstructions", "Reconstructions")
    first = page.locator('[data-testid="stMarkdownContainer"] code').filter(has_text=".fits").first.inner_text()
    target = next(p for p in t["path"] if p != first)
    name = target.split("/")[-1]
    box = page.get_by_role("textbox", name="Search by file name or id")
    box.fill(name.upper())
    box.press("Enter")
    wait_idle(page)
    wait_rendered(page)
    expect(page.locator('[data-testid="stMarkdownContainer"] code', has_text=target)).to_be_visible()
    expect(page.get_by_text("1 match")).to_be_visible()
    assert_no_errors(page)


def test_a_filter_changes_the_map_and_the_gallery(page, server):
    from playwright.sync_api import expect

    t = _table(server)
    kind = "galaxy"
    n_kind = int((t["catalog.kind"] == kind).sum())
    assert 0 < n_kind < len(t)
    goto(page, "latent_map", "Latent map")
    assert page.evaluate(MAP_POINTS_JS) == len(t)
    expect(page.get_by_text(f"of {len(t):,}, by anomaly_rank")).to_be_visible()
    _add_kind_filter(page, kind)
    page.wait_for_function(f"() => ({MAP_POINTS_JS})() === {n_kind}", timeout=T)
    expect(page.get_by_text(f"Images 1–{min(n_kind, 48)} of {n_kind:,}")).to_be_visible()
    sidebar = page.locator('[data-testid="stSidebar"]')
    chip = sidebar.get_by_role("button", name=f"kind (catalog): {kind}")
    expect(chip).to_be_visible()
    assert_no_errors(page)
    # a second filter, a range on a catalog number, narrows the subset further
    cut = float(t.loc[t["catalog.kind"] == kind, "catalog.snr"].median())
    both = int(((t["catalog.kind"] == kind) & (t["catalog.snr"] >= cut)).sum())
    _choose(page, sidebar, "Column", "snr (catalog)")
    low = sidebar.get_by_role("spinbutton", name="From")
    low.fill(f"{cut:.6g}")
    low.press("Enter")
    wait_idle(page)
    sidebar.get_by_role("button", name="Add filter").click()
    wait_idle(page)
    page.wait_for_function(f"() => ({MAP_POINTS_JS})() === {both}", timeout=T)
    wait_rendered(page)
    expect(page.get_by_text(f"{both:,} of {len(t):,} images (the subset")).to_be_visible()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.locator(".st-key-subset_panel").screenshot(path=str(SHOTS / "subset_chips.png"))
    page.screenshot(path=str(SHOTS / "subset_filtered_map.png"))
    chip.click()  # the chip's ✕ removes the kind filter; the range stays
    wait_idle(page)
    n_snr = int((t["catalog.snr"] >= cut).sum())
    page.wait_for_function(f"() => ({MAP_POINTS_JS})() === {n_snr}", timeout=T)
    sidebar.get_by_role("button", name="snr (catalog)").click()
    wait_idle(page)
    page.wait_for_function(f"() => ({MAP_POINTS_JS})() === {len(t)}", timeout=T)
    assert_no_errors(page)


def test_the_subset_downloads_with_every_column_and_reaches_a_samp_hub(page, server, samp_hub):
    from astropy.io.votable import parse_single_table
    from playwright.sync_api import expect

    t = _table(server)
    kind = "galaxy"
    n_kind = int((t["catalog.kind"] == kind).sum())
    goto(page, "latent_map", "Latent map")
    _add_kind_filter(page, kind)
    with page.expect_download(timeout=T) as dl:
        page.get_by_role("button", name="Download the subset as CSV").click()
    out = pd.read_csv(io.BytesIO(open(dl.value.path(), "rb").read()))
    assert len(out) == n_kind and set(out["catalog.kind"]) == {kind}
    want = {*(f"z{d}" for d in range(8)), "umap_x", "pca_y", "anomaly_score", "split", "ra", "dec", "label", "tags",
            "data_folder"}
    assert want <= set(out.columns) and set(t.columns) <= set(out.columns)
    assert str(server[1]["data"].resolve()) in set(out["data_folder"].astype(str))
    # SAMP: the hub started by the fixture is found; the subset goes to the recording client
    got, event = samp_hub
    send = page.get_by_role("button", name=f"Send the subset to TOPCAT ({n_kind:,} rows)")
    expect(send).to_be_visible()
    send.click()
    assert event.wait(30), "the SAMP client received nothing"
    expect(page.get_by_text("Sent the subset table to topcat-standin")).to_be_visible()
    mtype, params = got[-1]
    assert mtype == "table.load.votable" and params["url"].startswith("file://")
    vt = parse_single_table(urlparse(params["url"]).path).to_table()
    assert len(vt) == n_kind and "z7" in vt.colnames
    assert_no_errors(page)
    page.locator(".st-key-mapx_panel").screenshot(path=str(SHOTS / "subset_export.png"))
