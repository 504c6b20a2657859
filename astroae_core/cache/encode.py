"""The latent cache: every image of a folder encoded once, with its metrics, maps and anomaly scores.

``encode_folder(checkpoint, data_dir, out)`` (``python -m astroae_core encode``) writes the folder ``out``:

``latents.parquet``
    One row per readable image, in the sorted order of :func:`~astroae_core.io.fits.find_fits_files`:
    ``id``, ``path`` (relative to the data folder, POSIX), ``hdu`` (index of the HDU read), ``split``
    (``"train"``/``"val"`` when the data folder is the checkpoint's training folder, else ``"unseen"``),
    ``z0``.. (float32), ``mse``, ``ssim``, ``ms_ssim`` (full reconstruction), ``latent_mse``, ``latent_ssim``
    (decoded from the latent alone; equal to the full ones for ``skip_mode="none"``), ``pca_x``, ``pca_y``,
    ``umap_x``, ``umap_y``, ``score_recon``, ``score_density``, ``score_peak``, ``score_flat``,
    ``anomaly_score``, ``anomaly_rank`` (see :mod:`astroae_core.analysis.outliers`), ``ra``, ``dec`` (degrees, ICRS, of
    the image centre from its celestial WCS; NaN without one), then every column of a ``catalog.csv`` found in
    the data folder, joined on its ``path``, ``file`` or ``filename`` column (relative path first, then file
    name); catalog columns whose names clash with the ones above are prefixed ``catalog_``.
``previews.npy``
    uint8 thumbnails ``(N, P, P)`` of the preprocessed inputs, in table order (opened memory-mapped).
``meta.json``
    Cache format, package version, checkpoint path and SHA-256, model and preprocessing configs, data folder,
    dataset fingerprint, skipped files with reasons, PCA parameters, UMAP details, correlation method, timings,
    ``influence`` (each latent dimension's influence on the latent-only decode, measured on a sample, see
    :func:`~astroae_core.analysis.inference.measure_influence`) and ``evaluation`` (full and latent-only reconstructions
    beside PCA-k and the mean image on the validation split, or on a sample of the images when the folder is not
    the checkpoint's training folder, see :func:`~astroae_core.analysis.evaluate.compare_with_baselines`; ``{"error": ...}``
    when the checkpoint's training images are not on this machine).
``manifest.json``
    The (path, size, mtime) of every file the fingerprint covers, so that :func:`cache_status` can say *what*
    changed.
``umap.pkl``
    The fitted UMAP model, pickled, to place new images on the map (:meth:`LatentCache.place`).
``correlations.parquet``
    Spearman rank correlation of each latent dimension (rows ``z0``..) with each numeric catalog column, when
    there is a catalog.

Safety and atomicity
--------------------
A cache is a **locally produced artifact**: ``umap.pkl`` is a pickle, and unpickling runs code. It is unpickled
only when its SHA-256 matches the one recorded in ``meta.json`` at build time, which protects against a
mismatched or half-replaced file, not against someone who can write both files: open only caches that you (or
someone you trust) made.

The cache is built in a hidden temporary sibling folder ``.<name>.tmp-XXXX`` (``meta.json`` written last), then
swapped in with one atomic rename (``renameat2(RENAME_EXCHANGE)`` on Linux when replacing an old cache; elsewhere
two renames, between which the cache is briefly absent but never half-written). A reader therefore sees the old
complete cache or the new complete one. A crash leaves the previous cache intact; a temporary folder left by a
killed process is hidden, and removed by a later encode into the same place (once it is an hour old; a cache lost
between the two renames is put back). Concurrent encodes into the same folder are serialized with a lock file
``.<name>.lock`` beside it.

Freshness
---------
A cache is fresh when its format version, checkpoint SHA-256, data folder and dataset fingerprint (sorted
relative path, size and mtime of every FITS file, plus ``catalog.csv``) all match; ``encode_folder`` then
returns at once, unless ``force``. Anything else rebuilds it: a cache is never silently reused for other data.
``encode_folder`` also rebuilds when its own settings differ (preview size, HDU, plane, UMAP seed and sample size).

The model runs on the GPU when torch sees one, else on the CPU; the metrics are computed on the CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import json
import logging
import os
import pickle
import shutil
import sys
import tempfile
import time
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from astroae_core import __version__
from astroae_core.io.atomic import fsync_path
from astroae_core.io.catalog import CATALOG_NAME, LINKED_FROM_OUTSIDE, join_catalog, read_catalog
from astroae_core.io.sky import sky_position
from astroae_core.io import FitsReadError, find_fits_files, is_within, read_fits_with_index

__all__ = ["encode_folder", "cache_status", "dataset_fingerprint", "LatentCache", "load_cache", "main",
           "latent_correlations", "CACHE_FORMAT"]

log = logging.getLogger(__name__)

#: Version of the cache layout; a cache of another version is rebuilt.
CACHE_FORMAT = "astroae-cache/1"
FILES = {"table": "latents.parquet", "previews": "previews.npy", "meta": "meta.json", "manifest": "manifest.json",
         "umap": "umap.pkl", "correlations": "correlations.parquet"}
_REQUIRED = ("table", "previews", "meta", "manifest")
_STALE_TMP_SECONDS = 3600.0
_NOT_CORRELATED = {"id", "index", "image_seed", "seed"}
# Images kept in memory during an encode for meta["evaluation"] and meta["influence"] (x, full and latent-only
# reconstruction: about 3 x 140 kB each at 187 px), and training images re-read for the PCA / mean baselines.
EVAL_MAX_IMAGES = 500
EVAL_MAX_TRAIN_IMAGES = 1000


# ---------------------------------------------------------------------------------------------------------------
# fingerprints and staleness


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.resolve().relative_to(root.resolve()).as_posix()


def _manifest(data_dir) -> dict:
    root = Path(data_dir)
    if not root.is_dir():
        raise ValueError(f"data folder {str(root)!r} does not exist or is not a folder")
    files = []
    for f in find_fits_files(root):
        st = f.stat()
        files.append([_relative(f, root), int(st.st_size), int(st.st_mtime_ns)])
    files.sort()
    cat = root / CATALOG_NAME
    catalog = None
    if cat.is_file():
        st = cat.stat()
        catalog = [CATALOG_NAME, int(st.st_size), int(st.st_mtime_ns)]
    return {"files": files, "catalog": catalog}


def _fingerprint_of(manifest: dict) -> str:
    h = hashlib.sha256()
    entries = list(manifest["files"]) + ([manifest["catalog"]] if manifest["catalog"] else [])
    for rel, size, mtime in entries:
        h.update(f"{rel}\0{size}\0{mtime}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def dataset_fingerprint(data_dir) -> str:
    """SHA-256 over the sorted (relative path, size, mtime_ns) of every FITS file under ``data_dir``, and of its
    ``catalog.csv`` if present.

    Parameters
    ----------
    data_dir : str or Path
        The data folder (searched recursively with :func:`~astroae_core.io.fits.find_fits_files`).

    Returns
    -------
    str
        64 hex digits. Adding, removing, renaming, rewriting or touching a file changes it; moving the whole
        folder does not.

    Raises
    ------
    ValueError
        If ``data_dir`` is not a folder.
    """
    return _fingerprint_of(_manifest(data_dir))


def _read_json(path: Path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _describe_changes(old: dict | None, new: dict) -> str:
    if not old or "files" not in old:
        return "data changed"
    before = {r: (s, m) for r, s, m in old["files"]}
    after = {r: (s, m) for r, s, m in new["files"]}
    added = len(after.keys() - before.keys())
    removed = len(before.keys() - after.keys())
    modified = sum(1 for r in after.keys() & before.keys() if tuple(after[r]) != tuple(before[r]))
    parts = []
    for n, word in ((added, "added"), (modified, "modified"), (removed, "removed")):
        if n:
            parts.append(f"{n} file{'s' if n != 1 else ''} {word}")
    oc, nc = old.get("catalog"), new.get("catalog")
    if (oc is None) != (nc is None):
        parts.append(f"{CATALOG_NAME} {'added' if nc else 'removed'}")
    elif oc and list(oc) != list(nc):
        parts.append(f"{CATALOG_NAME} modified")
    return ", ".join(parts) or "data changed"


def _status(out: Path, *, ckpt_sha: str | None, data_dir: Path, manifest: dict | None = None,
            options: dict | None = None) -> tuple[bool, str]:
    meta_path = out / FILES["meta"]
    if not out.exists() or not meta_path.is_file():
        return False, "no cache"
    try:
        meta = _read_json(meta_path)
    except (OSError, ValueError) as exc:
        return False, f"unreadable meta.json ({exc})"
    if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        return False, f"cache format changed ({found} -> {CACHE_FORMAT})"
    missing = [FILES[k] for k in _REQUIRED if not (out / FILES[k]).is_file()]
    if meta.get("umap", {}).get("file") and not (out / FILES["umap"]).is_file():
        missing.append(FILES["umap"])
    if missing:
        return False, f"cache incomplete (missing {', '.join(missing)})"
    reasons = []
    if ckpt_sha is not None and meta.get("checkpoint", {}).get("sha256") != ckpt_sha:
        reasons.append("checkpoint changed")
    if str(Path(meta.get("data_dir", "")).resolve()) != str(data_dir.resolve()):
        reasons.append(f"data folder changed (cache made from {meta.get('data_dir')!r})")
    manifest = manifest if manifest is not None else _manifest(data_dir)
    if meta.get("dataset_fingerprint") != _fingerprint_of(manifest):
        try:
            old = _read_json(out / FILES["manifest"])
        except (OSError, ValueError):
            old = None
        reasons.append(_describe_changes(old, manifest))
    if options is not None:
        was = meta.get("options", {})
        diff = [f"{k} {was.get(k)!r} -> {v!r}" for k, v in options.items() if was.get(k) != v]
        if diff:
            reasons.append("settings changed (" + ", ".join(diff) + ")")
    if reasons:
        return False, "; ".join(reasons)
    return True, f"up to date ({meta.get('n_images')} images, made {meta.get('created_utc')})"


def cache_status(out, checkpoint, data_dir) -> tuple[bool, str]:
    """Whether the cache in ``out`` is fresh for ``checkpoint`` and ``data_dir``, and why not.

    Parameters
    ----------
    out : str or Path
        Cache folder.
    checkpoint : str or Path
        Checkpoint file (compared by SHA-256).
    data_dir : str or Path
        Data folder (compared by :func:`dataset_fingerprint` and location).

    Returns
    -------
    fresh : bool
    reason : str
        For humans: ``"no cache"``, ``"checkpoint changed"``, ``"3 files added, 1 file modified"``,
        ``"catalog.csv modified"``, ``"cache format changed (...)"``, ``"checkpoint ... does not exist"``, or
        ``"up to date (...)"``; several reasons are joined with ``"; "``.
    """
    from astroae_core.model.checkpoint import file_sha256

    out, data_dir, checkpoint = Path(out), Path(data_dir), Path(checkpoint)
    if not checkpoint.is_file():
        return False, f"checkpoint {str(checkpoint)!r} does not exist"
    if not data_dir.is_dir():
        return False, f"data folder {str(data_dir)!r} does not exist"
    return _status(out, ckpt_sha=file_sha256(checkpoint), data_dir=data_dir)


# ---------------------------------------------------------------------------------------------------------------
# the cache object


@dataclass
class LatentCache:
    """A loaded latent cache (see the module docstring for the files).

    Attributes
    ----------
    path : Path
        The cache folder.
    table : pandas.DataFrame
        ``latents.parquet``: one row per image.
    meta : dict
        ``meta.json``.
    previews : numpy.ndarray
        uint8 ``(N, P, P)``, memory-mapped read-only, row ``i`` is the thumbnail of ``table.iloc[i]``.
    correlations : pandas.DataFrame or None
        Index ``z0``.., one column per numeric catalog column; Spearman rank correlation
        (``meta["correlations"]["method"]``). ``None`` without a catalog.
    """

    path: Path
    table: pd.DataFrame
    meta: dict
    previews: np.ndarray
    correlations: pd.DataFrame | None = None
    _z: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)
    _umap: object = field(default=None, init=False, repr=False, compare=False)

    def __repr__(self) -> str:
        return (f"LatentCache({str(self.path)!r}, {len(self.table)} images, latent_dim={self.latent_dim}, "
                f"checkpoint={self.meta.get('checkpoint', {}).get('path')!r})")

    @property
    def latent_dim(self) -> int:
        """Number of latent dimensions (columns ``z0``..)."""
        return int(self.meta.get("latent_dim", len(self.latent_columns)))

    @property
    def latent_columns(self) -> list[str]:
        """``["z0", "z1", ...]``."""
        d = self.meta.get("latent_dim")
        if d is None:
            d = sum(1 for c in self.table.columns if c[:1] == "z" and c[1:].isdigit())
        return [f"z{i}" for i in range(int(d))]

    def latents(self) -> np.ndarray:
        """The latents as a float32 array ``(N, latent_dim)`` (columns ``z0``.. of the table)."""
        if self._z is None:
            self._z = np.ascontiguousarray(self.table[self.latent_columns].to_numpy(dtype=np.float32))
        return self._z

    def _scale(self) -> np.ndarray:
        s = self.latents().astype(np.float64).std(axis=0)
        return np.where(s > 0, s, 1.0)

    def neighbors(self, z, *, k: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """Nearest images in latent space, on latents divided by the dataset's standard deviation per dimension.

        Parameters
        ----------
        z : array_like, shape (D,) or (M, D)
            Query latent(s).
        k : int
            Number of neighbours (at most N).

        Returns
        -------
        indices, distances : numpy.ndarray
            Positional row indices into :attr:`table` (int64) and standardized distances, nearest first; shape
            (k,) for one query, (M, k) for several. Nothing is excluded: a dataset image finds itself first
            (the caller drops it).
        """
        from astroae_core.analysis.projections import nearest_neighbors

        single = np.ndim(z) == 1
        idx, dist = nearest_neighbors(self.latents(), z, k=k, scale=self._scale())
        return (idx[0], dist[0]) if single else (idx, dist)

    def umap_model(self):
        """The fitted UMAP model (unpickled from ``umap.pkl`` only if its SHA-256 matches ``meta.json``), or
        ``None`` when the cache's map is the PCA one (too few images for a UMAP).

        Raises
        ------
        ValueError
            If ``umap.pkl`` is missing or does not match the hash recorded when the cache was built.
        """
        info = self.meta.get("umap", {})
        if info.get("method") != "umap":
            return None
        if self._umap is None:
            path = self.path / FILES["umap"]
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise ValueError(f"cache {str(self.path)!r}: cannot read {FILES['umap']} ({exc})") from None
            if hashlib.sha256(data).hexdigest() != info.get("sha256"):
                raise ValueError(f"cache {str(self.path)!r}: {FILES['umap']} does not match the hash in meta.json "
                                 "(replaced or rebuilt since it was loaded?); refusing to unpickle it")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._umap = pickle.loads(data)  # noqa: S301 - hash-checked, locally produced (module docstring)
        return self._umap

    def place(self, z) -> dict:
        """Put new latents on the cache's maps.

        Parameters
        ----------
        z : array_like, shape (M, D) or (D,)
            Latents of new images (e.g. uploads, encoded with the cache's checkpoint).

        Returns
        -------
        dict
            ``{"pca_x", "pca_y", "umap_x", "umap_y"}``, float64 arrays of shape (M,). PCA uses the stored exact
            components, so a dataset image lands exactly on its PCA point. UMAP uses the saved model's
            ``transform``, except that a latent equal to a dataset image's latent (standardized distance below
            1e-4, i.e. the same image) gets that image's stored UMAP point: an image already in the dataset lands
            on its own point. A cache with too few images for a UMAP uses PCA coordinates for both.

        Notes
        -----
        The first UMAP ``transform`` in a process unpickles the model and has numba compile UMAP's code: tens of
        seconds once (later calls take milliseconds). An app can pay it early, in the background, by placing any
        latent, e.g. ``cache.place(cache.latents()[0] + 1e-3)``.
        """
        from astroae_core.analysis.projections import pca_transform, umap_transform

        q = np.asarray(z, dtype=np.float64)
        q = q[None, :] if q.ndim == 1 else q
        if q.ndim != 2 or q.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (M, {self.latent_dim}) or ({self.latent_dim},), got {np.shape(z)}")
        p = pca_transform(self.meta["pca"], q)
        res = {"pca_x": p[:, 0].copy(), "pca_y": p[:, 1].copy()}
        model = self.umap_model()
        if model is None:
            res["umap_x"], res["umap_y"] = res["pca_x"].copy(), res["pca_y"].copy()
            return res
        ux = np.empty(len(q))
        uy = np.empty(len(q))
        idx, dist = self.neighbors(q, k=1)
        same = dist[:, 0] < 1e-4
        if same.any():
            rows = idx[same, 0]
            ux[same] = self.table["umap_x"].to_numpy(dtype=np.float64)[rows]
            uy[same] = self.table["umap_y"].to_numpy(dtype=np.float64)[rows]
        if (~same).any():
            e = umap_transform(model, q[~same])
            ux[~same], uy[~same] = e[:, 0], e[:, 1]
        res["umap_x"], res["umap_y"] = ux, uy
        return res

    def latent_stats(self) -> dict:
        """Per-dimension statistics of the dataset's latents, for slider ranges.

        Returns
        -------
        dict of str to numpy.ndarray
            ``mean``, ``std`` (population, ddof=0), ``min``, ``max``, ``q01``, ``q99`` (1 % and 99 % quantiles,
            linear interpolation); each float64 of shape (latent_dim,).
        """
        z = self.latents().astype(np.float64)
        if len(z) == 0:
            nan = np.full(self.latent_dim, np.nan)
            return {k: nan.copy() for k in ("mean", "std", "min", "max", "q01", "q99")}
        q = np.quantile(z, [0.01, 0.99], axis=0)
        return {"mean": z.mean(0), "std": z.std(0), "min": z.min(0), "max": z.max(0), "q01": q[0], "q99": q[1]}


def load_cache(path) -> LatentCache:
    """Open a cache folder written by :func:`encode_folder`.

    Reads ``meta.json``, the table and the correlations, and memory-maps the previews; the UMAP model is only
    unpickled when :meth:`LatentCache.place` needs it.

    Raises
    ------
    ValueError
        Naming the folder, if it does not exist, is not an astroae cache, is of another cache format, or is
        incomplete or inconsistent (files missing, row counts that disagree).
    """
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{str(path)!r} is not a latent cache: no such folder")
    meta_path = path / FILES["meta"]
    if not meta_path.is_file():
        raise ValueError(f"{str(path)!r} is not a latent cache: it has no {FILES['meta']} "
                         "(make one with: python -m astroae_core encode --checkpoint CKPT --data DIR --out CACHE)")
    try:
        meta = _read_json(meta_path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{str(path)!r}: unreadable {FILES['meta']} ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ValueError(f"{str(path)!r} is not a latent cache of format {CACHE_FORMAT!r} (found {found!r}); "
                         "re-encode it")
    missing = [FILES[k] for k in ("table", "previews") if not (path / FILES[k]).is_file()]
    if missing:
        raise ValueError(f"cache {str(path)!r} is incomplete: missing {', '.join(missing)}")
    try:
        table = pd.read_parquet(path / FILES["table"])
        previews = np.load(path / FILES["previews"], mmap_mode="r")
    except Exception as exc:  # noqa: BLE001 - pyarrow/numpy raise many types for damaged files
        raise ValueError(f"cache {str(path)!r} is damaged: {type(exc).__name__}: {exc}") from None
    need = ["id", "path"] + [f"z{i}" for i in range(int(meta.get("latent_dim") or 0))]
    lacking = [c for c in need if c not in table.columns]
    if lacking:
        raise ValueError(f"cache {str(path)!r} is damaged: its table lacks the columns {lacking}")
    n = meta.get("n_images")
    if len(table) != n or previews.shape[0] != n or previews.ndim != 3:
        raise ValueError(f"cache {str(path)!r} is inconsistent: meta says {n} images, the table has {len(table)} "
                         f"rows and the previews have shape {previews.shape}")
    corr = None
    if (meta.get("correlations") or {}).get("file"):
        try:
            corr = pd.read_parquet(path / meta["correlations"]["file"])
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"cache {str(path)!r}: unreadable correlations ({exc})") from None
    return LatentCache(path=path, table=table, meta=meta, previews=previews, correlations=corr)


# ---------------------------------------------------------------------------------------------------------------
# correlations and the catalog


def latent_correlations(z_table: pd.DataFrame, catalog: pd.DataFrame, *, method: str = "spearman") -> pd.DataFrame:
    """Correlation of every latent column with every numeric catalog column (pairwise complete observations).

    Parameters
    ----------
    z_table : pandas.DataFrame
        Latent columns (``z0``..), one row per image.
    catalog : pandas.DataFrame
        Catalog values for the same rows (booleans count as 0/1). Non-numeric columns, identifiers
        (``id``, ``index``, ``*seed``) and columns with fewer than 3 finite values or no spread are left out.
    method : {"spearman", "pearson"}
        Spearman (rank) correlation is the default: catalog quantities such as flux are heavy-tailed and
        the latents need only be monotonic in them.

    Returns
    -------
    pandas.DataFrame
        Index: the latent columns; columns: the catalog columns kept; NaN where undefined.
    """
    if method not in ("spearman", "pearson"):
        raise ValueError(f"method must be 'spearman' or 'pearson', got {method!r}")
    cols = {}
    for c in catalog.columns:
        s = catalog[c]
        name = str(c)
        bare = name.lower().removeprefix("catalog_")
        if bare in _NOT_CORRELATED or bare.endswith("_seed"):
            continue
        if pd.api.types.is_bool_dtype(s):
            v = s.astype("float64")
        elif pd.api.types.is_numeric_dtype(s):
            v = pd.to_numeric(s, errors="coerce").astype("float64")
        else:
            continue
        v = v.where(np.isfinite(v))
        if v.notna().sum() < 3 or v.nunique(dropna=True) < 2:
            continue
        cols[name] = v.reset_index(drop=True)
    zt = z_table.reset_index(drop=True).astype("float64")
    out = pd.DataFrame(index=pd.Index(list(zt.columns), name="latent"), columns=list(cols), dtype="float64")
    for name, v in cols.items():
        for zc in zt.columns:
            ok = v.notna() & zt[zc].notna()
            a, b = zt[zc][ok], v[ok]
            if len(a) < 3:
                continue
            if method == "spearman":
                a, b = a.rank(), b.rank()
            a, b = a.to_numpy() - a.mean(), b.to_numpy() - b.mean()
            den = np.sqrt((a * a).sum() * (b * b).sum())
            out.loc[zc, name] = float((a * b).sum() / den) if den > 0 else np.nan
    return out


# ---------------------------------------------------------------------------------------------------------------
# encoding


def _fits_stem(rel: str) -> str:
    name = rel
    for suffix in (".gz", ".bz2"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    for suffix in (".fits", ".fit", ".fts", ".fz"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _flat_fraction(x: np.ndarray) -> float:
    """Fraction of pixels in the largest group sharing one value (to ~1e-6 of the [0, 1] range), counted only
    when the group is a region rather than a coincidence (at least 0.5 % of the pixels, and 16): zero-filled
    detector edges, saturated plateaus, masked areas filled with one value. 0 for an ordinary image."""
    q = np.round(x.reshape(-1).astype(np.float64) * 1048576.0)
    _, counts = np.unique(q, return_counts=True)
    biggest = int(counts.max())
    return biggest / q.size if biggest >= max(16, 0.005 * q.size) else 0.0


def _read_one(path: Path, config, hdu, plane, confine_to=None):
    from astroae_core.data.preprocessing import preprocess

    try:
        if confine_to is not None and not is_within(path, confine_to):
            return LINKED_FROM_OUTSIDE
        image, header, hdu_index = read_fits_with_index(path, hdu=hdu, plane=plane)
        x, _norm = preprocess(image, config=config)
    except Exception as exc:  # noqa: BLE001 - one bad file must never stop the encode
        if isinstance(exc, FitsReadError) and getattr(exc, "reason", None):
            return str(exc.reason)
        return f"{type(exc).__name__}: {exc}"
    sky = sky_position(header, image.shape)
    ra, dec = (sky["ra"], sky["dec"]) if sky else (np.nan, np.nan)
    return x, ra, dec, hdu_index, _flat_fraction(x)


class _PreviewSpool:
    """Previews appended batch by batch to a raw file in the cache being built, then written as one ``.npy``.

    Held in memory, 100k 64x64 previews are 410 MB, and concatenating them at the end doubled that; spooled, the
    encode's memory no longer grows with them (``benchmarks/cache_scale.py``, encode peak RSS).
    """

    def __init__(self, folder: Path, size: int):
        self.raw, self.size, self.n = folder / "previews.part", int(size), 0
        self.raw.write_bytes(b"")

    def append(self, previews: np.ndarray) -> None:
        # opened per batch: no handle stays open if the encode fails before save (its folder is then removed)
        with open(self.raw, "ab") as fh:
            fh.write(np.ascontiguousarray(previews, dtype=np.uint8).tobytes())
        self.n += len(previews)

    def save(self, path: Path, *, chunk: int = 8192) -> None:
        shape = (self.n, self.size, self.size)
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
        if self.n:
            raw = np.memmap(self.raw, dtype=np.uint8, mode="r", shape=shape)
            for i in range(0, self.n, chunk):
                out[i : i + chunk] = raw[i : i + chunk]
            del raw
        out.flush()
        del out
        self.raw.unlink()


def _previews(x, size: int) -> np.ndarray:
    import torch
    from torch.nn import functional as F

    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if t.shape[-1] != size:
        t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return (t.clamp(0, 1) * 255).round().to(torch.uint8)[:, 0].numpy()


def _json_safe(v):
    if isinstance(v, tuple):
        return [_json_safe(x) for x in v]
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_json_safe(x) for x in v]
    return v


@contextlib.contextmanager
def _lock(out: Path):
    lock_path = out.parent / f".{out.name}.lock"
    try:
        import fcntl
    except ImportError:  # not POSIX: no cross-process lock
        yield False
        return
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _remove_stale_tmp(out: Path, *, locked: bool) -> None:
    """Tidy up after a killed encode (called holding the lock): temporary builds go (all of them when the lock is
    a real one, since no other encode of ``out`` can be running; else those older than an hour); where a cache
    was lost between the two renames of the non-Linux swap, the previous one is put back."""
    now = time.time()
    for p in out.parent.glob(f".{out.name}.tmp-*"):
        with contextlib.suppress(OSError):
            if p.is_dir() and (locked or now - p.stat().st_mtime > _STALE_TMP_SECONDS):
                shutil.rmtree(p, ignore_errors=True)
    olds = sorted((p for p in out.parent.glob(f".{out.name}.old-*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    if olds and not out.exists() and (olds[-1] / FILES["meta"]).is_file():
        with contextlib.suppress(OSError):
            os.rename(olds.pop(), out)
            log.warning("restored the previous cache %s after an interrupted rebuild", out)
    for p in olds:
        shutil.rmtree(p, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return rc == 0


def _swap_in(tmp: Path, out: Path) -> None:
    """Make ``tmp`` the cache at ``out``; the old cache (if any) is deleted afterwards."""
    if not out.exists():
        os.rename(tmp, out)
    elif _exchange(tmp, out):
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old cache
    else:
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.rmdir(old)
        os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    fsync_path(out.parent)


def _check_out(out: Path, data_dir: Path) -> None:
    o, d = out.resolve(), data_dir.resolve()
    if o == d or o in d.parents:
        raise ValueError(f"--out {str(out)!r} must not be the data folder or contain it")
    if out.exists():
        if not out.is_dir():
            raise ValueError(f"--out {str(out)!r} exists and is not a folder")
        if not (out / FILES["meta"]).is_file() and any(out.iterdir()):
            raise ValueError(f"--out {str(out)!r} exists, is not empty and is not a latent cache; "
                             "refusing to replace it")


def encode_folder(checkpoint, data_dir, out, *, batch_size: int = 64, preview_size: int = 64,
                  progress: bool = True, force: bool = False, umap_max_fit: int = 50_000, seed: int = 0,
                  hdu=None, plane=None, confine_to=None) -> Path:
    """Encode every FITS image under ``data_dir`` with ``checkpoint`` and write the latent cache ``out``.

    Files are read, preprocessed and run through the model in batches, so memory holds one batch of images plus
    the per-image results (latents, metrics, previews), never the whole dataset. Unreadable files are logged
    once each and listed in ``meta["skipped"]``; they never stop the encode.

    Parameters
    ----------
    checkpoint : str or Path
        Checkpoint file (``python -m train`` output).
    data_dir : str or Path
        Folder of FITS files (recursive); a ``catalog.csv`` in it is joined onto the table.
    out : str or Path
        Cache folder to write (atomically replaced; see the module docstring).
    batch_size : int
        Images per inference batch.
    preview_size : int
        Side of the uint8 thumbnails in ``previews.npy``.
    progress : bool
        Show a progress bar over the files (and a line per later step).
    force : bool
        Rebuild even if the cache is fresh.
    umap_max_fit : int
        Most latents the UMAP is fitted on (a seeded sample); the rest are placed with ``transform``.
    seed : int
        Seed of the UMAP and its sample.
    hdu, plane : optional
        Passed to :func:`~astroae_core.io.fits.read_fits` for every file.
    confine_to : path or sequence of paths, optional
        Read nothing whose real path lies outside these folders: a file linked from outside is listed in
        ``meta["skipped"]``, a catalog linked from outside is ignored, and the baselines are not fitted when the
        checkpoint's training folder lies outside. The app passes the folders it may read.

    Returns
    -------
    pathlib.Path
        ``out``. Returned at once, without recomputing, when the cache there is fresh (same checkpoint
        SHA-256, data folder, dataset fingerprint, cache format and settings) and ``force`` is false.

    Raises
    ------
    ValueError
        For a missing or bad checkpoint (:class:`~astroae_core.model.checkpoint.CheckpointError`), a missing data
        folder, a folder without a single readable image, an ``out`` that exists and is not a cache, or bad
        options.

    Notes
    -----
    In a process group (``torchrun --nproc_per_node=N -m astroae_core encode ...``, see
    :mod:`astroae_core.distributed`) every rank reads and encodes its contiguous block of the sorted file list;
    rank 0 gathers the blocks in order and does everything else as a single process would, so the cache is the
    same. Ranks other than 0 return ``out`` as soon as their block is sent: the cache is in place when rank 0
    returns. The data folder and the checkpoint must be readable by every rank; only rank 0 writes.
    """
    t_start = time.perf_counter()
    from astroae_core.model.checkpoint import file_sha256

    checkpoint, data_dir, out = Path(checkpoint), Path(data_dir), Path(out)
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(preview_size, bool) or int(preview_size) != preview_size or not 4 <= preview_size <= 1024:
        raise ValueError(f"preview_size must be an integer in [4, 1024], got {preview_size!r}")
    if int(umap_max_fit) < 5:
        raise ValueError(f"umap_max_fit must be at least 5, got {umap_max_fit!r}")
    from astroae_core.io import check_read_args

    try:
        check_read_args(hdu, plane)
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    if not checkpoint.is_file():
        raise ValueError(f"checkpoint {str(checkpoint)!r} does not exist")
    if not data_dir.is_dir():
        raise ValueError(f"data folder {str(data_dir)!r} does not exist or is not a folder")
    if confine_to is not None and not is_within(data_dir, confine_to):
        raise ValueError(f"data folder {str(data_dir)!r} lies outside the folders that may be read")
    options = {"preview_size": int(preview_size), "hdu": _json_safe(hdu), "plane": _json_safe(plane),
               "umap_max_fit": int(umap_max_fit), "seed": int(seed)}
    from astroae_core import distributed

    def decide(held: contextlib.ExitStack):
        _check_out(out, data_dir)
        out.parent.mkdir(parents=True, exist_ok=True)
        locked = held.enter_context(_lock(out))
        _remove_stale_tmp(out, locked=locked)
        ckpt_sha = file_sha256(checkpoint)
        manifest = _manifest(data_dir)
        if not force:
            fresh, reason = _status(out, ckpt_sha=ckpt_sha, data_dir=data_dir, manifest=manifest, options=options)
            if fresh:
                log.info("cache %s is %s", out, reason)
                return None
            log.info("building cache %s: %s", out, reason)
        return ckpt_sha, manifest

    with contextlib.ExitStack() as held:
        # Under torchrun, rank 0 alone looks at the output, holds the lock and lists the files; every rank then
        # encodes its block of that list, and rank 0 gathers the blocks and writes the one cache.
        plan = distributed.agree(decide, held)
        if plan is None:
            return out
        ckpt_sha, manifest = plan
        if not distributed.is_main_process():
            _build(checkpoint, data_dir, None, ckpt_sha=ckpt_sha, manifest=manifest, batch_size=int(batch_size),
                   preview_size=int(preview_size), progress=False, umap_max_fit=int(umap_max_fit),
                   seed=int(seed), hdu=hdu, plane=plane, options=options, t_start=t_start, confine_to=confine_to)
            return out
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        try:
            meta = _build(checkpoint, data_dir, tmp, ckpt_sha=ckpt_sha, manifest=manifest, batch_size=int(batch_size),
                          preview_size=int(preview_size), progress=progress, umap_max_fit=int(umap_max_fit),
                          seed=int(seed), hdu=hdu, plane=plane, options=options, t_start=t_start,
                          confine_to=confine_to)
            _swap_in(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    if progress:
        _say(f"wrote {out} ({meta['n_images']} images, {len(meta['skipped'])} skipped) "
             f"in {meta['build_seconds']:.1f} s", progress)
    return out


def _report_sample(rels: list[str], val_set: set, *, seed: int) -> set[int]:
    """Indices of the files kept for the cache's evaluation and influence: the validation images when the folder
    is the checkpoint's training folder, else all images; a seeded sample of at most ``EVAL_MAX_IMAGES``."""
    pool = [i for i, r in enumerate(rels) if r in val_set] or list(range(len(rels)))
    if len(pool) > EVAL_MAX_IMAGES:
        pool = np.random.default_rng(seed).choice(pool, size=EVAL_MAX_IMAGES, replace=False).tolist()
    return set(pool)


