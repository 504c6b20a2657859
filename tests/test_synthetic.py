import numpy as np
import pytest

from train.synthetic import kept_synthetic_galaxies, synthetic_galaxies


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


def test_kept_synthetic_galaxies_are_drawn_once_then_read(tmp_path, monkeypatch):
    import train.synthetic as synthetic

    def half(s):
        return s[::2, ::2]

    drawn = kept_synthetic_galaxies(5, size=32, seed=2, transform=half, transform_key={"k": 1}, folder=tmp_path)
    np.testing.assert_array_equal(drawn, synthetic_galaxies(5, size=32, seed=2, transform=half))
    assert len(list(tmp_path.glob("synthetic-*.npy"))) == 1

    def no_drawing(*args, **kwargs):
        raise AssertionError("drew again instead of reading the kept set")

    monkeypatch.setattr(synthetic, "synthetic_galaxies", no_drawing)
    again = kept_synthetic_galaxies(5, size=32, seed=2, transform=half, transform_key={"k": 1}, folder=tmp_path)
    np.testing.assert_array_equal(again, drawn)
    for other in ({"n": 4}, {"seed": 3}, {"transform_key": {"k": 2}}):  # each a set of its own: drawn, not read
        args = {"n": 5, "seed": 2, "transform_key": {"k": 1}} | other
        with pytest.raises(AssertionError, match="drew again"):
            kept_synthetic_galaxies(args["n"], size=32, seed=args["seed"], transform=half,
                                    transform_key=args["transform_key"], folder=tmp_path)


def test_a_damaged_kept_set_is_drawn_again_and_no_folder_keeps_nothing(tmp_path, monkeypatch):
    import astroae_core.io as io

    kept = kept_synthetic_galaxies(3, size=24, seed=0, transform=None, transform_key={}, folder=tmp_path)
    (path,) = tmp_path.glob("synthetic-*.npy")
    path.write_bytes(b"not an array")
    np.testing.assert_array_equal(
        kept_synthetic_galaxies(3, size=24, seed=0, transform=None, transform_key={}, folder=tmp_path), kept)
    np.testing.assert_array_equal(np.load(path), kept)  # and kept again, whole

    def no_writing(*args, **kwargs):
        raise AssertionError("wrote a set without a folder to keep it in")

    monkeypatch.setattr(io, "atomic_path", no_writing)
    np.testing.assert_array_equal(
        kept_synthetic_galaxies(3, size=24, seed=0, transform=None, transform_key={}, folder=None), kept)


def test_only_the_newest_kept_sets_stay(tmp_path):
    from train.synthetic import KEPT_SETS

    for n in range(1, KEPT_SETS + 3):
        kept_synthetic_galaxies(n, size=16, seed=0, transform=None, transform_key={}, folder=tmp_path)
    assert sorted(len(np.load(p)) for p in tmp_path.glob("synthetic-*.npy")) == \
        list(range(3, KEPT_SETS + 3))
