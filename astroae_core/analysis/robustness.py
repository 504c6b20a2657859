"""How the 8 numbers hold up on images degraded as real surveys degrade them: a checkpoint's validation images,
each degraded in flux units (:mod:`astroae_core.data.degrade`), preprocessed as the model was trained, and scored
beside PCA-k fitted on the model's own training images (the same fold)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from astroae_core.analysis.baselines import PCABaseline
from astroae_core.analysis.inference import run_model
from astroae_core.analysis.metrics import image_metrics
from astroae_core.data import degrade, preprocess, replace_nonfinite

__all__ = ["DEGRADATIONS", "degrade_images", "score_degraded", "score_checkpoint"]

# Name -> how one image (with a different object's image for the neighbour) is degraded.
DEGRADATIONS = {
    "fainter": lambda a, other, seed: degrade.fainter(a, factor=10.0, seed=seed),
    "shifted": lambda a, other, seed: degrade.shifted(a, seed=seed),
    "smaller": lambda a, other, seed: degrade.rescaled(a, factor=0.6, seed=seed),
    "larger": lambda a, other, seed: degrade.rescaled(a, factor=1.6, seed=seed),
    "neighbour": lambda a, other, seed: degrade.with_neighbour(a, other, seed=seed),
    "zero_edge": lambda a, other, seed: degrade.zero_edge(a, seed=seed),
}


def degrade_images(images, name: str, *, groups=None, seed: int = 0) -> list[np.ndarray]:
    """Every image degraded by ``DEGRADATIONS[name]``, image ``i`` with seed ``(seed, i)``.

    Parameters
    ----------
    images : sequence of 2-D arrays
        Images in flux units.
    name : str
        A key of :data:`DEGRADATIONS`.
    groups : sequence, optional
        Object of each image: a neighbour is always another object's image (not the same galaxy in another band).
    seed : int
        Seed of the degradations and of the neighbours' choice.
    """
    if name not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {name!r}; known: {sorted(DEGRADATIONS)}")
    n = len(images)
    groups = list(range(n)) if groups is None else list(groups)
    pick = np.random.default_rng([seed, n])
    out = []
    for i, a in enumerate(images):
        others = [j for j in range(n) if groups[j] != groups[i]] or [i]
        other = images[int(pick.choice(others))]
        out.append(DEGRADATIONS[name](a, other, int(np.random.default_rng([seed, i]).integers(2**31))))
    return out


def _score(model, x: np.ndarray, pca: PCABaseline) -> dict:
    lat = image_metrics(x, run_model(model, x)["x_hat_latent"])
    ref = image_metrics(x, pca.reconstruct(x))
    return {"latent_vs_pca_mse": float(lat["mse"].mean() / ref["mse"].mean()), "latent_mse": float(lat["mse"].mean()),
            "pca_mse": float(ref["mse"].mean()), "latent_ssim": float(lat["ssim"].mean()),
            "pca_ssim": float(ref["ssim"].mean())}


def score_degraded(model, images, train_x, *, groups=None, names=None, seed: int = 0) -> dict:
    """Latent-only reconstruction beside PCA-k on ``images`` as they are (``"clean"``) and under each degradation.

    Parameters
    ----------
    model : AutoEncoder
        In eval mode; its ``preprocess_config`` prepares every (degraded) image.
    images : sequence of 2-D arrays
        Held-out images in flux units.
    train_x : ndarray, shape (M, 1, S, S)
        The model's training images, preprocessed: PCA-k is fitted on them.
    groups : sequence, optional
        Object of each image (see :func:`degrade_images`).
    names : sequence of str, optional
        Degradations to run (default all of :data:`DEGRADATIONS`).
    seed : int
        Seed of the degradations.

    Returns
    -------
    dict
        Name (``"clean"`` first) -> ``latent_vs_pca_mse``, ``latent_mse``, ``pca_mse``, ``latent_ssim``,
        ``pca_ssim``: each image scored against its own (degraded) input, both methods seeing the same input.
    """
    pca = PCABaseline(model.config.latent_dim).fit(train_x)
    cfg = model.preprocess_config

    def prepared(imgs):
        return np.stack([preprocess(a, config=cfg)[0] for a in imgs]).astype(np.float32)

    res = {"clean": _score(model, prepared(images), pca)}
    for name in names or DEGRADATIONS:
        res[name] = _score(model, prepared(degrade_images(images, name, groups=groups, seed=seed)), pca)
    return res


def score_checkpoint(checkpoint, data_dir, *, seed: int = 0) -> dict:
    """:func:`score_degraded` on a checkpoint's validation images found in ``data_dir`` (its training folder),
    with PCA-k fitted on its training images there."""
    from astroae_core.analysis.training_set import object_groups, training_images
    from astroae_core.io import read_fits
    from astroae_core.model import load_model

    model = load_model(checkpoint)
    val_paths = list((model.checkpoint_info.get("data") or {}).get("val_paths") or [])
    if len(val_paths) < 2:
        raise ValueError(f"{checkpoint}: records fewer than 2 validation images to degrade")
    images = [replace_nonfinite(read_fits(Path(data_dir) / p)[0])[0].astype(np.float64) for p in val_paths]
    train_x = training_images(model, data_dir).x
    return score_degraded(model, images, train_x, groups=object_groups(model, val_paths), seed=seed)
