"""A cache folder on disk: writing its files (``meta.json`` last), telling one apart, and opening it as a
:class:`LatentCache`.

The files (:data:`~astroae_core.cache.layout.FILES`):

``latents.parquet``
    One row per readable image, in the sorted order of :func:`~astroae_core.io.find_fits_files`; its columns
    by role in ``meta.columns`` (:class:`~astroae_core.cache.meta.Columns`): ``id``, ``path`` (relative to the
    data folder, POSIX), ``hdu`` (index of the HDU read), ``split`` (``"train"``/``"val"`` when the data folder is
    the checkpoint's training folder, else ``"unseen"``), ``ra``, ``dec`` (degrees, ICRS, of the image centre from
    its celestial WCS; NaN without one); ``z0``.. (float32); ``mse``, ``ssim``, ``ms_ssim`` (full
    reconstruction), ``latent_mse``, ``latent_ssim`` (decoded from the latent alone; equal to the full ones for
    ``skip_mode="none"``); ``pca_x``, ``pca_y``, ``umap_x``, ``umap_y``; ``score_recon``, ``score_density``,
    ``score_peak``, ``score_flat``, ``anomaly_score``, ``anomaly_rank`` (see :mod:`astroae_core.analysis.outliers`);
    then every column of a ``catalog.csv`` in the data folder as ``catalog.<name>``, joined on its ``path``,
    ``file`` or ``filename`` column (relative path first, then file name).
``previews.npy``
    uint8 thumbnails ``(N, P, P)`` of the preprocessed inputs, in table order (opened memory-mapped).
``meta.json``
    :class:`~astroae_core.cache.meta.CacheMeta`.
``manifest.json``
    The (path, size, mtime) of every file the fingerprint covers, so that a stale cache can say *what* changed.
``correlations.parquet``
    Spearman rank correlation of each latent dimension (rows ``z0``..) with each numeric catalog column, when
    there is a catalog.

A cache holds data only (Parquet, ``.npy`` without objects, JSON): opening one runs no code from it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from astroae_core.cache.layout import FILES
from astroae_core.cache.meta import CacheMeta, read_meta, write_meta
from astroae_core.io import fsync_path

__all__ = ["LatentCache", "is_cache_dir", "load_cache", "write_cache"]


@dataclass
class LatentCache:
    """A loaded latent cache (see the module docstring for the files).

    Attributes
    ----------
    path : Path
        The cache folder.
    table : pandas.DataFrame
        ``latents.parquet``: one row per image.
    meta : CacheMeta
        ``meta.json``.
    previews : numpy.ndarray
        uint8 ``(N, P, P)``, memory-mapped read-only, row ``i`` is the thumbnail of ``table.iloc[i]``.
    correlations : pandas.DataFrame or None
        Index ``z0``.., one column per numeric catalog column (``catalog.<name>``); Spearman rank correlation.
        ``None`` without a catalog.
    """

    path: Path
    table: pd.DataFrame
    meta: CacheMeta
    previews: np.ndarray
    correlations: pd.DataFrame | None = None
    _z: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def __repr__(self) -> str:
        return (f"LatentCache({str(self.path)!r}, {len(self.table)} images, latent_dim={self.latent_dim}, "
                f"checkpoint={self.meta.checkpoint.path!r})")

    @property
    def latent_dim(self) -> int:
        """Number of latent dimensions."""
        return self.meta.latent_dim

    @property
    def latent_columns(self) -> list[str]:
        """The latent columns, ``["z0", "z1", ...]``, as the cache's schema lists them."""
        return list(self.meta.columns.latent)

    @property
    def catalog_columns(self) -> list[str]:
        """The columns joined from the data folder's catalog (``catalog.<name>``); empty without one."""
        return list(self.meta.columns.catalog)

    @property
    def score_columns(self) -> list[str]:
        """The anomaly scores: the separate ``score_*``, then ``anomaly_score`` and ``anomaly_rank``."""
        return list(self.meta.columns.scores)

    @property
    def checkpoint(self) -> Path:
        """The checkpoint the cache was encoded with (stored relative to the cache folder, resolved here)."""
        return self.meta.checkpoint_path(self.path)

    @property
    def checkpoint_sha256(self) -> str:
        """SHA-256 of the checkpoint the cache was encoded with."""
        return self.meta.checkpoint.sha256

    @property
    def data_dir(self) -> Path:
        """The folder the images were read from (stored relative to the cache folder, resolved here)."""
        return self.meta.data_path(self.path)

    def latents(self) -> np.ndarray:
        """The latents as a float32 array ``(N, latent_dim)``."""
        if self._z is None:
            self._z = np.ascontiguousarray(self.table[self.latent_columns].to_numpy(dtype=np.float32))
        return self._z

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
        from astroae_core.analysis import nearest_neighbors

        single = np.ndim(z) == 1
        idx, dist = nearest_neighbors(self.latents(), z, k=k)
        return (idx[0], dist[0]) if single else (idx, dist)

    def place(self, z) -> dict:
        """Put new latents on the cache's maps (no model is loaded, nothing is compiled).

        Parameters
        ----------
        z : array_like, shape (M, D) or (D,)
            Latents of new images (e.g. uploads, encoded with the cache's checkpoint).

        Returns
        -------
        dict
            ``{"pca_x", "pca_y", "umap_x", "umap_y"}``, float64 arrays of shape (M,). PCA uses the stored exact
            components, so a dataset image lands exactly on its PCA point. The UMAP position is the
            inverse-distance weighted mean of the nearest cached latents' positions
            (:func:`~astroae_core.analysis.place_by_neighbors`, UMAP's own metric and neighbourhood size): an
            image already in the dataset lands on its own point. A cache whose map is the PCA one uses PCA
            coordinates for both.
        """
        from astroae_core.analysis import pca_transform, place_by_neighbors

        q = np.asarray(z, dtype=np.float64)
        q = q[None, :] if q.ndim == 1 else q
        if q.ndim != 2 or q.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (M, {self.latent_dim}) or ({self.latent_dim},), got {np.shape(z)}")
        p = pca_transform(self.meta.pca.as_arrays(), q)
        res = {"pca_x": p[:, 0].copy(), "pca_y": p[:, 1].copy()}
        if self.meta.umap.method != "umap":
            res["umap_x"], res["umap_y"] = res["pca_x"].copy(), res["pca_y"].copy()
            return res
        xy = self.table[["umap_x", "umap_y"]].to_numpy(dtype=np.float64)
        e = place_by_neighbors(self.latents(), xy, q, k=self.meta.umap.n_neighbors or 15)
        res["umap_x"], res["umap_y"] = e[:, 0].copy(), e[:, 1].copy()
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


