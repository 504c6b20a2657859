"""Training recipes: TOML data (train/configs/*.toml) resolved into a frozen :class:`TrainConfig`."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from astroae_core.model import ModelConfig
from astroae_core.data import PreprocessConfig

__all__ = ["TrainConfig", "load_recipe", "LOSSES"]

LOSSES = ("bce", "mse", "l1", "ms_ssim_l1")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the data folder; stored in the run folder and every checkpoint.

    The defaults are the seed's recipe: BCE, Adam lr 1e-3, batch 16, 150 epochs, a checkpoint every 10 epochs,
    an 80/20 split, flips and rotations.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    loss: str = "bce"
    lr: float = 1e-3
    lr_schedule: str = "constant"  # or "cosine": decays to 0 over the run (a short CPU budget converges further)
    weight_decay: float = 0.0
    # Weight of a penalty on the correlations between latent numbers within a batch (mean squared off-diagonal
    # correlation), relative to the reconstruction loss: 8 numbers that repeat each other carry fewer than 8.
    decorrelation: float = 0.0
    batch_size: int = 16
    epochs: int = 150
    checkpoint_every: int = 10
    val_fraction: float = 0.2
    seed: int = 0
    augment: bool = True
    early_stopping_patience: int = 0  # epochs without a better validation loss before stopping; 0 = never
    # The last N epochs normalize with every BatchNorm's running statistics, as evaluation does, instead of the
    # batch's. With 16 images a batch, the batch statistics shift each image's latent and features by a different
    # amount every step (the latent's batch mean strays by 0.22 standard deviations), noise the model cannot fit
    # through; frozen, the training loss keeps falling (benchmarks/RESULTS.md). The optimizer's state starts
    # afresh at the switch. 0 = never.
    freeze_norm_epochs: int = 0
    # The latent's BatchNorm (``standardize_latent``) alone normalizes with its running statistics from this epoch
    # on, while the convolutions' BatchNorms keep their batch statistics (until ``freeze_norm_epochs``). Its
    # batch statistics are the largest source of the noise above (they double the error the decoder sees), and
    # it needs only a few epochs to learn the latent's scale. 0 = never (before ``freeze_norm_epochs``).
    freeze_latent_norm_after: int = 0
    # After the switch to frozen statistics the learning rate rises linearly from 0 to the schedule's over this many
    # epochs. Adam starts afresh there and its first steps move every weight by about the learning rate, which,
    # with nothing left to renormalize the activations, threw the CEERS training loss from 1.5e-3 to 1.3e-2 and
    # cost ten epochs to recover (benchmarks/RESULTS.md). 0 = no warm-up.
    freeze_warmup_epochs: int = 0
    # The learning rate of the frozen epochs, as a fraction of the schedule's: with nothing left to renormalize the
    # activations, a rate BatchNorm's batch statistics tolerated makes the frozen training loss jump by 2-3x from
    # one epoch to the next. 1 = the schedule's rate.
    freeze_lr_scale: float = 1.0
    # Files in one group share a side of the split. "auto": the number ending each file's stem (an object id,
    # shared by the bands of a cutout); a regex: its first capture group; "": every file its own group.
    group_regex: str = "auto"
    max_files: int = 0  # 0 = all files
    threads: int = 0  # 0 = one per core
    channels_last: bool = True

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
        if not 0 <= self.freeze_norm_epochs <= self.epochs:
            raise ValueError(f"freeze_norm_epochs must be in [0, epochs={self.epochs}], got {self.freeze_norm_epochs!r}")
        if not 0 <= self.freeze_latent_norm_after <= self.epochs:
            raise ValueError(f"freeze_latent_norm_after must be in [0, epochs={self.epochs}], "
                             f"got {self.freeze_latent_norm_after!r}")
        if not 0 <= self.freeze_warmup_epochs <= self.freeze_norm_epochs:
            raise ValueError(f"freeze_warmup_epochs must be in [0, freeze_norm_epochs={self.freeze_norm_epochs}], "
                             f"got {self.freeze_warmup_epochs!r}")
        if not 0.0 < self.freeze_lr_scale <= 1.0:
            raise ValueError(f"freeze_lr_scale must be in (0, 1], got {self.freeze_lr_scale!r}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction!r}")
        if self.model.in_size != self.preprocess.size:
            raise ValueError(f"model.in_size ({self.model.in_size}) must equal preprocess.size ({self.preprocess.size})")

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["model"] = self.model.to_dict()
        d["preprocess"] = self.preprocess.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        train = d.pop("train", {})  # TOML recipes keep the loop's settings under [train]
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted((set(d) | set(train)) - known)
        if unknown:
            raise ValueError(f"unknown recipe keys: {unknown}")
        d.update(train)
        model = ModelConfig.from_dict(d.pop("model", {}))
        pre = d.pop("preprocess", {})
        pre.setdefault("size", model.in_size)
        return cls(model=model, preprocess=PreprocessConfig.from_dict(pre), **d)

    def replace(self, **overrides) -> "TrainConfig":
        """A copy with top-level fields, or ``model_*`` / ``preprocess_*`` fields, overridden (None = keep)."""
        overrides = {k: v for k, v in overrides.items() if v is not None}
        model = {k[6:]: overrides.pop(k) for k in list(overrides) if k.startswith("model_")}
        pre = {k[11:]: overrides.pop(k) for k in list(overrides) if k.startswith("preprocess_")}
        return dataclasses.replace(
            self,
            model=dataclasses.replace(self.model, **model),
            preprocess=dataclasses.replace(self.preprocess, **pre),
            **overrides,
        )


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
