"""Training presets: a shipped recipe and a budget of optimizer steps, turned into the recipe for one folder.

A preset (``train/presets.toml``, or the file ``ASTROAE_PRESETS`` names) says which recipe to start from and how
many optimizer steps to spend. On a folder of ``n`` training images a run gets as many epochs as the budget needs
(an epoch is ``max(1, n // batch_size)`` steps, as in :mod:`train.loop`), and the recipe's frozen-BatchNorm epochs,
warm-up epochs and checkpoint interval scale in proportion: a fixed number of epochs would give a folder of 50
images 30 times fewer steps than one of 1,600. ``standard`` on the demo's 1,600 training images is ``demo.toml``.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .config import TrainConfig, load_recipe

__all__ = ["PRESETS_FILE", "Preset", "estimate_seconds", "load_presets", "scaled_config", "steps_per_epoch"]

PRESETS_FILE = Path(__file__).with_name("presets.toml")

# Validation runs every epoch, forward passes only: about a third of a training step's work per image.
_VALIDATION_SHARE = 1 / 3


@dataclass(frozen=True)
class Preset:
    """One preset: its name, the recipe it starts from, its budget of optimizer steps and a line about it."""

    name: str
    recipe: Path
    steps: int
    about: str = ""

    def base(self) -> TrainConfig:
        """The recipe as written (ValueError naming the file when it is bad)."""
        return load_recipe(self.recipe)

    def config(self, n_train: int) -> TrainConfig:
        """The recipe scaled to ``n_train`` training images (:func:`scaled_config`)."""
        return scaled_config(self.base(), steps=self.steps, n_train=n_train)


def load_presets(path=None, *, env=None) -> dict[str, Preset]:
    """The presets in ``path`` (default: ``ASTROAE_PRESETS``, else ``train/presets.toml``), in file order.

    Raises
    ------
    ValueError
        Naming the file: unreadable TOML, a preset without ``recipe`` or a positive integer ``steps``, an unknown
        key, or no preset at all.
    """
    env = os.environ if env is None else env
    path = Path(path or env.get("ASTROAE_PRESETS") or PRESETS_FILE)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"presets file {str(path)!r}: {exc}") from None
    presets = {}
    for name, d in data.items():
        if not isinstance(d, dict) or "recipe" not in d:
            raise ValueError(f"presets file {str(path)!r}: [{name}] needs a recipe")
        unknown = sorted(set(d) - {"recipe", "steps", "about"})
        steps = d.get("steps")
        if unknown or isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"presets file {str(path)!r}: [{name}] takes recipe, steps (a positive integer) and "
                             f"about; got steps={steps!r}" + (f" and unknown keys {unknown}" if unknown else ""))
        presets[name] = Preset(name, path.parent / d["recipe"], steps, str(d.get("about", "")))
    if not presets:
        raise ValueError(f"presets file {str(path)!r} holds no preset")
    return presets


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimizer steps in one epoch of ``n_train`` images: whole batches only, at least one (as the loop does)."""
    if n_train < 1:
        raise ValueError(f"n_train must be >= 1, got {n_train!r}")
    return max(1, n_train // batch_size)


def scaled_config(base: TrainConfig, *, steps: int, n_train: int) -> TrainConfig:
    """``base`` with as many epochs as ``steps`` optimizer steps take on ``n_train`` images.

    The frozen-BatchNorm epochs, their warm-up and the checkpoint interval keep their share of the run, at least
    one epoch each where the recipe has them; but a recipe that starts with batch statistics keeps at least one
    such epoch first (they let its learning rate train from scratch).

    Parameters
    ----------
    base : TrainConfig
        The preset's recipe.
    steps : int
        The budget of optimizer steps (at least; the last epoch is whole).
    n_train : int
        Training images after the split.

    Returns
    -------
    TrainConfig
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps!r}")
    epochs = math.ceil(steps / steps_per_epoch(n_train, base.batch_size))
    share = epochs / base.epochs
    fn = base.frozen_norm
    frozen = max(round(fn.epochs * share), 1 if fn.epochs else 0)
    if fn.epochs < base.epochs:  # the recipe starts with batch statistics: keep at least one such epoch
        frozen = min(frozen, epochs - 1)
    warmup = min(frozen, max(round(fn.warmup_epochs * share), 1 if fn.warmup_epochs else 0))
    n_checkpoints = max(1, base.epochs // base.checkpoint_every)
    return base.replace(epochs=epochs, checkpoint_every=max(1, math.ceil(epochs / n_checkpoints)),
                        frozen_norm_epochs=frozen, frozen_norm_warmup_epochs=warmup)


#: GalSim stamps of CEERS size (100 px) drawn a second on one core of the 2-core AMD EPYC (4,000 in 2.9 minutes for
#: models/ceers.pt, models/README.md); larger stamps draw more slowly.
SYNTHETIC_STAMPS_PER_S = 20.0


def estimate_seconds(cfg: TrainConfig, *, n_train: int, n_val: int, images_per_s: float,
                     epoch_seconds: float = 0.0) -> float:
    """How long ``cfg`` takes on ``n_train`` training and ``n_val`` validation images at ``images_per_s`` training
    images a second, each epoch adding ``epoch_seconds`` for its checkpoints (:class:`train.speed.Speed`): the
    optimizer steps (the pretraining's on synthetic galaxies too, and their drawing at about
    :data:`SYNTHETIC_STAMPS_PER_S`, which a set kept from an earlier run skips), every epoch's validation and its
    checkpoints."""
    if not images_per_s > 0:
        raise ValueError(f"images_per_s must be positive, got {images_per_s!r}")
    per_step = min(cfg.batch_size, n_train)
    images = cfg.epochs * (steps_per_epoch(n_train, cfg.batch_size) * per_step + _VALIDATION_SHARE * n_val)
    images += cfg.synthetic_epochs * (cfg.synthetic // cfg.batch_size) * cfg.batch_size
    return images / images_per_s + cfg.epochs * max(0.0, epoch_seconds) + cfg.synthetic / SYNTHETIC_STAMPS_PER_S
