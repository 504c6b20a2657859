"""What a cache measures about its latent at encode time: which images the checkpoint trained and validated on
(the table's ``split``, by content), each latent dimension's influence on the decoded image, and the latent-only
reconstruction beside PCA-k and the mean image on images the model did not train on."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from astroae_core.cache.meta import json_value

__all__ = ["EVAL_MAX_IMAGES", "EVAL_MAX_TRAIN_IMAGES", "latent_report", "report_rows"]

#: Images the report scores (kept by the encode, or read again), and training images for the PCA / mean baselines.
EVAL_MAX_IMAGES = 500
EVAL_MAX_TRAIN_IMAGES = 1000


def influence_images(n: int) -> int:
    """Latents whose decodes (17 each) measure each dimension's influence when ``n`` images are encoded: one per 64,
    16 to 64 (``astroae evaluate`` uses 64). Against 256 latents, 16 measured each dimension as closely as 32 did,
    on the demo and CEERS models (benchmarks/RESULTS.md, 6.1c): the small encodes, whose report is a large share of
    their time, take 16; large ones, where it is not, the full 64."""
    return int(min(64, max(16, n // 64)))


def _seeded_sample(rows: np.ndarray, n: int, seed: int) -> np.ndarray:
    if len(rows) <= n:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, size=n, replace=False))


def report_rows(labels: Sequence[str], *, seed: int) -> tuple[str, np.ndarray]:
    """The rows the report scores and their code: the validation images when the folder holds any, else the
    images the model did not train on, else (a folder of training images only) all of them, for the influence
    alone; a seeded sample of at most :data:`EVAL_MAX_IMAGES`."""
    labels = np.asarray(labels, dtype=object)
    for code, rows in (("validation", np.flatnonzero(labels == "val")),
                       ("unseen", np.flatnonzero(labels == "unseen")),
                       ("training", np.arange(len(labels)))):
        if len(rows):
            return code, _seeded_sample(rows, EVAL_MAX_IMAGES, seed)
    return "unseen", np.zeros(0, np.int64)


def _report_images(model, data_dir: Path, paths: Sequence[str], labels: np.ndarray, *, seed: int, read_args: dict,
                   sample) -> tuple[str, np.ndarray, np.ndarray | None, dict | None]:
    """The report's code, rows, images and the model's outputs for them: kept by the encode (``sample``), else
    read again (images None when a file changed or went since the encode read it; outputs None when not kept)."""
    from astroae_core.data import load_folder

    images, rows = report_rows(labels, seed=seed)
    if sample is not None and len(rows):
        label = {"validation": "val", "unseen": "unseen", "training": "train"}[images]
        rows, x = sample.images(label, limit=EVAL_MAX_IMAGES)
        return images, rows, x, sample.outputs(label, limit=EVAL_MAX_IMAGES)
    if not len(rows):
        return images, rows, None, None
    x = load_folder(data_dir, config=model.preprocess_config, only=[paths[i] for i in rows], **read_args).x
    return images, rows, x if len(x) == len(rows) else None, None


def _baseline_images(model, data_dir: Path, paths: Sequence[str], labels: np.ndarray, *, train_data, seed,
                     confine_to, sample) -> np.ndarray:
    """The training images the baselines are fitted on: from ``train_data`` when named, else those found in the
    encoded folder (a seeded sample of at most :data:`EVAL_MAX_TRAIN_IMAGES`: kept by the encode, or read again)."""
    from astroae_core.analysis import no_training_images, training_images
    from astroae_core.data import load_folder

    if train_data is not None:
        return training_images(model, train_data, max_images=EVAL_MAX_TRAIN_IMAGES, seed=seed,
                               confine_to=confine_to).x
    if sample is not None:
        x = sample.images("train")[1]
        if not len(x):
            raise no_training_images(model, data_dir)
        return x
    rows = _seeded_sample(np.flatnonzero(labels == "train"), EVAL_MAX_TRAIN_IMAGES, seed)
    if not len(rows):
        raise no_training_images(model, data_dir)
    return load_folder(data_dir, config=model.preprocess_config, only=[paths[i] for i in rows],
                       confine_to=confine_to).x


def latent_report(model, data_dir: Path, paths: Sequence[str], labels: Sequence[str], z_all: np.ndarray, *,
                  seed: int, read_args: dict, train_data=None, kinds: Sequence | None = None, sample=None):
    """``meta.influence`` and ``meta.evaluation``, on a sample of the encoded images.

    Parameters
    ----------
    model : AutoEncoder
    data_dir : Path
        The encoded folder.
    paths, labels : sequence of str
        Every row's path (relative to ``data_dir``) and split (``train``, ``val``, ``unseen``).
    z_all : numpy.ndarray
        Every row's latent (the influence is scaled by the whole dataset's spread).
    seed : int
    read_args : dict
        ``hdu``, ``plane`` and ``confine_to``, as the encode read the files.
    train_data : path, optional
        A folder holding the checkpoint's training images, when ``data_dir`` does not.
    kinds : sequence, optional
        The catalog's ``kind`` of every row, for the evaluation's ``by_kind``.
    sample : ReportSample, optional
        The images the encode kept and its reconstructions of those it scores
        (:class:`~astroae_core.cache.report_sample.ReportSample`); without it, a seeded sample is read again from
        ``data_dir`` and run through the model.

    Returns
    -------
    influence : dict or None
        :func:`~astroae_core.analysis.measure_influence` on the sample.
    evaluation : dict or None
        :func:`~astroae_core.analysis.compare_with_baselines` on the sample, with ``images`` (``"validation"`` or
        ``"unseen"``) and ``n_train_images_for_baselines``; ``{"error", "images"}`` when it cannot be made (the
        training images are not found, or every image is one the model trained on). Both None without images.
    """
    from astroae_core.analysis import compare_with_baselines, measure_influence, object_groups, run_model

    labels = np.asarray(labels, dtype=object)
    images, rows, x, out = _report_images(model, data_dir, paths, labels, seed=seed, read_args=read_args,
                                          sample=sample)
    if not len(rows):
        return None, None
    if x is None:  # a file changed or went since the encode read it: no report rather than a wrong one
        return None, {"error": "sampled files could not be read again", "images": images}
    z = z_all[rows]
    measured = measure_influence(model, z, images=x, std=z_all.std(0), seed=seed,
                                 max_images=influence_images(len(z_all)))
    influence = json_value(measured)
    if images == "training":
        return influence, {"error": "every image in this folder is one the model trained on: there is no image "
                                    "to compare it with PCA on", "images": images}
    if out is None:
        out = run_model(model, x, batch_size=64)
    try:
        train_x = _baseline_images(model, data_dir, paths, labels, train_data=train_data, seed=seed,
                                   confine_to=read_args.get("confine_to"), sample=sample)
        # too few training images for PCA-k is a report's problem, never the encode's
        evaluation = compare_with_baselines(model, x, z, out["x_hat"], out["x_hat_latent"], train_x, seed=seed,
                                            groups=object_groups(model, [paths[i] for i in rows]),
                                            kinds=None if kinds is None else [kinds[i] for i in rows],
                                            influence=measured)
    except ValueError as exc:
        return influence, {"error": str(exc), "images": images}
    evaluation.update(images=images, n_train_images_for_baselines=len(train_x))
    return influence, json_value(evaluation)