def _latent_report(model, kept_sample, z_all, *, same_root: bool, n_images: int, seed: int,
                   confine_to=None, kinds=None) -> tuple[dict, dict]:
    """``meta["influence"]`` and ``meta["evaluation"]`` from the sample kept during the encode (nothing is
    decoded twice). The evaluation is ``{"error": reason}`` when the baselines cannot be fitted (the checkpoint's
    training images are not on this machine); the influence needs nothing but the model."""
    from astroae_core.analysis.evaluate import training_images, compare_with_baselines
    from astroae_core.analysis.inference import measure_influence

    if not kept_sample:
        return {"error": "no image was sampled"}, {"error": "no image was sampled"}
    rows = np.concatenate([k[0] for k in kept_sample])
    x, x_hat, x_lat = (np.concatenate([k[i] for k in kept_sample]) for i in (1, 2, 3))
    z = z_all[rows]
    inf = measure_influence(model, z, images=x, std=z_all.std(0), seed=seed)
    influence = {"method": "mean absolute change of the latent-only decode when one dimension moves by "
                           f"+/-{inf['n_sigma']:g} dataset standard deviations, on {inf['n_images']} images",
                 **{k: _json_safe(v) for k, v in inf.items()}}
    what = ("validation split of the training folder" if same_root else
            "a seeded sample of the images" if len(rows) < n_images else "all images in the folder")
    try:
        train, _ = training_images(model, None, model.preprocess_config, max_images=EVAL_MAX_TRAIN_IMAGES,
                                    seed=seed, confine_to=confine_to)
        # too few training images for PCA-k is a report's problem, never the encode's
        evaluation = compare_with_baselines(model, x, z, x_hat, x_lat, train.x, seed=seed,
                                            kinds=None if kinds is None else [kinds[i] for i in rows])
    except ValueError as exc:
        return influence, {"error": str(exc), "images": what}
    evaluation.update(images=what, n_train_images_for_baselines=len(train.paths))
    return influence, _json_safe(evaluation)


