"""The latent cache: encode, freshness, atomic rebuilds, loading, neighbours, maps, CLI.

A tiny checkpoint (32x32 images) is trained once per module. Most tests encode a folder of 4 images, below
UMAP's minimum, so that they never pay for numba compiling UMAP; the tests that fit a real UMAP are marked slow.
"""

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.wcs import WCS

import astroae_core.analysis
import astroae_core.cache.encode
import astroae_core.io.atomic
from astroae_core.analysis import latent_correlations
from astroae_core.cli import main
from astroae_core.cache import (CACHE_FORMAT, CacheMeta, LatentCache, MetaFormatError, cache_status,
                                dataset_fingerprint, encode_folder, is_cache_dir, load_cache, read_meta)
from astroae_core.cache.layout import FILES
from astroae_core.cache.meta import (CheckpointRef, Columns, EncodeOptions, MapInfo, PcaParams, SplitInfo, Timing,
                                     write_meta)
from astroae_core.model import file_sha256

from .conftest import TINY_RECIPE, blob_image

Z4 = [f"z{i}" for i in range(4)]  # the tiny recipe's latent_dim


def _wcs(i: int) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0 + 0.01 * i, 2.0 - 0.005 * i]
    w.wcs.crpix = [10.0, 12.0]  # not the centre, so the centre's coordinates differ from CRVAL
    w.wcs.cdelt = [-2.8e-5, 2.8e-5]
    return w


def write_sky_folder(folder: Path, n: int, *, seed: int = 0, start: int = 0, wcs: bool = True,
                     catalog: bool = True) -> Path:
    """``n`` blob images ``obj_<group>_<i>.fits`` (3 per group) with a celestial WCS and a catalog.csv whose
    ``area`` (pixels above half maximum) is a known function of each image."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(start, start + n):
        img = blob_image(rng, 32)
        header = _wcs(i).to_header() if wcs else None
        name = f"obj_{i // 3:03d}_{i:03d}.fits"
        fits.PrimaryHDU(img, header=header).writeto(folder / name)
        rows.append({"file": name, "id": i, "kind": "odd" if i % 5 == 0 else "galaxy", "is_anomaly": i % 5 == 0,
                     "area": int((img > img.max() / 2).sum()), "label": f"obj {i}"})
    if catalog:
        pd.DataFrame(rows).to_csv(folder / "catalog.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny checkpoint trained on 24 blobs (the training folder has a catalog and WCS headers)."""
    from train.config import load_recipe
    from train.loop import train

    root = tmp_path_factory.mktemp("cache")
    data = write_sky_folder(root / "train_data", 24)
    recipe = root / "tiny.toml"
    recipe.write_text(TINY_RECIPE.format(skip_mode="none", epochs=3))
    train(load_recipe(recipe), data, root / "run")
    return {"root": root, "data": data, "ckpt": root / "run" / "best.pt", "other_ckpt": root / "run" / "last.pt"}


@pytest.fixture
def small(trained, tmp_path):
    """A folder of 4 new images (fewer than UMAP needs: the map falls back to PCA, no numba compile)."""
    return write_sky_folder(tmp_path / "small", 4, seed=7, start=100)


def _encode(trained, data, out, **kw):
    return encode_folder(trained["ckpt"], data, out, **kw)


def _synthetic_meta(n: int, d: int, *, catalog=(), extra_metrics=()) -> CacheMeta:
    """A meta.json for a hand-made table of ``n`` rows and ``d`` latents (no encode)."""
    return CacheMeta(
        format=CACHE_FORMAT, package_version="test", created_utc="2026-01-01T00:00:00Z",
        checkpoint=CheckpointRef(path="../model.pt", sha256="0" * 64), data_dir="../data",
        dataset_fingerprint="0" * 64, n_files=n, n_images=n,
        columns=Columns(image=("id", "path", "hdu", "split", "ra", "dec"), latent=tuple(f"z{i}" for i in range(d)),
                        metrics=("mse", "ssim", "ms_ssim", "latent_mse", "latent_ssim") + tuple(extra_metrics),
                        maps=("pca_x", "pca_y", "umap_x", "umap_y"),
                        scores=("score_recon", "score_density", "score_peak", "score_flat", "anomaly_score",
                                "anomaly_rank"), catalog=tuple(catalog)),
        options=EncodeOptions(preview_size=64, hdu=None, plane=None, umap_max_fit=50_000, seed=0),
        pca=PcaParams(mean=(0.0,) * d, components=((1.0,) + (0.0,) * (d - 1), (0.0, 1.0) + (0.0,) * (d - 2)),
                      explained_variance=(1.0, 1.0), explained_variance_ratio=(0.5, 0.5), n_samples=n),
        umap=MapInfo(method="pca", fallback="too_few_images"), split=SplitInfo(counts={}),
        timing=Timing(encode_seconds=0.0, maps_seconds=0.0, report_seconds=0.0, total_seconds=0.0),
        model_config={"latent_dim": d}, preprocess_config={})


# ---------------------------------------------------------------------------------------------------------------
# the folder and its table


