"""Unit tests of the app's modules without Streamlit (paths, display, formatting, sentences, selection, slider ranges,
core) and its figure builders (plots): no Streamlit run."""

from __future__ import annotations

import io
import os

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from astroae_core.analysis import top_outliers
from astroae_core.io import sky_position
from dashboard import display, formatting, paths, plots, selection, sentences, slider_ranges

from .conftest import wcs_header

# ----------------------------------------------------------------------------------------------------------------
# the path guard


def test_path_guard_accepts_paths_inside_the_root(tmp_path):
    (tmp_path / "data" / "sub").mkdir(parents=True)
    root = tmp_path / "data"
    assert paths.resolve_within("sub", [root]) == (root / "sub").resolve()
    assert paths.resolve_within(root / "sub" / "new.fits", [root]) == (root / "sub" / "new.fits").resolve()
    assert paths.resolve_within(".", [root]) == root.resolve()


@pytest.mark.parametrize("bad", ["..", "../secret", "sub/../../secret", "/etc/passwd"])
def test_path_guard_rejects_escapes_and_absolute_paths_elsewhere(tmp_path, bad):
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    with pytest.raises(paths.PathNotAllowed, match="outside"):
        paths.resolve_within(bad, [root])


def test_path_guard_rejects_a_sibling_with_the_same_prefix(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data2").mkdir()
    with pytest.raises(paths.PathNotAllowed):
        paths.resolve_within(tmp_path / "data2", [tmp_path / "data"])


def test_path_guard_follows_symlinks_out_of_the_root(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.fits").write_bytes(b"")
    os.symlink(outside, root / "link")
    os.symlink(outside / "x.fits", root / "file.fits")
    with pytest.raises(paths.PathNotAllowed):
        paths.resolve_within("link/x.fits", [root])
    with pytest.raises(paths.PathNotAllowed):
        paths.resolve_within(root / "file.fits", [root])
    # a symlink that stays inside is fine
    (root / "real").mkdir()
    os.symlink(root / "real", root / "alias")
    assert paths.resolve_within("alias", [root]) == (root / "real").resolve()


def test_data_root_and_configured_cache_from_env_and_argv(tmp_path):
    assert paths.data_root({"ASTROAE_DATA_ROOT": str(tmp_path)}) == tmp_path.resolve()
    assert paths.data_root({}) == (paths.REPO_ROOT / "data").resolve()
    p, src = paths.configured_cache(["--cache", str(tmp_path / "c")], {"ASTROAE_CACHE": "/elsewhere"})
    assert p == (tmp_path / "c").resolve() and src == "--cache"
    p, src = paths.configured_cache([], {"ASTROAE_CACHE": str(tmp_path / "e")})
    assert p == (tmp_path / "e").resolve() and src == "ASTROAE_CACHE"
    p, src = paths.configured_cache(None, {})
    assert p == paths.DEFAULT_CACHE.resolve() and src == "demo cache"


def test_find_caches_and_data_folders(tmp_path):
    root = tmp_path / "data"
    (root / "set_a").mkdir(parents=True)
    for i in range(3):
        fits.PrimaryHDU(np.zeros((4, 4), np.float32)).writeto(root / "set_a" / f"im{i}.fits")
    (root / "set_a" / "notes.txt").write_text("x")
    c = root / "caches" / "one"
    c.mkdir(parents=True)
    (c / "meta.json").write_text("{}")
    (c / "latents.parquet").write_bytes(b"")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "meta.json").write_text("{}")
    (root / ".hidden" / "latents.parquet").write_bytes(b"")
    assert paths.find_caches([root]) == [c.resolve()]
    assert paths.find_data_folders(root) == [("set_a", 3)]
    assert paths.find_data_folders(tmp_path / "missing") == []


def test_cache_slug_is_a_safe_name():
    assert paths.cache_slug("ceers/f200w band") == "ceers-f200w-band"
    assert paths.cache_slug(".") == "root"
    assert "/" not in paths.cache_slug("../../etc")


# ----------------------------------------------------------------------------------------------------------------
# stretches


def test_stretch_values_by_hand():
    img = np.array([[0.0, 25.0], [50.0, 100.0]])
    lim = display.stretch_limits(img, "linear")
    assert lim == (0.0, 100.0)
    np.testing.assert_allclose(display.apply_stretch(img, "linear", lim), [[0, 0.25], [0.5, 1]], atol=1e-6)
    # astropy LogStretch(a=1000): log(a x + 1) / log(a + 1)
    expect_log = np.log(1000 * np.array([0, 0.25, 0.5, 1]) + 1) / np.log(1001)
    np.testing.assert_allclose(display.apply_stretch(img, "log", lim).ravel(), expect_log, rtol=1e-5)
    # astropy AsinhStretch(a=0.1): asinh(x / a) / asinh(1 / a)
    expect_asinh = np.arcsinh(np.array([0, 0.25, 0.5, 1]) / 0.1) / np.arcsinh(10)
    np.testing.assert_allclose(display.apply_stretch(img, "asinh", lim).ravel(), expect_asinh, rtol=1e-5)


def test_shared_limits_clip_the_reconstruction_and_zscale_ignores_outliers():
    lim = (0.0, 10.0)
    np.testing.assert_allclose(display.apply_stretch(np.array([-5.0, 5.0, 20.0]), "linear", lim), [0, 0.5, 1])
    rng = np.random.default_rng(0)
    sky = rng.normal(100, 1, (64, 64))
    sky[0, 0] = 1e6  # a hot pixel
    lo, hi = display.stretch_limits(sky, "zscale")
    assert 90 < lo < 100 < hi < 110
    assert display.stretch_limits(sky, "linear")[1] == 1e6


def test_constant_and_nonfinite_images_do_not_break_the_stretch():
    lo, hi = display.stretch_limits(np.full((5, 5), 3.0), "linear")
    assert hi > lo
    out = display.apply_stretch(np.array([np.nan, np.inf, 3.0]), "asinh", (0.0, 6.0))
    assert np.isfinite(out).all() and out[0] == 0
    with pytest.raises(ValueError, match="stretch"):
        display.stretch_limits(np.ones(3), "sqrtish")


def test_residual_limit_is_symmetric_and_positive():
    r = np.concatenate([np.linspace(-1, 1, 1000), [50.0]])
    m = display.residual_limit(r)
    assert 0.9 < m < 2
    assert display.residual_limit(np.zeros(10)) == 1.0


def test_colormaps_and_previews():
    lut = display.colormap_lut("gray")
    assert lut.shape == (256, 3) and (lut[0] == 0).all() and (lut[-1] == 255).all()
    inf = display.colormap_lut("inferno")
    assert inf.shape == (256, 3) and inf.dtype == np.uint8 and inf[-1].sum() > inf[0].sum()
    rgb = display.colorize(np.array([[0.0, 1.0]]), "gray")
    assert rgb.shape == (1, 2, 3) and rgb[0, 1, 0] == 255
    prev = np.zeros((3, 8, 8), np.uint8)
    prev[:, 4, 4] = 200
    out = display.preview_rgb(prev, "linear", "gray")
    assert out.shape == (3, 8, 8, 3) and out[0, 4, 4, 0] == 255 and out[0, 0, 0, 0] == 0


def test_decoded_tiles_share_one_stretch_and_labels():
    tiles = np.stack([np.full((4, 4), 0.2), np.full((4, 4), 0.8)])
    rgb = display.decoded_rgb(tiles, "linear", "gray")
    assert rgb[0, 0, 0, 0] == round(0.2 * 255) and rgb[1, 0, 0, 0] == round(0.8 * 255)  # not each stretched to white
    assert formatting.model_label("/x/runs/tiny/best.pt") == "tiny/best.pt"
    assert formatting.model_label("/x/models/demo.pt") == "demo.pt"
    assert selection.default_outlier_count(48) == 3 and selection.default_outlier_count(100_000) == 20


def test_mosaic_layout():
    tiles = np.ones((5, 2, 3), np.uint8)
    m = display.mosaic(tiles, 2, pad=1)
    assert m.shape == (3 * 2 + 2, 2 * 3 + 1)
    assert m.sum() == 5 * 6


def test_display_grid_shrinks_big_images_only():
    assert display.display_grid(np.ones((50, 40))).shape == (50, 40)
    assert display.display_grid(np.ones((1000, 500)), max_side=400).shape == (400, 200)


# ----------------------------------------------------------------------------------------------------------------
# sky positions, values and names as text




def test_sky_position_from_wcs_and_without():
    pos = sky_position(wcs_header(), (16, 16))
    assert pos is not None and abs(pos["ra"] - 150.0) < 1e-3 and abs(pos["dec"] - 2.0) < 1e-3
    assert ":" in pos["text"]
    assert sky_position(fits.Header(), (16, 16)) is None
    assert "no sky position" in formatting.format_sky(None, None)
    assert "RA 150.000000" in formatting.format_sky(150.0, 2.0)


def test_markdown_escaping_of_user_names():
    esc = formatting.md_escape("[x](javascript:alert(1)) *b* a_b.fits")
    assert "[" not in esc.replace("\\[", "") and "*" not in esc.replace("\\*", "")
    assert esc.replace("\\", "") == "[x](javascript:alert(1)) *b* a_b.fits"


def test_metric_formatting():
    assert formatting.format_metric("ms_ssim", float("nan")) == "n/a"
    assert formatting.format_metric("psnr", float("inf")) == "∞ dB"
    assert formatting.format_metric("psnr", 31.234) == "31.23 dB"
    assert formatting.format_metric("ssim", 0.98765) == "0.9877"


def test_table_values_have_a_fixed_precision_per_column():
    assert formatting.format_value("mse", 0.000123456) == "1.23e-04"
    assert formatting.format_value("ssim", 0.987654321) == "0.9877"
    assert formatting.format_value("ra", 150.123456789) == "150.123457"
    assert formatting.format_value("anomaly_rank", np.int64(3)) == "3"
    assert formatting.format_value("is_anomaly", np.bool_(True)) == "yes"
    assert formatting.format_value("flux", 123456.7) == "1.235e+05"
    assert formatting.format_value("kind", None) == "—" and formatting.format_value("ra", float("nan")) == "—"
    assert formatting.format_value("kind", "merger") == "merger"
    # gallery captions: every value of a column has the same width
    caps = [formatting.format_value("anomaly_score", v, short=True) for v in (0.5, 12.345, 3.0)]
    assert caps == ["0.50", "12.35", "3.00"]
    assert {len(formatting.format_value("mse", v, short=True)) for v in (1e-4, 2.5e-3, 9.99e-5)} == {8}


def test_short_names_for_captions():
    assert formatting.short_name("set/galaxy_001.fits") == "galaxy_001"
    assert formatting.short_name("a/b/x.FITS.gz") == "x" and formatting.short_name("y.fz") == "y"
    assert formatting.short_name("notes.txt") == "notes.txt" and formatting.short_name(".fits") == ".fits"


def test_catalog_columns_are_labelled_without_the_cache_prefix():
    assert formatting.column_label("catalog.kind") == "kind (catalog)"
    assert formatting.column_label("catalog.catalog.x") == "catalog.x (catalog)"  # the prefix goes once
    assert formatting.column_label("anomaly_score") == "anomaly_score"
    assert selection.KIND_COLUMN == "catalog.kind"


def test_png_bytes_round_trip():
    from PIL import Image

    rgb = np.random.default_rng(0).integers(0, 255, size=(7, 5, 3), dtype=np.uint8)
    raw = display.png_bytes(rgb)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(raw))), rgb)
    import base64

    uri = display.png_data_uri(rgb)
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == raw


