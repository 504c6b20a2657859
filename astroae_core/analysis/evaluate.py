"""Evaluate a checkpoint beside its baselines: full and latent-only reconstructions, PCA-k and the mean image."""

from __future__ import annotations

import json

import numpy as np

from astroae_core.analysis.baselines import MeanImageBaseline, PCABaseline
from astroae_core.analysis.inference import measure_influence, participation_ratio, run_model
from astroae_core.analysis.metrics import image_metrics, summarize
from astroae_core.analysis.training_set import TrainingSet, no_training_images, object_groups, training_images
from astroae_core.data import load_folder
from astroae_core.io import catalog_column, is_within
from astroae_core.model import load_model
from astroae_core.progress import Progress

__all__ = ["evaluate", "compare_with_baselines", "ratio_by_group", "error_by_kind", "format_table"]

ROWS = ("full", "latent_only", "pca", "mean_image")


def evaluate(checkpoint, data_dir, *, train_data=None, split: str = "auto", batch_size: int = 64,
             progress: Progress | None = None, confine_to=None) -> dict:
    """Metrics of a checkpoint on a folder, beside PCA and mean-image baselines fitted on its training images.

    Which image is which is decided by content (:class:`~astroae_core.analysis.training_set.TrainingSet`), so the
    answer is the same wherever the folder lives.

    Parameters
    ----------
    checkpoint : str or Path
        Checkpoint file.
    data_dir : str or Path
        Folder of FITS images to evaluate on.
    train_data : str or Path, optional
        Folder holding the checkpoint's training images, when ``data_dir`` does not.
    split : {"auto", "val", "all"}
        ``"auto"``: the checkpoint's validation images in ``data_dir`` when it holds any, else every image the model
        did not train on; never a training image. ``"val"`` insists on the validation images, ``"all"`` takes every
        image (training images included).
    batch_size : int
        Images per inference batch.
    progress : Progress, optional
        Called as images are read and run (see :mod:`astroae_core.progress`).
    confine_to : path or sequence of paths, optional
        Read nothing whose real path lies outside these folders (the app passes the folders it may read).

    Returns
    -------
    dict
        :func:`compare_with_baselines`'s result, with ``images`` (``"validation"``, ``"unseen"`` or ``"all"``),
        ``n_train_images_for_baselines``, ``checkpoint`` and the ``skipped`` files.
    """
    if split not in ("auto", "all", "val"):
        raise ValueError(f"split must be auto, all or val, got {split!r}")
    for folder in (data_dir, train_data):
        if folder is not None and confine_to is not None and not is_within(folder, confine_to):
            raise ValueError(f"{str(folder)!r} lies outside the folders that may be read")
    model = load_model(checkpoint)
    data = load_folder(data_dir, config=model.preprocess_config, progress=progress, confine_to=confine_to)
    labels = np.asarray(TrainingSet.of(model).labels(data.hashes), dtype=object)
    if train_data is not None:
        train_x = training_images(model, train_data, confine_to=confine_to, progress=progress).x
    elif (labels == "train").any():
        train_x = data.x[labels == "train"]
    else:
        raise no_training_images(model, data_dir)
    images, rows = _evaluated_rows(labels, split, data_dir)
    x = np.ascontiguousarray(data.x[rows])
    paths = [data.paths[i] for i in rows]
    out = run_model(model, x, batch_size=batch_size, progress=progress)
    res = compare_with_baselines(model, x, out["z"], out["x_hat"], out["x_hat_latent"], train_x,
                                 groups=object_groups(model, paths),
                                 kinds=catalog_column(data_dir, paths, "kind", confine_to=confine_to))
    return {"checkpoint": str(checkpoint), **res, "images": images, "n_train_images_for_baselines": len(train_x),
            "skipped": [list(s) for s in data.skipped]}


