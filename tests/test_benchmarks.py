"""Benchmarks (their ``--quick`` smoke runs print the expected JSON) and the scale paths they chose: UMAP fitted on
a sample with the rest transformed, new images placed from their neighbours, the latent map's compact customdata above
``selection.MAP_ROWS_AS_CUSTOMDATA_ABOVE`` points, BatchNorm folding."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from .conftest import ROOT


def _run_quick(module: str, tmp_path) -> dict:
    out = tmp_path / f"{module}.json"
    r = subprocess.run([sys.executable, "-m", f"benchmarks.{module}", "--quick", "--out", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=900, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    printed = json.loads(r.stdout)
    assert json.loads(out.read_text()) == printed  # --out holds what was printed
    assert printed["quick"] is True and printed["benchmark"] == module
    assert {"cpu_count", "load_avg_1min", "training_running"} <= set(printed["machine"])
    return printed


# ---------------------------------------------------------------------------------------------------------------
# smoke runs of every benchmark


@pytest.mark.slow
def test_inference_quick_reports_throughput_beside_the_roofline(tmp_path):
    r = _run_quick("inference", tmp_path)
    assert r["matmul_float32_gflops"] > 0
    m = r["models"]["demo"]
    assert m["encode_gflop_per_image"] > 0 and m["encode_roofline_images_per_s"] > 0
    for variant in ("baseline", "fast", "fused"):
        for row in m["encode"][variant].values():
            assert row["images_per_s"] > 0
            assert row["roofline_ratio"] == pytest.approx(row["images_per_s"] / m["encode_roofline_images_per_s"],
                                                          rel=1e-2, abs=1e-4)
    assert m["decode_one"]["fused"]["p50_ms"] > 0 and m["decode_one"]["fused"]["p95_ms"] >= \
        m["decode_one"]["fused"]["p50_ms"]
    (train,) = m["train"].values()
    assert train["images_per_s"] > 0 and 0 < train["roofline_ratio"]


@pytest.mark.slow
def test_fits_reading_quick_reports_files_per_second(tmp_path, ceers_dir):
    r = _run_quick("fits_reading", tmp_path)
    for part in ("ceers", "large"):
        for key in ("read_files_per_s", "read+preprocess_files_per_s", "encode-reader_files_per_s",
                    "encode-reader_2_threads_files_per_s", "thread_speedup"):
            assert r[part][key] > 0, (part, key)
    assert r["ceers"]["n_files"] == 20 and r["large"]["side"] == 1024


@pytest.mark.slow
def test_projections_quick_reports_fit_times_memory_and_placement(tmp_path):
    r = _run_quick("projections", tmp_path)
    row = r["sizes"]["2000"]
    assert row["pca"]["fit_seconds"] > 0 and row["pca"]["finite"]
    assert row["umap-full"]["n_fit"] == 2000 and row["umap-full"]["finite"]
    assert row["umap-full"]["peak_rss_mb"] >= row["umap-full"]["rss_with_data_mb"] > 0
    assert row["umap-full"]["transform_one_point"]["p50_ms"] > 0
    placed = row["umap-full"]["neighbour_placement"]
    assert placed["one_point"]["p50_ms"] > 0 and 0 <= placed["vs_transform_median"] < 0.05
    cold = row["place-cold"]
    assert cold["first_place_s"] > 0 and cold["second_place_ms"] > 0


@pytest.mark.slow
def test_cache_scale_quick_reports_load_app_and_encode_memory(tmp_path):
    r = _run_quick("cache_scale", tmp_path)
    c = r["caches"]["2000"]
    assert c["load"]["rows"] == 2000 and c["load"]["load_s"] > 0
    assert c["apptest"]["errors"] == [] and c["apptest"]["charts"] >= 1
    assert c["apptest"]["cold_start_to_map_s"] > 0
    if "browser" in c:
        assert c["browser"]["points_drawn"] >= 2000 and c["browser"]["server_peak_rss_mb"] > 0
        assert "errors" not in c["browser"]
    assert r["encode"]["100"]["n_images"] == 100 and r["encode"]["300"]["n_images"] == 300
    assert r["encode"]["300"]["peak_rss_mb"] > 0
    assert "encode_rss_mb_extrapolated_100k" in r
    stages = r["encode"]["300"]["stage_peak_rss_mb"]
    assert set(stages) == {"before", "encode", "maps", "report"}
    # each stage's peak is its own, and none is above the process's
    assert all(0 < v <= r["encode"]["300"]["peak_rss_mb"] + 1 for v in stages.values())
    assert set(r["encode_stage_rss_mb_per_1k_images"]) == {"before", "encode", "maps", "report"}


def test_stage_peaks_are_each_stages_own():
    import numpy as np

    from benchmarks._common import StagePeaks

    stages = StagePeaks()
    stages(0, 0, "encode")
    big = np.ones(400_000_000 // 8)  # 400 MB touched in the first stage only
    del big
    stages(0, 0, "maps")
    small = np.ones(10_000_000 // 8)
    del small
    peaks = stages.finish()
    if peaks is None:
        pytest.skip("this kernel does not let a process reset its peak RSS")
    assert peaks["encode"] - peaks["maps"] > 300


# ---------------------------------------------------------------------------------------------------------------
# the pieces they rely on


@pytest.mark.slow
def test_batch_statistics_quick_reports_the_fit_and_the_cost_of_batch_statistics(tmp_path, ceers_dir):
    r = _run_quick("batch_statistics", tmp_path)
    assert r["n_images"] == 32 and r["batch"] == 16 and r["n_train_images"] == 700  # ceers.pt trained on all
    fit = r["fit_on_training_images"]
    assert fit["ratio"] == pytest.approx(fit["latent_only_mse"] / fit["pca8_mse"])
    # models/ceers.pt trained its last epochs on running statistics: batch statistics can only hurt it. Its latent
    # is standardized by its PCA anchor's scales, with no BatchNorm of its own.
    assert r["mse_batch_statistics"]["latent"] is None and "latent_batch_mean_spread_sd" not in r
    for which in ("conv", "all"):
        assert r["mse_batch_statistics"][which] > r["mse_running_statistics"] > 0, which


def test_batch_statistics_leave_the_running_statistics_and_the_model_alone():
    import torch

    from astroae_core.model import AutoEncoder, ModelConfig
    from benchmarks.batch_statistics import batchnorm_groups, mse_with_batch_statistics

    torch.manual_seed(0)
    model = AutoEncoder(ModelConfig(in_size=32, latent_dim=4, channels=(4, 8), standardize_latent=True)).eval()
    groups = batchnorm_groups(model)
    assert len(groups["latent"]) == 1 and len(groups["conv"]) == 8 and len(groups["all"]) == 9
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(8, 1, 32, 32)
    with torch.no_grad():
        running = float(((model(x)["x_hat"] - x) ** 2).mean())
    batch = mse_with_batch_statistics(model, x, which="all", batch=4, repeats=2, seed=0)
    assert batch != pytest.approx(running, rel=1e-6)  # the batch's statistics were used
    assert not model.training
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0, msg=k)


def test_clustered_latents_are_seeded():
    from benchmarks.projections import clustered_latents

    a, b, c = clustered_latents(500, seed=3), clustered_latents(500, seed=3), clustered_latents(500, seed=4)
    assert a.shape == (500, 8) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_percentiles_and_peak_rss():
    from benchmarks._common import peak_rss_mb, percentiles_ms

    p = percentiles_ms([0.001] * 19 + [0.1])
    assert p["p50_ms"] == pytest.approx(1.0) and p["p95_ms"] > p["p50_ms"] and p["n"] == 20
    before = peak_rss_mb()
    block = np.ones(64 * 2**20 // 8)  # 64 MiB touched
    assert peak_rss_mb() >= before and peak_rss_mb() > 60 and block.sum() > 0


def test_fused_batchnorm_gives_the_same_latents_and_images():
    import torch

    from astroae_core.model import AutoEncoder, ModelConfig, fused_for_inference
    from benchmarks.inference import flops

    torch.manual_seed(0)
    model = AutoEncoder(ModelConfig(in_size=32, channels=(4, 8), skip_mode="unet"))
    with torch.no_grad():  # non-trivial running statistics, so that folding them in matters
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    model.eval()
    fused = fused_for_inference(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    x = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = model(x), fused(x)
        torch.testing.assert_close(b["z"], a["z"], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(b["x_hat"], a["x_hat"], rtol=1e-4, atol=1e-5)
    assert flops(model.encode, x[:1]) > 0


def test_synthetic_cache_loads_as_a_cache(tmp_path):
    from astroae_core.cache import load_cache
    from benchmarks.cache_scale import make_cache

    c = load_cache(make_cache(tmp_path / "c", 300, seed=0))
    assert len(c.table) == 300 and c.previews.shape == (300, 64, 64) and c.latents().shape == (300, 8)
    assert {"umap_x", "anomaly_rank", "ra", "mse"} <= set(c.table.columns)
    assert sorted(c.table["anomaly_rank"]) == list(range(1, 301))
    assert not [p for p in c.path.iterdir() if p.suffix == ".pkl"]  # data only: nothing to unpickle
    placed = c.place(c.latents()[:2])  # an image of the cache lands on its own point of the map
    np.testing.assert_array_equal(placed["umap_x"], c.table["umap_x"][:2])


# ---------------------------------------------------------------------------------------------------------------
# UMAP on a sample, the rest transformed


def test_umap_sample_is_seeded_sorted_and_without_repeats():
    from astroae_core.analysis.projections import umap_sample

    a = umap_sample(1000, max_fit=100, seed=1)
    assert len(a) == 100 == len(np.unique(a)) and np.all(np.diff(a) > 0) and a.max() < 1000
    np.testing.assert_array_equal(a, umap_sample(1000, max_fit=100, seed=1))
    assert not np.array_equal(a, umap_sample(1000, max_fit=100, seed=2))
    np.testing.assert_array_equal(umap_sample(50, max_fit=100, seed=1), np.arange(50))


@pytest.mark.slow
def test_umap_on_a_sample_keeps_the_sample_embedding_and_places_the_rest():
    from astroae_core.analysis.projections import fit_umap, umap_sample
    from benchmarks.projections import clustered_latents

    z = clustered_latents(400, seed=5)
    emb, model = fit_umap(z, seed=0, max_fit=150, n_neighbors=10)
    fit = umap_sample(400, max_fit=150, seed=0)
    np.testing.assert_array_equal(emb[fit], model.embedding_)  # the fitted points keep their embedding
    rest = np.setdiff1d(np.arange(400), fit)
    assert np.isfinite(emb[rest]).all()
    # the transformed points land inside the fitted map's extent (with a margin), not at arbitrary coordinates
    lo, hi = model.embedding_.min(0), model.embedding_.max(0)
    margin = 0.25 * (hi - lo)
    assert np.all((emb[rest] > lo - margin) & (emb[rest] < hi + margin))
    emb2, _ = fit_umap(z, seed=0, max_fit=150, n_neighbors=10)
    np.testing.assert_array_equal(emb, emb2)  # seeded: reproducible


# ---------------------------------------------------------------------------------------------------------------
# the latent map at scale


def _map_table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"id": [f"img_{i:05d}" for i in range(n)], "path": [f"a/img_{i:05d}.fits" for i in range(n)],
                         "umap_x": rng.normal(size=n), "umap_y": rng.normal(size=n), "mse": rng.random(n),
                         "kind": np.where(np.arange(n) % 3 == 0, "merger", "galaxy")})


def test_big_map_sends_row_positions_and_selections_come_back_as_exact_ids(monkeypatch):
    from dashboard import plots, selection

    monkeypatch.setattr(selection, "MAP_ROWS_AS_CUSTOMDATA_ABOVE", 50)
    t = _map_table(200)
    t.loc[7, "mse"] = np.nan
    fig = plots.latent_map(t, "umap_x", "umap_y", "mse", outlier_ids=["img_00003", "img_00150"],
                           highlight_id="img_00042", neighbor_ids=["img_00010"])
    missing, main, outl, nbr, chosen = fig.data
    assert sum(len(tr.x) for tr in (missing, main)) == 200  # every point drawn
    for tr in (missing, main, outl, nbr, chosen):
        cd = np.asarray(tr.customdata)
        assert cd.ndim == 1 and cd.dtype.kind == "i"
        np.testing.assert_allclose(tr.x, t["umap_x"].to_numpy(dtype=np.float32)[cd])  # position = row
    assert list(np.asarray(missing.customdata)) == [7]
    assert sorted(np.asarray(outl.customdata)) == [3, 150] and list(np.asarray(chosen.customdata)) == [42]
    assert "image #%{customdata}" in main.hovertemplate
    # what streamlit hands back for a click and a box: positions -> ids, in order, exact
    sel = {"points": [{"customdata": int(main.customdata[i])} for i in (0, 5, 5, 99)], "box": [{}]}
    ids = selection.selection_ids(sel, table=t)
    assert ids == [t["id"].iloc[int(main.customdata[i])] for i in (0, 5, 99)]
    assert selection.selection_ids(None, table=t) == []
    cat = plots.latent_map(t, "umap_x", "umap_y", "kind")
    assert sum(len(tr.x) for tr in cat.data) == 200
    assert sorted(np.concatenate([np.asarray(tr.customdata) for tr in cat.data])) == list(range(200))


def test_small_map_keeps_ids_in_customdata():
    from dashboard import plots, selection

    t = _map_table(30)
    assert len(t) <= selection.MAP_ROWS_AS_CUSTOMDATA_ABOVE
    fig = plots.latent_map(t, "umap_x", "umap_y", None, outlier_ids=["img_00004"])
    assert np.ravel(fig.data[0].customdata)[4] == "img_00004"
    sel = {"points": [{"customdata": ["img_00002"]}, {"customdata": ["img_00004"]}]}
    assert selection.selection_ids(sel, table=t) == selection.selection_ids(sel) == ["img_00002", "img_00004"]


def test_million_point_map_is_compact():
    """A 1M-point figure serializes to binary arrays (x, y, colour, row positions), not a million id strings."""
    import plotly.io as pio

    from dashboard import plots

    n = 1_000_000
    rng = np.random.default_rng(0)
    t = pd.DataFrame({"id": pd.Series(np.arange(n)).map("ceers_{:07d}".format), "umap_x": rng.normal(size=n),
                      "umap_y": rng.normal(size=n), "mse": rng.random(n)})
    text = pio.to_json(plots.latent_map(t, "umap_x", "umap_y", "mse", outlier_ids=["ceers_0000009"]), validate=False)
    assert len(text) < 30e6  # 4 bytes x 4 arrays x 1M, base64: ~21 MB; the id strings would add ~20 MB more
    assert "ceers_0000001" not in text


def test_rows_in_selection_boxes_and_a_concave_lasso_worked_by_hand():
    from dashboard import selection

    # points on a 5x5 grid at 0..4
    gx, gy = np.meshgrid(np.arange(5.0), np.arange(5.0))
    xs, ys = gx.ravel(), gy.ravel()
    box = {"box": [{"x": [2.5, 0.5], "y": [0.5, 1.5]}]}  # corners in either order: x 1..2, y 1
    assert sorted(zip(xs[selection.rows_in_selection(xs, ys, box)], ys[selection.rows_in_selection(xs, ys, box)])) == \
        [(1.0, 1.0), (2.0, 1.0)]
    # an L-shaped (concave) lasso: the square 0.5..3.5 minus its upper-right quarter 2..3.5 x 2..3.5
    ell = {"lasso": [{"x": [0.5, 3.5, 3.5, 2.0, 2.0, 0.5], "y": [0.5, 0.5, 2.0, 2.0, 3.5, 3.5]}]}
    got = set(zip(xs[selection.rows_in_selection(xs, ys, ell)], ys[selection.rows_in_selection(xs, ys, ell)]))
    square = {(float(a), float(b)) for a in (1, 2, 3) for b in (1, 2, 3)}
    # (2, 2), (2, 3), (3, 2) lie on the cut's edges; the even-odd rule puts (3, 2) and (2, 3) outside,
    # (3, 3) is in the removed quarter
    assert {(3.0, 3.0), (3.0, 2.0), (2.0, 3.0)}.isdisjoint(got) and got <= square and (1.0, 1.0) in got
    both = {**box, **ell}
    assert set(selection.rows_in_selection(xs, ys, both)) == set(selection.rows_in_selection(xs, ys, box)) | \
        set(selection.rows_in_selection(xs, ys, ell))
    assert len(selection.rows_in_selection(xs, ys, {"box": [], "lasso": []})) == 0


def test_a_sampled_map_shades_every_point_draws_a_sample_and_selects_every_row_inside(monkeypatch):
    from dashboard import plots, selection

    monkeypatch.setattr(selection, "MAP_ROWS_AS_CUSTOMDATA_ABOVE", 50)
    monkeypatch.setattr(selection, "MAP_POINTS_DRAWN_MAX", 120)
    t = _map_table(1000)
    fig = plots.latent_map(t, "umap_x", "umap_y", "mse", outlier_ids=["img_00999"])
    density, main, outl = fig.data
    assert density.type == "heatmap"
    assert np.nansum(10 ** np.asarray(density.z, dtype=float)) == pytest.approx(1000, rel=1e-3)  # every point
    assert len(main.x) == 120  # the fixed sample
    np.testing.assert_array_equal(np.asarray(main.customdata), selection.map_sample(1000))  # same sample every time
    assert list(np.asarray(outl.customdata)) == [999]  # overlays are drawn whether sampled or not
    # a box over the right half selects every row there, drawn or not
    sel = {"points": [{"customdata": int(main.customdata[0])}], "box": [{"x": [0.0, 10.0], "y": [-10.0, 10.0]}]}
    ids = selection.selection_ids(sel, table=t, axes=("umap_x", "umap_y"))
    assert set(ids) == set(t.loc[t["umap_x"] >= 0, "id"]) and len(ids) > 120
    # a click (no box or lasso) is the clicked point
    click = {"points": [{"customdata": int(main.customdata[3])}]}
    assert selection.selection_ids(click, table=t, axes=("umap_x", "umap_y")) == [t["id"].iloc[int(main.customdata[3])]]


@pytest.mark.slow
def test_decode_latency_quick_reports_the_apps_decode_beside_its_bound(tmp_path):
    r = _run_quick("decode_latency", tmp_path)
    assert r["threads"] == 1 and r["app"]["runtime"] in r["runtimes"]
    for row in (r["app"], *r["runtimes"].values()):
        assert 0 < row["p50_ms"] <= row["p95_ms"]
    assert r["decode_gflop"] > 0.1 and r["bound_ms"] > 0  # the decoder's ~0.34 GFLOP
    assert r["app_p50_vs_bound"] == pytest.approx(r["app"]["p50_ms"] / r["bound_ms"], abs=0.01)
    assert r["target_met"] == (r["app"]["p50_ms"] <= 3.0)
