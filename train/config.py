"""Training recipes: TOML data (train/configs/*.toml) resolved into a frozen :class:`TrainConfig`."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from astroae_core.data import PreprocessConfig
from astroae_core.model import ModelConfig, drop_retired

__all__ = ["TrainConfig", "FrozenNorm", "load_recipe", "with_epochs", "LOSSES"]

LOSSES = ("bce", "mse", "l1", "ms_ssim_l1")

# Retired training options and the only value they may still carry (see astroae_core.model.RETIRED_IN).
_RETIRED = {"early_stopping_patience": 0, "channels_last": True, "freeze_latent_norm_after": 0}

# What a stored train_config meant by a key it lacks (the defaults until astroae_core.model.RETIRED_IN), and the
# flat names the frozen-statistics settings were stored under then.
_STORED_DEFAULTS = {"loss": "bce", "lr": 1e-3, "lr_schedule": "constant", "weight_decay": 0.0, "decorrelation": 0.0,
                    "batch_size": 16, "epochs": 150, "checkpoint_every": 10, "val_fraction": 0.2, "seed": 0,
                    "augment": True, "group_regex": "auto", "max_files": 0, "threads": 0}
_STORED_FROZEN_NORM = {"freeze_norm_epochs": "epochs", "freeze_warmup_epochs": "warmup_epochs",
                       "freeze_lr_scale": "lr_scale"}


def _default_preprocess() -> PreprocessConfig:
    return PreprocessConfig(method="minmax")


@dataclass(frozen=True)
class FrozenNorm:
    """The last epochs of a run normalize with every BatchNorm's running statistics, as evaluation does, instead
    of the batch's (a recipe's ``[train.frozen_norm]`` table).

    With 16 images a batch, the batch statistics shift each image's latent and features by a different amount
    every step, noise the model cannot fit through; frozen, the training loss keeps falling
    (``benchmarks/RESULTS.md``). The optimizer's state starts afresh at the switch.

    Parameters
    ----------
    epochs : int
        How many of the run's last epochs are frozen; 0 = none.
    warmup_epochs : int
        Over this many of the frozen epochs the learning rate rises linearly from 0 to the schedule's: Adam
        starts afresh at the switch, and its first steps move every weight by about the learning rate with
        nothing left to renormalize the activations. 0 = no warm-up.
    lr_scale : float
        The frozen epochs' learning rate as a fraction of the schedule's: a rate that batch statistics tolerated
        can make the frozen training loss jump from one epoch to the next. 1 = the schedule's rate.
    """

    epochs: int = 0
    warmup_epochs: int = 0
    lr_scale: float = 1.0

    def __post_init__(self):
        if self.epochs < 0:
            raise ValueError(f"frozen_norm.epochs must be >= 0, got {self.epochs!r}")
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ValueError(f"frozen_norm.warmup_epochs must be in [0, frozen_norm.epochs={self.epochs}], "
                             f"got {self.warmup_epochs!r}")
        if not 0.0 < self.lr_scale <= 1.0:
            raise ValueError(f"frozen_norm.lr_scale must be in (0, 1], got {self.lr_scale!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the data folder; stored in the run folder and every checkpoint.

    The defaults are what the shipped recipes (``train/configs/ceers.toml`` and ``demo.toml``) share: a pure
    bottleneck with a standardized latent, MSE on min-max images, Adam 2e-3 with cosine decay, batch 16, a
    decorrelation penalty, flips and rotations, an 80/20 split, one thread. Frozen statistics, where the two
    differ, are off by default. ``train/configs/seed.toml`` is the seed's recipe.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    preprocess: PreprocessConfig = field(default_factory=_default_preprocess)
    loss: str = "mse"
    lr: float = 2e-3
    lr_schedule: str = "cosine"  # or "constant"; cosine decays to 0 over the run
    weight_decay: float = 0.0
    # Weight of a penalty on the correlations between latent numbers within a batch (mean squared off-diagonal
    # correlation), relative to the reconstruction loss: 8 numbers that repeat each other carry fewer than 8.
    decorrelation: float = 1.0
    batch_size: int = 16
    epochs: int = 120
    checkpoint_every: int = 20
    # 0 = no validation split: every image trains (a recipe already chosen by cross-validation, trained for good).
    val_fraction: float = 0.2
    # Cross-validation: with folds >= 2 the split is fold ``fold`` (0-based) of a grouped k-fold split
    # (astroae_core.data.kfold_by_group, seeded by ``seed``) instead of the val_fraction split; 0 = no folds.
    folds: int = 0
    fold: int = 0
    seed: int = 0
    augment: bool = True
    # Shares of training images shown, each time drawn, as one of 3 views of themselves made once at load in flux
    # units (astroae_core.data.training_views): 1-10x fainter (the same galaxy under more noise), and 0.6-1.6x
    # the apparent size. 0 = none.
    fainter: float = 0.0
    zoom: float = 0.0
    frozen_norm: FrozenNorm = field(default_factory=FrozenNorm)
    # Pretraining: before the first epoch, ``synthetic_epochs`` epochs on ``synthetic`` GalSim galaxies drawn at the
    # training images' own size (train.synthetic), with their own cosine schedule and optimizer. 0 = none.
    synthetic: int = 0
    synthetic_epochs: int = 0
    # Files in one group share a side of the split. "auto": the number ending each file's stem (an object id,
    # shared by the bands of a cutout); a regex: its first capture group; "": every file its own group.
    group_regex: str = "auto"
    max_files: int = 0  # 0 = all files
    threads: int = 1  # 0 = one per core; 1 makes a run bit-for-bit reproducible

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if self.decorrelation < 0:
            raise ValueError(f"decorrelation must be >= 0, got {self.decorrelation!r}")
        for name in ("lr", "batch_size", "epochs", "checkpoint_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.frozen_norm.epochs > self.epochs:
            raise ValueError(f"frozen_norm.epochs must be in [0, epochs={self.epochs}], "
                             f"got {self.frozen_norm.epochs!r}")
        if self.loss == "bce" and self.model.pca_anchor:
            raise ValueError("loss 'bce' needs a sigmoid output; a pca_anchor model's output is clipped: use mse")
        if self.folds == 1 or self.folds < 0:
            raise ValueError(f"folds must be 0 (no cross-validation) or >= 2, got {self.folds!r}")
        if self.folds and not 0 <= self.fold < self.folds:
            raise ValueError(f"fold must be in [0, folds={self.folds}), got {self.fold!r}")
        for name in ("fainter", "zoom"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a share in [0, 1], got {getattr(self, name)!r}")
        if self.synthetic < 0 or self.synthetic_epochs < 0 or bool(self.synthetic) != bool(self.synthetic_epochs):
            raise ValueError(f"synthetic and synthetic_epochs must both be 0 or both positive, got "
                             f"{self.synthetic!r} and {self.synthetic_epochs!r}")
        if self.synthetic and self.synthetic < self.batch_size:
            raise ValueError(f"synthetic must be at least batch_size={self.batch_size}, got {self.synthetic!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if self.model.in_size != self.preprocess.size:
            raise ValueError(f"model.in_size ({self.model.in_size}) must equal preprocess.size ({self.preprocess.size})")

    def to_dict(self) -> dict:
        """Plain data (JSON- and ``weights_only``-safe): the loop's settings, with ``model``, ``preprocess`` and
        ``frozen_norm`` as nested dicts."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["model"] = self.model.to_dict()
        d["preprocess"] = self.preprocess.to_dict()
        d["frozen_norm"] = dataclasses.asdict(self.frozen_norm)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """A config from a recipe (the loop's settings under ``train``) or :meth:`to_dict`; missing keys take
        today's defaults.

        Raises
        ------
        ValueError
            For an unknown key, a retired option with a value other than its remaining one, or a bad value.
        """
        d = dict(d)
        train = d.pop("train", {})  # TOML recipes keep the loop's settings under [train]
        d = drop_retired({**d, **train}, _RETIRED, what="train config")
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown recipe keys: {unknown}")
        model = ModelConfig.from_dict(d.pop("model", {}))
        pre = {**_default_preprocess().to_dict(), "size": model.in_size, **d.pop("preprocess", {})}
        frozen = FrozenNorm(**d.pop("frozen_norm", {}))
        return cls(model=model, preprocess=PreprocessConfig.from_dict(pre), frozen_norm=frozen, **d)

    @classmethod
    def from_stored(cls, d: dict) -> "TrainConfig":
        """The config a checkpoint's ``train_config`` records, whichever version wrote it: a key it lacks means
        what it meant then, and the flat ``freeze_*`` keys of older files fill :attr:`frozen_norm`."""
        d = {**_STORED_DEFAULTS, **d}
        frozen = {new: d.pop(old) for old, new in _STORED_FROZEN_NORM.items() if old in d}
        return cls.from_dict({**d, "model": ModelConfig.from_stored(d.get("model", {})).to_dict(),
                              "preprocess": PreprocessConfig.from_dict(d.get("preprocess", {})).to_dict(),
                              "frozen_norm": {**frozen, **d.get("frozen_norm", {})}})

    def replace(self, **overrides) -> "TrainConfig":
        """A copy with top-level fields, or ``model_*`` / ``preprocess_*`` / ``frozen_norm_*`` fields, overridden
        (None = keep)."""
        overrides = {k: v for k, v in overrides.items() if v is not None}
        nested = {}
        for name in ("model", "preprocess", "frozen_norm"):
            prefix = name + "_"
            nested[name] = {k[len(prefix):]: overrides.pop(k) for k in list(overrides) if k.startswith(prefix)}
        return dataclasses.replace(
            self, **{name: dataclasses.replace(getattr(self, name), **kw) for name, kw in nested.items()}, **overrides)