# ----------------------------------------------------------------------------------------------------------------
# slider ranges, summaries in plain words, progress


def test_slider_ranges_use_percentiles_and_fall_back_to_std():
    stats = {"z0": {"mean": 0.0, "std": 1.0, "q01": -2.3, "q99": 2.4},
             "z1": {"mean": 5.0, "std": 2.0}}
    r0, r1 = slider_ranges.slider_ranges(stats, ["z0", "z1"])
    assert r0.lo <= -2.3 and r0.hi >= 2.4 and r0.lo > -2.5 and r0.hi < 2.6
    assert r1.lo <= -1.0 and r1.hi >= 11.0 and r1.step > 0
    assert slider_ranges.clamp_to_ranges([100.0, -100.0], [r0, r1]) == [r0.hi, r1.lo]
    # LatentCache.latent_stats() layout: one array per statistic
    arrays = {"mean": np.array([0.0, 5.0]), "std": np.array([1.0, 0.0]), "q01": np.array([-2.3, np.nan]),
              "q99": np.array([2.4, np.nan])}
    a0, a1 = slider_ranges.slider_ranges(arrays, ["z0", "z1"])
    assert (a0.lo, a0.hi) == (r0.lo, r0.hi)
    assert a1.lo < 5.0 < a1.hi  # zero std and no percentiles: a usable range around the mean


