"""Maps of the latent space: exact PCA, UMAP, placing new latents on a map from their neighbours, and neighbours.

Everything here works on plain arrays of latents ``z`` of shape ``(N, D)``; the latent cache stores the results
(PCA parameters as plain numbers in ``meta.json``, the map coordinates in its table). A new latent is placed on a
stored UMAP map by :func:`place_by_neighbors`, without the UMAP model: nothing is unpickled and numba compiles
nothing. UMAP (and numba) are imported only when a UMAP is fitted.

numba keeps what it compiles for UMAP on disk (:func:`numba_cache_dir`: ``NUMBA_CACHE_DIR`` when set, else the
project's ``cache/numba``), so the compile is paid once per machine and version, not once per process.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import warnings
from pathlib import Path

import numpy as np

__all__ = ["fit_pca", "pca_transform", "fit_umap", "umap_sample", "umap_transform", "place_by_neighbors",
           "nearest_neighbors", "knn", "MIN_UMAP_POINTS", "numba_cache_dir"]

#: Below this many points no UMAP is fitted: :func:`fit_umap` returns the PCA map instead (and no model).
MIN_UMAP_POINTS = 5


def _as_latents(z, what: str = "z") -> np.ndarray:
    a = np.asarray(z, dtype=np.float64)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise ValueError(f"{what} must have shape (N, D), got {np.shape(z)}")
    if not np.isfinite(a).all():
        raise ValueError(f"{what} holds {int((~np.isfinite(a)).sum())} non-finite values")
    return a


# ---------------------------------------------------------------------------------------------------------------
# PCA


def fit_pca(z, *, n_components: int = 2) -> dict:
    """Exact PCA of latents (full SVD of the centred data, no randomized solver).

    Parameters
    ----------
    z : array_like, shape (N, D)
        Latents.
    n_components : int
        Number of components kept. Components beyond the rank of the data are zero vectors.

    Returns
    -------
    dict
        Plain arrays: ``mean`` (D,), ``components`` (n_components, D; unit rows), ``explained_variance``
        (n_components,; sample variance, ddof=1), ``explained_variance_ratio`` (n_components,; 0 when the data
        have no variance), ``n_samples`` (int). The sign of each component is fixed so that its largest-magnitude
        loading is positive: the same data always give the same map.

    Raises
    ------
    ValueError
        If ``z`` is empty, not 2-D or holds non-finite values, or ``n_components`` < 1.
    """
    a = _as_latents(z)
    n, d = a.shape
    if n == 0 or d == 0:
        raise ValueError(f"fit_pca needs at least one latent of at least one dimension, got shape {a.shape}")
    if int(n_components) != n_components or n_components < 1:
        raise ValueError(f"n_components must be a positive integer, got {n_components!r}")
    k = int(n_components)
    mean = a.mean(axis=0)
    _, s, vt = np.linalg.svd(a - mean, full_matrices=False)
    comps = np.zeros((k, d))
    var = np.zeros(k)
    m = min(k, vt.shape[0])
    comps[:m] = vt[:m]
    var[:m] = s[:m] ** 2 / max(n - 1, 1)
    for i in range(m):
        j = int(np.argmax(np.abs(comps[i])))
        if comps[i, j] < 0:
            comps[i] = -comps[i]
    total = float((s**2).sum() / max(n - 1, 1))
    ratio = var / total if total > 0 else np.zeros(k)
    return {"mean": mean, "components": comps, "explained_variance": var, "explained_variance_ratio": ratio,
            "n_samples": int(n)}


def pca_transform(params: dict, z) -> np.ndarray:
    """Project latents with PCA parameters from :func:`fit_pca` (arrays or the lists stored in ``meta.json``).

    Parameters
    ----------
    params : dict
        At least ``mean`` (D,) and ``components`` (k, D).
    z : array_like, shape (M, D) or (D,)
        Latents.

    Returns
    -------
    numpy.ndarray
        float64, shape (M, k).
    """
    mean = np.asarray(params["mean"], dtype=np.float64)
    comps = np.asarray(params["components"], dtype=np.float64)
    a = _as_latents(z)
    if a.shape[1] != mean.shape[0]:
        raise ValueError(f"z has {a.shape[1]} dimensions, the PCA was fitted on {mean.shape[0]}")
    return (a - mean) @ comps.T


# ---------------------------------------------------------------------------------------------------------------
# UMAP


def numba_cache_dir() -> Path | None:
    """Where numba keeps the code it compiles for UMAP: ``NUMBA_CACHE_DIR`` when set, else the project's
    ``cache/numba`` (:func:`~astroae_core.io.project_cache_dir`). None where that folder cannot be made: numba then
    caches only what its authors marked, where it would anyway."""
    from astroae_core.io.paths import project_cache_dir

    return project_cache_dir("numba", env="NUMBA_CACHE_DIR")


@functools.cache
def _import_umap():
    """``umap``, imported with numba's disk cache on for every function of umap and pynndescent.

    Most of umap's jitted functions are not marked ``cache=True``, so numba would compile them again in every new
    process (about 12 s before a first small fit); caching is switched on for each before its first call. The cache
    is keyed by the source file, its timestamp, the signature and the CPU, so an upgrade or another machine compiles
    afresh instead of loading stale code.
    """
    folder = numba_cache_dir()
    if folder is not None:
        os.environ["NUMBA_CACHE_DIR"] = str(folder)
        if "numba" in sys.modules:  # imported before us: numba read its settings already
            sys.modules["numba"].config.CACHE_DIR = str(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba / umap import-time deprecation chatter
        import umap
    if folder is not None:
        _cache_jitted(("umap", "pynndescent"))
    umap.umap_.pairwise_distances = _exact_euclidean_pairwise(umap.umap_.pairwise_distances, umap.distances.euclidean)
    return umap


def _exact_euclidean_pairwise(pairwise_distances, numba_euclidean):
    """umap's ``pairwise_distances`` with its own euclidean metric computed in C instead of one Python call per pair.

    Below 4,096 points umap takes all pairwise distances, handing scikit-learn its jitted ``euclidean`` as a Python
    callable: 1.8 s for 1,000 points, the largest part of a small map (benchmarks/RESULTS.md, 6.1). SciPy's ``cdist``
    gives the same distances (float64, from the differences, not the dot-product shortcut) in milliseconds.
    """
    from scipy.sparse import issparse
    from scipy.spatial.distance import cdist

    def pairwise(X, Y=None, metric="euclidean", **kwds):
        if metric is numba_euclidean and not kwds and not issparse(X) and (Y is None or not issparse(Y)):
            X = np.asarray(X)
            return cdist(X, X if Y is None else np.asarray(Y), "euclidean")
        return pairwise.wrapped(X, Y, metric=metric, **kwds)

    pairwise.wrapped = pairwise_distances
    return pairwise


def _cache_jitted(packages: tuple[str, ...]) -> int:
    """Switch numba's disk cache on for every module-level jitted function of ``packages`` (one compiled at import
    for one signature still caches the others)."""
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    seen, enabled = set(), 0
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] not in packages:
            continue
        for f in list(vars(module).values()):
            if isinstance(f, Dispatcher) and id(f) not in seen and isinstance(f._cache, NullCache):
                seen.add(id(f))
                try:
                    f.enable_caching()
                    enabled += 1
                except RuntimeError:  # no locator for its source (defined at run time): it stays uncached
                    pass
    return enabled


def _make_umap(n_fit: int, *, seed: int, n_neighbors: int, min_dist: float):
    umap = _import_umap()
    # UMAP needs at least 2 neighbours and fewer than the points it is fitted on.
    nn = int(max(2, min(n_neighbors, n_fit - 1)))
    return umap.UMAP(n_neighbors=nn, min_dist=float(min_dist), n_components=2, random_state=int(seed),
                     transform_seed=int(seed), verbose=False)


def fit_umap(z, *, seed: int = 0, max_fit: int = 50_000, n_neighbors: int = 15, min_dist: float = 0.1):
    """Fit a 2-D UMAP of latents; with more than ``max_fit`` points, fit on a seeded sample and transform the rest.

    Parameters
    ----------
    z : array_like, shape (N, D)
        Latents (use them as they are: the cache's map is on raw latents).
    seed : int
        ``random_state`` and ``transform_seed`` of UMAP, and the seed of the sample. A fixed ``random_state`` makes
        UMAP deterministic (and single-threaded).
    max_fit : int
        Most points UMAP is fitted on; the others are placed with ``transform``.
    n_neighbors : int
        UMAP's neighbourhood size, reduced to ``N - 1`` for small N.
    min_dist : float
        UMAP's ``min_dist``.

    Returns
    -------
    embedding : numpy.ndarray
        float32, shape (N, 2).
    model : umap.UMAP or None
        The fitted model (``model.transform`` places new latents). ``None`` when N is below
        :data:`MIN_UMAP_POINTS`: the embedding is then the 2-D PCA map, since a UMAP of a handful of points means
        nothing.

    Raises
    ------
    ValueError
        For empty or non-finite latents or a ``max_fit`` below :data:`MIN_UMAP_POINTS`.
    """
    a = _as_latents(z)
    n = a.shape[0]
    if n == 0:
        raise ValueError("fit_umap needs at least one latent")
    if int(max_fit) < MIN_UMAP_POINTS:
        raise ValueError(f"max_fit must be at least {MIN_UMAP_POINTS}, got {max_fit!r}")
    if n < MIN_UMAP_POINTS:
        return pca_transform(fit_pca(a), a).astype(np.float32), None
    a32 = a.astype(np.float32)
    fit_idx = umap_sample(n, max_fit=max_fit, seed=seed)
    model = _make_umap(len(fit_idx), seed=seed, n_neighbors=n_neighbors, min_dist=min_dist)
    with _torch_threads_kept(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state", spectral-init fallbacks
        model.fit(a32[fit_idx])
        emb = np.empty((n, 2), dtype=np.float32)
        emb[fit_idx] = model.embedding_
        rest = np.setdiff1d(np.arange(n), fit_idx, assume_unique=True)
        if rest.size:
            emb[rest] = umap_transform(model, a32[rest])
    return emb, model


@contextlib.contextmanager
def _torch_threads_kept():
    """UMAP's fit leaves the process's OpenMP threads at its own count, which PyTorch then uses: put back what
    PyTorch had (an encode's report after the maps, torchrun's one thread per rank)."""
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    try:
        yield
    finally:
        if before is not None and torch.get_num_threads() != before:
            torch.set_num_threads(before)


def umap_sample(n: int, *, max_fit: int, seed: int) -> np.ndarray:
    """Rows a UMAP of ``n`` latents is fitted on (:func:`fit_umap`): all of them up to ``max_fit``, else a seeded
    uniform sample of ``max_fit`` rows without repeats.

    Returns
    -------
    numpy.ndarray
        int64 row indices, sorted.
    """
    if n <= max_fit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=int(max_fit), replace=False))


def umap_transform(model, z, *, chunk: int = 20_000) -> np.ndarray:
    """Place new latents on a fitted UMAP map (``model.transform`` in chunks, warnings silenced).

    Returns
    -------
    numpy.ndarray
        float32, shape (M, 2).
    """
    a = _as_latents(z).astype(np.float32)
    out = np.empty((a.shape[0], 2), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(0, a.shape[0], chunk):
            out[i : i + chunk] = model.transform(a[i : i + chunk])
    return out


def place_by_neighbors(z_ref, xy_ref, z_new, *, k: int = 15) -> np.ndarray:
    """Positions of new latents on an existing map, from the map positions of their nearest reference latents.

    Each new latent lands on the inverse-distance weighted mean of the positions of its ``k`` nearest reference
    latents (Euclidean on the raw latents, as UMAP measures them); one at distance 0 from a reference latent (the
    same image) lands exactly on that latent's position. This is where UMAP's own ``transform`` starts each new
    point before refining it, so it lands close to it, with no model and no compiled code, for any 2-D map.

    Parameters
    ----------
    z_ref : array_like, shape (N, D)
        The latents the map was made from.
    xy_ref : array_like, shape (N, 2)
        Their map positions, row for row.
    z_new : array_like, shape (M, D) or (D,)
        Latents to place.
    k : int
        Neighbours averaged (at most N); the map's own neighbourhood size is a good choice.

    Returns
    -------
    numpy.ndarray
        float64, shape (M, 2).
    """
    a = _as_latents(z_ref, "z_ref")
    q = _as_latents(z_new, "z_new")
    xy = np.asarray(xy_ref, dtype=np.float64)
    if a.shape[0] == 0:
        raise ValueError("z_ref is empty")
    if xy.shape != (a.shape[0], 2):
        raise ValueError(f"xy_ref must have shape ({a.shape[0]}, 2), got {xy.shape}")
    if q.shape[1] != a.shape[1]:
        raise ValueError(f"z_new has {q.shape[1]} dimensions, z_ref has {a.shape[1]}")
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    idx, dist = knn(a, q, int(k))
    same = dist[:, 0] == 0
    w = 1.0 / np.where(same[:, None], 1.0, dist)
    w[same] = 0.0
    w[same, 0] = 1.0
    return np.einsum("mk,mkc->mc", w, xy[idx]) / w.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------------------------------
# neighbours


def nearest_neighbors(z_all, z_query, *, k: int, standardize: bool = True, scale=None):
    """Exact k nearest neighbours of query latents among ``z_all`` (Euclidean).

    Parameters
    ----------
    z_all : array_like, shape (N, D)
        The dataset's latents.
    z_query : array_like, shape (M, D) or (D,)
        Query latents.
    k : int
        Neighbours per query; at most N are returned.
    standardize : bool
        Divide every dimension by its standard deviation over ``z_all`` first (a dimension with zero spread is
        left as it is), so that no latent dimension dominates by its scale alone.
    scale : array_like, optional
        Per-dimension divisor to use instead of the standard deviation.

    Returns
    -------
    indices : numpy.ndarray
        int64, shape (M, k'): rows of ``z_all``, nearest first; ties are broken by the lower index.
    distances : numpy.ndarray
        float64, shape (M, k'), the matching (standardized) distances. Nothing is excluded: a query that is one
        of the points finds itself first, at distance 0.
    """
    a = _as_latents(z_all, "z_all")
    q = _as_latents(z_query, "z_query")
    if a.shape[1] != q.shape[1]:
        raise ValueError(f"z_query has {q.shape[1]} dimensions, z_all has {a.shape[1]}")
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    n = a.shape[0]
    if n == 0:
        raise ValueError("z_all is empty")
    k = min(int(k), n)
    if scale is not None:
        s = np.asarray(scale, dtype=np.float64)
    elif standardize:
        s = a.std(axis=0)
    else:
        s = np.ones(a.shape[1])
    s = np.where(np.isfinite(s) & (s > 0), s, 1.0)
    return knn(a / s, q / s, k)


def knn(ref: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours (Euclidean) of ``query`` rows among ``ref`` rows, as they are (no scaling).

    Brute force in chunks for small problems (no extra import); a SciPy k-d tree for big ones.

    Returns
    -------
    indices : numpy.ndarray
        int64 (M, k), nearest first, ties broken by the lower index.
    distances : numpy.ndarray
        float64 (M, k).
    """
    ref = np.asarray(ref, dtype=np.float64)
    query = np.asarray(query, dtype=np.float64)
    n, m = ref.shape[0], query.shape[0]
    k = min(int(k), n)
    if m * n > 50_000_000:
        from scipy.spatial import cKDTree

        d, i = cKDTree(ref).query(query, k=k, workers=-1)
        d, i = d.reshape(m, k), i.reshape(m, k)
        order = np.lexsort((i, d), axis=1)  # ties: lower index first
        return np.take_along_axis(i, order, 1).astype(np.int64), np.take_along_axis(d, order, 1)
    idx = np.empty((m, k), dtype=np.int64)
    dist = np.empty((m, k), dtype=np.float64)
    chunk = max(1, 4_000_000 // max(1, n * ref.shape[1]))
    cols = np.arange(n)
    for lo in range(0, m, chunk):
        diff = query[lo : lo + chunk, None, :] - ref[None, :, :]
        d = np.sqrt(np.einsum("mnd,mnd->mn", diff, diff))
        if k < n:
            part = np.argpartition(d, k - 1, axis=1)[:, :k]
            # the k-th distance may be tied with points outside the partition: consider all within it
            kth = np.take_along_axis(d, part, 1).max(axis=1)
            for r in range(d.shape[0]):
                cand = cols[d[r] <= kth[r]]
                o = np.lexsort((cand, d[r, cand]))[:k]
                idx[lo + r], dist[lo + r] = cand[o], d[r, cand[o]]
        else:
            for r in range(d.shape[0]):
                o = np.lexsort((cols, d[r]))
                idx[lo + r], dist[lo + r] = o, d[r, o]
    return idx, dist
