"""What a cache and its model's evaluation say, as plain numbers and tables: how much the latent carries beside PCA
and the mean image, how much each dimension moves the image and which catalog column it tracks, and which images
are the strangest or worst reconstructed."""

from __future__ import annotations

import numpy as np

__all__ = ["FAR_FROM_TRAINING", "WEAK_INFLUENCE", "carry_summary", "distance_from_training", "influence_summary",
           "latent_influence", "top_outliers", "tracked_columns", "worst_images"]

#: A dimension moving the image by less than this fraction of the strongest one's change counts as weak.
WEAK_INFLUENCE = 0.02


def carry_summary(evaluation: dict) -> dict:
    """How much the latent carries, from an evaluation (:func:`astroae_core.analysis.evaluate`'s, or the one a
    cache stores).

    Parameters
    ----------
    evaluation : dict
        With ``rows`` (``full``, ``latent_only``, ``pca``, ``mean_image``, each with ``mse``); rows may be missing.

    Returns
    -------
    dict
        ``latent_vs_pca`` (latent-only MSE / PCA MSE), ``latent_vs_full`` (latent-only MSE / full MSE),
        ``beats_pca`` (bool: the ratio to PCA is below 1), ``explained_vs_mean`` (share of the mean image's error
        the latent alone removes) and ``carried`` ({row: share of the mean image's error removed} for ``full``,
        ``latent_only`` and ``pca``). Ratios and shares are None (absent from ``carried``) where a row is missing.
    """
    rows = evaluation.get("rows", {})
    lmse = rows.get("latent_only", {}).get("mse")
    fmse = rows.get("full", {}).get("mse")
    pmse = rows.get("pca", {}).get("mse")
    mean_mse = rows.get("mean_image", {}).get("mse")
    ratio_pca = lmse / pmse if lmse is not None and pmse else None
    carried = {}
    if mean_mse:
        carried = {r: 1.0 - rows[r]["mse"] / mean_mse for r in ("full", "latent_only", "pca")
                   if rows.get(r, {}).get("mse") is not None}
    return {"latent_vs_pca": ratio_pca, "latent_vs_full": lmse / fmse if lmse is not None and fmse else None,
            "beats_pca": bool(ratio_pca is not None and ratio_pca < 1),
            "explained_vs_mean": carried.get("latent_only"), "carried": carried}


def influence_summary(influence) -> dict | None:
    """The strongest dimension's influence and how many dimensions barely move the image.

    Parameters
    ----------
    influence : array_like, shape (D,)
        Each dimension's influence (e.g. ``vs_data`` of :func:`latent_influence`).

    Returns
    -------
    dict or None
        ``strongest`` (the largest influence), ``weak`` (how many dimensions move the image by less than
        :data:`WEAK_INFLUENCE` of the strongest; all of them when the strongest is 0) and ``n`` (D); None when no
        influence is finite.
    """
    inf = np.asarray(influence, dtype=float)
    if inf.size == 0 or not np.isfinite(inf).any():
        return None
    top = float(np.nanmax(inf))
    weak = int((inf < WEAK_INFLUENCE * top).sum()) if top > 0 else inf.size
    return {"strongest": top, "weak": weak, "n": int(inf.size)}


def latent_influence(cache, model, *, max_images: int = 32, seed: int = 0) -> dict:
    """Each latent dimension's influence on the image decoded from the latent alone, for a cache.

    The influence the cache stored at encode time (``meta.influence``), or, for a cache made before caches
    stored one, measured now by :func:`astroae_core.analysis.inference.measure_influence` with the cache's previews
    standing in for the real images (their spread is measured on thumbnails, so it is a little smaller than at
    full resolution).

    Parameters
    ----------
    cache : LatentCache
        Read: ``meta.influence``, and to measure, ``latents()`` and ``previews``.
    model : AutoEncoder
        The cache's own model (unused when the cache stores the influence).
    max_images : int
        Most latents decoded when measuring (a seeded sample).
    seed : int
        Seed of that sample.

    Returns
    -------
    dict
        ``vs_data`` (per dimension: mean absolute change of the latent-only decode for +/-2 sd, over the spread of
        the real images), ``relative`` (over the spread of the decoded images), ``decoded_vs_data`` and ``stored``
        (bool: read from the cache).
    """
    stored = cache.meta.influence or {}
    if stored.get("vs_data") is not None:
        return {"vs_data": np.asarray(stored["vs_data"], dtype=float),
                "relative": np.asarray(stored["relative"], dtype=float),
                "decoded_vs_data": float(stored["decoded_vs_data"]), "stored": True}
    from astroae_core.analysis.inference import measure_influence

    z = cache.latents()
    rows = np.random.default_rng(seed).choice(len(z), size=min(max_images, len(z)), replace=False)
    rows.sort()  # memory-mapped previews: read only the sampled thumbnails, in file order
    images = np.asarray(cache.previews[rows], dtype=np.float32) / 255.0
    out = measure_influence(model, z[rows], images=images, std=z.std(0), max_images=len(rows), seed=seed)
    return {"vs_data": out["vs_data"], "relative": out["relative"], "decoded_vs_data": out["decoded_vs_data"],
            "stored": False}