def _evaluated_rows(labels: np.ndarray, split: str, data_dir) -> tuple[str, np.ndarray]:
    """Which images ``split`` scores, and their code (see :func:`evaluate`)."""
    if split == "all":
        rows, images = np.arange(len(labels)), "all"
    elif split == "val" or (labels == "val").any():
        rows, images = np.flatnonzero(labels == "val"), "validation"
    else:
        rows, images = np.flatnonzero(labels == "unseen"), "unseen"
    if len(rows) < 2:
        what = {"all": "readable images", "validation": "of the checkpoint's validation images",
                "unseen": "images the model did not train on"}[images]
        raise ValueError(f"{str(data_dir)!r}: need at least 2 {what} to evaluate, found {len(rows)}")
    return images, rows


def compare_with_baselines(model, x, z, x_hat, x_latent, train_x, *, groups=None, kinds=None,
                           seed: int = 0, influence: dict | None = None) -> dict:
    """The comparison behind :func:`evaluate`, on images already in memory (the latent cache calls it with what
    its encode computed, so nothing is decoded twice).

    Parameters
    ----------
    model : AutoEncoder
        The model (its latent-only decoder measures each dimension's influence).
    x, x_hat, x_latent : ndarray, shape (N, 1, S, S)
        Images in [0, 1], their full and latent-only reconstructions.
    z : ndarray, shape (N, D)
        Their latents.
    train_x : ndarray, shape (M, 1, S, S)
        Training images the PCA-k and mean-image baselines are fitted on.
    groups : sequence of str, optional
        Object each image shows (e.g. the galaxy of a multi-band cutout); adds ``by_group``
        (:func:`ratio_by_group`): the MSE ratio's spread over objects, not over images of the same object.
    kinds : sequence, optional
        Kind of each image (a catalog's ``kind`` column; None where unknown); adds ``by_kind``
        (:func:`error_by_kind`): the latent-only and PCA-k errors on each kind.
    seed : int
        Seed of the influence sample and the bootstrap.
    influence : dict, optional
        :func:`~astroae_core.analysis.measure_influence` of these images, when the caller has it already (an
        encode measures it with the whole dataset's spread); else measured here.

    Returns
    -------
    dict
        ``rows``, ``latent_vs_pca_mse``, ``effective_dim``, ``influence`` (per dimension, relative to the decoded
        images' spread), ``influence_vs_data`` and ``decoded_vs_data`` (relative to the real images' spread),
        ``influence_min_over_max``, ``skip_mode``, ``latent_dim``, ``n_images``, ``by_group``, ``by_kind``.
    """
    k = model.config.latent_dim
    recs = {
        "full": x_hat,
        "latent_only": x_latent,
        "pca": PCABaseline(k).fit(train_x).reconstruct(x),
        "mean_image": MeanImageBaseline().fit(train_x).reconstruct(x),
    }
    per_image = {}
    for name, rec in recs.items():  # a model without skips gives one array for both: measured once
        same = next((n for n in per_image if recs[n] is rec), None)
        per_image[name] = per_image[same] if same else image_metrics(x, rec)
    rows = {name: summarize(m) for name, m in per_image.items()}
    inf = influence if influence is not None else measure_influence(model, z, images=x, seed=seed)
    influence = np.asarray(inf["relative"])
    return {
        "skip_mode": model.config.skip_mode,
        "latent_dim": k,
        "n_images": len(x),
        "rows": rows,
        "latent_vs_pca_mse": rows["latent_only"]["mse"] / rows["pca"]["mse"],
        "effective_dim": participation_ratio(z),
        "influence": influence.tolist(),
        "influence_vs_data": np.asarray(inf["vs_data"]).tolist(),
        "decoded_vs_data": inf["decoded_vs_data"],
        "influence_min_over_max": float(influence.min() / influence.max()) if influence.max() > 0 else 0.0,
        "by_group": (ratio_by_group(per_image["latent_only"]["mse"], per_image["pca"]["mse"], groups, seed=seed)
                     if groups is not None else None),
        "by_kind": (error_by_kind(per_image["latent_only"]["mse"], per_image["pca"]["mse"],
                                  ["(no catalog row)" if k is None else str(k) for k in kinds])
                    if kinds is not None else None),
    }