def test_encode_writes_every_column_with_its_dtype(trained, small, tmp_path):
    out = _encode(trained, small, tmp_path / "c")
    assert sorted(p.name for p in out.iterdir()) == ["correlations.parquet", "latents.parquet", "manifest.json",
                                                     "meta.json", "previews.npy"]
    c = load_cache(out)
    t = c.table
    assert len(t) == 4 and c.meta.n_images == 4
    expected = {"id": "str", "path": "str", "hdu": "int64", "split": "str", **{z: "float32" for z in Z4},
                "mse": "float64", "ssim": "float64", "ms_ssim": "float64", "latent_mse": "float64",
                "latent_ssim": "float64", "pca_x": "float32", "pca_y": "float32", "umap_x": "float32",
                "umap_y": "float32", "score_recon": "float64", "score_density": "float64",
                "score_peak": "float64", "score_flat": "float64", "anomaly_score": "float64",
                "anomaly_rank": "int64", "ra": "float64", "dec": "float64"}
    for col, dtype in expected.items():
        assert col in t.columns, col
        assert str(t[col].dtype) == dtype, (col, t[col].dtype)
    assert t["path"].tolist() == sorted(p.name for p in small.glob("*.fits"))
    assert t["id"].tolist() == [p[: -len(".fits")] for p in t["path"]]
    assert (t["hdu"] == 0).all() and (t["split"] == "unseen").all()
    assert t["ms_ssim"].isna().all()  # 32-pixel images are too small for MS-SSIM
    np.testing.assert_allclose(t["mse"], t["latent_mse"])  # skip_mode "none": the latent is the whole code
    assert sorted(t["anomaly_rank"]) == [1, 2, 3, 4]
    # previews: uint8 thumbnails in table order
    assert c.previews.shape == (4, 64, 64) and c.previews.dtype == np.uint8
    assert isinstance(c.previews, np.memmap)
    # too few images for a UMAP: the UMAP columns are the PCA ones, and meta says so
    assert c.meta.umap.method == "pca" and c.meta.umap.fallback == "too_few_images"
    np.testing.assert_array_equal(t["umap_x"], t["pca_x"])
    meta = c.meta
    assert meta.format == CACHE_FORMAT and meta.checkpoint.sha256 == file_sha256(trained["ckpt"])
    assert c.checkpoint_sha256 == meta.checkpoint.sha256 and c.checkpoint == trained["ckpt"].resolve()
    assert meta.dataset_fingerprint == dataset_fingerprint(small)
    assert c.data_dir == small.resolve() and meta.skipped == ()
    assert not Path(meta.data_dir).is_absolute() and not Path(meta.checkpoint.path).is_absolute()
    assert meta.model_config["latent_dim"] == 4 and meta.preprocess_config["size"] == 32
    assert meta.correlations.method == "spearman"
    assert meta.package_version and meta.created_utc and meta.timing.total_seconds > 0 and meta.pca.n_samples == 4
    # the schema: latents, scores and catalog columns told apart by the cache itself
    assert c.latent_columns == Z4 and meta.latent_dim == 4
    assert c.score_columns == ["score_recon", "score_density", "score_peak", "score_flat", "anomaly_score",
                               "anomaly_rank"]
    assert c.catalog_columns == ["catalog.file", "catalog.id", "catalog.kind", "catalog.is_anomaly", "catalog.area",
                                 "catalog.label"]
    assert list(t.columns) == list(meta.columns.all)


def test_previews_are_the_preprocessed_inputs(trained, small, tmp_path):
    from astroae_core.model import load_model
    from astroae_core.io import read_fits

    c = load_cache(_encode(trained, small, tmp_path / "c", preview_size=32))
    model = load_model(trained["ckpt"])
    x, _ = model.preprocess(read_fits(small / c.table["path"][2])[0])
    np.testing.assert_array_equal(c.previews[2], np.round(x[0] * 255).astype(np.uint8))


def test_catalog_is_joined_on_file_name(trained, small, tmp_path):
    c = load_cache(_encode(trained, small, tmp_path / "c", train_data=trained["data"]))
    cat = pd.read_csv(small / "catalog.csv").set_index("file")
    t = c.table.set_index("path")
    for col in ("kind", "is_anomaly", "area", "label"):
        assert t[f"catalog.{col}"].tolist() == cat.loc[t.index, col].tolist(), col
        assert col not in t.columns  # a catalog column never takes a computed column's place
    assert t["catalog.is_anomaly"].dtype == bool
    # the catalog's own "id" does not overwrite the cache's
    assert t["catalog.id"].tolist() == cat.loc[t.index, "id"].tolist()
    assert t["id"].tolist() == [p[: -len(".fits")] for p in t.index]
    assert c.meta.catalog.key == "file" and c.meta.catalog.n_matched == 4 and c.meta.catalog.n_unmatched == 0
    # the evaluation splits its error by the catalog's kind, over the images it evaluated
    ev = c.meta.evaluation
    by_kind = ev["by_kind"]
    assert sum(v["n"] for v in by_kind.values()) == ev["n_images"]
    assert set(by_kind) <= set(cat["kind"]) and sum(v["share"] for v in by_kind.values()) == pytest.approx(1.0)


