"""The middle stages of an encode, on every image at once: the maps (exact PCA, UMAP), the anomaly scores, the
catalog beside the images, and the table that holds them all with its schema."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from astroae_core.cache.layout import CATALOG_PREFIX
from astroae_core.cache.meta import CatalogInfo, Columns, CorrelationInfo, MapInfo, PcaParams
from astroae_core.cache.shard import METRIC_COLUMNS, EncodedShard

__all__ = ["IMAGE_COLUMNS", "MAP_COLUMNS", "CatalogPart", "Maps", "assemble_table", "catalog_part",
           "correlate", "fit_maps", "image_ids", "score_images"]

log = logging.getLogger(__name__)

IMAGE_COLUMNS = ("id", "path", "hash", "hdu", "split", "ra", "dec")
MAP_COLUMNS = ("pca_x", "pca_y", "umap_x", "umap_y")


@dataclass(frozen=True)
class Maps:
    """The two maps of the latents: ``pca`` and ``umap`` positions (float32, (N, 2)) and how they were made."""

    pca: np.ndarray
    umap: np.ndarray
    pca_params: PcaParams
    info: MapInfo


@dataclass(frozen=True)
class CatalogPart:
    """The catalog's rows aligned to the table's (``table``: columns ``catalog.<name>``, missing values where a
    file has no row) and what was matched."""

    table: pd.DataFrame
    info: CatalogInfo


def fit_maps(z: np.ndarray, *, seed: int, max_fit: int) -> Maps:
    """The exact PCA map, and a UMAP of the latents (fitted on at most ``max_fit`` of them); the PCA map stands in
    for the UMAP when there are too few latents or UMAP fails."""
    from astroae_core import analysis

    pca = analysis.fit_pca(z)
    p = analysis.pca_transform(pca, z).astype(np.float32)
    params = PcaParams(**{k: _tuples(pca[k]) for k in ("mean", "components", "explained_variance",
                                                        "explained_variance_ratio")}, n_samples=int(pca["n_samples"]))
    try:
        emb, model = analysis.fit_umap(z, seed=seed, max_fit=max_fit)
    except Exception as exc:  # noqa: BLE001 - UMAP can fail on degenerate latents; the PCA map still works
        log.warning("UMAP failed (%s: %s); using the PCA map instead", type(exc).__name__, exc)
        return Maps(p, p, params, MapInfo(method="pca", fallback="umap_failed", error=f"{type(exc).__name__}: {exc}"))
    if model is None:
        return Maps(p, p, params, MapInfo(method="pca", fallback="too_few_images"))
    info = MapInfo(method="umap", n_neighbors=int(model.n_neighbors), min_dist=float(model.min_dist),
                   n_fit=int(min(len(z), max_fit)))
    return Maps(p, emb.astype(np.float32), params, info)


def _tuples(a):
    a = np.asarray(a, dtype=np.float64)
    return tuple(_tuples(r) for r in a) if a.ndim > 1 else tuple(float(v) for v in a)


def score_images(shard: EncodedShard, *, seed: int) -> pd.DataFrame:
    """:func:`~astroae_core.analysis.anomaly_scores` of every image: reconstruction error, latent density, and the
    largest residual (``peak``) and flat fraction (``flat``) measured during the encode."""
    from astroae_core import analysis

    return analysis.anomaly_scores(shard.z, shard.metrics["mse"], extra={"peak": shard.peak, "flat": shard.flat},
                                   seed=seed)


def _fits_stem(rel: str) -> str:
    name = rel
    for suffix in (".gz", ".bz2"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    for suffix in (".fits", ".fit", ".fts", ".fz"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def image_ids(paths: Sequence[str]) -> list[str]:
    """Each image's id: its path without the FITS suffixes, or the whole path where two would share one
    (``a.fits`` and ``a.fit``)."""
    ids = [_fits_stem(r) for r in paths]
    seen = Counter(ids)
    return [r if seen[i] > 1 else i for i, r in zip(ids, paths)]


def catalog_part(paths: Sequence[str], data_dir: Path, *, confine_to=None) -> CatalogPart | None:
    """The data folder's ``catalog.csv`` joined onto ``paths`` (see :func:`~astroae_core.io.join_catalog`), every
    column renamed ``catalog.<name>``; an unusable catalog gives an empty part whose info says why; None without
    a catalog."""
    from astroae_core.io import join_catalog, read_catalog

    cat, info = read_catalog(data_dir, confine_to=confine_to)
    if info is None:
        return None
    if cat is None:
        return CatalogPart(pd.DataFrame(index=range(len(paths))), CatalogInfo(file=info["file"], error=info["error"]))
    _, part = join_catalog(pd.DataFrame({"path": list(paths)}), cat, info)
    part.columns = [f"{CATALOG_PREFIX}{c}" for c in cat.columns]
    return CatalogPart(part, CatalogInfo(file=info["file"], key=info["key"], n_matched=info["n_matched"],
                                         n_unmatched=info["n_unmatched"]))


def correlate(table: pd.DataFrame, columns: Columns) -> tuple[pd.DataFrame, CorrelationInfo]:
    """Spearman correlation of the latent columns with the catalog columns (:mod:`astroae_core.analysis`)."""
    from astroae_core.analysis import latent_correlations

    corr = latent_correlations(table[list(columns.latent)], table[list(columns.catalog)], method="spearman")
    return corr, CorrelationInfo(method="spearman", columns=tuple(str(c) for c in corr.columns))


def assemble_table(shard: EncodedShard, *, split: Sequence[str], maps: Maps, scores: pd.DataFrame,
                   catalog: CatalogPart | None) -> tuple[pd.DataFrame, Columns]:
    """The cache's table (one row per image, columns in schema order) and its schema."""
    z = shard.z.astype(np.float32)
    latent = tuple(f"z{d}" for d in range(z.shape[1]))
    cols = {"id": pd.Series(image_ids(shard.paths), dtype="str"), "path": pd.Series(shard.paths, dtype="str"),
            "hash": pd.Series(shard.hashes, dtype="str"), "hdu": shard.hdu.astype(np.int64), "split": pd.Series(list(split), dtype="str"),
            "ra": shard.ra.astype(np.float64), "dec": shard.dec.astype(np.float64)}
    cols.update({c: z[:, d] for d, c in enumerate(latent)})
    cols.update({k: shard.metrics[k].astype(np.float64) for k in METRIC_COLUMNS})
    cols.update(pca_x=maps.pca[:, 0], pca_y=maps.pca[:, 1], umap_x=maps.umap[:, 0], umap_y=maps.umap[:, 1])
    cols.update({c: scores[c].to_numpy() for c in scores.columns})
    table = pd.DataFrame(cols)
    part = catalog.table if catalog is not None else pd.DataFrame(index=range(len(table)))
    table = pd.concat([table, part.reset_index(drop=True)], axis=1)
    columns = Columns(image=IMAGE_COLUMNS, latent=latent, metrics=METRIC_COLUMNS, maps=MAP_COLUMNS,
                      scores=tuple(scores.columns), catalog=tuple(part.columns))
    return table, columns
