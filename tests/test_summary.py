"""What a cache and an evaluation say (astroae_core.analysis.summary): how much the latent carries, each dimension's
influence and the column it tracks, the strangest and worst images."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from astroae_core.analysis import (carry_summary, influence_summary, latent_influence, top_outliers, tracked_columns,
                                   worst_images)

from .test_inference import LinearDecoder

ROOT = Path(__file__).resolve().parents[1]


def test_latent_influence_reads_the_cache_or_measures_it_on_the_previews():
    stored = {"vs_data": [0.5, 0.0], "relative": [2.0, 0.0], "decoded_vs_data": 0.25, "change": [0.1, 0.0]}
    cache = SimpleNamespace(meta=SimpleNamespace(influence=stored))
    out = latent_influence(cache, model=None)  # stored: the model is not even needed
    assert out["stored"] and list(out["vs_data"]) == [0.5, 0.0] and out["decoded_vs_data"] == 0.25

    # an older cache: measured now, the previews (uint8 thumbnails) standing in for the real images
    rng = np.random.default_rng(0)
    w = rng.normal(size=(16, 3))
    w[:, 1] = 0.0  # the decoder ignores z1
    z = rng.normal(size=(40, 3)).astype(np.float32)
    previews = np.zeros((40, 4, 4), dtype=np.uint8)
    previews[::2] = 255  # half white, half black: every pixel deviates by 0.5 from the mean (all 40 sampled)
    old = SimpleNamespace(meta=SimpleNamespace(influence=None), latents=lambda: z, previews=previews)
    out = latent_influence(old, LinearDecoder(w, 4), max_images=40)
    assert not out["stored"] and out["vs_data"][1] == 0.0
    change = 2 * z.std(0) * np.abs(w).mean(0)  # linear decoder: the analytic change
    np.testing.assert_allclose(out["vs_data"], change / 0.5, rtol=1e-4)


def test_influence_summary_counts_the_weak_dimensions():
    assert influence_summary([1.0, 0.5, 0.001]) == {"strongest": 1.0, "weak": 1, "n": 3}
    assert influence_summary([0.0, 0.0]) == {"strongest": 0.0, "weak": 2, "n": 2}
    assert influence_summary([]) is None and influence_summary([np.nan]) is None


def test_tracked_columns_pick_the_largest_absolute_correlation():
    corr = pd.DataFrame({"flux": [0.1, -0.9], "hlr": [0.7, 0.2]}, index=["z0", "z1"])
    tr = tracked_columns(corr, ["z0", "z1", "z2"])
    assert tr == {"z0": ("hlr", 0.7), "z1": ("flux", -0.9)}
    assert tracked_columns(None, ["z0"]) == {}


def test_carry_summary_says_whether_the_latent_beats_pca():
    ev = {"latent_dim": 8, "skip_mode": "unet", "effective_dim": 1.2,
          "rows": {"full": {"mse": 1e-4}, "latent_only": {"mse": 0.02}, "pca": {"mse": 0.01},
                   "mean_image": {"mse": 0.04}}}
    s = carry_summary(ev)
    assert s["latent_vs_pca"] == pytest.approx(2.0) and not s["beats_pca"]
    assert s["latent_vs_full"] == pytest.approx(200.0) and s["explained_vs_mean"] == pytest.approx(0.5)
    # the plain statement: latent only vs PCA-8 vs the full model, as shares of the mean image's error removed
    assert s["carried"] == pytest.approx({"full": 0.9975, "latent_only": 0.5, "pca": 0.75})
    ev["rows"]["latent_only"]["mse"] = 0.005
    assert carry_summary(ev)["beats_pca"]
    del ev["rows"]["pca"], ev["rows"]["mean_image"]
    s = carry_summary(ev)
    assert s["latent_vs_pca"] is None and not s["beats_pca"] and s["carried"] == {}
    assert s["explained_vs_mean"] is None


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    n = 30
    return pd.DataFrame({"id": np.arange(n), "mse": rng.uniform(0, 1, n), "ssim": rng.uniform(0, 1, n),
                         "anomaly_score": rng.uniform(0, 1, n)}).assign(
        anomaly_rank=lambda d: d["anomaly_score"].rank(ascending=False).astype(int))


def test_top_outliers_by_rank_else_score(table):
    top = top_outliers(table, 3)
    assert list(top["anomaly_rank"]) == [1, 2, 3]
    by_score = top_outliers(table.drop(columns="anomaly_rank"), 3)
    assert list(by_score["id"]) == list(top["id"])
    assert len(top_outliers(table[["id", "mse"]], 3)) == 0


def test_worst_images_highest_error_lowest_similarity(table):
    assert list(worst_images(table, "mse", 4)["mse"]) == sorted(table["mse"], reverse=True)[:4]
    assert list(worst_images(table, "ssim", 4)["ssim"]) == sorted(table["ssim"])[:4]


def test_distance_from_training_against_the_models_own_validation_error():
    from types import SimpleNamespace

    from astroae_core.analysis import FAR_FROM_TRAINING, distance_from_training

    model = SimpleNamespace(checkpoint_info={"history": [{"val_latent_mse": 9.0}, {"val_latent_mse": 2.0}]})
    near = distance_from_training([1.0, 2.0, 3.0, np.nan], model)  # the last epoch's error; NaN ignored
    assert near == {"median_latent_mse": 2.0, "val_latent_mse": 2.0, "ratio": 1.0, "far": False,
                    "held_out": "validation"}
    far = distance_from_training([2.0 * FAR_FROM_TRAINING * 1.5] * 3, model)
    assert far["far"] and far["ratio"] == pytest.approx(FAR_FROM_TRAINING * 1.5)
    assert distance_from_training([], model) is None
    assert distance_from_training([1.0], SimpleNamespace(checkpoint_info={})) is None
    # trained on every image: no validation error, the cross-validation's held-out error stands for it
    every = SimpleNamespace(checkpoint_info={"history": [{"train_loss": 1.0}],
                                             "crossval": {"latent_mse": {"mean": 0.5}}})
    got = distance_from_training([4.0] * 3, every)
    assert (got["ratio"], got["far"], got["held_out"]) == (8.0, True, "crossval")

    from dashboard.sentences import far_from_training

    assert "the held-out objects of its recipe's cross-validation" in far_from_training(got, k=8)


def test_the_demo_model_on_real_galaxies_is_far_from_its_training(ceers_dir):
    from astroae_core.analysis import distance_from_training, run_model
    from astroae_core.data import load_folder
    from astroae_core.model import load_model

    demo = load_model(ROOT / "models" / "demo.pt")
    x = load_folder(ceers_dir, config=demo.preprocess_config, max_files=21).x
    out = run_model(demo, x)
    mse = ((out["x_hat_latent"] - x) ** 2).reshape(len(x), -1).mean(1)
    assert distance_from_training(mse, demo)["far"]