def test_catalog_by_relative_path_in_subfolders_and_unmatched_rows(trained, tmp_path):
    data = tmp_path / "nested"
    write_sky_folder(data / "a", 2, start=0, catalog=False)
    write_sky_folder(data / "b", 2, start=10, catalog=False)
    pd.DataFrame({"path": ["a/obj_000_000.fits", "b/obj_003_010.fits", "zzz.fits"],
                  "flag": [True, False, True], "mag": [20.5, 21.0, 9.0]}).to_csv(data / "catalog.csv", index=False)
    t = load_cache(_encode(trained, data, tmp_path / "c")).table.set_index("path")
    assert t.index.tolist() == ["a/obj_000_000.fits", "a/obj_000_001.fits", "b/obj_003_010.fits",
                                "b/obj_003_011.fits"]
    assert t.loc["a/obj_000_000.fits", "catalog.mag"] == 20.5
    assert t.loc["b/obj_003_010.fits", "catalog.flag"] == False  # noqa: E712
    assert t["catalog.mag"].isna().sum() == 2 and t["catalog.flag"].isna().sum() == 2


def test_ra_dec_come_from_the_wcs_at_the_image_centre(trained, small, tmp_path):
    c = load_cache(_encode(trained, small, tmp_path / "c"))
    for path, ra, dec in c.table[["path", "ra", "dec"]].itertuples(index=False):
        with fits.open(small / path) as hdul:
            w = WCS(hdul[0].header)
            ny, nx = hdul[0].data.shape
        want_ra, want_dec = w.all_pix2world([[(nx - 1) / 2, (ny - 1) / 2]], 0)[0]
        assert ra == pytest.approx(want_ra, abs=1e-9) and dec == pytest.approx(want_dec, abs=1e-9)
        assert abs(ra - w.wcs.crval[0]) > 1e-6  # the centre, not the reference pixel


def test_no_wcs_gives_nan_coordinates(trained, tmp_path):
    data = write_sky_folder(tmp_path / "nowcs", 3, wcs=False, catalog=False)
    c = load_cache(_encode(trained, data, tmp_path / "c"))
    assert c.table["ra"].isna().all() and c.table["dec"].isna().all()
    assert c.correlations is None and c.meta.catalog is None and c.catalog_columns == []


def test_corrupt_files_are_skipped_and_reported(trained, small, tmp_path, caplog):
    (small / "broken.fits").write_bytes(b"SIMPLE  =                    T" + b"garbage" * 50)
    (small / "empty.fits").write_bytes(b"")
    c = load_cache(_encode(trained, small, tmp_path / "c"))
    assert len(c.table) == 4 and c.meta.n_files == 6
    skipped = {s.path: s.reason for s in c.meta.skipped}
    assert set(skipped) == {"broken.fits", "empty.fits"} and all(skipped.values())
    assert "empty" in skipped["empty.fits"]
    warnings = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(warnings) == 2  # once each


