"""What a cache measures about its latent at encode time, on a sample of its images kept during the encode:
each dimension's influence on the latent-only decode, and the reconstructions beside PCA-k and the mean image.
Also which images are the checkpoint's training and validation images (the table's ``split``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from astroae_core.cache.meta import json_value
from astroae_core.cache.shard import ReportSample

__all__ = ["EVAL_MAX_IMAGES", "EVAL_MAX_TRAIN_IMAGES", "TrainingSplit", "latent_report", "report_sample",
           "training_split"]

#: Images kept in memory during an encode for the report (x, full and latent-only reconstruction: about
#: 3 x 140 kB each at 187 px), and training images re-read for the PCA / mean baselines.
EVAL_MAX_IMAGES = 500
EVAL_MAX_TRAIN_IMAGES = 1000


@dataclass(frozen=True)
class TrainingSplit:
    """The checkpoint's record of its training folder, seen from a data folder: whether it is that folder, and
    then its training and validation images (relative paths)."""

    is_training_root: bool
    train: frozenset = frozenset()
    val: frozenset = frozenset()

    def label(self, rel: str) -> str:
        """``"train"``, ``"val"`` or ``"unseen"``."""
        return "train" if rel in self.train else "val" if rel in self.val else "unseen"


def training_split(model, data_dir) -> TrainingSplit:
    """Which of ``data_dir``'s images ``model`` was trained and validated on (none unless ``data_dir`` is its
    training folder)."""
    info = (getattr(model, "checkpoint_info", {}) or {}).get("data") or {}
    root = info.get("root")
    if not root or Path(root).resolve() != Path(data_dir).resolve():
        return TrainingSplit(is_training_root=False)
    return TrainingSplit(is_training_root=True, train=frozenset(info.get("train_paths", [])),
                         val=frozenset(info.get("val_paths", [])))


def report_sample(rels: Sequence[str], split: TrainingSplit, *, seed: int) -> set[int]:
    """Positions of the files kept for the report: the validation images when the folder is the checkpoint's
    training folder, else all images; a seeded sample of at most :data:`EVAL_MAX_IMAGES`."""
    pool = [i for i, r in enumerate(rels) if r in split.val] or list(range(len(rels)))
    if len(pool) > EVAL_MAX_IMAGES:
        pool = np.random.default_rng(seed).choice(pool, size=EVAL_MAX_IMAGES, replace=False).tolist()
    return set(pool)


def latent_report(model, sample: ReportSample, z_all: np.ndarray, *, split: TrainingSplit, seed: int,
                  confine_to=None, kinds: Sequence | None = None) -> tuple[dict | None, dict | None]:
    """``meta.influence`` and ``meta.evaluation`` from the sample kept during the encode (nothing is decoded twice).

    Returns
    -------
    influence : dict or None
        :func:`~astroae_core.analysis.measure_influence` on the sample, scaled by the whole dataset's spread.
    evaluation : dict or None
        :func:`~astroae_core.analysis.compare_with_baselines` on the sample, with ``images``: ``"validation"``
        (the validation split of the training folder), ``"sample"`` (a seeded sample of the images) or ``"all"``,
        and ``n_train_images_for_baselines``; or ``{"error", "images"}`` when the baselines cannot be fitted
        (the checkpoint's training images are not on this machine). Both None when no sampled image was readable.
    kinds : sequence, optional
        The catalog's ``kind`` of every image (table order), for the evaluation's ``by_kind``.
    """
    from astroae_core.analysis import compare_with_baselines, measure_influence, training_images

    if len(sample.rows) == 0:
        return None, None
    z = z_all[sample.rows]
    influence = json_value(measure_influence(model, z, images=sample.x, std=z_all.std(0), seed=seed))
    images = ("validation" if split.is_training_root and split.val else
              "sample" if len(sample.rows) < len(z_all) else "all")
    try:
        train, _ = training_images(model, None, model.preprocess_config, max_images=EVAL_MAX_TRAIN_IMAGES,
                                   seed=seed, confine_to=confine_to)
        # too few training images for PCA-k is a report's problem, never the encode's
        evaluation = compare_with_baselines(model, sample.x, z, sample.x_hat, sample.x_latent, train.x, seed=seed,
                                            kinds=None if kinds is None else [kinds[i] for i in sample.rows])
    except ValueError as exc:
        return influence, {"error": str(exc), "images": images}
    evaluation.update(images=images, n_train_images_for_baselines=len(train.paths))
    return influence, json_value(evaluation)
