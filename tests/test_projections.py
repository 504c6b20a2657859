import numpy as np
import pytest

from astroae_core.analysis import MIN_UMAP_POINTS, fit_pca, fit_umap, nearest_neighbors, pca_transform


def _cloud(n=200, d=8, seed=0):
    rng = np.random.default_rng(seed)
    # variance decreasing with the dimension index, so the principal axes are well separated
    return rng.normal(size=(n, d)) * np.linspace(3.0, 0.5, d) + 10.0


def test_pca_is_exact_and_matches_numpy_eigendecomposition():
    z = _cloud()
    p = fit_pca(z, n_components=3)
    assert p["components"].shape == (3, 8) and p["mean"].shape == (8,)
    np.testing.assert_allclose(p["mean"], z.mean(0))
    ev, vec = np.linalg.eigh(np.cov(z, rowvar=False))
    ev, vec = ev[::-1], vec[:, ::-1]
    np.testing.assert_allclose(p["explained_variance"], ev[:3], rtol=1e-10)
    np.testing.assert_allclose(p["explained_variance_ratio"], ev[:3] / ev.sum(), rtol=1e-10)
    for i in range(3):  # same axes up to sign
        assert abs(abs(p["components"][i] @ vec[:, i]) - 1) < 1e-10
    xy = pca_transform(p, z)
    np.testing.assert_allclose(xy, (z - z.mean(0)) @ p["components"].T)
    np.testing.assert_allclose(xy.mean(0), 0, atol=1e-9)


def test_pca_sign_is_deterministic_and_transform_accepts_json_lists():
    z = _cloud()
    a, b = fit_pca(z), fit_pca(z[::-1].copy())
    np.testing.assert_allclose(a["components"], b["components"], atol=1e-12)
    stored = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in a.items()}
    np.testing.assert_allclose(pca_transform(stored, z[0]), pca_transform(a, z[:1]))


def test_pca_degenerate_inputs_do_not_crash():
    one = fit_pca(np.ones((1, 8)))
    assert np.all(one["explained_variance_ratio"] == 0)
    const = fit_pca(np.full((10, 8), 3.0))
    np.testing.assert_array_equal(pca_transform(const, np.full((2, 8), 3.0)), 0)
    line = fit_pca(np.arange(10.0)[:, None] * np.ones((1, 4)), n_components=2)
    assert line["explained_variance_ratio"][0] == pytest.approx(1.0)
    assert line["explained_variance_ratio"][1] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="non-finite"):
        fit_pca(np.array([[np.nan, 1.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="at least one"):
        fit_pca(np.zeros((0, 8)))


def test_nearest_neighbors_finds_itself_first_and_matches_brute_force():
    z = _cloud(n=300)
    idx, dist = nearest_neighbors(z, z[:20], k=5)
    assert idx.shape == dist.shape == (20, 5)
    np.testing.assert_array_equal(idx[:, 0], np.arange(20))
    np.testing.assert_allclose(dist[:, 0], 0)
    zs = z / z.std(0)
    full = np.linalg.norm(zs[:20, None] - zs[None], axis=2)
    np.testing.assert_array_equal(idx, np.argsort(full, axis=1, kind="stable")[:, :5])
    np.testing.assert_allclose(dist, np.sort(full, axis=1)[:, :5], rtol=1e-12)
    assert np.all(np.diff(dist, axis=1) >= 0)


def test_nearest_neighbors_standardizes_and_breaks_ties_by_index():
    # x spreads over hundreds, y over about one: raw distances are all x, standardized ones weigh both
    z = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 2.0], [-200.0, 0.0], [200.0, 0.0], [0.0, -1.0], [0.0, 1.0],
                  [0.0, 0.0]])
    raw, d = nearest_neighbors(z, [0.0, 0.0], k=4, standardize=False)
    assert raw[0].tolist() == [0, 7, 5, 6]  # 0 and 7 are duplicates, 5 and 6 tie: lower index first
    np.testing.assert_allclose(d[0], [0, 0, 1, 1])
    std, _ = nearest_neighbors(z, [0.0, 0.0], k=3)
    assert std[0].tolist() == [0, 7, 1]  # 3 pixels in x is nothing next to x's spread
    i, _ = nearest_neighbors(z, [0.0, 0.0], k=100)  # k larger than N: all points
    assert i.shape == (1, 8)
    with pytest.raises(ValueError, match="dimensions"):
        nearest_neighbors(z, [0.0, 0.0, 0.0], k=1)


def test_fit_umap_falls_back_to_pca_for_a_handful_of_points():
    z = _cloud(n=MIN_UMAP_POINTS - 1)
    emb, model = fit_umap(z)
    assert model is None and emb.shape == (MIN_UMAP_POINTS - 1, 2) and emb.dtype == np.float32
    np.testing.assert_allclose(emb, pca_transform(fit_pca(z), z), rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # numba compiles UMAP on first use (tens of seconds)
def test_umap_is_deterministic_and_transform_places_points_near_their_own():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(300, 3))
    z = np.tanh(f @ rng.normal(size=(3, 8))) + 0.05 * rng.normal(size=(300, 8))
    emb, model = fit_umap(z, seed=3, n_neighbors=15)
    emb2, _ = fit_umap(z, seed=3, n_neighbors=15)
    np.testing.assert_array_equal(emb, emb2)
    assert emb.shape == (300, 2) and np.isfinite(emb).all()
    extent = np.ptp(emb, axis=0).max()
    moved = model.transform((z[:20] + 1e-3 * rng.normal(size=(20, 8))).astype(np.float32))
    assert np.median(np.linalg.norm(moved - emb[:20], axis=1)) < 0.1 * extent