def with_epochs(cfg: TrainConfig, epochs: int | None) -> TrainConfig:
    """``cfg`` shortened or lengthened to ``epochs`` for a screening budget, its phases kept in their roles.

    The batch-statistics epochs a recipe starts with take a network from scratch to one that frozen statistics can
    refine (``benchmarks/RESULTS.md``, section 2): their length is kept, and the frozen phase gains or loses the
    epochs. A budget shorter than that first phase has no frozen phase (``ceers.toml``'s 10 + 110 of 120 become
    10 + 5 of 15, or 8 + 0 of 8: one batch-statistics epoch before freezing leaves a network that does not train).
    None = unchanged.
    """
    if epochs is None or epochs == cfg.epochs:
        return cfg
    if epochs <= 0:
        raise ValueError(f"epochs must be positive, got {epochs!r}")
    fn = cfg.frozen_norm
    frozen = max(0, fn.epochs - (cfg.epochs - epochs)) if fn.epochs else 0
    return dataclasses.replace(cfg, epochs=epochs, frozen_norm=dataclasses.replace(
        fn, epochs=frozen, warmup_epochs=min(fn.warmup_epochs, frozen)))


def load_recipe(path) -> TrainConfig:
    """Read a TOML recipe; errors name the file and the bad key or value."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        return TrainConfig.from_dict(data)
    except FileNotFoundError:
        raise ValueError(f"recipe {str(path)!r} does not exist") from None
    except (tomllib.TOMLDecodeError, TypeError, ValueError) as exc:
        raise ValueError(f"recipe {str(path)!r}: {exc}") from None
