"""Outlier review: the reasons name the score that flagged each image (crafted data), the user's ranking learns a
planted rule and is seeded, and the page (AppTest) shows reasons on its cards and keeps a label clicked there."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from astroae_core.analysis import anomaly_scores
from astroae_core.analysis.reasons import explain, score_zscores
from astroae_core.analysis.rerank import MIN_PER_CLASS, rerank

from .conftest import ROOT, blob_image, write_blob_folder

N = 400


def crafted(seed: int = 0) -> pd.DataFrame:
    """400 ordinary images and four odd ones, each odd in one respect only."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(N, 4))
    mse = rng.lognormal(np.log(2e-5), 0.3, N)
    peak = rng.lognormal(np.log(0.12), 0.2, N)
    flat = np.zeros(N)
    mse[0] = 40 * 2e-5          # row 0: reconstructed badly
    z[1] = [12.0, -12.0, 12.0, -12.0]  # row 1: alone in latent space
    peak[2] = 0.95              # row 2: one pixel far off
    flat[3], mse[3] = 0.62, 1e-5  # row 3: a zero-filled edge, reconstructed better than most
    s = anomaly_scores(z, mse, extra={"peak": peak, "flat": flat})
    cols = {f"z{i}": z[:, i] for i in range(4)}
    return pd.DataFrame({"id": [f"img{i:03d}" for i in range(N)], **cols, "mse": mse, **s})


def test_reasons_name_the_score_that_flagged_each_image():
    t = crafted()
    np.testing.assert_allclose(score_zscores(t).max(axis=1), t["anomaly_score"], rtol=1e-12)
    assert set(t.sort_values("anomaly_rank").index[:4]) == {0, 1, 2, 3}
    why = explain(t, [0, 1, 2, 3, 10])
    assert why["flagged_by"].tolist()[:4] == ["score_recon", "score_density", "score_peak", "score_flat"]
    r = why["reason"]
    ratio = 40 * 2e-5 / np.median(t["mse"])
    assert re.search(rf"Reconstruction error \d+ sigma above the dataset's: MSE 0.0008, {ratio:.0f}x the median", r[0])
    assert "Isolated in latent space" in r[1] and "x the typical distance" in r[1]
    assert r[2].startswith("One pixel far from its reconstruction: the largest residual is 0.95")
    assert r[3].startswith("62% of the image is one flat value") and "399 of the 400 images have no such region" in r[3]
    # the edge is reconstructed well: the reason says that the error is not what makes it strange
    assert "Its reconstruction is ordinary (MSE lower than 98% of the images)" in r[3]
    assert "what stands out is its flat region" in r[3]
    assert "reconstruction is ordinary" not in r[0]
    assert why.at[3, "z"] == pytest.approx(t.at[3, "anomaly_score"])


def test_other_high_scores_are_named_too():
    t = crafted()
    rows = t.copy()
    rows.loc[5, "mse"], rows.loc[5, "score_recon"] = 1e-3, 1e-3
    rows.loc[5, "score_peak"] = 0.99
    why = explain(rows, [5])
    assert why.at[5, "flagged_by"] in ("score_recon", "score_peak")
    other = "one pixel far" if why.at[5, "flagged_by"] == "score_recon" else "reconstruction error"
    assert f"Also {other}" in why.at[5, "reason"]


def test_explain_refuses_a_table_without_scores():
    with pytest.raises(ValueError, match="no score_"):
        explain(pd.DataFrame({"id": ["a"], "mse": [1.0]}))


def _planted(seed: int = 0):
    """Interesting = z0 above 1 (about 16% of the images); the user labelled 8 of each kind and 12 others."""
    t = crafted(seed)
    rng = np.random.default_rng(seed + 1)
    good = np.flatnonzero(t["z0"] > 1)
    bad = np.flatnonzero(t["z0"] <= 1)
    labels = np.full(N, "", dtype=object)
    labels[rng.choice(good, 8, replace=False)] = "interesting"
    labels[rng.choice(bad, 12, replace=False)] = rng.choice(["normal", "artefact"], 12)
    return t, labels


def test_rerank_learns_a_planted_rule_and_is_seeded():
    t, labels = _planted()
    r = rerank(t, labels, seed=3)
    assert r.ready and (r.n_positive, r.n_negative) == (8, 12)
    s = r.scores
    assert s["user_rank"].isna().sum() == 20 and s.loc[labels != "", "user_rank"].isna().all()
    top = s["user_rank"].dropna().sort_values().index[:25]
    base_rate = (t.loc[labels == "", "z0"] > 1).mean()
    hit_rate = (t.loc[top, "z0"] > 1).mean()
    assert base_rate < 0.2 and hit_rate >= 0.8, (base_rate, hit_rate)
    # the anomaly ranking knows nothing of the rule
    assert (t.loc[t.sort_values("anomaly_rank").index[:25], "z0"] > 1).mean() < 0.5
    again = rerank(t, labels, seed=3).scores
    pd.testing.assert_frame_equal(s, again)
    other = rerank(t, labels, seed=4).scores
    assert not np.array_equal(s["user_score"].to_numpy(), other["user_score"].to_numpy())


def test_rerank_waits_for_enough_labels_of_both_kinds():
    t, labels = _planted()
    few = labels.copy()
    few[np.flatnonzero(few == "interesting")[MIN_PER_CLASS - 1:]] = ""
    r = rerank(t, few)
    assert not r.ready and r.scores is None and r.n_positive == MIN_PER_CLASS - 1
    assert r.missing() == "1 more interesting"
    with pytest.raises(ValueError, match="one per row"):
        rerank(t, labels[:5])