@pytest.mark.slow
def test_umap_fits_on_a_sample_and_transforms_the_rest():
    z = _cloud(n=60, seed=2)
    emb, model = fit_umap(z, seed=0, max_fit=40, n_neighbors=10)
    assert emb.shape == (60, 2) and np.isfinite(emb).all()
    assert model.embedding_.shape == (40, 2)
    tiny, m = fit_umap(_cloud(n=MIN_UMAP_POINTS), n_neighbors=15)  # n_neighbors reduced to N - 1
    assert m is not None and m.n_neighbors == MIN_UMAP_POINTS - 1 and np.isfinite(tiny).all()


def test_knn_kd_tree_path_agrees_with_brute_force():
    from astroae_core.analysis.projections import knn

    rng = np.random.default_rng(4)
    ref, q = rng.normal(size=(8000, 3)), rng.normal(size=(7000, 3))  # 5.6e7 pairs: the k-d tree path
    i_tree, d_tree = knn(ref, q, 4)
    i_brute, d_brute = knn(ref, q[:50], 4)
    np.testing.assert_array_equal(i_tree[:50], i_brute)
    np.testing.assert_allclose(d_tree[:50], d_brute, rtol=1e-12)


def test_place_by_neighbors_is_the_inverse_distance_mean_and_exact_on_known_points():
    from astroae_core.analysis import place_by_neighbors

    ref = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [5.0, 5.0]])
    xy = np.array([[10.0, 0.0], [20.0, 0.0], [0.0, 30.0], [99.0, 99.0]])
    np.testing.assert_array_equal(place_by_neighbors(ref, xy, ref, k=3), xy)  # a known latent: its own point
    q = np.array([0.5, 0.0])  # distances 0.5, 0.5, sqrt(4.25) to the three nearest
    w = 1 / np.array([0.5, 0.5, np.sqrt(4.25)])
    want = (w[:, None] * xy[:3]).sum(0) / w.sum()
    np.testing.assert_allclose(place_by_neighbors(ref, xy, q, k=3)[0], want)
    assert place_by_neighbors(ref, xy, np.zeros((0, 2)), k=2).shape == (0, 2)
    with pytest.raises(ValueError, match="xy_ref"):
        place_by_neighbors(ref, xy[:3], q, k=2)
    with pytest.raises(ValueError, match="dimensions"):
        place_by_neighbors(ref, xy, [0.0, 0.0, 0.0], k=2)


def _demo_like_latents(n: int, *, seed: int = 0) -> np.ndarray:
    """8-D latents like an encoded demo set: a dozen anisotropic clusters of galaxies and a few scattered oddities."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4.0, (12, 8))
    scales = rng.uniform(0.2, 1.2, (12, 8))
    label = rng.integers(0, 12, n)
    z = centres[label] + rng.normal(size=(n, 8)) * scales[label]
    odd = rng.random(n) < 0.01
    z[odd] = rng.normal(0, 10.0, (int(odd.sum()), 8))
    return z.astype(np.float32)


@pytest.mark.slow  # fits a UMAP (numba compiles it on first use)
def test_neighbour_placement_lands_where_umap_transform_does():
    from astroae_core.analysis import place_by_neighbors, umap_transform

    z = _demo_like_latents(1700)
    ref, new = z[:1500], z[1500:]
    emb, model = fit_umap(ref, seed=0)
    extent = np.ptp(emb, axis=0).max()
    placed = place_by_neighbors(ref, emb, new, k=model.n_neighbors)
    miss = np.linalg.norm(placed - umap_transform(model, new), axis=1)
    assert np.median(miss) < 0.02 * extent and np.quantile(miss, 0.9) < 0.05 * extent, (np.median(miss), extent)


def test_umaps_small_data_distances_are_computed_in_c_and_equal_the_jitted_metric(monkeypatch):
    from sklearn.metrics import pairwise_distances as sklearn_pairwise

    from astroae_core.analysis.projections import _import_umap

    umap = _import_umap()
    fast = umap.umap_.pairwise_distances
    x = _cloud(120).astype(np.float32)
    y = _cloud(30, seed=1).astype(np.float32)
    euclid = umap.distances.euclidean
    np.testing.assert_allclose(fast(x, metric=euclid), sklearn_pairwise(x, metric=euclid), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(fast(y, x, metric=euclid), sklearn_pairwise(y, x, metric=euclid), rtol=1e-6, atol=1e-6)
    calls = []
    monkeypatch.setattr(fast, "wrapped", lambda *a, **k: calls.append(k) or sklearn_pairwise(*a, **k))
    fit_umap(x, seed=0)  # under 4,096 points: all pairwise distances, never through the per-pair callable
    assert calls == []
    fast(x, metric="manhattan")  # another metric still goes to scikit-learn
    assert calls == [{"metric": "manhattan"}]


def test_a_umap_fit_leaves_pytorchs_threads_as_they_were():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(3)  # UMAP's fit set them to its own count before: the report after the maps ran on that
    try:
        fit_umap(np.random.default_rng(0).normal(size=(60, 4)), seed=0)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
