import numpy as np
import pytest

from train.synthetic import synthetic_galaxies


def test_synthetic_galaxies_repeat_with_their_seed_and_differ_between_seeds():
    a = synthetic_galaxies(6, size=48, seed=3)
    assert a.shape == (6, 48, 48) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, synthetic_galaxies(6, size=48, seed=3))
    assert not np.array_equal(a, synthetic_galaxies(6, size=48, seed=4))
    assert len({float(s.std()) for s in a}) == 6  # six different stamps, not one repeated


def test_each_stamp_holds_a_galaxy_near_its_centre_above_the_noise():
    x = synthetic_galaxies(20, size=64, seed=0).astype(np.float64)
    yy, xx = np.mgrid[:64, :64]
    near = 0
    for s in x:
        edge = np.concatenate([s[:8].ravel(), s[-8:].ravel()])
        edge = edge[edge != 0]  # a zero-filled strip is not sky
        sky = np.median(edge), 1.4826 * np.median(np.abs(edge - np.median(edge)))
        assert (s.max() - sky[0]) / sky[1] > 10  # the peak S/N drawn is at least 20 (neighbours add to the sky)
        light = np.clip(s - sky[0], 0, None) * (np.hypot(yy - 32, xx - 32) < 20)
        cy, cx = (light * yy).sum() / light.sum(), (light * xx).sum() / light.sum()
        near += np.hypot(cy - 32, cx - 32) < 8
    assert near >= 16  # a neighbour or a clump can pull a few centroids away


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="size=4"):
        synthetic_galaxies(2, size=4)


def test_a_transform_is_applied_as_each_stamp_is_drawn_and_gives_what_applying_it_after_gives():
    def shrink(s):
        return s[::4, ::4][None] * 2.0

    a = synthetic_galaxies(4, size=48, seed=1, transform=shrink)
    assert a.shape == (4, 1, 12, 12)
    np.testing.assert_array_equal(a, np.stack([shrink(s) for s in synthetic_galaxies(4, size=48, seed=1)]))