def ratio_by_group(mse, ref_mse, groups, *, n_boot: int = 2000, seed: int = 0) -> dict:
    """How the ratio of two mean squared errors (a model's over a baseline's) depends on which objects are scored.

    With few objects, one odd one (a large irregular galaxy with a bright neighbour) can hold a third of both
    errors; resampling *objects* (all images of one object together) with replacement gives the ratio's
    uncertainty.

    Parameters
    ----------
    mse, ref_mse : array_like, shape (N,)
        Per-image MSE of the model and of the baseline.
    groups : sequence, length N
        Object of each image.
    n_boot : int
        Bootstrap resamples of the objects.
    seed : int
        Seed of the resampling.

    Returns
    -------
    dict
        ``ratio`` (sum of ``mse`` over sum of ``ref_mse``, the ratio of the means), ``boot_p05``/``boot_p95``
        (its 90% bootstrap interval over objects), ``median_image_ratio`` (median of per-image ratios),
        ``n_groups``, ``worst_group`` (the object with the largest share of the baseline's error), its
        ``worst_share`` of it, and ``ratio_without_worst``.
    """
    mse, ref = np.asarray(mse, dtype=np.float64), np.asarray(ref_mse, dtype=np.float64)
    if mse.shape != ref.shape or mse.ndim != 1 or len(groups) != len(mse) or len(mse) == 0:
        raise ValueError(f"mse, ref_mse and groups must be 1-D of one length, got {mse.shape}, {ref.shape}, "
                         f"{len(groups)}")
    keys, inverse = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    g_mse, g_ref = np.bincount(inverse, mse), np.bincount(inverse, ref)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(keys), size=(n_boot, len(keys)))
    boot = g_mse[pick].sum(1) / np.maximum(g_ref[pick].sum(1), 1e-300)
    worst = int(np.argmax(g_ref))
    rest = np.arange(len(keys)) != worst
    return {
        "ratio": float(g_mse.sum() / g_ref.sum()),
        "boot_p05": float(np.percentile(boot, 5)),
        "boot_p95": float(np.percentile(boot, 95)),
        "median_image_ratio": float(np.median(mse / np.maximum(ref, 1e-300))),
        "n_groups": int(len(keys)),
        "worst_group": str(keys[worst]),
        "worst_share": float(g_ref[worst] / g_ref.sum()),
        "ratio_without_worst": float(g_mse[rest].sum() / g_ref[rest].sum()) if rest.any() else float("nan"),
    }


def error_by_kind(mse, ref_mse, kinds) -> dict:
    """Where the error lies: a model's and a baseline's MSE on each kind of image (a catalog's ``kind`` column).

    A mean over images is decided by the images with the largest errors: on the demo a few bright stars with
    diffraction spikes hold more of both errors than all its galaxies, so the overall ratio says more about the
    stars than about the galaxies. This splits it.

    Parameters
    ----------
    mse, ref_mse : array_like, shape (N,)
        Per-image MSE of the model (latent only) and of the baseline (PCA-k).
    kinds : sequence of str, length N
        Kind of each image.

    Returns
    -------
    dict
        Kind -> ``n``, ``mse`` and ``ref_mse`` (means over its images), ``ratio`` (``mse / ref_mse``),
        ``share`` and ``ref_share`` (its part of the model's and the baseline's summed error), most images first.
    """
    mse, ref = np.asarray(mse, dtype=np.float64), np.asarray(ref_mse, dtype=np.float64)
    kinds = np.asarray(kinds, dtype=str)
    if mse.shape != ref.shape or mse.ndim != 1 or kinds.shape != mse.shape or len(mse) == 0:
        raise ValueError(f"mse, ref_mse and kinds must be 1-D of one length, got {mse.shape}, {ref.shape}, "
                         f"{kinds.shape}")
    keys, counts = np.unique(kinds, return_counts=True)
    out = {}
    for k in keys[np.argsort(-counts, kind="stable")]:
        sel = kinds == k
        m, r = float(mse[sel].mean()), float(ref[sel].mean())
        out[str(k)] = {"n": int(sel.sum()), "mse": m, "ref_mse": r, "ratio": m / r if r > 0 else float("nan"),
                       "share": float(mse[sel].sum() / mse.sum()) if mse.sum() > 0 else float("nan"),
                       "ref_share": float(ref[sel].sum() / ref.sum()) if ref.sum() > 0 else float("nan")}
    return out


