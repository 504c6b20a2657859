import numpy as np
import pytest

from astroae_core.analysis import MeanImageBaseline, PCABaseline
from astroae_core.analysis import participation_ratio
from astroae_core.analysis import image_metrics, summarize


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