def tracked_columns(correlations, columns) -> dict:
    """For each latent dimension, the catalog column it correlates with most.

    Parameters
    ----------
    correlations : DataFrame or None
        Index ``z0, z1, ...``, columns catalog parameters (``LatentCache.correlations``).
    columns : sequence of str
        The latent columns wanted.

    Returns
    -------
    dict
        ``{"z<d>": (column, r)}`` with the largest ``|r|``; dimensions without a finite correlation are left out.
    """
    out = {}
    if correlations is None or getattr(correlations, "empty", True):
        return out
    for col in columns:
        if col not in correlations.index:
            continue
        row = correlations.loc[col].astype(float).dropna()
        if row.empty:
            continue
        best = row.abs().idxmax()
        out[col] = (str(best), float(row[best]))
    return out


def top_outliers(table, n: int = 20):
    """The ``n`` strangest images of a cache table: lowest ``anomaly_rank`` (1 is the strangest), else highest
    ``anomaly_score``; no rows when the table has neither."""
    if "anomaly_rank" in table:
        return table.nsmallest(n, "anomaly_rank")
    if "anomaly_score" in table:
        return table.nlargest(n, "anomaly_score")
    return table.head(0)


def worst_images(table, metric: str, n: int = 12):
    """The ``n`` worst reconstructed images by ``metric``: the lowest for a similarity (``ssim``, ``ms_ssim``,
    ``latent_ssim``), the highest for an error (``mse``, ``latent_mse``)."""
    return table.nsmallest(n, metric) if "ssim" in metric else table.nlargest(n, metric)


#: Images whose median latent-only error is this many times the model's error on its own validation images are
#: called far from what the model was trained on.
FAR_FROM_TRAINING = 3.0


#: What :func:`distance_from_training`'s ``held_out`` codes compare with, in words.
HELD_OUT_WORDS = {"validation": "its own validation images",
                  "crossval": "the held-out objects of its recipe's cross-validation"}


def distance_from_training(latent_mse, model) -> dict | None:
    """How the latent-only error of some images compares with the model's error on images it did not train on.

    A model used on images unlike its training set (the demo model on real galaxies, say) reconstructs them
    badly from its 8 numbers, and its latents then say little about them; this is the number that says so. The
    images' median is set against the mean error on held-out images the checkpoint records: its last epoch's
    validation images, or, for a model trained on every image, the folds of its recipe's cross-validation. A mean
    is pulled up by its worst images, so on the model's own kind of data the ratio is below 1.

    Parameters
    ----------
    latent_mse : array_like
        Per-image latent-only MSE (in the model's [0, 1] input units, as the cache stores it), e.g. of the images
        the model did not train on, or of one upload.
    model : AutoEncoder
        A model loaded from a checkpoint: its history holds the validation error of its last epoch, or its
        ``crossval`` the folds' mean.

    Returns
    -------
    dict or None
        ``median_latent_mse``, ``val_latent_mse`` (the held-out error), their ``ratio``, ``far`` (ratio above
        :data:`FAR_FROM_TRAINING`) and ``held_out`` (a key of :data:`HELD_OUT_WORDS`); None without images or
        without a recorded held-out error.
    """
    mse = np.asarray(latent_mse, dtype=np.float64)
    mse = mse[np.isfinite(mse)]
    history = model.checkpoint_info.get("history") or []
    val, held_out = (history[-1].get("val_latent_mse") if history else None), "validation"
    if not val:
        val, held_out = ((model.checkpoint_info.get("crossval") or {}).get("latent_mse") or {}).get("mean"), "crossval"
    if not mse.size or not val or not np.isfinite(val) or val <= 0:
        return None
    med = float(np.median(mse))
    return {"median_latent_mse": med, "val_latent_mse": float(val), "ratio": med / float(val),
            "far": med / float(val) > FAR_FROM_TRAINING, "held_out": held_out}