# ----------------------------------------------------------------------------------------------------------------
# the page (AppTest)


def write_review_folder(folder: Path) -> Path:
    """24 blobs and one with a zero-filled half (a detector edge): the edge is the strangest image."""
    write_blob_folder(folder, 24, seed=5)
    img = blob_image(np.random.default_rng(9), 32)
    img[:, :14] = 0.0
    fits.PrimaryHDU(img).writeto(folder / "edge_999.fits")
    return folder


@pytest.fixture(scope="module")
def review_env(tmp_path_factory):
    from astroae_core.cache import encode_folder

    root = tmp_path_factory.mktemp("review")
    data = write_review_folder(root / "data" / "blobs")
    cache = encode_folder(ROOT / "models" / "demo.pt", data, root / "cache", progress=None)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ASTROAE_DATA_ROOT", str(root / "data"))
        mp.setenv("ASTROAE_CACHE", str(cache))
        yield {"root": root, "cache": Path(cache)}


def _open_review():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=300).run()
    at.switch_page("app_pages/outliers.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


@pytest.mark.slow
def test_the_page_shows_reasons_and_keeps_a_label(review_env):
    from astroae_core.cache import load_cache
    from astroae_core.cache.labels import load_labels

    at = _open_review()
    assert at.title[0].value == "Outlier review"
    heads = [m.value for m in at.markdown if m.value.startswith("**#")]
    assert heads[0].startswith("**#1** · edge\\_999")
    assert ":orange-badge[flat region]" in [m.value for m in at.markdown][2]
    captions = [c.value for c in at.caption]
    assert any(re.match(r"4\d% of the image is one flat value", c) for c in captions), captions
    assert sum("sigma" in c for c in captions) >= 10  # every card says why with its numbers
    table = at.dataframe[0].value
    assert len(table) == 25 and table["why"].str.len().min() > 20 and table["rank"].tolist() == list(range(1, 26))
    key = next(b.key for b in at.button_group if b.key.startswith("label_") and b.key.endswith("edge_999"))
    at.button_group(key=key).set_value("artefact").run()
    tag_key = key.replace("label_", "tags_", 1)
    at.text_input(key=tag_key).set_value("zero edge, chip gap").run()
    assert not at.exception
    cache = load_cache(review_env["cache"])
    lab = load_labels(cache).set_axis(cache.table["id"].to_numpy())
    assert lab.at["edge_999", "label"] == "artefact" and lab.at["edge_999", "tags"] == "zero edge, chip gap"
    again = _open_review()  # a new session reads it back
    assert again.button_group(key=key).value == "artefact"
    assert again.dataframe[0].value.set_index("image").at["edge_999", "label"] == "artefact"
    assert any("1 normal or artefact" in m.value for m in again.markdown)


# ----------------------------------------------------------------------------------------------------------------
# the latent map's colours and labels


def test_map_colour_scales_spread_a_skewed_score():
    from dashboard import map_colors

    rng = np.random.default_rng(1)
    v = np.r_[rng.lognormal(0, 0.3, 997), 50.0, 80.0, np.nan]
    assert map_colors.default_scale("anomaly_score", v) == "rank"
    assert map_colors.default_scale("mse", v) == "log"
    assert map_colors.default_scale("z0", rng.normal(size=500)) == "linear"
    c, ticks, text = map_colors.scaled(v, "rank")
    np.testing.assert_allclose(np.sort(c[:-1]), np.linspace(0, 1, 999), atol=1e-6)  # evenly spread
    assert np.isnan(c[-1]) and ticks[0] == 0 and ticks[-1] == 1 and text[-1] == "80"
    lin, _, _ = map_colors.scaled(v, "linear")
    assert (lin[:997] < 0.05 * 80).all()  # linear: every ordinary image at the bottom of the bar
    lg, lticks, ltext = map_colors.scaled(v, "log")
    order = np.argsort(v[:-1])
    assert np.all(np.diff(lg[:-1][order]) >= 0) and ltext[-1] == "80"
    assert np.all(np.diff(lticks) >= 0.06 * (lticks[-1] - lticks[0]) - 1e-9)  # tick labels never overlap
    with pytest.raises(ValueError, match="not one of"):
        map_colors.scaled(v, "sqrt")


def test_map_marks_labelled_images_and_colours_by_label():
    from dashboard import plots

    t = crafted()
    t["umap_x"], t["umap_y"] = t["z0"], t["z1"]
    labels = pd.Series("", index=t.index)
    labels.iloc[[3, 7]] = "interesting"
    labels.iloc[9] = "artefact"
    fig = plots.latent_map(t, "umap_x", "umap_y", "anomaly_score", color_scale="rank", labels=labels)
    by_name = {tr.name: tr for tr in fig.data}
    assert [c[0] for c in by_name["labelled interesting"].customdata] == ["img003", "img007"]
    assert [c[0] for c in by_name["labelled artefact"].customdata] == ["img009"]
    assert "labelled normal" not in by_name
    assert by_name["anomaly_score"].marker.colorbar.title.text == "anomaly_score (rank)"
    fig = plots.latent_map(t, "umap_x", "umap_y", "label", labels=labels)
    names = [tr.name for tr in fig.data]
    assert names[0] == "unlabelled" and len(fig.data[0].x) == N - 3
