"""The flux interval an image is displayed over: min/max, a percentile (DS9's 99.5, 99, 95), IRAF's zscale, or
given by hand (astropy.visualization intervals)."""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["CLIP_CHOICES", "clip_limits"]

#: The choices, as a viewer names them (DS9's scale limits).
CLIP_CHOICES = ("min/max", "99.5%", "99%", "95%", "zscale", "manual")


def clip_limits(image, choice: str = "min/max", *, manual: tuple[float, float] | None = None) -> tuple[float, float]:
    """The display interval ``(vmin, vmax)`` of ``image`` under ``choice``; always ``vmin < vmax``.

    Parameters
    ----------
    image : array_like
        Pixel values (non-finite ones are ignored).
    choice : str
        One of :data:`CLIP_CHOICES`: the finite minimum and maximum; the central 99.5 / 99 / 95 percent of the
        pixels (``PercentileInterval``); IRAF's zscale (``ZScaleInterval``); or ``manual``.
    manual : (float, float), optional
        The limits for ``manual``, in the image's units.

    Raises
    ------
    ValueError
        For an unknown ``choice``, or ``manual`` without two finite limits.
    """
    from astropy.visualization import PercentileInterval, ZScaleInterval

    if choice not in CLIP_CHOICES:
        raise ValueError(f"clip limits must be one of {CLIP_CHOICES}, got {choice!r}")
    if choice == "manual":
        if manual is None or len(manual) != 2 or not np.isfinite(np.asarray(manual, dtype=float)).all():
            raise ValueError(f"manual clip limits need two finite numbers (min, max), got {manual!r}")
        lo, hi = (float(v) for v in manual)
        return _ordered(min(lo, hi), max(lo, hi))
    a = np.asarray(image, dtype=np.float64)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return 0.0, 1.0
    if choice == "min/max":
        return _ordered(float(a.min()), float(a.max()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if choice == "zscale":
            lo, hi = ZScaleInterval().get_limits(a)
        else:
            lo, hi = PercentileInterval(float(choice.rstrip("%"))).get_limits(a)
    return _ordered(float(lo), float(hi))


def _ordered(lo: float, hi: float) -> tuple[float, float]:
    if not hi > lo:
        hi = lo + (abs(lo) * 1e-6 if lo else 1.0)
    return lo, hi