def is_cache_dir(path) -> bool:
    """Whether ``path`` is a folder holding a cache's ``meta.json`` and table (of any format: an older cache is
    still a cache, to be rebuilt)."""
    p = Path(path)
    return (p / FILES["meta"]).is_file() and (p / FILES["table"]).is_file()


def load_cache(path) -> LatentCache:
    """Open a cache folder written by :func:`~astroae_core.cache.encode_folder`.

    Reads ``meta.json``, the table and the correlations, and memory-maps the previews.

    Raises
    ------
    ValueError
        Naming the folder, if it does not exist, is not an astroae cache, is of another cache format, or is
        incomplete or inconsistent (files missing, columns missing, row counts that disagree).
    """
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{str(path)!r} is not a latent cache: no such folder")
    if not (path / FILES["meta"]).is_file():
        raise ValueError(f"{str(path)!r} is not a latent cache: it has no {FILES['meta']} "
                         "(make one with: python -m astroae_core encode --checkpoint CKPT --data DIR --out CACHE)")
    meta = read_meta(path)
    missing = [FILES[k] for k in ("table", "previews") if not (path / FILES[k]).is_file()]
    if missing:
        raise ValueError(f"cache {str(path)!r} is incomplete: missing {', '.join(missing)}")
    try:
        table = pd.read_parquet(path / FILES["table"])
        previews = np.load(path / FILES["previews"], mmap_mode="r", allow_pickle=False)
        corr = pd.read_parquet(path / FILES["correlations"]) if meta.correlations is not None else None
    except Exception as exc:  # noqa: BLE001 - pyarrow/numpy raise many types for damaged files
        raise ValueError(f"cache {str(path)!r} is damaged: {type(exc).__name__}: {exc}") from None
    lacking = [c for c in meta.columns.all if c not in table.columns]
    if lacking:
        raise ValueError(f"cache {str(path)!r} is damaged: its table lacks the columns {lacking}")
    n = meta.n_images
    if len(table) != n or previews.ndim != 3 or previews.shape[0] != n:
        raise ValueError(f"cache {str(path)!r} is inconsistent: meta says {n} images, the table has {len(table)} "
                         f"rows and the previews have shape {previews.shape}")
    return LatentCache(path=path, table=table, meta=meta, previews=previews, correlations=corr)


def write_cache(folder, meta: CacheMeta, *, table: pd.DataFrame, manifest: dict,
                correlations: pd.DataFrame | None = None) -> None:
    """Write a cache's table, manifest and correlations into ``folder`` (its ``previews.npy`` already there), flush
    every file, then write ``meta.json`` last: a folder with a ``meta.json`` holds every file it needs.

    Raises
    ------
    ValueError
        If the table's columns are not the ones ``meta.columns`` lists, or ``correlations`` and
        ``meta.correlations`` disagree.
    """
    folder = Path(folder)
    if tuple(table.columns) != meta.columns.all:
        raise ValueError(f"the table's columns {list(table.columns)} are not the schema's {list(meta.columns.all)}")
    if (correlations is None) != (meta.correlations is None):
        raise ValueError("correlations given without meta.correlations, or the other way round")
    table.to_parquet(folder / FILES["table"], index=False)
    if correlations is not None:
        correlations.to_parquet(folder / FILES["correlations"])
    with open(folder / FILES["manifest"], "w", encoding="utf-8") as fh:
        json.dump(manifest, fh)
    for name in os.listdir(folder):
        fsync_path(folder / name)
    write_meta(meta, folder)
    fsync_path(folder)