def test_a_folder_without_images_is_an_error_and_writes_nothing(trained, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "bad.fits").write_bytes(b"not fits")
    with pytest.raises(ValueError, match="no usable FITS images"):
        _encode(trained, empty, tmp_path / "c")
    assert not (tmp_path / "c").exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_refuses_to_replace_a_folder_that_is_not_a_cache(trained, small, tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("do not delete")
    with pytest.raises(ValueError, match="not a latent cache"):
        _encode(trained, small, out)
    with pytest.raises(ValueError, match="data folder"):
        _encode(trained, small, small)
    assert (out / "thesis.tex").read_text() == "do not delete"


# ---------------------------------------------------------------------------------------------------------------
# freshness and atomic rebuilds


def test_second_encode_is_a_no_op(trained, small, tmp_path):
    out = _encode(trained, small, tmp_path / "c")
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    t0 = time.perf_counter()
    _encode(trained, small, out)
    assert time.perf_counter() - t0 < 2.0
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    assert cache_status(out, trained["ckpt"], small)[0]
    _encode(trained, small, out, force=True)  # force rebuilds
    assert (out / "meta.json").stat().st_mtime_ns != stamps["meta.json"]


def test_changes_trigger_a_rebuild_and_cache_status_says_why(trained, small, tmp_path):
    out = _encode(trained, small, tmp_path / "c")
    fresh, reason = cache_status(out, trained["ckpt"], small)
    assert fresh and reason.startswith("up to date (4 images")
    assert cache_status(tmp_path / "nothing", trained["ckpt"], small) == (False, "no cache")

    # a touched file
    f = small / "obj_033_100.fits"
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert cache_status(out, trained["ckpt"], small) == (False, "1 file modified")
    _encode(trained, small, out)
    assert cache_status(out, trained["ckpt"], small)[0]

    # an added file, two removed ones and an edited catalog
    write_sky_folder(small, 1, seed=9, start=200, catalog=False)
    (small / "obj_033_101.fits").unlink()
    (small / "obj_034_102.fits").unlink()
    with open(small / "catalog.csv", "a") as fh:
        fh.write("extra.fits,999,galaxy,False,3,x\n")
    fresh, reason = cache_status(out, trained["ckpt"], small)
    assert not fresh and reason == "1 file added, 2 files removed, catalog.csv modified"
    assert len(load_cache(_encode(trained, small, out)).table) == 3
    assert cache_status(out, trained["ckpt"], small)[0]

    # another checkpoint
    fresh, reason = cache_status(out, trained["other_ckpt"], small)
    assert not fresh and reason == "checkpoint changed"
    assert "does not exist" in cache_status(out, tmp_path / "missing.pt", small)[1]


def test_changed_settings_rebuild(trained, small, tmp_path, monkeypatch):
    out = _encode(trained, small, tmp_path / "c")
    _encode(trained, small, out, preview_size=16)
    assert load_cache(out).previews.shape == (4, 16, 16)


def test_a_crash_mid_build_leaves_the_previous_cache_intact(trained, small, tmp_path, monkeypatch):
    out = _encode(trained, small, tmp_path / "c")
    before = load_cache(out).table.copy()
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    visible = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
    (small / "obj_033_100.fits").unlink()  # make it stale

    def boom(*a, **k):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(astroae_core.analysis, "anomaly_scores", boom)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _encode(trained, small, out)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    pd.testing.assert_frame_equal(load_cache(out).table, before)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == visible
    assert not list(tmp_path.glob(".c.tmp-*"))  # the half-built folder is gone
    assert not cache_status(out, trained["ckpt"], small)[0]

    # a crash in the final swap (after the new folder is complete) also keeps the old cache
    monkeypatch.undo()
    monkeypatch.setattr(astroae_core.cache.encode, "replace_folder", boom)
    with pytest.raises(RuntimeError):
        _encode(trained, small, out)
    pd.testing.assert_frame_equal(load_cache(out).table, before)
    assert not list(tmp_path.glob(".c.tmp-*"))


def test_rebuild_swaps_the_whole_folder(trained, small, tmp_path):
    out = _encode(trained, small, tmp_path / "c")
    old = load_cache(out)
    first = np.array(old.previews[0])
    (small / "obj_033_100.fits").unlink()
    _encode(trained, small, out)
    new = load_cache(out)
    assert len(new.table) == 3 and len(old.table) == 4
    # a reader holding the old memory map still sees the old, complete data
    assert old.previews.shape[0] == 4
    np.testing.assert_array_equal(old.previews[0], first)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".c.tmp")) == []


def test_swap_without_renameat2_and_recovery_of_an_interrupted_swap(trained, small, tmp_path, monkeypatch):
    monkeypatch.setattr(astroae_core.io.atomic, "exchange_paths", lambda a, b: False)  # no RENAME_EXCHANGE
    out = _encode(trained, small, tmp_path / "c")
    stamp = (out / "meta.json").stat().st_mtime_ns
    _encode(trained, small, out, force=True)
    assert len(load_cache(out).table) == 4 and (out / "meta.json").stat().st_mtime_ns != stamp
    assert not list(tmp_path.glob(".c.old-*")) and not list(tmp_path.glob(".c.tmp-*"))
    # killed between the two renames: the old cache sits in .c.old-*, nothing at c
    os.rename(out, tmp_path / ".c.old-abcd")
    assert cache_status(out, trained["ckpt"], small) == (False, "no cache")
    stamp = (tmp_path / ".c.old-abcd" / "meta.json").stat().st_mtime_ns
    _encode(trained, small, out)  # puts it back, finds it fresh, does nothing else
    assert (out / "meta.json").stat().st_mtime_ns == stamp and not list(tmp_path.glob(".c.old-*"))


