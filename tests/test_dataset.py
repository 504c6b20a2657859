"""Tests for astroae_core.data: folder loading, grouping, grouped splits, augmentation, torch dataset."""

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from astropy.io import fits

from astroae_core.data import ImageTensorDataset, LoadedImages, augment, group_keys, load_folder, split_by_group
from astroae_core.data import PreprocessConfig

CEERS = Path(__file__).resolve().parents[1].parent / "shared/data/ceers_jwst"
CEERS_REGEX = r"_(\d+)\.fits"
FILTERS = ["f115w", "f150w", "f200w"]
SIZE = 24


def stamp(rng, n=40):
    yy, xx = np.mgrid[:n, :n] - n / 2
    img = rng.uniform(1, 5) * np.exp(-(xx**2 + yy**2) / rng.uniform(5, 30))
    return (img + 0.05 * rng.standard_normal((n, n))).astype(np.float32)


@pytest.fixture
def fits_folder(tmp_path):
    """CEERS-like layout: <filter>/ceers_<filter>_<id>.fits for 4 ids, plus two unusable files."""
    rng = np.random.default_rng(1)
    root = tmp_path / "data"
    for f in FILTERS:
        (root / f).mkdir(parents=True)
        for gid in (101, 202, 303, 404):
            fits.PrimaryHDU(stamp(rng)).writeto(root / f / f"ceers_{f}_{gid}.fits")
    (root / "f115w" / "ceers_f115w_999.fits").write_text("this is not a FITS file\n" * 10)
    fits.PrimaryHDU(np.full((30, 30), np.nan, dtype=np.float32)).writeto(root / "f150w" / "ceers_f150w_998.fits")
    return root


def test_load_folder_shapes_paths_and_skips(fits_folder, caplog):
    cfg = PreprocessConfig(size=SIZE)
    with caplog.at_level(logging.WARNING):
        data = load_folder(fits_folder, config=cfg)
    assert isinstance(data, LoadedImages)
    assert len(data) == 12
    assert data.x.shape == (12, 1, SIZE, SIZE) and data.x.dtype == np.float32
    assert np.isfinite(data.x).all() and data.x.min() >= 0 and data.x.max() <= 1
    assert data.paths == sorted(data.paths)
    assert data.paths[0] == "f115w/ceers_f115w_101.fits"  # relative, POSIX
    assert len(data.norms) == 12 and all(n.orig_shape == (40, 40) for n in data.norms)
    assert data.config == cfg

    skipped = dict(data.skipped)
    assert set(skipped) == {"f115w/ceers_f115w_999.fits", "f150w/ceers_f150w_998.fits"}
    assert all(reason for reason in skipped.values())
    assert "finite" in skipped["f150w/ceers_f150w_998.fits"].lower()
    # exactly one warning per bad file, naming it
    for bad in skipped:
        hits = [r for r in caplog.records if r.levelno == logging.WARNING and bad in r.getMessage()]
        assert len(hits) == 1, (bad, [r.getMessage() for r in caplog.records])


def test_load_folder_rows_match_preprocess(fits_folder):
    from astroae_core.io import read_fits
    from astroae_core.data import preprocess

    calls = []
    data = load_folder(fits_folder, config=PreprocessConfig(size=SIZE), workers=2,
                       progress=lambda done, total, stage: calls.append((done, total, stage)))
    assert calls == [(k, 14, "read") for k in range(15)]  # 12 images and the 2 unusable files, in order
    i = data.paths.index("f200w/ceers_f200w_303.fits")
    x, norm = preprocess(read_fits(fits_folder / data.paths[i])[0], size=SIZE)
    np.testing.assert_array_equal(data.x[i], x)
    assert data.norms[i] == norm


def test_load_folder_keeps_the_images_as_read_only_when_asked(fits_folder):
    from astroae_core.io import read_fits

    assert load_folder(fits_folder, config=PreprocessConfig(size=SIZE)).raw is None
    data = load_folder(fits_folder, config=PreprocessConfig(size=SIZE), workers=2, keep_raw=True)
    assert len(data.raw) == len(data) == 12  # the unusable files are skipped here too
    for path, raw in zip(data.paths, data.raw):
        np.testing.assert_array_equal(raw, read_fits(fits_folder / path)[0])


