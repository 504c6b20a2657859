"""Training from the app in a real browser: ``streamlit run`` driven by Playwright in Debian's chromium.

A tiny preset (32x32 images, two scales, a thousand one-step epochs: half a minute or more) trains on a folder of 4 small galaxies
(so few that the cache's map is the PCA one and the encode takes seconds). The test starts the run from the Train
page, sees its progress, goes to another page and back, stops the server while the run goes on and starts a new
one, which finds the run where it is; when the run is done, the app opens its cache and the sliders draw on it.
Screenshots go to ``artifacts/screenshots/train_*.png``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from dashboard import testing
from train import jobs

from .conftest import ROOT, TINY_PRESET_RECIPE, write_blob_folder

pytestmark = [pytest.mark.browser, pytest.mark.slow]

T = 60_000  # ms
SHOTS = ROOT / "artifacts" / "screenshots"
TINY = TINY_PRESET_RECIPE


@pytest.fixture
def env(tmp_path, monkeypatch):
    data = tmp_path / "data"
    write_blob_folder(data / "blobs", 4)
    (tmp_path / "tiny.toml").write_text(TINY)
    (tmp_path / "presets.toml").write_text('[tiny]\nrecipe = "tiny.toml"\nsteps = 1000\nabout = "for the test"\n')
    monkeypatch.setenv("ASTROAE_RUNS_ROOT", str(tmp_path / "runs"))
    monkeypatch.setenv("ASTROAE_PRESETS", str(tmp_path / "presets.toml"))
    return {"data": data, "runs": tmp_path / "runs", "cache": tmp_path / "no-cache", "logs": tmp_path / "logs"}


def idle(page) -> None:
    page.wait_for_selector(testing.IDLE, state="attached", timeout=T)


def no_errors(page) -> None:
    exc = page.locator('[data-testid="stException"]')
    assert exc.count() == 0, exc.all_inner_texts()
    err = page.locator('[data-testid="stAlertContentError"]')
    assert err.count() == 0, err.all_inner_texts()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"train_{name}.png"), full_page=True)


def open_train(browser, url):
    from playwright.sync_api import expect

    page = browser.new_context(viewport={"width": 1440, "height": 1100}, base_url=url).new_page()
    page.set_default_timeout(T)
    page.goto("/train")
    expect(page.locator("h1", has_text="Train")).to_be_visible()
    idle(page)
    return page


def test_train_from_the_app_through_a_server_restart_to_the_sliders(browser, env):
    from playwright.sync_api import expect

    expect.set_options(timeout=T)
    proc, url = testing.start(env["cache"], env["data"], env["logs"] / "a")
    try:
        page = open_train(browser, url)
        expect(page.get_by_text("usable images")).to_be_visible()
        expect(page.get_by_text(re.compile(r"tiny: 1,000 steps, 1,000 epochs, about"))).to_be_visible()
        no_errors(page)
        page.get_by_role("button", name="Start training").click()
        progress = page.get_by_text(re.compile(r"Epoch [\d,]+ of 1,000"))
        expect(progress).to_be_visible(timeout=T)
        expect(page.get_by_role("button", name="Cancel the run")).to_be_visible()
        shot(page, "test_during")
        # another page and back: the run is still there, further on
        page.locator('[data-testid="stSidebarNavLink"]', has_text="Metrics").click()
        expect(page.locator("h1", has_text="Metrics")).to_be_visible()
        page.locator('[data-testid="stSidebarNavLink"]', has_text="Train").click()
        expect(page.locator("h1", has_text="Train")).to_be_visible()
        expect(progress.or_(page.get_by_text("Encoding")).or_(page.get_by_text("is done"))).to_be_visible()
        no_errors(page)
        running = jobs.lock_owner(env["runs"])
        assert running, "the run ended before the server could be stopped under it"
        testing.stop(proc)  # the server goes; the run does not
        assert jobs.lock_owner(env["runs"]) == running
        proc, url = testing.start(env["cache"], env["data"], env["logs"] / "b")
        page = open_train(browser, url)
        # a new session finds the run going (it then opens the cache itself) or done (it offers the cache)
        sliders = page.get_by_role("link", name="Open the latent sliders on it")
        opened = page.get_by_role("button", name="Open its cache")
        expect(sliders.or_(opened)).to_be_visible(timeout=240_000)
        if opened.is_visible():
            opened.click()
        expect(sliders).to_be_visible()
        idle(page)
        no_errors(page)
        run = jobs.list_runs(env["runs"])[0]
        assert jobs.run_status(run, root=env["runs"]).state == "done"
        sidebar = page.locator('[data-testid="stSidebar"]')
        expect(sidebar.get_by_role("combobox", name="Latent cache")).to_match_aria_snapshot(
            f'- combobox "Latent cache": caches/{run.name}')
        expect(sidebar.get_by_text("4 images from")).to_be_visible()
        shot(page, "test_after")
        sliders.click()
        expect(page.locator("h1", has_text="Latent sliders")).to_be_visible()
        expect(page.locator(".st-key-slider_img img")).to_be_visible()
        expect(page.locator('[data-testid="stSlider"]')).to_have_count(8)  # waits: the image can draw first
        idle(page)
        no_errors(page)
    finally:
        testing.stop(proc)
        owner = jobs.lock_owner(env["runs"])
        if owner:  # never leave a runner behind
            jobs.cancel_run(owner["run"], root=env["runs"])
    for name in ("a", "b"):
        log = (env["logs"] / name / "stderr.txt").read_text(errors="replace")
        assert "Traceback" not in log, log[-3000:]
