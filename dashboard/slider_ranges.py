"""The latent sliders' ranges: each dimension's bounds from the dataset's spread, widened to hold the latent the
sliders start from, with a step one can see."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: One slider step is this fraction of the dimension's standard deviation (rounded to 1, 2 or 5 x 10^k). On the
#: demo model a step of std/25 (the old step) changed at most 2 grey levels of a few pixels; std/5 changes
#: hundreds of the object's pixels (benchmarks/RESULTS.md, "slider step").
STEP_OF_STD = 0.2


@dataclass(frozen=True)
class SliderRange:
    """One slider: its bounds ``lo``..``hi`` and ``step``, and the dimension's dataset ``mean`` and ``std``."""

    lo: float
    hi: float
    mean: float
    std: float
    step: float


def _dimension_stats(stats: dict, d: int, col: str) -> dict:
    if "mean" in stats and not isinstance(stats["mean"], dict):
        return {k: float(np.asarray(v, dtype=float)[d]) for k, v in stats.items()}
    return stats.get(col, stats.get(d, {}))


def slider_ranges(stats: dict, columns, *, include=None) -> list[SliderRange]:
    """Slider bounds per latent dimension: the 1st..99th percentile of the dataset (widened to hold the mean
    +/- half a std), else mean +/- 3 std; widened again to hold ``include``.

    Parameters
    ----------
    stats : dict
        ``LatentCache.latent_stats()`` (``{"mean": array (D,), "std": ..., "q01": ..., "q99": ...}``) or per
        dimension (``{"z0": {"mean": .., ...}, ...}``).
    columns : sequence of str
        The latent columns, in order.
    include : array_like, shape (D,), optional
        A latent the sliders must be able to hold exactly (the chosen image's, however odd): each bound is moved
        out to the next step beyond it.
    """
    out = []
    extra = None if include is None else np.asarray(include, dtype=np.float64).ravel()
    for d, col in enumerate(columns):
        s = _dimension_stats(stats, d, col)
        mean, std = float(s.get("mean", 0.0)), float(s.get("std", 1.0))
        mean = mean if np.isfinite(mean) else 0.0
        if not (np.isfinite(std) and std > 0):
            std = 1.0
        lo, hi = s.get("q01"), s.get("q99")
        if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)) or not hi > lo:
            lo, hi = mean - 3 * std, mean + 3 * std
        lo, hi = min(float(lo), mean - 0.5 * std), max(float(hi), mean + 0.5 * std)
        if extra is not None and np.isfinite(extra[d]):
            lo, hi = min(lo, float(extra[d])), max(hi, float(extra[d]))
        step = _nice_step(STEP_OF_STD * std)
        out.append(SliderRange(_round_to(lo, step, math.floor), _round_to(hi, step, math.ceil), mean, std, step))
    return out


def _nice_step(x: float) -> float:
    """``x`` rounded to the nearest 1, 2 or 5 times a power of ten."""
    if not x > 0:
        return 0.01
    e = math.floor(math.log10(x))
    m = min((1, 2, 5, 10), key=lambda k: abs(math.log10(k * 10**e / x)))
    return float(m * 10**e)


def _round_to(v: float, step: float, fn) -> float:
    """``v`` rounded down (``math.floor``) or up (``math.ceil``) to a multiple of ``step``, never past ``v``."""
    out = float(round(fn(v / step) * step, 10))
    if fn is math.floor and out > v:  # the 10-decimal rounding moved the bound back over the value it holds
        out = float(round(out - step, 10))
    elif fn is math.ceil and out < v:
        out = float(round(out + step, 10))
    return out


def clamp_to_ranges(z, ranges) -> list[float]:
    """Latent values clipped into the slider ranges (where they were left, after the ranges changed)."""
    return [float(min(max(float(v), r.lo), r.hi)) for v, r in zip(z, ranges)]


def as_slider_values(z) -> list[float]:
    """A latent as slider values: each float32 exactly, as a Python float (no rounding, no clamping)."""
    return [float(v) for v in np.asarray(z, dtype=np.float32).ravel()]
