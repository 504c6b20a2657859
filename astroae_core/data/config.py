"""The preprocessing settings (:class:`PreprocessConfig`), stored in checkpoints as a plain dict."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["METHODS", "PreprocessConfig", "checked_fields"]

#: Normalization methods understood by :func:`~astroae_core.data.preprocess`.
METHODS = ("minmax", "asinh")


@dataclass(frozen=True)
class PreprocessConfig:
    """Settings of :func:`~astroae_core.data.preprocess`; stored in checkpoints as a plain dict.

    Parameters
    ----------
    size : int
        Side of the square network input, in pixels.
    method : {"asinh", "minmax"}
        Normalization: noise-scaled asinh stretch (default) or the seed's min-max scaling.
    asinh_softening : float
        The asinh knee, in units of the robust noise sigma: pixels within about this many sigma of the sky
        are scaled linearly, brighter ones logarithmically.
    asinh_min_sigma : float
        Pixels more than this many sigma *below* the sky are clipped to 0.
    asinh_max_sigma : float or None
        If set, pixels more than this many sigma above the sky are clipped to 1, giving all images the same
        S/N scale. ``None`` (default): the brightest pixel maps to 1 and nothing is clipped at the top.
    asinh_min_range_sigma : float
        With ``asinh_max_sigma=None``, the top of the range is at least this many sigma above the sky, so a
        source-free noise field keeps low contrast.
    """

    size: int = 187
    method: str = "asinh"
    asinh_softening: float = 3.0
    asinh_min_sigma: float = 5.0
    asinh_max_sigma: float | None = None
    asinh_min_range_sigma: float = 10.0

    def __post_init__(self):
        if isinstance(self.size, bool) or not isinstance(self.size, (int, np.integer)) or self.size < 1:
            raise ValueError(f"PreprocessConfig.size must be a positive integer, got {self.size!r}")
        object.__setattr__(self, "size", int(self.size))
        if self.method not in METHODS:
            raise ValueError(f"PreprocessConfig.method must be one of {METHODS}, got {self.method!r}")
        for name in ("asinh_softening", "asinh_min_sigma", "asinh_min_range_sigma"):
            _check_positive(name, getattr(self, name))
        if self.asinh_max_sigma is not None:
            _check_positive("asinh_max_sigma", self.asinh_max_sigma)

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a plain dict (JSON- and ``weights_only``-safe).

        Returns
        -------
        dict
            Field name to value.
        """
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessConfig:
        """Build a config from :meth:`to_dict` output; missing keys take their defaults.

        Parameters
        ----------
        d : dict
            Field name to value.

        Returns
        -------
        PreprocessConfig

        Raises
        ------
        ValueError
            If ``d`` has keys that are not fields (a checkpoint from an incompatible version must not be
            silently preprocessed differently), or a value is invalid.
        """
        return cls(**checked_fields(cls, d))


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"PreprocessConfig.{name} must be a number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"PreprocessConfig.{name} must be finite and > 0, got {value!r}")


def checked_fields(cls, d) -> dict:
    """``d`` as a dict of ``cls``'s dataclass fields; ValueError for a non-dict or an unknown key."""
    if not isinstance(d, dict):
        raise ValueError(f"{cls.__name__}.from_dict expects a dict, got {type(d).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names, key=str)
    if unknown:
        raise ValueError(
            f"unknown {cls.__name__} key(s): {', '.join(map(repr, unknown))}; known keys: {', '.join(sorted(names))}"
        )
    return dict(d)
