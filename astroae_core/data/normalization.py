"""Normalizing a resized image to ``[0, 1]`` (step 3 of :func:`~astroae_core.data.preprocess`), and back.

:func:`normalize` applies ``"minmax"`` or the noise-scaled ``"asinh"`` stretch (the rules are in
:mod:`astroae_core.data.preprocessing`); :class:`Norm` holds the numbers that define the stretch, so that a
reconstruction maps back to flux units (:meth:`Norm.invert`) and another image can be shown under the same
stretch (:meth:`Norm.apply`). ``Norm`` holds plain numbers only, so it can be stored in checkpoints
(``torch.load(weights_only=True)``), caches and JSON.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from astroae_core.data.config import METHODS, PreprocessConfig, checked_fields
from astroae_core.data.noise import robust_stats
from astroae_core.data.pixels import as_2d
from astroae_core.data.resize import resize_image

__all__ = ["Norm", "normalize"]


@dataclass(frozen=True)
class Norm:
    """Everything needed to map a normalized image back to flux units (plain numbers only).

    The forward map is ``x = clip((f(v) - lo) / (hi - lo), 0, 1)`` with ``f(v) = (v - offset) / scale`` for
    ``"minmax"`` and ``f(v) = arcsinh((v - offset) / scale)`` for ``"asinh"``.

    Parameters
    ----------
    method : {"asinh", "minmax"}
        The normalization used.
    offset : float
        ``"minmax"``: the image minimum. ``"asinh"``: the background (sky) level.
    scale : float
        ``"minmax"``: ``max - min`` (1 for a constant image). ``"asinh"``: the knee ``softening * sigma``, in
        flux units.
    lo, hi : float
        The range of ``f(v)`` mapped to ``[0, 1]`` (0 and 1 for ``"minmax"``).
    orig_shape : tuple of int
        Shape of the image before resizing.
    sigma : float
        Robust noise estimate in flux units for ``"asinh"`` (useful for display stretches); 0 (not measured)
        for ``"minmax"``. Never NaN, so the dict stays valid JSON.
    n_replaced : int
        Number of non-finite pixels that were replaced by the median.
    """

    method: str
    offset: float
    scale: float
    lo: float = 0.0
    hi: float = 1.0
    orig_shape: tuple[int, int] = (0, 0)
    sigma: float = 0.0
    n_replaced: int = 0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"Norm.method must be one of {METHODS}, got {self.method!r}")
        # Normalise types so that equality, JSON and weights_only loading never see numpy scalars.
        for name in ("offset", "scale", "lo", "hi", "sigma"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "orig_shape", tuple(int(s) for s in self.orig_shape))
        object.__setattr__(self, "n_replaced", int(self.n_replaced))
        if len(self.orig_shape) != 2:
            raise ValueError(f"Norm.orig_shape must have two entries, got {self.orig_shape!r}")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"Norm.scale must be finite and > 0, got {self.scale!r}")
        if not (math.isfinite(self.lo) and math.isfinite(self.hi) and self.hi > self.lo):
            raise ValueError(f"Norm needs finite lo < hi, got lo={self.lo!r}, hi={self.hi!r}")

    def apply(self, image) -> np.ndarray:
        """Normalize a flux image (already at model size) with these parameters.

        Useful to show another image (an original, a reconstruction in flux units) under the same stretch.

        Parameters
        ----------
        image : array_like
            Flux values, any shape.

        Returns
        -------
        numpy.ndarray
            float32 values in ``[0, 1]``, same shape.
        """
        v = np.asarray(image, dtype=np.float64)
        u = (v - self.offset) / self.scale
        if self.method == "asinh":
            u = np.arcsinh(u)
        x = (u - self.lo) / (self.hi - self.lo)
        # NaN input stays NaN rather than silently becoming a valid pixel.
        return np.clip(x, 0.0, 1.0).astype(np.float32)

    def invert(self, x, *, to_original_shape: bool = False) -> np.ndarray:
        """Map a normalized image back to flux units.

        Parameters
        ----------
        x : array_like or torch.Tensor
            Normalized image, shape ``(S, S)`` or ``(1, S, S)`` (leading length-1 axes are dropped).
            Values outside ``[0, 1]`` are clipped first.
        to_original_shape : bool
            Also resize (anti-aliased, bilinear) back to :attr:`orig_shape`.

        Returns
        -------
        numpy.ndarray
            float32 2-D image in the original flux units. Exact (to float32 precision) for pixels that were not
            clipped by the forward map.
        """
        if hasattr(x, "detach"):  # torch tensor, possibly on a GPU or requiring grad
            x = x.detach().cpu().numpy()
        x = as_2d(np.asarray(x, dtype=np.float64), "Norm.invert input")
        u = self.lo + np.clip(x, 0.0, 1.0) * (self.hi - self.lo)
        if self.method == "asinh":
            u = np.sinh(u)
        v = (self.offset + self.scale * u).astype(np.float32)
        if to_original_shape and tuple(v.shape) != self.orig_shape:
            v = resize_image(v, self.orig_shape)
        return v

    def to_dict(self) -> dict[str, Any]:
        """Return the parameters as a plain dict (``orig_shape`` as a list, for JSON).

        Returns
        -------
        dict
        """
        d = dataclasses.asdict(self)
        d["orig_shape"] = list(self.orig_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Norm:
        """Rebuild a :class:`Norm` from :meth:`to_dict` output.

        Parameters
        ----------
        d : dict

        Returns
        -------
        Norm

        Raises
        ------
        ValueError
            On unknown keys or invalid values.
        """
        return cls(**checked_fields(cls, d))


def normalize(v: np.ndarray, stats_image: np.ndarray, *, config: PreprocessConfig, orig_shape: tuple[int, int],
              n_replaced: int) -> tuple[np.ndarray, Norm]:
    """Map a resized image to ``[0, 1]`` with ``config.method``; returns the image and its :class:`Norm`.

    Parameters
    ----------
    v : numpy.ndarray
        The resized image, float64 (worked on in place).
    stats_image : numpy.ndarray
        The image the asinh background and noise are measured on (the coarser of the original and resized
        grids: see :mod:`astroae_core.data.preprocessing`).
    config : PreprocessConfig
        The method and the asinh settings.
    orig_shape : tuple of int
        The shape before resizing, recorded in the Norm.
    n_replaced : int
        How many non-finite pixels were filled, recorded in the Norm.

    Returns
    -------
    x : numpy.ndarray
        float32, shape ``(1, size, size)``, values in ``[0, 1]``.
    norm : Norm
    """
    if config.method == "minmax":
        vmin, vmax = float(v.min()), float(v.max())
        scale = vmax - vmin
        if not (scale > 0 and np.isfinite(scale)):
            scale = 1.0  # constant image -> all zeros, and offset + 0 * 1 inverts exactly
        norm = Norm("minmax", offset=vmin, scale=scale, lo=0.0, hi=1.0, orig_shape=orig_shape,
                    n_replaced=n_replaced)
        u = v - vmin
        u /= scale
    else:
        bkg, sigma = robust_stats(np.asarray(stats_image, dtype=np.float64))
        soft = config.asinh_softening
        k = soft * sigma
        u = v - bkg  # in place from here on: this runs once per image when loading a folder
        u /= k
        np.arcsinh(u, out=u)
        lo = float(np.arcsinh(-config.asinh_min_sigma / soft))
        if config.asinh_max_sigma is not None:
            hi = float(np.arcsinh(config.asinh_max_sigma / soft))
        else:
            hi = max(float(u.max()), float(np.arcsinh(config.asinh_min_range_sigma / soft)))
        norm = Norm("asinh", offset=bkg, scale=k, lo=lo, hi=hi, orig_shape=orig_shape, sigma=sigma,
                    n_replaced=n_replaced)
        u -= lo
        u /= hi - lo

    x = np.clip(u, 0.0, 1.0, out=u).astype(np.float32)[None]
    return x, norm
