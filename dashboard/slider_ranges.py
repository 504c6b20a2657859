"""The latent sliders' ranges: each dimension's bounds from the dataset's spread, with a round step, and latents
clamped into them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SliderRange:
    """One slider: its bounds ``lo``..``hi`` and ``step``, and the dimension's dataset ``mean`` and ``std``."""

    lo: float
    hi: float
    mean: float
    std: float
    step: float


def slider_ranges(stats: dict, columns) -> list[SliderRange]:
    """Slider bounds per latent dimension: the 1st..99th percentile of the dataset (widened to hold the mean
    +/- half a std), else mean +/- 3 std.

    ``stats`` is ``LatentCache.latent_stats()`` (``{"mean": array (D,), "std": ..., "q01": ..., "q99": ...}``) or
    per dimension (``{"z0": {"mean": .., ...}, ...}``).
    """
    out = []
    for d, col in enumerate(columns):
        if "mean" in stats and not isinstance(stats["mean"], dict):
            s = {k: float(np.asarray(v, dtype=float)[d]) for k, v in stats.items()}
        else:
            s = stats.get(col, stats.get(d, {}))
        mean, std = float(s.get("mean", 0.0)), float(s.get("std", 1.0))
        mean = mean if np.isfinite(mean) else 0.0
        if not (np.isfinite(std) and std > 0):
            std = 1.0
        lo, hi = s.get("q01"), s.get("q99")
        if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)) or not hi > lo:
            lo, hi = mean - 3 * std, mean + 3 * std
        lo, hi = min(float(lo), mean - 0.5 * std), max(float(hi), mean + 0.5 * std)
        step = _nice_step((hi - lo) / 200)
        out.append(SliderRange(_round_to(lo, step, math.floor), _round_to(hi, step, math.ceil), mean, std, step))
    return out


def _nice_step(x: float) -> float:
    if not x > 0:
        return 0.01
    e = math.floor(math.log10(x))
    for m in (1, 2, 5, 10):
        if m * 10**e >= x:
            return float(m * 10**e)
    return float(10 ** (e + 1))


def _round_to(v: float, step: float, fn) -> float:
    return float(round(fn(v / step) * step, 10))


def clamp_to_ranges(z, ranges) -> list[float]:
    """Latent values clipped into the slider ranges (a chosen image may lie outside the 1..99% band)."""
    return [float(min(max(float(v), r.lo), r.hi)) for v, r in zip(z, ranges)]