def test_load_folder_max_files_and_errors(fits_folder, tmp_path):
    data = load_folder(fits_folder, config=PreprocessConfig(size=SIZE), max_files=3)
    assert len(data) == 3
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_folder(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="max_files"):
        load_folder(fits_folder, max_files=0)
    wanted = {"f150w/ceers_f150w_202.fits", "f200w/ceers_f200w_404.fits", "not/there.fits"}
    data = load_folder(fits_folder, config=PreprocessConfig(size=SIZE), only=wanted)
    assert data.paths == ["f150w/ceers_f150w_202.fits", "f200w/ceers_f200w_404.fits"] and len(data.x) == 2
    one = load_folder(fits_folder / "f115w" / "ceers_f115w_101.fits", config=PreprocessConfig(size=SIZE))
    assert one.paths == ["ceers_f115w_101.fits"]
    empty = tmp_path / "empty"
    empty.mkdir()
    data = load_folder(empty, config=PreprocessConfig(size=SIZE))
    assert len(data) == 0 and data.x.shape == (0, 1, SIZE, SIZE)


def test_group_keys_default_regex_and_errors():
    paths = [f"{f}/ceers_{f}_{gid}.fits" for f in FILTERS for gid in (17490, 23344)]
    assert group_keys(paths) == paths
    keys = group_keys(paths, group_regex=CEERS_REGEX)
    assert keys == ["17490", "23344"] * 3
    # no capture group: the whole match is the key
    assert group_keys(["a/x_12.fits"], group_regex=r"\d+") == ["12"]
    with pytest.raises(ValueError, match="other.fits"):
        group_keys([*paths, "f115w/other.fits"], group_regex=CEERS_REGEX)
    with pytest.raises(ValueError, match="invalid group_regex"):
        group_keys(paths, group_regex="(")


def test_group_keys_from_catalog():
    paths = ["a/g1_x.fits", "a/g1_y.fits", "b/g2_x.fits"]
    cat = pd.DataFrame({"file": ["g1_x.fits", "g1_y.fits", "g2_x.fits"], "galaxy": [7, 7, 9]})
    assert group_keys(paths, catalog=cat, catalog_column="galaxy") == ["7", "7", "9"]
    cat_path = pd.DataFrame({"path": paths, "galaxy": ["p", "q", "q"]})
    assert group_keys(paths, catalog=cat_path, catalog_column="galaxy") == ["p", "q", "q"]
    with pytest.raises(ValueError, match="missing.fits"):
        group_keys([*paths, "missing.fits"], catalog=cat, catalog_column="galaxy")
    with pytest.raises(ValueError, match="'nope'"):
        group_keys(paths, catalog=cat, catalog_column="nope")


def ceers_like_groups(n_gal=100, n_filt=7, seed=3):
    rng = np.random.default_rng(seed)
    ids = rng.choice(np.arange(10000, 40000), n_gal, replace=False)
    return [str(g) for f in range(n_filt) for g in ids]


def test_split_sizes_no_straddle_and_determinism():
    groups = ceers_like_groups()
    tr, va = split_by_group(groups, val_fraction=0.2, seed=0)
    assert tr.dtype == np.int64 and va.dtype == np.int64
    assert len(tr) == 560 and len(va) == 140
    assert np.intersect1d(tr, va).size == 0 and np.union1d(tr, va).size == 700
    g = np.array(groups)
    assert set(g[tr]).isdisjoint(set(g[va]))
    assert len(set(g[va])) == 20
    tr2, va2 = split_by_group(groups, val_fraction=0.2, seed=0)
    np.testing.assert_array_equal(va, va2)
    _, va3 = split_by_group(groups, val_fraction=0.2, seed=1)
    assert set(g[va3]) != set(g[va])
    # file order does not matter: the same groups go to validation
    perm = np.random.default_rng(9).permutation(len(groups))
    _, va_perm = split_by_group([groups[i] for i in perm], val_fraction=0.2, seed=0)
    assert set(g[perm][va_perm]) == set(g[va])


def test_split_each_file_its_own_group_and_small_cases():
    tr, va = split_by_group([str(i) for i in range(50)], val_fraction=0.2, seed=5)
    assert len(va) == 10 and len(tr) == 40
    tr, va = split_by_group(["a", "b"], val_fraction=0.01)
    assert len(tr) == 1 and len(va) == 1
    tr, va = split_by_group(["a", "b"], val_fraction=0.99)
    assert len(tr) == 1 and len(va) == 1
    tr, va = split_by_group(["a", "a", "a"])
    assert len(tr) == 3 and len(va) == 0
    # unequal groups: the closest achievable count
    tr, va = split_by_group(["big"] * 8 + ["s1", "s2"], val_fraction=0.2)
    assert len(va) == 2