def test_influence_verdict_mentions_skips():
    text = sentences.influence_verdict([1.0, 0.5, 0.001], has_skips=True, decoded_vs_data=0.05)
    assert "1 of 3" in text and "skip connections" in text and "nearly the same image" in text
    assert "skip" not in sentences.influence_verdict([1.0, 0.5], has_skips=False)


def test_carry_text_says_whether_the_latent_beats_pca():
    ev = {"latent_dim": 8, "skip_mode": "unet", "effective_dim": 1.2,
          "rows": {"full": {"mse": 1e-4}, "latent_only": {"mse": 0.02}, "pca": {"mse": 0.01},
                   "mean_image": {"mse": 0.04}}}
    s = sentences.carry_text(ev)
    assert s["latent_vs_pca"] == pytest.approx(2.0) and not s["beats_pca"]
    assert "does NOT beat PCA-8" in s["sentence"] and "around the bottleneck" in s["sentence"]
    assert s["sentence"].count("50% of the error of the mean image") == 1  # said once, in the headline
    assert "1.20 of 8" in s["sentence"]
    # the plain statement: latent only vs PCA-8 vs the full model, as shares of the mean image's error removed
    assert s["carried"] == pytest.approx({"full": 0.9975, "latent_only": 0.5, "pca": 0.75})
    assert s["headline"] == ("How much of the image the 8 numbers carry: decoded from them alone, the model removes "
                             "50% of the error of the mean image; PCA with 8 components removes 75%; the full "
                             "model, whose skip connections pass the image around the numbers, 100%.")
    assert s["sentence"].startswith(s["headline"])
    ev["decoded_vs_data"] = 0.05
    assert "vary 5% as much as the real ones, so the sliders barely change" in sentences.carry_text(ev)["sentence"]
    ev["rows"]["latent_only"]["mse"] = 0.005
    ev["skip_mode"] = "none"
    s = sentences.carry_text(ev)
    assert s["beats_pca"] and "beats PCA-8" in s["sentence"] and "bottleneck" not in s["sentence"]
    ev["rows"]["latent_only"]["mse"] = 0.08
    assert "worse than simply predicting the mean image" in sentences.carry_text(ev)["sentence"]
    ev["rows"]["latent_only"]["mse"] = 0.01
    del ev["rows"]["pca"]  # no baseline, no headline: the share is said in the details
    assert "It removes 75% of the error of the mean image." in sentences.carry_text(ev)["sentence"]