def _say(msg: str, progress: bool) -> None:
    if progress:
        from tqdm.auto import tqdm

        tqdm.write(msg, file=sys.stderr)


def _build(checkpoint: Path, data_dir: Path, tmp: Path, *, ckpt_sha, manifest, batch_size, preview_size, progress,
           umap_max_fit, seed, hdu, plane, options, t_start, confine_to=None) -> dict:
    import torch
    from tqdm.auto import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from astroae_core.model.checkpoint import load_model
    from astroae_core.analysis.metrics import image_metrics
    from astroae_core.model.network import fused_for_inference
    from astroae_core.analysis.outliers import anomaly_scores
    from astroae_core.analysis.projections import fit_pca, fit_umap, pca_transform

    from astroae_core import distributed

    rank, world = distributed.rank_world()
    model = fused_for_inference(
        load_model(checkpoint, device=distributed.local_device("cuda" if torch.cuda.is_available() else "cpu")))
    dev = next(model.parameters()).device
    cfg = model.preprocess_config
    info = getattr(model, "checkpoint_info", {}) or {}
    files = [data_dir / rel for rel, _, _ in manifest["files"]]
    rels = [rel for rel, _, _ in manifest["files"]]

    train_info = info.get("data") or {}
    same_root = bool(train_info.get("root")) and Path(train_info["root"]).resolve() == data_dir.resolve()
    train_set = set(train_info.get("train_paths", [])) if same_root else set()
    val_set = set(train_info.get("val_paths", [])) if same_root else set()

    sample = _report_sample(rels, val_set, seed=seed)
    kept_sample: list[tuple] = []  # (row positions, x, x_hat, x_latent) of the sample's images, per batch
    keep_rel, ras, decs, hdus, flats, peaks = [], [], [], [], [], []
    zs, metrics, latent_metrics = [], [], []
    # A single process spools its previews to disk; under torchrun each rank's go to rank 0 with the rest.
    prevs = _PreviewSpool(tmp, preview_size) if world == 1 else []
    skipped: list[dict] = []
    n_workers = max(1, min(4, os.cpu_count() or 1))
    t_encode = time.perf_counter()
    mine = distributed.shard(range(len(files)), rank=rank, world=world)  # all of them without torchrun
    bar = tqdm(total=len(mine), desc="encoding", unit="file", disable=not progress or not mine)
    with bar, (logging_redirect_tqdm() if progress else contextlib.nullcontext()), \
            ThreadPoolExecutor(max_workers=n_workers) as pool, torch.inference_mode():
        batches = [list(mine[i : i + batch_size]) for i in range(0, len(mine), batch_size)]

        def submit(b):
            return [pool.submit(_read_one, files[i], cfg, hdu, plane, confine_to) for i in b]

        pending = submit(batches[0]) if batches else []
        for bi, b in enumerate(batches):
            results = [f.result() for f in pending]
            # read the next batch while this one is on the model
            pending = submit(batches[bi + 1]) if bi + 1 < len(batches) else []
            xb, ok = [], []
            for i, r in zip(b, results):
                if isinstance(r, str):
                    skipped.append({"path": rels[i], "reason": r})
                    log.warning("skipping %s: %s", rels[i], r)
                    continue
                x, ra, dec, h, flat = r
                xb.append(x)
                ok.append(i)
                ras.append(ra)
                decs.append(dec)
                hdus.append(h)
                flats.append(flat)
            bar.update(len(b))
            if not xb:
                continue
            keep_rel.extend(rels[i] for i in ok)
            x = np.stack(xb)
            xt = torch.from_numpy(x)
            o = model(xt.to(dev))
            z = o["z"].float().cpu()
            x_hat = o["x_hat"].float().cpu()
            zs.append(z.numpy())
            metrics.append(image_metrics(xt, x_hat))
            if model.config.has_skips:
                x_lat = model.decode(o["z"]).float().cpu()
                latent_metrics.append(image_metrics(xt, x_lat))
            else:
                x_lat = x_hat
                latent_metrics.append(metrics[-1])
            # Row positions within this rank's rows; under torchrun the gather below shifts them.
            chosen = [j for j, i in enumerate(ok) if i in sample]
            if chosen:
                first_row = len(keep_rel) - len(ok)
                kept_sample.append((np.asarray(chosen) + first_row, x[chosen], x_hat[chosen].numpy(),
                                    x_lat[chosen].numpy()))
            peaks.append((xt - x_hat).abs().flatten(1).amax(1).double().numpy())
            prevs.append(_previews(x, preview_size))
    if world > 1:
        # The ranks' blocks, concatenated in rank order, are the files in their original order.
        parts = distributed.gather_to_root((keep_rel, ras, decs, hdus, flats, peaks, zs, prevs, metrics,
                                            latent_metrics, skipped, kept_sample))
        if parts is None:
            return None
        first_rows = np.cumsum([0] + [len(part[0]) for part in parts[:-1]])
        kept_sample = [(rows + r0, *rest) for part, r0 in zip(parts, first_rows) for rows, *rest in part[-1]]
        (keep_rel, ras, decs, hdus, flats, peaks, zs, prevs, metrics, latent_metrics,
         skipped) = ([x for part in parts for x in part[j]] for j in range(len(parts[0]) - 1))
    encode_seconds = time.perf_counter() - t_encode

    n = len(keep_rel)
    if n == 0:
        detail = "; ".join(f"{s['path']}: {s['reason']}" for s in skipped[:3])
        raise ValueError(f"no usable FITS images under {str(data_dir)!r} ({len(files)} found"
                         + (f"; e.g. {detail}" if detail else "") + ")")
    latent_dim = int(model.config.latent_dim)
    z = np.concatenate(zs).astype(np.float32)
    cat_metrics = {k: np.concatenate([m[k] for m in metrics]) for k in ("mse", "ssim", "ms_ssim")}
    lat_metrics = {k: np.concatenate([m[k] for m in latent_metrics]) for k in ("mse", "ssim")}

    ids = [_fits_stem(r) for r in keep_rel]
    if len(set(ids)) != len(ids):  # "a.fits" and "a.fit": fall back to the path for those
        seen = Counter(ids)
        ids = [r if seen[i] > 1 else i for i, r in zip(ids, keep_rel)]
    split = ["train" if r in train_set else "val" if r in val_set else "unseen" for r in keep_rel]
    table = pd.DataFrame({"id": pd.Series(ids, dtype="str"), "path": pd.Series(keep_rel, dtype="str"),
                          "hdu": np.asarray(hdus, dtype=np.int64), "split": pd.Series(split, dtype="str")})
    for d in range(latent_dim):
        table[f"z{d}"] = z[:, d]
    table["mse"] = cat_metrics["mse"].astype(np.float64)
    table["ssim"] = cat_metrics["ssim"].astype(np.float64)
    table["ms_ssim"] = cat_metrics["ms_ssim"].astype(np.float64)
    table["latent_mse"] = lat_metrics["mse"].astype(np.float64)
    table["latent_ssim"] = lat_metrics["ssim"].astype(np.float64)

    _say(f"maps and scores for {n} latents...", progress)
    t_maps = time.perf_counter()
    pca = fit_pca(z)
    p = pca_transform(pca, z)
    table["pca_x"] = p[:, 0].astype(np.float32)
    table["pca_y"] = p[:, 1].astype(np.float32)
    umap_info = {"seed": seed, "max_fit": umap_max_fit, "n_neighbors": None, "min_dist": 0.1}
    umap_model = None
    try:
        emb, umap_model = fit_umap(z, seed=seed, max_fit=umap_max_fit)
    except Exception as exc:  # noqa: BLE001 - UMAP can fail on degenerate latents; the PCA map still works
        log.warning("UMAP failed (%s: %s); using the PCA map instead", type(exc).__name__, exc)
        emb = p.astype(np.float32)
        umap_info.update(method="pca", note=f"UMAP failed ({type(exc).__name__}: {exc}); umap_x/umap_y are PCA")
    else:
        if umap_model is None:
            umap_info.update(method="pca", note=f"only {n} images: too few for a UMAP; umap_x/umap_y are PCA")
        else:
            data = pickle.dumps(umap_model, protocol=pickle.HIGHEST_PROTOCOL)
            (tmp / FILES["umap"]).write_bytes(data)
            umap_info.update(method="umap", file=FILES["umap"], sha256=hashlib.sha256(data).hexdigest(),
                             n_neighbors=int(umap_model.n_neighbors), n_fit=int(min(n, umap_max_fit)))
    table["umap_x"] = emb[:, 0].astype(np.float32)
    table["umap_y"] = emb[:, 1].astype(np.float32)

    scores = anomaly_scores(z, table["mse"].to_numpy(), extra={"peak": np.concatenate(peaks),
                                                                "flat": np.asarray(flats)}, seed=seed)
    for c in scores.columns:
        table[c] = scores[c].to_numpy()
    table["ra"] = np.asarray(ras, dtype=np.float64)
    table["dec"] = np.asarray(decs, dtype=np.float64)
    maps_seconds = time.perf_counter() - t_maps
    catalog, cat_info = read_catalog(data_dir, confine_to=confine_to)
    corr_info, kinds = None, None
    if catalog is not None:
        table, part = join_catalog(table, catalog, cat_info)
        corr = latent_correlations(table[[f"z{d}" for d in range(latent_dim)]], part)
        corr.to_parquet(tmp / FILES["correlations"])
        corr_info = {"method": "spearman", "file": FILES["correlations"], "columns": list(corr.columns)}
        kind_col = cat_info["renamed"].get("kind", "kind")  # catalog_kind if the table had a kind column
        if kind_col in table.columns:
            kinds = [None if pd.isna(k) else str(k) for k in table[kind_col]]

    _say("measuring the latent: influence of each dimension, PCA and mean-image baselines...", progress)
    t_report = time.perf_counter()
    influence, evaluation = _latent_report(model, kept_sample, z, same_root=same_root and bool(val_set),
                                           n_images=n, seed=seed, confine_to=confine_to, kinds=kinds)
    report_seconds = time.perf_counter() - t_report

    table.to_parquet(tmp / FILES["table"], index=False)
    if isinstance(prevs, _PreviewSpool):
        prevs.save(tmp / FILES["previews"])
    else:
        np.save(tmp / FILES["previews"], np.concatenate(prevs))
    with open(tmp / FILES["manifest"], "w", encoding="utf-8") as fh:
        json.dump(manifest, fh)

    counts = pd.Series(split).value_counts().to_dict()
    meta = {
        "format": CACHE_FORMAT,
        "package_version": __version__,
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "checkpoint": {"path": str(checkpoint.resolve()), "sha256": ckpt_sha, "epoch": info.get("epoch"),
                       "version": info.get("version")},
        "model_config": model.config.to_dict(),
        "preprocess_config": cfg.to_dict(),
        "latent_dim": latent_dim,
        "data_dir": str(data_dir.resolve()),
        "dataset_fingerprint": _fingerprint_of(manifest),
        "n_files": len(files),
        "n_images": n,
        "skipped": skipped,
        "split": {"training_root": train_info.get("root"), "data_is_training_root": same_root,
                  "counts": {k: int(v) for k, v in counts.items()}},
        "options": options,
        "preview_size": int(preview_size),
        "pca": {k: _json_safe(v) for k, v in pca.items()},
        "umap": umap_info,
        "anomaly": {"combined": "anomaly_score = the largest of the separate scores' z-scores, each the z-score of "
                                "log1p(score / median) scaled by its upper spread (q90 - median) / 1.2816; "
                                "see astroae_core.analysis.outliers",
                    "scores": [c for c in scores.columns if c.startswith("score_")],
                    "score_recon": "mse of the full reconstruction",
                    "score_density": "mean standardized distance to the 10 nearest other latents",
                    "score_peak": "largest absolute pixel residual of the full reconstruction",
                    "score_flat": "fraction of preprocessed pixels in the largest group sharing one value "
                                  "(0 unless at least 0.5 % of the pixels)"},
        "correlations": corr_info,
        "catalog": cat_info,
        "columns": list(table.columns),
        "files": {k: v for k, v in FILES.items() if (tmp / v).exists() or k == "meta"},
        "influence": influence,
        "evaluation": evaluation,
        "timing": {"encode_seconds": encode_seconds, "maps_seconds": maps_seconds, "report_seconds": report_seconds,
                   "images_per_second": n / encode_seconds if encode_seconds > 0 else None},
    }
    meta["build_seconds"] = time.perf_counter() - t_start
    # meta.json last: a folder with a meta.json holds every file it lists.
    for name in os.listdir(tmp):
        fsync_path(tmp / name)
    with open(tmp / FILES["meta"], "w", encoding="utf-8") as fh:
        json.dump(_json_safe(meta), fh, indent=1, allow_nan=True)
        fh.flush()
        os.fsync(fh.fileno())
    fsync_path(tmp)
    return meta


