"""Survey-like degradations do what they say, and the robustness suite scores them beside PCA-k."""

from __future__ import annotations

import numpy as np
import pytest

from astroae_core.analysis.robustness import DEGRADATIONS, degrade_images, score_checkpoint
from astroae_core.data import degrade
from astroae_core.data.noise import robust_stats

from .conftest import write_blob_folder

S = 100


def galaxy(*, centre=(49.5, 49.5), sigma_px=6.0, peak=50.0, sky=0.3, noise=1.0, seed=0) -> np.ndarray:
    yy, xx = np.mgrid[:S, :S].astype(np.float64)
    g = peak * np.exp(-0.5 * ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / sigma_px**2)
    return g + sky + np.random.default_rng(seed).normal(0, noise, (S, S))


def centroid(a, sky=0.3):
    w = np.clip(a - sky - 5.0, 0, None)  # well above the noise: the galaxy, not the sky, decides
    yy, xx = np.mgrid[: a.shape[0], : a.shape[1]]
    return np.array([(w * yy).sum() / w.sum(), (w * xx).sum() / w.sum()])


def second_moment_radius(a, sky=0.3):
    w = np.clip(a - sky - 5.0, 0, None) ** 2
    yy, xx = np.mgrid[: a.shape[0], : a.shape[1]]
    c = centroid(a, sky)
    return np.sqrt((w * ((yy - c[0]) ** 2 + (xx - c[1]) ** 2)).sum() / w.sum())


def test_fainter_raises_the_noise_tenfold_and_keeps_the_fill():
    a = galaxy()
    a[:, :20] = 0.0  # off the mosaic
    out = degrade.fainter(a, factor=10.0, seed=1)
    _, before = robust_stats(a)
    _, after = robust_stats(out)
    assert after / before == pytest.approx(10.0, rel=0.05)
    assert (out[:, :20] == 0).all()
    assert not np.array_equal(degrade.fainter(a, seed=1), degrade.fainter(a, seed=2))
    np.testing.assert_array_equal(degrade.fainter(a, seed=1), out)


def test_shifted_moves_the_galaxy_and_keeps_the_sky():
    a = galaxy(noise=0.5)
    out = degrade.shifted(a, fraction=(0.15, 0.15), seed=4)
    moved = np.hypot(*(centroid(out) - centroid(a)))
    assert moved == pytest.approx(15, abs=1.0)
    assert robust_stats(out)[1] == pytest.approx(robust_stats(a)[1], rel=0.1)


@pytest.mark.parametrize("factor", [0.6, 1.6])
def test_rescaled_changes_the_apparent_size_and_keeps_the_noise(factor):
    a = galaxy(noise=0.2)
    out = degrade.rescaled(a, factor=factor, seed=0)
    assert second_moment_radius(out) / second_moment_radius(a) == pytest.approx(factor, rel=0.08)
    assert robust_stats(out)[1] == pytest.approx(robust_stats(a)[1], rel=0.1)
    np.testing.assert_allclose(centroid(out), centroid(a), atol=0.5)  # about the centre


def test_neighbour_adds_a_second_source_off_centre():
    a = galaxy(seed=0)
    b = galaxy(seed=1, peak=80.0)
    out = degrade.with_neighbour(a, b, flux_ratio=(0.5, 0.5), offset=(0.35, 0.35), seed=3)
    added = out - a
    peak = np.unravel_index(np.argmax(added), added.shape)
    assert np.hypot(peak[0] - 49.5, peak[1] - 49.5) == pytest.approx(35, abs=2)
    assert added.max() == pytest.approx(0.5 * (a.max() - robust_stats(a)[0]), rel=0.15)
    assert np.abs(out[49:51, 49:51] - a[49:51, 49:51]).max() < 1.0  # the galaxy itself untouched


def test_zero_edge_zeroes_one_strip_only():
    a = galaxy()
    out = degrade.zero_edge(a, fraction=(0.2, 0.2), seed=5)
    zero = out == 0
    assert zero.sum() == 20 * S
    rows, cols = zero.any(1), zero.any(0)
    assert rows.all() or cols.all()  # a full-length strip along one side
    np.testing.assert_array_equal(out[~zero], a[~zero])