def test_evaluation_caption_turns_the_cache_codes_into_words():
    ev = {"n_images": 12, "n_train_images_for_baselines": 40}
    codes = ("validation", "unseen", "training", "all", "sample")
    said = {code: sentences.evaluation_caption({**ev, "images": code}) for code in codes}
    assert said["validation"] == ("Measured on 12 images (the checkpoint's validation split); baselines fitted on 40 "
                                  "training images.")
    assert "(images the model did not train on)" in said["unseen"]
    assert "(every image, training images included)" in said["all"]
    assert all(f"({code})" not in text for code, text in said.items())  # never the bare code
    # an older evaluation's phrase: shown as it is
    assert "(all images in /data/x)" in sentences.evaluation_caption({**ev, "images": "all images in /data/x"})
    assert "Measured on ? images" in sentences.evaluation_caption({})


def test_map_fallback_says_why_the_map_is_pca():
    from types import SimpleNamespace

    from astroae_core.analysis import MIN_UMAP_POINTS

    def umap(fallback, error=None):  # what the sentence reads of a cache's meta.umap
        return SimpleNamespace(method="pca", fallback=fallback, error=error)

    few = sentences.map_fallback(umap("too_few_images"))
    assert few == f"Too few images for a UMAP (it needs at least {MIN_UMAP_POINTS}): showing PCA."
    failed = sentences.map_fallback(umap("umap_failed", "ValueError: nan"))
    assert failed == "UMAP failed on these latents (ValueError: nan): showing PCA."
    assert sentences.map_fallback(umap(None)) == "This cache has no UMAP: showing PCA."


def test_streamlit_progress_draws_stage_and_count():
    from dashboard.jobs import StreamlitProgress

    class Bar:
        def __init__(self):
            self.calls = []

        def progress(self, value, text=""):
            self.calls.append((value, text))

    bar = Bar()
    progress = StreamlitProgress(bar, "Encoding")
    progress(5, 20, "encode")
    progress(0, 0, "maps")  # unknown length: the bar stays where it was, the stage is named
    progress(20, 20, "Encoding")
    assert bar.calls == [(0.25, "Encoding — encode: 5 / 20"), (0.25, "Encoding — maps…"),
                         (1.0, "Encoding: 20 / 20")]


