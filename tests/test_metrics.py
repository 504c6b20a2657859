import warnings

import numpy as np
import pytest
import torch
from pytorch_msssim import ms_ssim, ssim

from astroae_core.analysis import MeanImageBaseline, PCABaseline
from astroae_core.analysis import participation_ratio
from astroae_core.analysis import image_metrics, summarize
from astroae_core.data import preprocess

from .conftest import ROOT, blob_image

# ---------------------------------------------------------------------------------------------------------------
# the batched SSIM / MS-SSIM against pytorch-msssim (data range 1, its defaults), per image


def _reference(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    a, b = torch.from_numpy(x), torch.from_numpy(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pytorch-msssim warns when it skips the blur along a side under 11 px
        out = {"mse": ((a - b) ** 2).flatten(1).mean(1).double().numpy(),
               "ssim": ssim(a, b, data_range=1.0, size_average=False).double().numpy()}
    if min(x.shape[-2:]) > 160:
        out["ms_ssim"] = ms_ssim(a, b, data_range=1.0, size_average=False).double().numpy()
    return out


def _assert_agrees(x, y, *, batch_size: int = 16):
    x, y = np.ascontiguousarray(x, np.float32), np.ascontiguousarray(y, np.float32)
    got, ref = image_metrics(x, y, batch_size=batch_size), _reference(x, y)
    for k, v in got.items():
        assert v.dtype == np.float64 and v.shape == (len(x),), k
    np.testing.assert_allclose(got["mse"], ref["mse"], rtol=1e-6, atol=0)
    np.testing.assert_allclose(got["ssim"], ref["ssim"], rtol=0, atol=1e-4)
    if "ms_ssim" in ref:
        np.testing.assert_allclose(got["ms_ssim"], ref["ms_ssim"], rtol=0, atol=1e-4)
    else:
        assert np.isnan(got["ms_ssim"]).all()
    return got


def _noisy(rng, x, sigma):
    return np.clip(x + rng.normal(0, sigma, x.shape), 0, 1).astype(np.float32)


@pytest.mark.parametrize("shape", [(187, 187), (161, 161), (171, 203), (200, 165), (64, 64), (33, 47), (9, 40),
                                   (40, 9)])
def test_agrees_with_pytorch_msssim_on_random_images(shape):
    rng = np.random.default_rng(sum(shape))
    x = rng.random((5, 1, *shape), dtype=np.float32)
    _assert_agrees(x, _noisy(rng, x, 0.1), batch_size=2)  # a last chunk smaller than the others
    _assert_agrees(x, rng.random(x.shape, dtype=np.float32))  # unrelated: MS-SSIM's terms near zero


def test_agrees_on_demo_like_galaxies_and_their_blurred_reconstructions():
    rng = np.random.default_rng(3)
    x = np.stack([preprocess(blob_image(rng, 187))[0] for _ in range(6)]).reshape(6, 1, 187, 187)
    blurred = torch.nn.functional.avg_pool2d(torch.from_numpy(x), 5, stride=1, padding=2).numpy()
    got = _assert_agrees(x, blurred, batch_size=4)
    assert np.all(got["ssim"] < 1) and np.all(got["ms_ssim"] < 1)
    _assert_agrees(x, _noisy(rng, x, 1e-4))  # near-perfect reconstructions: SSIM about 1, tiny variances


def test_agrees_on_the_shipped_models_reconstructions():
    from astroae_core.analysis import run_model
    from astroae_core.model import load_model

    model = load_model(ROOT / "models" / "demo.pt")
    size = model.config.in_size
    rng = np.random.default_rng(4)
    x = np.stack([preprocess(blob_image(rng, 120), config=model.preprocess_config)[0] for _ in range(4)])
    x = x.reshape(4, 1, size, size)
    _assert_agrees(x, run_model(model, x)["x_hat"])


@pytest.mark.parametrize("shape", [(187, 187), (170, 171)])
def test_agrees_on_constant_images(shape):
    flat = np.full((3, 1, *shape), 0.3, np.float32)
    got = _assert_agrees(flat, flat)
    np.testing.assert_allclose(got["ssim"], 1, atol=1e-6)
    _assert_agrees(flat, np.full_like(flat, 0.7))  # uniform but different: luminance term only
    _assert_agrees(flat, np.zeros_like(flat))
    rng = np.random.default_rng(5)
    _assert_agrees(rng.random(flat.shape, dtype=np.float32), flat)  # structure against none


def test_batch_size_changes_nothing():
    rng = np.random.default_rng(6)
    x = rng.random((7, 1, 187, 187), dtype=np.float32)
    y = _noisy(rng, x, 0.05)
    one, many = image_metrics(x, y, batch_size=1), image_metrics(x, y, batch_size=256)
    for k in one:
        np.testing.assert_array_equal(one[k], many[k])
    assert all(len(v) == 0 for v in image_metrics(x[:0], y[:0]).values())
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        image_metrics(x, y, batch_size=0)


# ---------------------------------------------------------------------------------------------------------------
# what the metrics say


def test_identical_images_score_perfectly():
    x = np.random.default_rng(0).random((3, 1, 187, 187), dtype=np.float32)
    m = image_metrics(x, x)
    assert np.all(m["mse"] == 0) and np.all(np.isinf(m["psnr"]))
    np.testing.assert_allclose(m["ssim"], 1, atol=1e-6)
    np.testing.assert_allclose(m["ms_ssim"], 1, atol=1e-6)


def test_constant_offset_gives_hand_computed_mse_and_psnr():
    x = np.full((2, 1, 187, 187), 0.5, np.float32)
    m = image_metrics(x, x + 0.1)
    np.testing.assert_allclose(m["mse"], 0.01, rtol=1e-5)
    np.testing.assert_allclose(m["psnr"], 20.0, rtol=1e-4)  # 10 log10(1 / 0.01)
    assert summarize(m)["psnr"] == pytest.approx(20.0, rel=1e-4)


def test_worse_reconstruction_scores_lower():
    rng = np.random.default_rng(1)
    x = rng.random((2, 1, 187, 187), dtype=np.float32)
    near = np.clip(x + rng.normal(0, 0.02, x.shape), 0, 1).astype(np.float32)
    far = np.clip(x + rng.normal(0, 0.2, x.shape), 0, 1).astype(np.float32)
    a, b = image_metrics(x, near), image_metrics(x, far)
    for k in ("ssim", "ms_ssim", "psnr"):
        assert np.all(a[k] > b[k])
    assert np.all(a["mse"] < b["mse"])


def test_small_images_have_no_ms_ssim_and_mismatched_shapes_fail():
    x = np.zeros((1, 1, 32, 32), np.float32)
    assert np.isnan(image_metrics(x, x)["ms_ssim"]).all()
    with pytest.raises(ValueError, match="shape mismatch"):
        image_metrics(x, np.zeros((1, 1, 32, 31), np.float32))


def test_pca_baseline_reconstructs_images_in_its_subspace_exactly():
    rng = np.random.default_rng(0)
    basis = rng.random((3, 16 * 16))
    coef = rng.random((40, 3))
    x = (coef @ basis / 3).reshape(40, 1, 16, 16).astype(np.float32)
    rec = PCABaseline(3).fit(x[:30]).reconstruct(x[30:])
    np.testing.assert_allclose(rec, x[30:], atol=1e-4)
    with pytest.raises(ValueError, match="more than 8 training images, got 5"):
        PCABaseline(8).fit(x[:5])


def test_mean_image_baseline_returns_the_training_mean():
    x = np.stack([np.full((1, 4, 4), v, np.float32) for v in (0.2, 0.4, 0.6)])
    rec = MeanImageBaseline().fit(x).reconstruct(np.zeros((2, 1, 4, 4), np.float32))
    np.testing.assert_allclose(rec, 0.4, rtol=1e-6)


def test_participation_ratio_by_hand():
    rng = np.random.default_rng(0)
    one_dim = np.outer(rng.normal(size=500), [1, 2, 0, 0])
    assert participation_ratio(one_dim) == pytest.approx(1.0)
    two_equal = np.column_stack([rng.normal(size=20000), rng.normal(size=20000), np.zeros(20000)])
    assert participation_ratio(two_equal) == pytest.approx(2.0, rel=0.02)
    assert participation_ratio(rng.normal(size=(20000, 8))) == pytest.approx(8.0, rel=0.02)


@pytest.mark.slow
def test_metrics_speed_quick_reports_both_implementations_and_their_agreement(tmp_path):
    from .test_benchmarks import _run_quick

    r = _run_quick("metrics_speed", tmp_path)
    (row,) = r["results"].values()
    assert row["threads"] == 1 and row["batch_size"] == 16 and r["n_images"] == 48
    for side in ("new", "pytorch_msssim"):
        assert row[side]["images_per_s"] > 0 and row[side]["images_per_cpu_s"] > 0
    assert row["ratio"] == pytest.approx(row["new"]["images_per_s"] / row["pytorch_msssim"]["images_per_s"], rel=0.01)
    assert 0 <= row["max_abs_diff"]["ssim"] < 1e-4 and 0 <= row["max_abs_diff"]["ms_ssim"] < 1e-4
