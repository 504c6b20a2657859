"""Which images a checkpoint trained and validated on, recognised by their pixels wherever they now live.

A checkpoint records the content hash (:func:`~astroae_core.io.content_hash.pixel_hash`) of each training and
validation image, never an absolute path, so the split of every image (``train``, ``val``, ``unseen``) is right in
a fresh clone at another path, in a copied or renamed folder, and for the same pixels recompressed. The PCA and
mean-image baselines are fitted on the training images found by content in the folder at hand, or in a folder the
user names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["SPLITS", "TrainingSet", "no_training_images", "object_groups", "training_images"]

SPLITS = ("train", "val", "unseen")


@dataclass(frozen=True)
class TrainingSet:
    """A checkpoint's training and validation images, as content hashes."""

    train: frozenset = frozenset()
    val: frozenset = frozenset()

    @classmethod
    def of(cls, model) -> TrainingSet:
        """The set recorded in ``model.checkpoint_info["data"]`` (empty for a model built in memory)."""
        info = model.checkpoint_info.get("data") or {}
        return cls(train=frozenset(info.get("train_hashes", ())), val=frozenset(info.get("val_hashes", ())))

    @property
    def recorded(self) -> bool:
        return bool(self.train)

    def label(self, content_hash: str) -> str:
        """``"train"``, ``"val"`` or ``"unseen"`` for one image."""
        return "train" if content_hash in self.train else "val" if content_hash in self.val else "unseen"

    def labels(self, hashes: Iterable[str]) -> list[str]:
        return [self.label(h) for h in hashes]


def training_images(model, folder, *, only: Iterable[str] | None = None, max_images: int | None = None,
                    seed: int = 0, confine_to=None, progress=None):
    """The checkpoint's training images found by content in ``folder``, for fitting the baselines.

    Parameters
    ----------
    model : AutoEncoder
        A model loaded from a checkpoint (its ``checkpoint_info`` holds the training set).
    folder : str or Path
        Folder to look in (searched recursively).
    only : iterable of str, optional
        Read only these files (paths relative to ``folder``), e.g. the rows a cache already labelled ``train``.
    max_images : int, optional
        A seeded sample of at most this many of the images found.
    seed : int
        Seed of that sample.
    confine_to : path or sequence of paths, optional
        Read nothing outside these folders.
    progress : Progress, optional
        Passed to :func:`~astroae_core.data.load_folder`.

    Returns
    -------
    LoadedImages

    Raises
    ------
    ValueError
        When the checkpoint records no training images, or none of them is in ``folder``: the message says how
        many are missing and how to name the folder that holds them.
    """
    from astroae_core.data import load_folder

    wanted = TrainingSet.of(model).train
    if not wanted:
        raise no_training_images(model, folder)
    loaded = load_folder(folder, config=model.preprocess_config, only=only, confine_to=confine_to,
                         progress=progress)
    keep = [i for i, h in enumerate(loaded.hashes) if h in wanted]
    if not keep:
        raise no_training_images(model, folder)
    if max_images is not None and len(keep) > max_images:
        keep = sorted(np.random.default_rng(seed).choice(keep, size=max_images, replace=False).tolist())
    return _subset(loaded, keep)


def object_groups(model, paths: list[str]) -> list[str] | None:
    """The object each image shows, grouped as the checkpoint's training split grouped them (the galaxy of a
    multi-band cutout), for a bootstrap over objects; None where the file names do not fit the training rule."""
    from astroae_core.data import group_keys

    train_config = model.checkpoint_info.get("train_config")
    rule = train_config.get("group_regex", "auto") if isinstance(train_config, dict) else "auto"
    try:
        return list(group_keys(paths, group_regex=rule or None))
    except ValueError:
        return None


def no_training_images(model, folder) -> ValueError:
    """The error that says exactly what is missing for the baselines, and how to supply it."""
    n = len(TrainingSet.of(model).train)
    if not n:
        return ValueError("the checkpoint records no training images (it was not made by astroae train, or by a "
                          "version before content hashes), so the baselines cannot be fitted")
    return ValueError(f"none of the checkpoint's {n} training images (recognised by their pixels) is in "
                      f"{Path(folder).name!r}: encode the folder it was trained on, or name the folder that holds "
                      "them as the training images (--train-data DIR; in the app, on the Metrics page)")


def _subset(loaded, rows: list[int]):
    from astroae_core.data import LoadedImages

    return LoadedImages(x=np.ascontiguousarray(loaded.x[rows]), paths=[loaded.paths[i] for i in rows],
                        norms=[loaded.norms[i] for i in rows], skipped=loaded.skipped,
                        hashes=[loaded.hashes[i] for i in rows], root=loaded.root, config=loaded.config)