def test_degrade_images_picks_neighbours_from_other_objects():
    # Group "a" is compact, group "b" extended: the pasted source's area says which object it came from.
    images = [galaxy(seed=i, sigma_px=3.0 if i < 2 else 8.0, noise=0.05) for i in range(4)]
    groups = ["a", "a", "b", "b"]
    out = degrade_images(images, "neighbour", groups=groups, seed=0)
    for i, o in enumerate(out):
        added = o - images[i]
        area = int((added > 0.5 * added.max()).sum())
        assert (area > 150) == (groups[i] == "a"), (i, area)
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade_images(images, "blurred")


def test_score_checkpoint_scores_every_degradation_beside_pca(tmp_path, tiny_recipe):
    from train.config import load_recipe
    from train.loop import train

    data = write_blob_folder(tmp_path / "blobs", 24, groups=3)
    train(load_recipe(tiny_recipe(epochs=2)), data, tmp_path / "run")
    res = score_checkpoint(tmp_path / "run" / "last.pt", data, seed=0)
    assert list(res) == ["clean", *DEGRADATIONS]
    for name, row in res.items():
        assert row["latent_vs_pca_mse"] == pytest.approx(row["latent_mse"] / row["pca_mse"])
        assert -1 <= row["latent_ssim"] <= 1 and -1 <= row["pca_ssim"] <= 1
    # Ten times the noise is harder for both methods than the clean images.
    assert res["fainter"]["pca_mse"] > res["clean"]["pca_mse"]


def test_fainter_views_span_one_to_ten_times_fainter_and_repeat_with_their_seed():
    from astroae_core.data import PreprocessConfig, preprocess, training_views

    images = [galaxy(seed=s) for s in range(6)]
    config = PreprocessConfig(size=64, method="minmax")
    views = training_views(images, kind="fainter", config=config, n_views=4, seed=3)
    assert views.shape == (6, 4, 1, 64, 64) and views.dtype == np.float32
    np.testing.assert_array_equal(views, training_views(images, kind="fainter", config=config, n_views=4, seed=3))
    assert not np.array_equal(views, training_views(images, kind="fainter", config=config, n_views=4, seed=4))
    # the noise as a share of the normalized range: at least the image's own, at most about 10x it
    own = np.array([robust_stats(preprocess(a, config=config)[0].astype(np.float64))[1] for a in images])
    seen = np.array([[robust_stats(v[0].astype(np.float64))[1] for v in per] for per in views])
    ratio = seen / own[:, None]
    assert ratio.min() > 0.9 and ratio.max() < 12 and ratio.max() > 2
    with pytest.raises(ValueError, match="n_views must be >= 1, got 0"):
        training_views(images, kind="fainter", config=config, n_views=0)
    with pytest.raises(ValueError, match="kind must be one of .*got 'brighter'"):
        training_views(images, kind="brighter", config=config)
    blank = images[0].copy()
    blank[3, 4] = np.nan  # a BLANK pixel, as read_fits returns it
    assert np.isfinite(training_views([blank], kind="fainter", config=config, n_views=2)).all()


def test_zoom_views_span_0_6_to_1_6_times_the_apparent_size():
    from astroae_core.data import PreprocessConfig, preprocess, training_views

    def radius(v):  # second-moment radius of what stands well above the sky
        w = np.clip(v - np.median(v) - 0.1 * (v.max() - np.median(v)), 0, None)
        yy, xx = np.mgrid[: v.shape[0], : v.shape[1]]
        cy, cx = (w * yy).sum() / w.sum(), (w * xx).sum() / w.sum()
        return np.sqrt((w * ((yy - cy) ** 2 + (xx - cx) ** 2)).sum() / w.sum())

    config = PreprocessConfig(size=S, method="minmax")
    a = galaxy(peak=200.0)
    views = training_views([a], kind="zoom", config=config, n_views=12, seed=0)[0, :, 0]
    ratios = np.array([radius(v) for v in views]) / radius(preprocess(a, config=config)[0].reshape(S, S))
    assert ratios.min() > 0.5 and ratios.max() < 1.8 and ratios.max() / ratios.min() > 1.5