# ----------------------------------------------------------------------------------------------------------------
# tables: selections, exports, outliers, search


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    n = 30
    return pd.DataFrame({
        "id": np.arange(n), "path": [f"set/obj_{i:03d}.fits" for i in range(n)], "split": ["train", "val"] * 15,
        "z0": rng.normal(size=n), "z1": rng.normal(size=n), "z10": rng.normal(size=n),
        "mse": rng.uniform(0, 1, n), "ssim": rng.uniform(0, 1, n), "anomaly_score": rng.uniform(0, 1, n),
        "pca_x": rng.normal(size=n), "pca_y": rng.normal(size=n), "umap_x": rng.normal(size=n),
        "umap_y": rng.normal(size=n), "ra": np.full(n, 150.0), "dec": np.full(n, 2.0),
        "catalog.kind": ["galaxy"] * 27 + ["merger"] * 3,
    }).assign(anomaly_rank=lambda d: d["anomaly_score"].rank(ascending=False).astype(int))


def test_selection_ids(table):
    sel = {"points": [{"customdata": [3]}, {"customdata": [7]}, {"customdata": [3]}, {"x": 1}], "box": [{}]}
    ids = selection.selection_ids(sel)
    assert ids == [3, 7]
    assert selection.selection_ids(None) == [] and selection.selection_ids({"points": []}) == []
    # ids that travelled through JSON as strings still match
    assert list(selection.rows_for_ids(table, ["7", "3"])["id"]) == [7, 3]


def test_outliers_axes_colours_and_search(table):
    top = top_outliers(table, 3)
    assert list(top["anomaly_rank"]) == [1, 2, 3]
    assert selection.map_axes(table, "UMAP") == ("umap_x", "umap_y")
    assert selection.map_axes(table.assign(umap_x=np.nan), "UMAP") == ("pca_x", "pca_y")
    opts = selection.color_options(table)
    assert opts[0] == "anomaly_score" and "catalog.kind" in opts and "path" not in opts and "pca_x" not in opts
    from astroae_core.analysis.subset import search_images, sort_rows

    hits = sort_rows(search_images(table, "OBJ_00"), "mse", ascending=False)
    assert len(hits) == 10 and hits["mse"].is_monotonic_decreasing


# ----------------------------------------------------------------------------------------------------------------
# figures


def test_image_panels_shared_stretch_and_hover_values():
    class Rec:
        flux = np.linspace(0, 100, 16 * 16, dtype=np.float32).reshape(16, 16)
        flux_hat = flux * 0.5
        flux_latent = flux * 0.25
        skip_mode = "unet"

    panels = plots.reconstruction_panels(Rec, "linear", "inferno")
    assert [p.title for p in panels][0] == "original" and "full" in panels[1].title
    # one stretch from the original: the half-bright reconstruction shows at half the display value
    np.testing.assert_allclose(panels[1].display, panels[0].display * 0.5, atol=1e-6)
    np.testing.assert_allclose(panels[2].hover, Rec.flux - Rec.flux_hat)
    assert panels[2].zmid == 0 and panels[2].zmin == -panels[2].zmax
    lat = plots.reconstruction_panels(Rec, "linear", "gray", latent_only=True)
    assert "latent-only" in lat[1].title
    fig = plots.image_panels(panels)
    assert len(fig.data) == 3 and all(tr.type == "heatmap" for tr in fig.data)
    assert fig.data[0].z.shape == (16, 16) and fig.data[0].customdata.shape == (16, 16)
    assert fig.data[2].colorscale[0][1] != fig.data[0].colorscale[0][1]  # diverging residual scale
    assert fig.data[0].customdata[15, 15] == pytest.approx(100.0)
    assert "%{customdata" in fig.data[0].hovertemplate
    for ax in (fig.layout.xaxis, fig.layout.yaxis, fig.layout.xaxis3, fig.layout.yaxis3):
        assert ax.ticks == "" and ax.showticklabels is False  # no stray tick marks beside the images


def test_decoded_image_figure_changes_with_the_image():
    a = plots.decoded_image(np.zeros((8, 8)), "linear", "gray")
    b = plots.decoded_image(np.full((8, 8), 0.5), "linear", "gray")
    assert len(a.data) == 1 and not np.array_equal(a.data[0].z, b.data[0].z)