IMAGES = {"validation": "the checkpoint's validation images", "unseen": "images the model did not train on",
          "all": "all images, training images included", "sample": "a sample of the images"}


def beats_pca(result: dict) -> bool:
    """Whether the latent-only reconstruction beats PCA with as many components, and the whole 90% bootstrap
    interval over objects agrees (where the result has one)."""
    hi = (result.get("by_group") or {}).get("boot_p95")
    return result["latent_vs_pca_mse"] < 1 and (hi is None or hi < 1)


def verdict(result: dict) -> str:
    """One plain sentence: do the latent's numbers beat PCA on these images, and how sure is that (the bootstrap
    interval over objects, where the result has one)?"""
    k, ratio = result["latent_dim"], result["latent_vs_pca_mse"]
    group = result.get("by_group") or {}
    interval = (f" (90% interval over {group['n_groups']} objects: {group['boot_p05']:.2f}-{group['boot_p95']:.2f})"
                if group.get("boot_p05") is not None else "")
    where = IMAGES.get(result.get("images"), "these images")
    if beats_pca(result):
        return f"On {where}, the {k} numbers beat PCA-{k}: latent-only MSE is {ratio:.2f} x PCA-{k}'s{interval}."
    return (f"On {where}, the {k} numbers are no better than PCA-{k}: latent-only MSE is {ratio:.2f} x "
            f"PCA-{k}'s{interval}.")


def format_table(result: dict) -> str:
    """The four rows as an aligned text table, the verdict, and the latent's effective dimensionality."""
    lines = [f"{'':14s}{'MSE':>12s}{'PSNR dB':>10s}{'SSIM':>9s}{'MS-SSIM':>9s}"]
    labels = {"full": "full", "latent_only": "latent only", "pca": f"PCA-{result['latent_dim']}",
              "mean_image": "mean image"}
    for key in ROWS:
        r = result["rows"][key]
        lines.append(f"{labels[key]:14s}{r['mse']:12.6f}{r['psnr']:10.2f}{r['ssim']:9.4f}{r['ms_ssim']:9.4f}")
    lines.append(verdict(result))
    lines.append(f"images: {result['n_images']} ({IMAGES.get(result['images'], result['images'])}); "
                 f"skip_mode={result['skip_mode']}; effective dimensionality {result['effective_dim']:.2f} of "
                 f"{result['latent_dim']}")
    if result.get("by_kind"):
        lines.append(f"by kind (catalog): {'n':>5s}{'latent MSE':>12s}{'PCA MSE':>12s}{'ratio':>7s}"
                     f"{'share of error':>16s}{'PCA share':>11s}")
        for kind, r in result["by_kind"].items():
            lines.append(f"  {kind:16s}{r['n']:5d}{r['mse']:12.3g}{r['ref_mse']:12.3g}{r['ratio']:7.2f}"
                         f"{r['share']:16.1%}{r['ref_share']:11.1%}")
    if result["skipped"]:
        lines.append(f"skipped {len(result['skipped'])} unreadable files")
    return "\n".join(lines)


def write_json(result: dict, path) -> None:
    from astroae_core.io.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(result, indent=2))