def test_split_fraction_zero_trains_on_everything():
    tr, va = split_by_group(["a", "a", "b", "c"], val_fraction=0)
    assert tr.tolist() == [0, 1, 2, 3] and va.size == 0


@pytest.mark.parametrize("bad", [1, 1.5, -0.1, float("nan"), "lots"])
def test_split_bad_fraction_names_value(bad):
    with pytest.raises(ValueError, match="val_fraction.*" + repr(bad)[:4].replace("(", r"\(")):
        split_by_group(["a", "b", "c"], val_fraction=bad)


def dihedral(img):
    out = []
    for flip in (False, True):
        base = img.flip(-1) if flip else img
        out.extend(torch.rot90(base, k, dims=(-2, -1)) for k in range(4))
    return out


def test_augment_gives_the_8_dihedral_variants():
    img = torch.arange(25, dtype=torch.float32).reshape(1, 5, 5)  # no symmetry: all 8 variants differ
    batch = img.expand(200, 1, 5, 5).clone()
    out = augment(batch, generator=torch.Generator().manual_seed(0))
    assert out.shape == batch.shape and out.dtype == batch.dtype
    variants = dihedral(img)
    assert len({tuple(v.flatten().tolist()) for v in variants}) == 8
    seen = set()
    for sample in out:
        matches = [k for k, v in enumerate(variants) if torch.equal(sample, v)]
        assert len(matches) == 1
        seen.add(matches[0])
        # the multiset of pixel values is preserved
        assert torch.equal(sample.flatten().sort().values, img.flatten().sort().values)
    assert seen == set(range(8))
    assert torch.equal(batch, img.expand(200, 1, 5, 5))  # input untouched


def test_augment_deterministic_given_generator():
    batch = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    a = augment(batch, generator=torch.Generator().manual_seed(42))
    b = augment(batch, generator=torch.Generator().manual_seed(42))
    c = augment(batch, generator=torch.Generator().manual_seed(43))
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="square"):
        augment(torch.rand(2, 1, 4, 6), generator=torch.Generator())


def test_image_tensor_dataset(fits_folder):
    data = load_folder(fits_folder, config=PreprocessConfig(size=SIZE))
    full = ImageTensorDataset(data)
    assert len(full) == 12 and full[0].shape == (1, SIZE, SIZE) and full[0].dtype == torch.float32
    sub = ImageTensorDataset(data, indices=[3, 5])
    assert len(sub) == 2 and torch.equal(sub[1], torch.from_numpy(data.x[5]))
    loader = torch.utils.data.DataLoader(sub, batch_size=2)
    assert next(iter(loader)).shape == (2, 1, SIZE, SIZE)
    with pytest.raises(IndexError):
        ImageTensorDataset(data, indices=[12])


@pytest.mark.skipif(not CEERS.is_dir(), reason=f"real CEERS data not found at {CEERS}")
def test_real_ceers_load_group_split():
    data = load_folder(CEERS)
    assert len(data) == 700 and not data.skipped
    assert data.x.shape == (700, 1, 187, 187)
    assert np.isfinite(data.x).all() and data.x.min() >= 0 and data.x.max() <= 1
    assert all(n.orig_shape == (100, 100) for n in data.norms)
    groups = group_keys(data.paths, group_regex=CEERS_REGEX)
    assert len(set(groups)) == 100
    tr, va = split_by_group(groups, val_fraction=0.2, seed=0)
    g = np.array(groups)
    assert len(va) == 140 and len(tr) == 560
    assert len(set(g[va])) == 20
    assert set(g[tr]).isdisjoint(g[va])
    # the asinh stretch keeps the sky dark and the noise estimate sane on every real image
    sigmas = np.array([n.sigma for n in data.norms])
    assert (sigmas > 0).all()
    assert float(np.median(data.x)) < 0.35


def test_auto_groups_use_the_object_id_that_ends_the_stem():
    from astroae_core.data import group_keys

    paths = ["f115w/ceers_f115w_10983.fits", "f444w/ceers_f444w_10983.fits", "ceers_f444w_7.fits.gz",
             "no_id_here.fits", "sub/no_id_here.fits"]
    keys = group_keys(paths, group_regex="auto")
    assert keys[0] == keys[1] == "id:10983" and keys[2] == "id:7"
    assert keys[3] != keys[4]  # no id: each file stands alone