def test_latent_map_traces(table):
    fig = plots.latent_map(table, "umap_x", "umap_y", "mse", outlier_ids=[1, 2], highlight_id=5,
                           neighbor_ids=[6, 7, 8], uploads=[{"name": "up.fits", "x": 0.0, "y": 0.0}])
    types = {tr.type for tr in fig.data}
    assert types == {"scattergl"}
    names = [tr.name for tr in fig.data]
    assert names == ["mse", "outliers", "nearest neighbours", "chosen image", "uploads"]
    assert len(fig.data[0].x) == len(table)
    assert list(np.ravel(fig.data[1].customdata)) == [1, 2]
    assert fig.layout.dragmode == "pan"  # a click selects a point in pan mode (not in lasso mode)
    cat = plots.latent_map(table, "pca_x", "pca_y", "catalog.kind")
    assert [tr.name for tr in cat.data] == ["galaxy", "merger"]
    assert sum(len(tr.x) for tr in cat.data) == len(table)
    none = plots.latent_map(table, "pca_x", "pca_y", None)
    assert len(none.data) == 1 and np.ravel(none.data[0].customdata)[4] == 4


def test_latent_map_with_missing_colour_values(table):
    t = table.assign(mse=np.where(np.arange(len(table)) < 5, np.nan, table["mse"]))
    fig = plots.latent_map(t, "pca_x", "pca_y", "mse")
    assert fig.data[0].name == "mse missing" and len(fig.data[0].x) == 5 and len(fig.data[1].x) == 25


def test_metric_histograms_by_split(table):
    fig = plots.metric_histograms(table.assign(ms_ssim=0.5))
    assert len(fig.data) == 2 * 3  # two splits x three metrics
    assert [a.text for a in fig.layout.annotations] == ["log₁₀ MSE", "SSIM", "MS-SSIM"]
    mse_train = table.loc[table["split"] == "train", "mse"].to_numpy()
    np.testing.assert_allclose(fig.data[0].x, np.log10(mse_train))  # MSE binned in decades
    np.testing.assert_allclose(fig.data[1].x, table.loc[table["split"] == "train", "ssim"])
    fig = plots.metric_histograms(table.assign(ms_ssim=np.nan))  # small images: no MS-SSIM, no empty panel
    assert len(fig.data) == 2 * 2 and len(fig.layout.annotations) == 2


def test_training_curves_and_baselines():
    hist = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.5 / e + (e == 3), "val_mse": 0.1 / e,
             "val_latent_mse": 0.2 / e} for e in range(1, 6)]
    fig = plots.training_curves(hist)
    assert [tr.name for tr in fig.data] == ["train loss", "validation loss", "val MSE (full)", "val MSE (latent only)"]
    assert any("best epoch 5" in (a.text or "") for a in fig.layout.annotations)
    assert len(plots.training_curves([]).data) == 0
    # A model without skips: full and latent-only validation MSE are one series, drawn once.
    same = [dict(h, val_latent_mse=h["val_mse"]) for h in hist]
    assert [tr.name for tr in plots.training_curves(same).data] == ["train loss", "validation loss",
                                                                     "val MSE (latent only = full)"]
    rows = {"full": {"mse": 1e-4, "ssim": 0.99, "ms_ssim": 0.99}, "latent_only": {"mse": 0.01, "ssim": 0.8,
            "ms_ssim": float("nan")}, "pca": {"mse": 0.02, "ssim": 0.7, "ms_ssim": 0.8},
            "mean_image": {"mse": 0.05, "ssim": 0.5, "ms_ssim": 0.6}}
    fig = plots.baseline_bars(rows, latent_dim=8)
    assert len(fig.data) == 3 and list(fig.data[0].x) == ["full (with skips)", "latent only", "PCA-8", "mean image"]
    assert fig.data[2].text[1] == "n/a"
    for r in rows.values():
        r["ms_ssim"] = float("nan")  # small images: no MS-SSIM panel at all
    assert len(plots.baseline_bars(rows).data) == 2
    nos = plots.baseline_bars(rows, skip_mode="none")
    assert list(nos.data[0].x) == ["model (no skips)", "PCA-8", "mean image"]


def test_influence_bars_and_image_grid():
    fig = plots.influence_bars([0.5, 0.01], ["z0", "z1"], {"z0": ("hlr", 0.8)})
    assert list(fig.data[0].x) == ["z0", "z1"] and "hlr" in fig.data[0].text[0]
    tiles = np.zeros((6, 4, 4, 3), np.uint8)
    g = plots.image_grid(tiles, 3, row_labels=["a", "b"], col_labels=["-1", "0", "+1"])
    assert g.data[0].type == "image" and g.data[0].source.startswith("data:image/png;base64,")
    assert list(g.layout.xaxis.ticktext) == ["-1", "0", "+1"] and list(g.layout.yaxis.ticktext) == ["a", "b"]
