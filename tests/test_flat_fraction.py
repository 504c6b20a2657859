"""The share of an image in its largest one-valued region (the cache's ``flat`` column)."""

import numpy as np
import pytest

from astroae_core.cache.shard import flat_fraction


def _by_unique(x: np.ndarray) -> float:
    """The definition, spelled with np.unique."""
    _, counts = np.unique(np.round(x.reshape(-1).astype(np.float64) * 1048576.0), return_counts=True)
    biggest = int(counts.max())
    return biggest / x.size if biggest >= max(16, 0.005 * x.size) else 0.0


@pytest.mark.parametrize("seed", range(40))
def test_flat_fraction_counts_the_largest_one_valued_region(seed):
    rng = np.random.default_rng(seed)
    x = rng.random((int(rng.integers(8, 70)), int(rng.integers(8, 70)))).astype(np.float32)
    for _ in range(int(rng.integers(0, 4))):  # plateaus of a few values, some tiny, some below 1e-6 apart
        x[rng.random(x.shape) < rng.uniform(0, 0.3)] = rng.choice([0.0, 1.0, rng.random()]) + rng.uniform(0, 3e-7)
    assert flat_fraction(x) == _by_unique(x)


def test_flat_fraction_of_a_zero_edge_a_constant_image_and_noise():
    x = np.random.default_rng(0).random((100, 100)).astype(np.float32)
    assert flat_fraction(x) == 0.0
    x[:, :25] = 0.0
    assert flat_fraction(x) == 0.25
    assert flat_fraction(np.full((10, 10), 0.3, np.float32)) == 1.0
    x = np.random.default_rng(1).random((100, 100)).astype(np.float32)
    x.reshape(-1)[:15] = 0.5  # 15 equal pixels: below the 16 that make a region
    assert flat_fraction(x) == 0.0
