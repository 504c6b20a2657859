"""The autoencoder's architecture as data (:class:`ModelConfig`), and how configs stored by older versions read.

Skip modes
----------
``"none"``
    A pure bottleneck: the decoder sees only the latent (the shipped recipes).
``"unet"``
    The seed: encoder features concatenated into the decoder at every scale, the 23x23 bottom level included.
    Reconstructions look perfect because the image bypasses the latent; ``decode(z)`` alone (skips zeroed) shows
    how little the 8 numbers carry.
``"dropout"``
    U-Net skips, but during training each sample loses all of its skips with probability ``skip_dropout`` (the
    decoder then sees zeros, exactly what ``decode(z)`` feeds it). The decoder must learn to draw the image from
    the latent alone, while the skips can still add detail when present.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["ModelConfig", "SKIP_MODES", "RETIRED_IN", "drop_retired"]

SKIP_MODES = ("unet", "none", "dropout")

# The last commit that still has the options retired below (and the benchmark recipes that used them).
RETIRED_IN = "0ed22ef"

# Retired model options and the only value they may still carry: the one every model was built with since.
_RETIRED = {"bottleneck_hidden": 0, "latent_broadcast": False, "conv_norm": "batch", "upsample": "transposed"}

# What a stored config meant by a key it lacks: such a file was written before the key existed (or by a version
# whose default it was), when the network was built as these values build it. The defaults until RETIRED_IN.
_STORED_DEFAULTS = {"in_size": 187, "latent_dim": 8, "channels": (16, 32, 64, 128), "skip_mode": "none",
                    "skip_dropout": 0.5, "standardize_latent": False}


def drop_retired(d: dict, retired: dict, *, what: str) -> dict:
    """``d`` without the ``retired`` options, each of which may only carry its one remaining value.

    Parameters
    ----------
    d : dict
        A config as stored or written in a recipe.
    retired : dict
        Retired option name to the value the code now always behaves as.
    what : str
        What ``d`` is, for the error ("model config", "recipe").

    Raises
    ------
    ValueError
        Naming the option, its value, and the commit that still has it.
    """
    for name, kept in retired.items():
        if name in d and d[name] != kept:
            raise ValueError(f"{what}: option {name} = {d[name]!r} was retired (only {kept!r} remains); "
                             f"commit {RETIRED_IN} still has it")
    return {k: v for k, v in d.items() if k not in retired}


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of an :class:`~astroae_core.model.AutoEncoder`; stored in every checkpoint so a model rebuilds
    without guessing. The defaults are the shipped recipes' (``train/configs/ceers.toml`` and ``demo.toml``).

    Parameters
    ----------
    in_size : int
        Side of the square input image.
    latent_dim : int
        Number of latent numbers.
    channels : tuple of int
        Filters of the encoder blocks, one per scale; max-pool between blocks (the seed's: 16, 32, 64, 128).
    skip_mode : {"none", "unet", "dropout"}
        How encoder features reach the decoder (see the module docstring).
    skip_dropout : float
        With ``skip_mode="dropout"``: probability that a training sample loses all its skips.
    standardize_latent : bool
        Batch-normalize the latent (no learned scale or shift): over the training data every latent number has
        mean 0 and variance 1, so no dimension can shrink to nothing, the sliders share one scale, and the
        participation ratio measures how independent the numbers are rather than how they happen to be scaled.
    pca_anchor : bool
        Anchor the code on PCA: the latent is the standardized PCA-``latent_dim`` coefficients of the image plus a
        learned correction from the encoder, and the decoder draws the PCA reconstruction of the latent plus a
        learned nonlinear residual, clipped to [0, 1]. The PCA basis (mean image, components, coefficient scales)
        is fitted on the training images before training and stored as buffers; both corrections start at zero
        (scaled by a learned gate that starts at 0), so training starts at PCA's error and can only improve on
        it. Replaces ``standardize_latent`` (the PCA scales standardize the latent). Needs ``skip_mode="none"``.
    """

    in_size: int = 187
    latent_dim: int = 8
    channels: tuple[int, ...] = (8, 16, 32, 64)
    skip_mode: str = "none"
    skip_dropout: float = 0.5
    standardize_latent: bool = True
    pca_anchor: bool = False

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if self.skip_mode not in SKIP_MODES:
            raise ValueError(f"skip_mode must be one of {SKIP_MODES}, got {self.skip_mode!r}")
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {self.latent_dim}")
        if len(self.channels) < 1 or min(self.channels) < 1:
            raise ValueError(f"channels must be positive integers, got {self.channels}")
        if self.in_size >> (len(self.channels) - 1) < 2:
            raise ValueError(f"in_size={self.in_size} is too small for {len(self.channels)} scales")
        if not 0.0 <= self.skip_dropout <= 1.0:
            raise ValueError(f"skip_dropout must be in [0, 1], got {self.skip_dropout}")
        if self.pca_anchor and self.skip_mode != "none":
            raise ValueError(f"pca_anchor needs skip_mode='none', got {self.skip_mode!r}")

    @property
    def has_skips(self) -> bool:
        return self.skip_mode != "none"

    @property
    def sizes(self) -> tuple[int, ...]:
        """Feature-map side at each scale (floor division by the 2x2 max-pools)."""
        return tuple(self.in_size >> i for i in range(len(self.channels)))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """A config from a recipe's ``[model]`` table or :meth:`to_dict`; missing keys take today's defaults.

        Raises
        ------
        ValueError
            For an unknown key, a retired option with a value other than its remaining one, or a bad value.
        """
        d = drop_retired(d, _RETIRED, what="model config")
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown model config keys: {unknown}")
        return cls(**d)

    @classmethod
    def from_stored(cls, d: dict) -> "ModelConfig":
        """A config as a checkpoint stored it: a key it lacks means what it meant when the file was written."""
        return cls.from_dict({**_STORED_DEFAULTS, **d})
