"""Real-browser test of the Outlier review page: the gallery says why each image is strange, and a label clicked in
the browser survives a rebuild of the cache (it lives beside the cache folder, matched by pixel content) and is in
the export.

The module's server runs on a cache of 25 small images built here (24 blobs and one with a zero-filled half),
encoded with the shipped ``models/demo.pt``; chromium is the session's (tests/conftest.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from astropy.io import fits

from astroae_core.cache import encode_folder, load_cache
from astroae_core.cache.labels import labels_path
from dashboard import testing

from .conftest import ROOT, open_page
from .test_browser import T, assert_no_errors, goto, wait_idle
from .test_outlier_review import write_review_folder

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CKPT = ROOT / "models" / "demo.pt"
EDGE_CARD = ".st-key-card_edge_999"


@pytest.fixture(scope="module")
def review_server(chromium_path, tmp_path_factory):
    root = tmp_path_factory.mktemp("outlier_browser")
    data = write_review_folder(root / "data" / "blobs")
    cache = Path(encode_folder(CKPT, data, root / "cache", progress=None))
    try:
        with testing.serve(cache, root / "data", tmp_path_factory.mktemp("outlier_logs"), start_timeout=120) as url:
            yield {"url": url, "data": data, "cache": cache}
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def review_page(browser, review_server):
    with open_page(browser, review_server["url"], timeout_ms=T) as pg:
        yield pg


def test_the_gallery_shows_why_each_image_is_strange(review_page):
    from playwright.sync_api import expect

    goto(review_page, "outliers", "Outlier review")
    assert_no_errors(review_page)
    edge = review_page.locator(EDGE_CARD)
    expect(edge).to_contain_text("#1")
    expect(edge).to_contain_text("flat region")
    expect(edge).to_contain_text("of the image is one flat value (a zero-filled edge")
    cards = review_page.locator('[class*="st-key-card_"]')
    assert cards.count() == 24
    texts = cards.all_inner_texts()
    assert sum("sigma" in t for t in texts) == 24, texts  # every card says why, in numbers


def test_a_label_set_in_the_browser_survives_a_cache_rebuild(review_page, review_server):
    from playwright.sync_api import expect

    goto(review_page, "outliers", "Outlier review")
    review_page.locator(EDGE_CARD).get_by_role("radio", name="artefact").click()
    wait_idle(review_page)
    expect(review_page.get_by_text("Labelled: 0 interesting, 1 normal or artefact.")).to_be_visible()
    cache = review_server["cache"]
    doc = json.loads(labels_path(cache).read_text())
    assert [(e["path"], e["label"]) for e in doc["labels"]] == [("edge_999.fits", "artefact")]
    assert labels_path(cache).parent == cache.parent and not list(cache.glob("*label*"))

    # a new image in the folder: the next encode rebuilds the cache folder whole
    new = review_server["data"] / "obj_new_500.fits"
    shutil.copy(review_server["data"] / "obj_000_000.fits", new)
    with fits.open(new, mode="update") as hdul:
        hdul[0].data = hdul[0].data * 1.5
    before = (cache / "meta.json").read_bytes()
    encode_folder(CKPT, review_server["data"], cache, progress=None)
    assert (cache / "meta.json").read_bytes() != before and len(load_cache(cache).table) == 26

    goto(review_page, "outliers", "Outlier review")  # a fresh load: the rebuilt cache
    assert_no_errors(review_page)
    expect(review_page.get_by_text("Labelled: 0 interesting, 1 normal or artefact.")).to_be_visible()
    pressed = review_page.locator(EDGE_CARD).locator('[role="radio"][aria-checked="true"]')
    expect(pressed).to_have_text("artefact")

    # ... and it is in the export of the rebuilt cache, beside every other column
    goto(review_page, "latent_map", "Latent map")
    with review_page.expect_download(timeout=T) as dl:
        review_page.get_by_role("button", name="Download the subset as CSV").click()
    out = pd.read_csv(dl.value.path(), keep_default_na=False).set_index("path")
    assert len(out) == 26 and out.loc["edge_999.fits", "label"] == "artefact"
    assert set(out["label"]) == {"artefact", ""}
