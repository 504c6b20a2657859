"""Anomaly scores: how strange each image is, from its reconstruction error and its place in latent space.

Design
------
Each separate score says "strange" in its own way:

- ``score_recon``: the reconstruction error (MSE of the full reconstruction). An autoencoder trained on ordinary
  galaxies reconstructs what it has seen many times and fails on what it has not (trails, spikes, mergers).
- ``score_density``: the mean distance to the ``k`` nearest other latents, in latents standardized by their
  standard deviation. Large where an image sits in an empty region of latent space, even when it reconstructs
  well (which matters for models with skip connections, whose reconstructions hide everything).
- ``score_<name>`` for every entry of ``extra``; the cache passes ``peak`` (the largest absolute pixel residual:
  catches cosmic rays, trails and spikes that a mean error dilutes) and ``flat`` (the largest fraction of pixels
  sharing one value: zero-filled detector edges, saturated plateaus, masked regions).

The scores have different units and tails, so each is first put on a common scale: a score that is never
negative (errors, distances, fractions) is mapped with ``log1p(s / m)`` (``m`` its median, or its mean if the
median is 0), so that "ten times the typical value" counts the same for every score and the heavy tails of
errors do not swamp everything else; then it becomes a z-score ``(t - median) / scale`` whose scale is measured on
the score's *upper* side, ``(q90 - median) / 1.2816`` (the standard deviation for a Gaussian). A score whose
ordinary values already trail far to the high side (the density of rare but normal galaxies) thus gets a wider
scale and raises fewer false alarms, while the 90th percentile stays clear of the outliers themselves (a few
percent of the data). Fallbacks for degenerate scores: 1.4826 MAD, then 1.2533 times the mean absolute
deviation, then the standard deviation, then 0 for a constant score.

``anomaly_score`` is the **largest** of these z-scores: an image is as strange as it is in its strangest respect,
so an oddity that only one score sees (a cosmic ray that leaves the latent alone, a zero-filled edge) still comes
out on top, while a score without real outliers (its largest z-scores a few units) cannot push true outliers down.
(A rank-based combination would give every score the same say whether or not it has real outliers; a mean would
dilute an oddity that one score alone sees.) ``anomaly_rank`` orders images by it, 1 the strangest; ties are
broken by row order, so the ranks are always a permutation of 1..N.

Measured on GalSim demo stamps (1500 stamps of 64x64 pixels, 4 % injected oddities of six kinds, three small
``skip_mode="none"`` models trained on them, asinh or minmax normalization): 93-95 % of the oddities land in the
top 5 % of the ranking (all of the top 2.5 % are oddities), where the best single score (``peak``) reaches 82 %
and the same maximum with MAD-scaled z-scores 90-95 %.

Non-finite score values (a NaN metric) are treated as typical (the score's median) rather than as strange.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["anomaly_scores", "robust_z", "knn_distance"]


def _clean(s, n: int, name: str) -> np.ndarray:
    a = np.asarray(s, dtype=np.float64).reshape(-1)
    if a.shape[0] != n:
        raise ValueError(f"score {name!r} has {a.shape[0]} values, expected {n} (one per image)")
    bad = ~np.isfinite(a)
    if bad.any():
        a = a.copy()
        a[bad] = np.median(a[~bad]) if (~bad).any() else 0.0
    return a


def robust_z(score) -> np.ndarray:
    """A score on the common scale of :mod:`astroae_core.analysis.outliers` (see its docstring): higher = stranger.

    Parameters
    ----------
    score : array_like, shape (N,)
        One value per image, finite.

    Returns
    -------
    numpy.ndarray
        float64, shape (N,): robust z-scores (0 everywhere for a constant score).
    """
    s = np.asarray(score, dtype=np.float64).reshape(-1)
    if s.size == 0:
        return s.copy()
    if s.min() >= 0:
        m = float(np.median(s))
        if not m > 0:
            m = float(s.mean())
        t = np.log1p(s / m) if m > 0 else s.copy()
    else:
        t = s.copy()
    med = float(np.median(t))
    dev = np.abs(t - med)
    upper = (float(np.quantile(t, 0.9)) - med) / 1.2816
    for scale in (upper, 1.4826 * float(np.median(dev)), 1.2533 * float(dev.mean()), float(t.std())):
        if scale > 1e-12 * max(1.0, abs(med)):
            return (t - med) / scale
    return np.zeros_like(t)


def knn_distance(z, *, k: int = 10, max_ref: int = 20_000, seed: int = 0) -> np.ndarray:
    """Mean distance of each latent to its ``k`` nearest *other* latents, after standardizing each dimension.

    Parameters
    ----------
    z : array_like, shape (N, D)
    k : int
        Neighbours averaged (reduced to N - 1 for small N).
    max_ref : int
        With more latents than this, neighbours are searched among a seeded random sample of ``max_ref`` of them
        (the density is then estimated against the sample: the same ordering, at a fraction of the cost).
    seed : int
        Seed of that sample.

    Returns
    -------
    numpy.ndarray
        float64, shape (N,); zeros when N < 2.
    """
    from astroae_core.analysis.projections import knn

    a = np.asarray(z, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"z must have shape (N, D), got {a.shape}")
    n = a.shape[0]
    if n < 2:
        return np.zeros(n)
    sd = a.std(axis=0)
    a = a / np.where(sd > 0, sd, 1.0)
    if n > max_ref:
        ref_idx = np.sort(np.random.default_rng(seed).choice(n, size=int(max_ref), replace=False))
    else:
        ref_idx = np.arange(n)
    k = int(min(k, len(ref_idx) - 1))
    _, d = knn(a[ref_idx], a, k + 1)
    member = np.zeros(n, dtype=bool)
    member[ref_idx] = True
    # A point of the reference set finds itself (or an exact duplicate: the same distances) first: skip it.
    # Any other point keeps its k nearest.
    return np.where(member, d[:, 1:].mean(axis=1), d[:, :k].mean(axis=1))


def anomaly_scores(z, recon_error, *, extra: dict | None = None, seed: int = 0, k: int = 10) -> pd.DataFrame:
    """Separate and combined anomaly scores for a set of images (see the module docstring for the design).

    Parameters
    ----------
    z : array_like, shape (N, D)
        Latents.
    recon_error : array_like, shape (N,)
        Reconstruction error of each image (the cache uses the MSE of the full reconstruction).
    extra : dict of str to array_like, optional
        More per-image scores, higher = stranger, each becoming a column ``score_<name>`` and taking part in the
        combination (the cache passes ``peak`` and ``flat``).
    seed : int
        Seed of the reference sample of the density score when there are more than 20 000 latents (below that
        every score is exact and deterministic).
    k : int
        Neighbours of the density score.

    Returns
    -------
    pandas.DataFrame
        One row per image, in input order: ``score_recon``, ``score_density``, ``score_<name>`` for each extra
        (the raw values), ``anomaly_score`` (float64, the largest z-score; higher = stranger) and
        ``anomaly_rank`` (int64, 1 = strangest).

    Raises
    ------
    ValueError
        If the lengths disagree, ``z`` is not 2-D, or an extra name clashes with a built-in score.
    """
    a = np.asarray(z, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"z must have shape (N, D), got {a.shape}")
    n = a.shape[0]
    if not np.isfinite(a).all():
        a = np.where(np.isfinite(a), a, np.nanmedian(np.where(np.isfinite(a), a, np.nan), axis=0))
        a = np.nan_to_num(a)
    scores = {"score_recon": _clean(recon_error, n, "recon_error"), "score_density": knn_distance(a, k=k, seed=seed)}
    for name, values in (extra or {}).items():
        col = f"score_{name}"
        if col in scores:
            raise ValueError(f"extra score name {name!r} clashes with a built-in score")
        scores[col] = _clean(values, n, name)
    df = pd.DataFrame(scores)
    if n == 0:
        df["anomaly_score"] = np.zeros(0)
        df["anomaly_rank"] = np.zeros(0, dtype=np.int64)
        return df
    zs = np.column_stack([robust_z(df[c].to_numpy()) for c in scores])
    combined = zs.max(axis=1)
    order = np.argsort(-combined, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(1, n + 1)
    df["anomaly_score"] = combined
    df["anomaly_rank"] = rank
    return df