# ---------------------------------------------------------------------------------------------------------------
# command line


def main(argv: list[str] | None = None) -> int:
    """``python -m astroae_core encode --checkpoint CKPT --data DIR --out CACHE [...]``.

    Returns
    -------
    int
        0 on success (or when the cache is already fresh), 2 on an error (a message on stderr, no traceback).
    """
    p = argparse.ArgumentParser(prog="python -m astroae_core encode", description=(
        "Encode every FITS image under --data with a checkpoint and write the latent cache (latents, metrics, "
        "PCA/UMAP maps, anomaly scores, previews) to --out. A cache that is already up to date is left alone."))
    p.add_argument("--checkpoint", required=True, help="checkpoint file (python -m train output)")
    p.add_argument("--data", required=True, help="folder of FITS images (searched recursively)")
    p.add_argument("--out", required=True, help="cache folder to write")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--preview-size", type=int, default=64, help="side of the thumbnails (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the UMAP (default 0)")
    p.add_argument("--umap-max-fit", type=int, default=50_000, help="most latents the UMAP is fitted on")
    p.add_argument("--hdu", help="HDU to read in every file (index or EXTNAME); default: the first image HDU")
    p.add_argument("--plane", type=int, help="plane of a cube to read; default: the middle one")
    p.add_argument("--force", action="store_true", help="rebuild even if the cache is up to date")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--dry-run", action="store_true", help="say what would be done and write nothing")
    args = p.parse_args(argv)
    hdu = int(args.hdu) if args.hdu is not None and args.hdu.strip().lstrip("-").isdigit() else args.hdu
    from astroae_core.distributed import is_main_process

    try:
        if args.dry_run:
            return _dry_run(args) if is_main_process() else 0
        before = _meta_stamp(Path(args.out))
        out = encode_folder(args.checkpoint, args.data, args.out, batch_size=args.batch_size,
                            preview_size=args.preview_size, progress=not args.quiet, force=args.force,
                            umap_max_fit=args.umap_max_fit, seed=args.seed, hdu=hdu, plane=args.plane)
        if not is_main_process():  # under torchrun: rank 0 writes the cache and reports
            return 0
        meta = _read_json(Path(out) / FILES["meta"])
        if _meta_stamp(Path(out)) == before:
            print(f"{out} is up to date ({meta['n_images']} images); nothing to do (--force rebuilds it)")
        else:
            print(f"wrote {out}: {meta['n_images']} images, {len(meta['skipped'])} skipped, "
                  f"map: {meta['umap']['method']}, {meta['build_seconds']:.1f} s")
    except (ValueError, OSError) as exc:
        if is_main_process() or not hasattr(exc, "from_rank"):  # rank 0's error: said once, by rank 0
            print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _meta_stamp(out: Path):
    try:
        st = (out / FILES["meta"]).stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def _dry_run(args) -> int:
    data = Path(args.data)
    if not Path(args.checkpoint).is_file():
        raise ValueError(f"checkpoint {args.checkpoint!r} does not exist")
    if not data.is_dir():
        raise ValueError(f"data folder {args.data!r} does not exist or is not a folder")
    _check_out(Path(args.out), data)
    fresh, reason = cache_status(args.out, args.checkpoint, args.data)
    plan = {"checkpoint": args.checkpoint, "data": args.data, "out": args.out,
            "fits_files": len(find_fits_files(data)), "catalog": (data / CATALOG_NAME).is_file(),
            "cache_fresh": fresh, "reason": reason,
            "action": "rebuild (--force)" if args.force else ("nothing" if fresh else "build")}
    print(json.dumps(plan, indent=2))
    return 0