def test_umap_failure_falls_back_to_pca_with_a_note(trained, tmp_path, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("numba exploded")

    monkeypatch.setattr(astroae_core.analysis, "fit_umap", broken)
    data = write_sky_folder(tmp_path / "d", 6, catalog=False)
    c = load_cache(_encode(trained, data, tmp_path / "c"))
    assert c.meta.umap.method == "pca" and c.meta.umap.fallback == "umap_failed"
    assert "numba exploded" in c.meta.umap.error
    np.testing.assert_array_equal(c.table["umap_x"], c.table["pca_x"])
    np.testing.assert_allclose(c.place(c.latents())["umap_x"], c.table["pca_x"], atol=1e-5)


def test_hdu_column_is_the_index_of_the_hdu_read(trained, tmp_path):
    data = write_sky_folder(tmp_path / "d", 2, catalog=False)
    img = fits.getdata(data / "obj_000_000.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(img, name="SCI")]).writeto(data / "ext.fits")
    t = load_cache(_encode(trained, data, tmp_path / "c")).table.set_index("path")
    assert t.loc["ext.fits", "hdu"] == 1 and t.loc["obj_000_000.fits", "hdu"] == 0
    np.testing.assert_allclose(t.loc["ext.fits", Z4].to_numpy(float), t.loc["obj_000_000.fits", Z4].to_numpy(float),
                               atol=1e-5)
    with pytest.raises(ValueError, match="hdu must be"):
        _encode(trained, data, tmp_path / "c2", hdu=1.5)


# ---------------------------------------------------------------------------------------------------------------
# loading and using a cache


def test_load_cache_rejects_folders_that_are_not_caches(trained, small, tmp_path):
    with pytest.raises(ValueError, match=r"nowhere.*no such folder"):
        load_cache(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"'.*small' is not a latent cache: it has no meta.json"):
        load_cache(small)
    out = _encode(trained, small, tmp_path / "c")
    meta = json.loads((out / "meta.json").read_text())
    (out / "meta.json").write_text(json.dumps({**meta, "format": "astroae-cache/0"}))
    with pytest.raises(ValueError, match="not a latent cache of format"):
        load_cache(out)
    (out / "meta.json").write_text(json.dumps(meta))
    (out / "previews.npy").unlink()
    with pytest.raises(ValueError, match=r"incomplete: missing previews.npy"):
        load_cache(out)
    assert cache_status(out, trained["ckpt"], small) == (False, "cache incomplete (missing previews.npy)")
    (out / "meta.json").write_text("{not json")
    with pytest.raises(ValueError, match="unreadable meta.json"):
        load_cache(out)


def _no_nan_tokens(token):
    raise AssertionError(f"meta.json holds the non-JSON token {token}")


def test_meta_round_trips_through_strict_json_without_machine_paths(trained, small, tmp_path):
    c = load_cache(_encode(trained, small, tmp_path / "c", train_data=trained["data"]))
    text = (c.path / "meta.json").read_text()
    data = json.loads(text, parse_constant=_no_nan_tokens)  # strict JSON: no NaN / Infinity tokens
    assert CacheMeta.from_dict(data) == c.meta and c.meta.to_dict() == data
    assert read_meta(c.path) == c.meta
    # MS-SSIM is undefined on 32-pixel images: stored as null, not NaN
    assert data["evaluation"]["rows"]["full"]["ms_ssim"] is None
    # one key per fact, data not sentences, no absolute path of this machine
    for gone in ("latent_dim", "preview_size", "build_seconds", "anomaly", "files"):
        assert gone not in data, gone
    assert set(data) == {f for f in CacheMeta.__dataclass_fields__}
    assert "method" not in data["influence"] and data["influence"]["n_sigma"] == 2.0
    assert data["evaluation"]["images"] == "unseen" and data["umap"]["fallback"] == "too_few_images"
    assert str(tmp_path) not in text and str(trained["root"]) not in text and str(Path.home()) not in text
    # a frozen value: what was loaded cannot be changed by accident
    with pytest.raises(AttributeError):
        c.meta.n_images = 5


def test_meta_from_dict_names_what_is_wrong(trained, small, tmp_path):
    data = load_cache(_encode(trained, small, tmp_path / "c")).meta.to_dict()
    with pytest.raises(MetaFormatError, match="astroae-cache/1") as info:
        CacheMeta.from_dict({**data, "format": "astroae-cache/1"})
    assert info.value.found == "astroae-cache/1"
    with pytest.raises(ValueError, match="unknown field.*umap_pickle"):
        CacheMeta.from_dict({**data, "umap_pickle": "umap.pkl"})
    with pytest.raises(ValueError, match="missing field 'n_images'"):
        CacheMeta.from_dict({k: v for k, v in data.items() if k != "n_images"})
    with pytest.raises(ValueError, match=r"meta\.checkpoint\.sha256: expected str"):
        CacheMeta.from_dict({**data, "checkpoint": {**data["checkpoint"], "sha256": 3}})
    from dataclasses import replace

    with pytest.raises(TypeError, match="not JSON data"):  # only data is stored
        replace(CacheMeta.from_dict(data), influence={"where": Path("/abs")})


def test_an_older_format_is_rebuilt_and_says_why(trained, small, tmp_path, caplog):
    out = _encode(trained, small, tmp_path / "c")
    meta = json.loads((out / "meta.json").read_text())
    (out / "meta.json").write_text(json.dumps({**meta, "format": "astroae-cache/1", "latent_dim": 4}))
    (out / "umap.pkl").write_bytes(b"an old cache's pickle")
    assert is_cache_dir(out)  # still a cache, to be rebuilt
    assert cache_status(out, trained["ckpt"], small) == (False, f"cache format changed (astroae-cache/1 -> "
                                                                f"{CACHE_FORMAT})")
    with pytest.raises(ValueError, match="not a latent cache of format .* re-encode it"):
        load_cache(out)
    with caplog.at_level("WARNING"):
        _encode(trained, small, out)
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("cache format changed (astroae-cache/1" in m for m in said), said
    assert load_cache(out).meta.format == CACHE_FORMAT and not (out / "umap.pkl").exists()
    assert cache_status(out, trained["ckpt"], small)[0]


def test_is_cache_dir_and_a_cache_moved_with_its_data(trained, small, tmp_path):
    out = _encode(trained, small, tmp_path / "c")
    assert is_cache_dir(out) and not is_cache_dir(small) and not is_cache_dir(tmp_path / "nothing")
    # paths are stored relative to the cache: the cache and its data moved together still find each other
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.copytree(small, moved / "small")
    shutil.copytree(out, moved / "c")
    c = load_cache(moved / "c")
    assert c.data_dir == (moved / "small").resolve()
    fresh, reason = cache_status(moved / "c", trained["ckpt"], moved / "small")
    assert fresh, reason


def test_neighbors_and_place_on_a_small_cache(trained, small, tmp_path):
    c = load_cache(_encode(trained, small, tmp_path / "c"))
    z = c.latents()
    assert z.shape == (4, 4) and z.dtype == np.float32
    np.testing.assert_array_equal(z, c.table[Z4].to_numpy())
    for i in range(4):
        idx, dist = c.neighbors(z[i], k=3)
        assert idx.shape == (3,) and idx[0] == i and dist[0] == 0 and np.all(np.diff(dist) >= 0)
    idx, dist = c.neighbors(z, k=2)
    assert idx.shape == (4, 2) and idx[:, 0].tolist() == [0, 1, 2, 3]
    placed = c.place(z)
    np.testing.assert_allclose(placed["pca_x"], c.table["pca_x"], atol=1e-5)
    np.testing.assert_allclose(placed["pca_y"], c.table["pca_y"], atol=1e-5)
    np.testing.assert_allclose(placed["umap_x"], placed["pca_x"])  # PCA map stands in for UMAP here
    assert set(c.place(z[0])) == {"pca_x", "pca_y", "umap_x", "umap_y"} and c.place(z[0])["pca_x"].shape == (1,)


def test_latent_stats_by_hand():
    table = pd.DataFrame({"z0": np.arange(101, dtype=np.float32), "z1": np.full(101, 2.0, dtype=np.float32)})
    c = LatentCache(path=Path("."), table=table, meta=_synthetic_meta(101, 2), previews=np.zeros((101, 4, 4), np.uint8))
    s = c.latent_stats()
    np.testing.assert_allclose(s["mean"], [50.0, 2.0])
    np.testing.assert_allclose(s["std"], [np.arange(101).std(), 0.0])
    np.testing.assert_allclose(s["min"], [0.0, 2.0])
    np.testing.assert_allclose(s["max"], [100.0, 2.0])
    np.testing.assert_allclose(s["q01"], [1.0, 2.0])
    np.testing.assert_allclose(s["q99"], [99.0, 2.0])


def test_latent_correlations_on_hand_made_columns():
    rng = np.random.default_rng(0)
    z = pd.DataFrame({"z0": rng.normal(size=200), "z1": rng.normal(size=200)})
    cat = pd.DataFrame({
        "flux": np.exp(3 * z["z0"]),  # monotonic in z0: Spearman exactly 1
        "neg": -z["z1"],
        "noise": rng.normal(size=200),
        "flag": z["z0"] > 0,  # booleans count as 0/1
        "kind": ["a"] * 200,  # not numeric: left out
        "id": np.arange(200),  # an identifier: left out
        "catalog.id": np.arange(200),
        "image_seed": rng.integers(0, 10**9, 200),
        "const": np.ones(200),  # no spread: left out
        "holes": np.where(np.arange(200) % 2 == 0, z["z0"], np.nan),  # pairwise complete
    })
    r = latent_correlations(z, cat)
    assert list(r.index) == ["z0", "z1"] and list(r.columns) == ["flux", "neg", "noise", "flag", "holes"]
    assert r.loc["z0", "flux"] == pytest.approx(1.0) and r.loc["z1", "neg"] == pytest.approx(-1.0)
    assert r.loc["z0", "holes"] == pytest.approx(1.0)
    assert abs(r.loc["z0", "noise"]) < 0.2 and abs(r.loc["z1", "flux"]) < 0.2
    assert r.loc["z0", "flag"] > 0.8
    p = latent_correlations(z, cat, method="pearson")
    assert p.loc["z0", "flux"] < 0.9  # exp is not linear
    with pytest.raises(ValueError, match="method"):
        latent_correlations(z, cat, method="kendall")


def test_dataset_fingerprint(tmp_path):
    a = write_sky_folder(tmp_path / "a", 3)
    fp = dataset_fingerprint(a)
    assert fp == dataset_fingerprint(a) and len(fp) == 64
    (a / "notes.txt").write_text("not FITS")  # ignored
    assert dataset_fingerprint(a) == fp
    b = tmp_path / "b"
    shutil.copytree(a, b)  # copy2 keeps sizes and mtimes: same content, same fingerprint
    assert dataset_fingerprint(b) == fp
    (a / "catalog.csv").write_text("file\nx.fits\n")
    assert dataset_fingerprint(a) != fp
    with pytest.raises(ValueError, match="does not exist"):
        dataset_fingerprint(tmp_path / "missing")


def test_load_time_of_a_2000_row_cache(tmp_path):
    """A synthetic cache of the demo's size (2000 images, 8 latents, a catalog's worth of columns) opens in < 2 s."""
    n, rng = 2000, np.random.default_rng(0)
    out = tmp_path / "big"
    out.mkdir()
    catalog = ("catalog.flux", "catalog.hlr", "catalog.q", "catalog.snr")
    meta = _synthetic_meta(n, 8, catalog=catalog + ("catalog.kind",))
    table = pd.DataFrame({"id": [f"galaxy_{i:05d}" for i in range(n)],
                          "path": [f"galaxy_{i:05d}.fits" for i in range(n)],
                          "hdu": np.zeros(n, np.int64), "split": ["train"] * n})
    for col in ("ra", "dec") + meta.columns.metrics + meta.columns.scores[:-1] + catalog:
        table[col] = rng.normal(size=n)
    for d in range(8):
        table[f"z{d}"] = rng.normal(size=n).astype(np.float32)
    for col in meta.columns.maps:
        table[col] = rng.normal(size=n).astype(np.float32)
    table["anomaly_rank"] = rng.permutation(n) + 1
    table["catalog.kind"] = "galaxy"
    table[list(meta.columns.all)].to_parquet(out / "latents.parquet", index=False)
    np.save(out / "previews.npy", rng.integers(0, 255, size=(n, 64, 64), dtype=np.uint8))
    (out / "manifest.json").write_text(json.dumps({"files": [], "catalog": None}))
    corr = pd.DataFrame(rng.normal(size=(8, 4)), index=pd.Index([f"z{d}" for d in range(8)], name="latent"),
                        columns=list(catalog))
    corr.to_parquet(out / "correlations.parquet")
    from dataclasses import replace

    from astroae_core.cache.meta import CorrelationInfo

    write_meta(replace(meta, correlations=CorrelationInfo(method="spearman", columns=catalog)), out)
    t0 = time.perf_counter()
    c = load_cache(out)
    took = time.perf_counter() - t0
    assert len(c.table) == n and c.previews.shape == (n, 64, 64) and c.correlations.shape == (8, 4)
    assert took < 2.0, f"load_cache took {took:.2f} s"


# ---------------------------------------------------------------------------------------------------------------
# command line


def test_cli_writes_a_cache_and_dry_run_writes_nothing(trained, small, tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["--checkpoint", str(trained["ckpt"]), "--data", str(small), "--out", str(out)]
    assert main(["encode", *args, "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["fits_files"] == 4 and plan["reason"] == "no cache" and plan["action"] == "build"
    assert not out.exists()
    assert main(["encode", *args, "--quiet", "--batch-size", "3"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert len(load_cache(out).table) == 4
    assert main(["encode", *args, "--quiet"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["encode", *args, "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["action"] == "nothing"


def test_cli_errors_are_messages_not_tracebacks(trained, small, tmp_path, capsys):
    assert main(["encode", "--checkpoint", str(tmp_path / "none.pt"), "--data", str(small), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "none.pt" in err and "Traceback" not in err
    assert main(["encode", "--checkpoint", str(trained["ckpt"]), "--data", str(tmp_path / "nodata"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "nodata" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["encode", "--checkpoint", str(bad), "--data", str(small), "--out", str(tmp_path / "o")]) == 2
    assert "bad.pt" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_dispatch_through_python_m_astroae_core(trained, small, tmp_path):
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "astroae_core", "encode", "--checkpoint", str(trained["ckpt"]),
                          "--data", str(small), "--out", str(tmp_path / "o"), "--quiet"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "o" / "meta.json").is_file()


def test_astroae_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert all(cmd in out for cmd in ("train", "encode", "evaluate", "demo-data"))


# ---------------------------------------------------------------------------------------------------------------
# with a real UMAP (numba compiles it on first use: slow)


@pytest.mark.slow
def test_training_folder_cache_with_umap(trained, tmp_path):
    from astroae_core.model import load_model

    data = trained["data"]
    c = load_cache(_encode(trained, data, tmp_path / "c"))
    t = c.table
    assert len(t) == 24 and c.meta.umap.method == "umap" and c.meta.umap.n_fit == 24
    assert not [p for p in c.path.iterdir() if p.suffix == ".pkl"]  # no pickle in a cache
    # split from the checkpoint's own record of its training and validation images
    info = load_model(trained["ckpt"]).checkpoint_info["data"]
    assert set(t.loc[t["split"] == "train", "path"]) == set(info["train_paths"])
    assert set(t.loc[t["split"] == "val", "path"]) == set(info["val_paths"])
    assert c.meta.split.counts == {"train": len(info["train_paths"]), "val": len(info["val_paths"])}

    z = c.latents()
    extent = max(np.ptp(t["umap_x"]), np.ptp(t["umap_y"]))
    for i in (0, 7, 19):
        idx, dist = c.neighbors(z[i], k=5)
        assert idx[0] == i and dist[0] == 0
        p = c.place(z[i])
        assert p["pca_x"][0] == pytest.approx(t["pca_x"][i], abs=1e-5)
        assert p["pca_y"][0] == pytest.approx(t["pca_y"][i], abs=1e-5)
        assert (p["umap_x"][0], p["umap_y"][0]) == (t["umap_x"][i], t["umap_y"][i])  # on its own point
    # a new latent is placed from its neighbours and lands inside the map, near the image it was nudged from
    nudged = c.place(z[:3] + 0.01 * c.latent_stats()["std"].astype(np.float32))
    assert np.isfinite(nudged["umap_x"]).all()
    assert (np.abs(nudged["umap_x"] - t["umap_x"].mean()) < extent).all()
    assert np.median(np.hypot(nudged["umap_x"] - t["umap_x"][:3], nudged["umap_y"] - t["umap_y"][:3])) < 0.2 * extent

    # correlations: the catalog's "area" (pixels above half maximum) is what the latents must encode
    assert c.correlations is not None and list(c.correlations.index) == Z4
    assert {"catalog.area", "catalog.is_anomaly"} <= set(c.correlations.columns)
    assert "catalog.id" not in c.correlations.columns
    assert list(c.correlations.columns) == list(c.meta.correlations.columns)
    assert c.correlations["catalog.area"].abs().max() > 0.5


def test_preview_spool_writes_the_batches_as_one_npy_and_removes_its_part_file(tmp_path):
    from astroae_core.cache.previews import PreviewSpool

    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 256, size=(n, 5, 5), dtype=np.uint8) for n in (3, 1, 4)]
    spool = PreviewSpool(tmp_path, 5)
    for b in batches:
        spool.append(b)
    spool.save(tmp_path / "previews.npy", chunk=7)  # chunks that straddle the batches and the previews
    np.testing.assert_array_equal(np.load(tmp_path / "previews.npy"), np.concatenate(batches))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["previews.npy"]


def test_encoding_images_far_from_the_training_set_warns(ceers_dir, tmp_path, capsys):
    import shutil

    data = tmp_path / "real"
    data.mkdir()
    for f in sorted(ceers_dir.glob("*/*.fits"))[:4]:  # real JWST galaxies through the GalSim demo's model
        shutil.copy(f, data / f.name)
    ckpt = Path(__file__).resolve().parents[1] / "models" / "demo.pt"
    assert main(["encode", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(tmp_path / "c"),
                 "--quiet"]) == 0
    assert "far from what the model was trained on" in capsys.readouterr().err
    far = load_cache(tmp_path / "c").meta.training_distance
    assert far["far"] and far["ratio"] > 3


def test_the_cache_is_the_same_whatever_the_number_of_workers_and_records_its_runtime(trained, tmp_path):
    import torch

    data = write_sky_folder(tmp_path / "many", 23, seed=3, start=200)  # 23: batches of 4 end with a short one
    (data / "broken.fits").write_bytes(b"SIMPLE  =                    T" + b"\0" * 50)
    before = torch.get_num_threads()
    torch.set_num_threads(4)  # four cores, whatever this machine has: 1 and 3 workers share them 4 and 1 each
    try:
        outs = [_encode(trained, data, tmp_path / f"w{w}", workers=w, batch_size=4, runtime="torch-fp32")
                for w in (1, 3)]
    finally:
        torch.set_num_threads(before)
    a, b = (load_cache(o) for o in outs)
    for name in ("table", "previews"):
        assert (outs[0] / FILES[name]).read_bytes() == (outs[1] / FILES[name]).read_bytes(), name
    assert a.meta.skipped == b.meta.skipped and [s.path for s in a.meta.skipped] == ["broken.fits"]
    assert list(a.table["path"]) == sorted(a.table["path"])
    rt = a.meta.runtime["round_trip"]
    assert rt["runtime"] == "torch-fp32" and rt["batch_size"] == 4 and "torch-fp32@4" in rt["images_per_s"]
    # each worker's model takes its share of the cores; the report's decodes come after the loop, on all of them
    assert [c.meta.runtime["round_trip"]["threads"] for c in (a, b)] == [4, 1]
    assert a.meta.runtime["decode"]["threads"] == b.meta.runtime["decode"]["threads"] == 4
    assert a.meta.runtime["memory"] == {"numpy_hugepages": False}  # astroae_core/hugepages.py
    with pytest.raises(ValueError, match="workers must be at least 1, got 0"):
        _encode(trained, data, tmp_path / "w0", workers=0)


def test_auto_runtime_and_batch_size_are_measured_and_agree_with_float32(trained, tmp_path, monkeypatch):
    # Among the float32 runtimes, measured afresh: on a CPU with bf16 the tiny model's timing could pick bf16 by
    # chance, which agrees only to BF16_TOLERANCE (tests/test_runtime.py holds it to that on the shipped models).
    import astroae_core.model.runtime as rt_module

    monkeypatch.setattr(rt_module, "native_bf16", lambda: False)
    monkeypatch.setenv("ASTROAE_RUNTIME_CACHE", str(tmp_path / "runtime"))
    data = write_sky_folder(tmp_path / "some", 12, seed=4, start=300)
    ref = load_cache(_encode(trained, data, tmp_path / "ref", batch_size=4, runtime="torch-fp32"))
    auto = load_cache(_encode(trained, data, tmp_path / "auto"))
    rt = auto.meta.runtime["round_trip"]
    assert rt["batch_size"] in (16, 64) and {f"torch-fp32@{b}" for b in (16, 64)} <= set(rt["images_per_s"])
    assert rt["images_per_s"][f"{rt['runtime']}@{rt['batch_size']}"] == max(rt["images_per_s"].values())
    z = [f"z{i}" for i in range(4)]
    assert np.allclose(auto.table[z].to_numpy(), ref.table[z].to_numpy(), rtol=1e-3, atol=1e-4)
