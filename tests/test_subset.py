"""The shared subset: filters on any column and the search that names one image (plain tables), then the app
(AppTest): a search chooses the image at once, a filter changes the map's points and the gallery, chips remove
filters, the pickers search every image (the sliders' finds ``01500`` in a cache of 1,600)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from astroae_core.analysis import subset as core

from .conftest import ROOT, TINY_RECIPE, blob_image, local_samp_hub


@pytest.fixture
def table():
    return pd.DataFrame({
        "id": ["gal_00001", "gal_00002", "gal_00010", "Ring_7", "gal_01500"],
        "path": ["a/gal_00001.fits", "a/gal_00002.fits.gz", "b/gal_00010.fits", "b/Ring_7.fits", "c/gal_01500.fits"],
        "catalog.snr": [10.0, 55.0, np.nan, 300.0, 80.0],
        "catalog.kind": ["galaxy", "ring", "galaxy", "ring", None],
        "catalog.is_anomaly": [False, True, False, True, False],
        "split": ["train", "val", "train", "train", "val"],
        "tags": ["", "blue, ring", "", "ring", ""],
    }, index=[10, 11, 12, 13, 14])


def ids(t):
    return list(t["id"])


def test_column_kinds(table):
    assert core.column_kind(table["catalog.snr"]) == "range"
    assert core.column_kind(table["catalog.kind"]) == "in"
    assert core.column_kind(table["catalog.is_anomaly"]) == "in"
    many = pd.Series([f"x{i}" for i in range(core.MAX_CATEGORIES + 1)])
    assert core.column_kind(many) == "contains"


def test_filters_combine_and_keep_the_index(table):
    snr = {"column": "catalog.snr", "op": "range", "lo": 50, "hi": None}
    assert ids(core.apply_filters(table, [snr])) == ["gal_00002", "Ring_7", "gal_01500"]  # NaN never passes
    ring = {"column": "catalog.kind", "op": "in", "values": ["ring"]}
    both = core.apply_filters(table, [snr, ring])
    assert ids(both) == ["gal_00002", "Ring_7"] and list(both.index) == [11, 13]
    hi = {"column": "catalog.snr", "op": "range", "lo": None, "hi": 55}
    assert ids(core.apply_filters(table, [hi])) == ["gal_00001", "gal_00002"]
    flag = {"column": "catalog.is_anomaly", "op": "in", "values": ["True"]}
    assert ids(core.apply_filters(table, [flag])) == ["gal_00002", "Ring_7"]
    tag = {"column": "tags", "op": "contains", "text": "BLUE"}
    assert ids(core.apply_filters(table, [tag])) == ["gal_00002"]
    assert core.apply_filters(table, []) is table


def test_a_filter_that_cannot_apply_says_why(table):
    with pytest.raises(ValueError, match="no column 'catalog.mag'"):
        core.apply_filters(table, [{"column": "catalog.mag", "op": "range", "lo": 1}])
    with pytest.raises(ValueError, match="holds text"):
        core.apply_filters(table, [{"column": "split", "op": "range", "lo": 1}])
    with pytest.raises(ValueError, match="unknown filter 'like'"):
        core.apply_filters(table, [{"column": "split", "op": "like"}])


def test_search_names_one_image(table):
    assert core.exact_image(table, "01500") == "gal_01500"  # the only id containing it
    assert core.exact_image(table, "gal_00002.FITS.GZ") == "gal_00002"  # the file name, any case
    assert core.exact_image(table, "ring_7") == "Ring_7"  # the id (and stem), any case
    assert core.exact_image(table, "b/gal_00010.fits") == "gal_00010"  # the path
    assert core.exact_image(table, "gal_0000") is None  # two match: nothing is chosen
    assert core.exact_image(table, "") is None and core.exact_image(table, "nothing") is None
    assert ids(core.search_images(table, "GAL_000")) == ["gal_00001", "gal_00002", "gal_00010"]


def test_sort_rows_puts_missing_last(table):
    assert ids(core.sort_rows(table, "catalog.snr", ascending=False)) == [
        "Ring_7", "gal_01500", "gal_00002", "gal_00001", "gal_00010"]
    assert core.sort_rows(table, "no such column") is table


def test_chip_text_reads_as_the_filter():
    from dashboard.subset import chip_text

    assert chip_text({"column": "catalog.snr", "op": "range", "lo": 50, "hi": None}) == "snr (catalog) ≥ 50"
    assert chip_text({"column": "catalog.kind", "op": "in", "values": ["ring", "merger"]}) == \
        "kind (catalog): ring, merger"
    assert chip_text({"column": "path", "op": "contains", "text": "f277"}) == 'path contains "f277"'


# -- the app ------------------------------------------------------------------------------------------------------

N_BIG = 1600


def _write_folder(folder, n, *, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        img = blob_image(rng, 32)
        kind = "trail" if i % 8 == 5 else "galaxy"
        if kind == "trail":
            img[16, :] += 400.0
        name = f"gal_{i:05d}.fits"
        fits.PrimaryHDU(img).writeto(folder / name)
        rows.append({"file": name, "kind": kind, "snr": float(img.max() / 1.0)})
    pd.DataFrame(rows).to_csv(folder / "catalog.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def app_env(tmp_path_factory):
    """A tiny model trained on 48 stamps; a cache of 1,600 stamps (gal_00000 ... gal_01599) encoded with it."""
    from astroae_core.cache import encode_folder
    from train.config import load_recipe
    from train.loop import train

    root = tmp_path_factory.mktemp("subset")
    small = _write_folder(root / "data" / "small", 48, seed=1)
    recipe = root / "tiny.toml"
    recipe.write_text(TINY_RECIPE.format(skip_mode="none", epochs=2).replace('group_regex = "obj_(\\\\d+)_"\n', ""))
    train(load_recipe(recipe), small, root / "run", device="cpu")
    big = _write_folder(root / "data" / "big", N_BIG, seed=2)
    cache = encode_folder(root / "run" / "best.pt", big, root / "cache", progress=None)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ASTROAE_DATA_ROOT", str(root / "data"))
        mp.setenv("ASTROAE_CACHE", str(cache))
        yield {"cache": cache}


def _open(page):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=300).run()
    at.switch_page(f"app_pages/{page}.py").run()
    _ok(at)
    return at


def _ok(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _map_points(at) -> int:
    """Distinct images drawn on the map (overlays such as outliers and labels draw some twice)."""
    fig = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if c.key == "map_chart")
    return len({str(cd[0] if isinstance(cd, list) else cd) for tr in fig["data"] if tr.get("name") != "uploads"
                for cd in tr.get("customdata") or []})


def _texts(at) -> str:
    return "\n".join(str(x.value) for x in [*at.markdown, *at.caption, *at.subheader])


@pytest.mark.slow
def test_search_selects_the_image_it_names(app_env):
    at = _open("reconstructions")
    first = at.session_state["selected_id"]
    target = "gal_01234" if first != "gal_01234" else "gal_01235"
    at.text_input(key="rec_query").input(f"{target.upper()}.fits").run()
    _ok(at)
    assert at.session_state["selected_id"] == target
    assert at.selectbox(key="rec_pick").value == target
    assert f"`{target}.fits`" in _texts(at)  # the page shows it, not the previous image
    at.text_input(key="rec_query").input("gal_0123").run()  # ten match: the choice stays, the list narrows
    _ok(at)
    assert at.session_state["selected_id"] == target
    assert all("gal_0123" in o for o in at.selectbox(key="rec_pick").options)


@pytest.mark.slow
def test_the_sliders_picker_finds_any_image(app_env):
    at = _open("sliders")
    at.radio(key="slider_start").set_value("chosen image").run()
    _ok(at)
    at.text_input(key="sl_query").input("01500").run()
    _ok(at)
    assert at.selectbox(key="sl_pick").value == "gal_01500"
    assert at.session_state["selected_id"] == "gal_01500"


@pytest.mark.slow
def test_a_filter_changes_the_map_and_the_gallery_and_its_chip_removes_it(app_env):
    from astroae_core.cache import load_cache
    from dashboard.gallery import PAGE_SIZE

    t = load_cache(app_env["cache"]).table
    n_trail = int((t["catalog.kind"] == "trail").sum())
    at = _open("latent_map")
    assert _map_points(at) == N_BIG
    assert f"All images ({N_BIG:,} images)" in _texts(at)
    assert any(str(c.value).startswith(f"Images 1–{PAGE_SIZE} of {N_BIG:,},") for c in at.caption)
    at.sidebar.selectbox(key="flt_col").set_value("catalog.kind").run()
    at.sidebar.multiselect(key="flt_in:catalog.kind").set_value(["trail"]).run()
    at.sidebar.button(key="flt_add").click().run()
    _ok(at)
    assert _map_points(at) == n_trail
    assert f"The subset ({n_trail:,} images)" in _texts(at)
    assert f"{n_trail:,} of {N_BIG:,} images pass the filters" in [c.value for c in at.sidebar.caption]
    # a second filter narrows further: a range on a catalog number
    snr = t.loc[t["catalog.kind"] == "trail", "catalog.snr"]
    cut = float(snr.median())
    at.sidebar.selectbox(key="flt_col").set_value("catalog.snr").run()
    at.sidebar.number_input(key="flt_lo:catalog.snr").set_value(cut).run()
    at.sidebar.button(key="flt_add").click().run()
    _ok(at)
    both = int(((t["catalog.kind"] == "trail") & (t["catalog.snr"] >= cut)).sum())
    assert 0 < both < n_trail and _map_points(at) == both
    assert any(str(c.value).startswith(f"Images 1–{min(both, PAGE_SIZE)} of {both:,},") for c in at.caption)
    chips = [b for b in at.sidebar.button if b.key and b.key.startswith("chip_") and b.key != "chip_clear"]
    assert [c.label.split("  ")[0] for c in chips] == ["kind (catalog): trail", f"snr (catalog) ≥ {cut:.6g}"]
    chips[0].click().run()  # remove the kind filter: only the snr one is left
    _ok(at)
    assert _map_points(at) == int((t["catalog.snr"] >= cut).sum())
    at.sidebar.button(key="chip_0").click().run()
    _ok(at)
    assert _map_points(at) == N_BIG and not at.session_state["subset_filters"]


@pytest.mark.slow
def test_the_gallery_pages_through_the_whole_subset_in_order(app_env):
    from dashboard.gallery import PAGE_SIZE

    at = _open("latent_map")
    at.selectbox(key="mapgal_sort").set_value("catalog.snr").run()
    at.toggle(key="mapgal_desc").set_value(True).run()
    last = -(-N_BIG // PAGE_SIZE)
    at.number_input(key="mapgal_page").set_value(last).run()
    _ok(at)
    cap = [c.value for c in at.caption if str(c.value).startswith("Images ")][0]
    assert cap.startswith(f"Images {(last - 1) * PAGE_SIZE + 1:,}–{N_BIG:,} of {N_BIG:,}, by snr (catalog)")
    opened = [b for b in at.button if b.label == "Open"]
    assert len(opened) == N_BIG - (last - 1) * PAGE_SIZE


@pytest.mark.slow
def test_the_interpolation_pickers_search_every_image_and_follow_the_subset(app_env):
    at = _open("sliders")
    assert at.selectbox(key="interp_b_pick").value == at.session_state["interp_b_id"]  # the strangest image
    at.text_input(key="interp_b_query").input("gal_01599").run()
    _ok(at)
    assert at.selectbox(key="interp_b_pick").value == "gal_01599"
    grid = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if c.key == "interp_fig")
    assert grid["data"]  # the interpolation to it is drawn
    # with a filter, the list offers the subset's images only
    at.session_state["subset_filters"] = [{"column": "catalog.kind", "op": "in", "values": ["trail"]}]
    at.text_input(key="interp_a_query").input("gal_0001").run()
    _ok(at)
    opts = at.selectbox(key="interp_a_pick").options[1:]
    assert opts == ["gal_00013.fits"]  # of gal_00010..gal_00019 only gal_00013 is a trail (i % 8 == 5)


@pytest.mark.slow
def test_labels_filter_like_any_column(app_env):
    from astroae_core.cache import load_cache
    from astroae_core.cache.labels import set_label

    cache = load_cache(app_env["cache"])
    at = _open("latent_map")
    set_label(cache, "gal_00007", label="interesting", tags="ring, blue")
    set_label(cache, "gal_00011", tags="blue")
    at.session_state["subset_filters"] = [{"column": "tags", "op": "contains", "text": "blue"}]
    at.run()
    _ok(at)
    assert _map_points(at) == 2
    at.session_state["subset_filters"] = [{"column": "label", "op": "in", "values": ["interesting"]}]
    at.run()
    _ok(at)
    assert _map_points(at) == 1 and "The subset (1 images)" in _texts(at)


@pytest.mark.slow
def test_the_map_pages_exports_send_the_chosen_image_and_zip_cutouts(app_env, tmp_path, monkeypatch):
    import io
    import zipfile

    from dashboard import exports

    from astroae_core.io import samp

    with local_samp_hub(tmp_path, monkeypatch, client_name="ds9-standin") as (got, event):
        at = _open("latent_map")
        at.session_state["selected_id"] = "gal_00042"
        at.run()
        _ok(at)
        [b for b in at.button if b.key == "mapx_samp_image"][0].click().run()
        _ok(at)
        assert event.wait(20) and "Sent `gal_00042` to ds9-standin." in [s.value for s in at.success]
        mtype, params = got[0]
        assert mtype == samp.IMAGE_MTYPE
        with fits.open(params["url"].removeprefix("file://")) as hdul:
            assert [h.name for h in hdul] == ["ORIGINAL", "RECONSTRUCTION", "RESIDUAL"]
            with fits.open(app_env["cache"].parent / "data" / "big" / "gal_00042.fits") as src:
                np.testing.assert_array_equal(hdul[0].data, src[0].data)
    # the zip of the first rows: three HDUs per image, the original's pixels kept
    ctx = at.session_state["ctx"]
    data = exports.cutouts_zip(ctx, ctx.table.head(3))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = sorted(n for n in zf.namelist() if n.endswith(".fits"))
        assert names == [f"gal_0000{i}_cutout.fits" for i in range(3)]
        with fits.open(io.BytesIO(zf.read(names[1]))) as hdul:
            assert len(hdul) == 3
            np.testing.assert_allclose(hdul[2].data, hdul[0].data - hdul[1].data, rtol=1e-5, atol=1e-4)
