import numpy as np
import pandas as pd
import pytest

from astroae_core.analysis import anomaly_scores, knn_distance, robust_z


def _cloud(n=500, d=8, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, d))
    err = rng.lognormal(np.log(1e-3), 0.3, size=n)
    return rng, z, err


def test_columns_dtypes_and_ranks_are_a_permutation():
    _, z, err = _cloud(n=50)
    df = anomaly_scores(z, err, extra={"peak": np.ones(50)})
    assert list(df.columns) == ["score_recon", "score_density", "score_peak", "anomaly_score", "anomaly_rank"]
    assert df["anomaly_rank"].dtype == np.int64 and df["anomaly_score"].dtype == np.float64
    assert sorted(df["anomaly_rank"]) == list(range(1, 51))
    # rank 1 has the highest combined score
    assert df.loc[df["anomaly_rank"].idxmin(), "anomaly_score"] == df["anomaly_score"].max()
    np.testing.assert_array_equal(df["score_recon"], err)


def test_planted_latent_outliers_land_on_top():
    rng, z, err = _cloud()
    planted = rng.choice(len(z), 10, replace=False)
    z[planted] = rng.normal(size=(10, 8)) * 0.3 + 8.0 * rng.choice([-1, 1], size=(10, 8))
    df = anomaly_scores(z, err)
    assert set(df.nsmallest(10, "anomaly_rank").index) == set(planted)


def test_outliers_seen_by_only_one_score_still_land_on_top():
    """Max-combination: a huge reconstruction error alone, or a huge peak residual alone, is enough."""
    rng, z, err = _cloud()
    by_recon, by_peak, by_latent = [3, 77, 140], [200, 301], [404, 450]
    err[by_recon] *= 30
    peak = rng.uniform(0.2, 0.3, size=len(z))
    peak[by_peak] = 0.99
    z[by_latent] += 12.0
    df = anomaly_scores(z, err, extra={"peak": peak})
    top = set(df.nsmallest(7, "anomaly_rank").index)
    assert top == set(by_recon + by_peak + by_latent)


def test_a_score_without_outliers_does_not_push_true_outliers_down():
    rng, z, err = _cloud()
    err[[5, 6, 7]] *= 20
    noise = rng.normal(1.0, 0.01, size=len(z))  # an extra score that is pure, well-behaved noise
    df = anomaly_scores(z, err, extra={"noise": noise})
    assert set(df.nsmallest(3, "anomaly_rank").index) == {5, 6, 7}


def test_ties_and_constant_inputs_do_not_crash():
    z = np.zeros((20, 8))
    df = anomaly_scores(z, np.full(20, 0.5), extra={"flat": np.zeros(20)})
    assert np.all(df["anomaly_score"] == 0)
    np.testing.assert_array_equal(df["anomaly_rank"], np.arange(1, 21))  # ties broken by row order
    assert np.all(df["score_density"] == 0)


def test_small_and_nonfinite_inputs():
    one = anomaly_scores(np.zeros((1, 8)), [0.1])
    assert one["anomaly_rank"].tolist() == [1] and np.isfinite(one["anomaly_score"]).all()
    empty = anomaly_scores(np.zeros((0, 8)), [])
    assert len(empty) == 0 and "anomaly_rank" in empty
    err = np.array([1.0, np.nan, 1.1, 0.9, 1.05])
    df = anomaly_scores(np.random.default_rng(0).normal(size=(5, 2)), err)
    assert np.isfinite(df["anomaly_score"]).all()
    with pytest.raises(ValueError, match="expected 5"):
        anomaly_scores(np.zeros((5, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="clashes"):
        anomaly_scores(np.zeros((5, 2)), np.zeros(5), extra={"recon": np.zeros(5)})


def test_robust_z_scale_fallbacks():
    # mostly zeros (MAD 0): the few non-zero values still stand out, the zeros stay at 0
    s = np.zeros(100)
    s[:3] = 0.2
    z = robust_z(s)
    assert np.all(z[3:] == 0) and np.all(z[:3] > 10)
    assert np.all(robust_z(np.full(10, 7.0)) == 0)
    signed = robust_z(np.array([-1.0, 0.0, 1.0, 2.0, 50.0]))  # negative values: linear scale
    assert signed.argmax() == 4
    # a factor of 10 above typical counts the same whatever the unit
    a = np.r_[np.random.default_rng(0).lognormal(0, 0.2, 99), 10.0]
    np.testing.assert_allclose(robust_z(a)[-1], robust_z(a * 1e-6)[-1])


def test_knn_distance_is_mean_distance_to_other_points():
    z = np.array([[0.0], [1.0], [3.0]])
    d = knn_distance(z, k=1)
    sd = z.std()
    np.testing.assert_allclose(d, np.array([1.0, 1.0, 2.0]) / sd)
    assert knn_distance(np.zeros((1, 3))).tolist() == [0.0]
    assert isinstance(anomaly_scores(z, [1.0, 1.0, 1.0]), pd.DataFrame)


def test_density_against_a_seeded_sample_keeps_the_outliers_on_top():
    rng, z, err = _cloud(n=400)
    z[[10, 20]] += 9.0
    exact = knn_distance(z, k=5)
    sampled = knn_distance(z, k=5, max_ref=100, seed=1)
    np.testing.assert_array_equal(sampled, knn_distance(z, k=5, max_ref=100, seed=1))  # seeded
    assert set(np.argsort(-sampled)[:2]) == set(np.argsort(-exact)[:2]) == {10, 20}
    assert np.corrcoef(exact, sampled)[0, 1] > 0.8
