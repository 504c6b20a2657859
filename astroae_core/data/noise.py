"""Robust background and noise of an image: the sky level and sigma the asinh stretch is scaled by.

Sigma-clipped median and MAD, computed on sorted data; exact-value fills (zeros off a mosaic, a noise-free
simulated sky) are recognised and kept out of the noise estimate. The rules are spelled out in
:mod:`astroae_core.data.preprocessing`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["robust_stats"]

# A noise estimate below this many float32 ulps of the image's largest |value| is rounding, not noise.
_SIGMA_FLOOR_ULPS = 16.0
# MAD of a Gaussian times this is its standard deviation.
_MAD_TO_SIGMA = 1.482602218505602
# A single exact value on more than this fraction of the pixels, and far more frequent than any other value,
# is a fill (zeros off the detector, the flat sky of a noise-free simulation), not a sample of the noise.
_FILL_FRACTION = 0.05
_FILL_DOMINANCE = 10


def _sorted_median(s: np.ndarray) -> float:
    n = s.size
    return float(s[n // 2]) if n % 2 else 0.5 * (float(s[n // 2 - 1]) + float(s[n // 2]))


def _clipped_median_sigma(s: np.ndarray, nsig: float = 3.0, maxiters: int = 5) -> tuple[float, float]:
    """Iteratively sigma-clipped median and MAD-sigma of *sorted* data (astropy's sigma_clipped_stats rule).

    On sorted data every clipped set is a contiguous slice, so each iteration costs one O(n) partition for
    the MAD instead of two medians and a boolean mask; this runs once per image when loading a folder.
    """
    lo, hi = 0, s.size
    med = sigma = 0.0
    for _ in range(maxiters + 1):
        d = s[lo:hi]
        med = _sorted_median(d)
        dev = np.abs(d - med)
        k = dev.size // 2
        part = np.partition(dev, [k - 1, k] if dev.size % 2 == 0 and k > 0 else k)
        mad = float(part[k]) if dev.size % 2 else 0.5 * (float(part[k - 1]) + float(part[k]))
        sigma = _MAD_TO_SIGMA * mad
        if not sigma > 0:
            break
        new_lo = max(lo, int(np.searchsorted(s, med - nsig * sigma, side="left")))
        new_hi = min(hi, int(np.searchsorted(s, med + nsig * sigma, side="right")))
        if (new_lo, new_hi) == (lo, hi) or new_hi - new_lo < 2:
            break
        lo, hi = new_lo, new_hi
    return med, sigma


def robust_stats(v: np.ndarray) -> tuple[float, float]:
    """Background and noise sigma of a finite float64 image; sigma is always finite and > 0.

    The background is the sigma-clipped (3 sigma, 5 iterations) median and sigma the MAD-based standard
    deviation of the clipped pixels: sources, cosmic rays and hot pixels do not move either.
    """
    s = np.sort(v, axis=None)
    max_abs = max(abs(float(s[0])), abs(float(s[-1])))
    floor = _SIGMA_FLOOR_ULPS * float(np.finfo(np.float32).eps) * max_abs

    def ok(x):
        return bool(np.isfinite(x)) and x > floor and x > 0

    # Fill detection. Without it a strip of exact zeros covering a quarter of a CEERS cutout drags the
    # iterative clipping onto the zero spike: sigma comes out 20x too small and real sky gets clipped.
    starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))  # runs of equal values
    counts = np.diff(np.append(starts, s.size))
    data, fill_bkg = s, None
    i_top = int(np.argmax(counts))
    n_top = int(counts[i_top])
    if counts.size > 1 and n_top > _FILL_FRACTION * s.size:  # cheap test first: float data rarely repeats
        n_second = int(np.partition(counts, -2)[-2])
        if n_top > _FILL_DOMINANCE * n_second:
            fill = float(s[starts[i_top]])
            data = s[s != fill]  # still sorted
            if n_top > s.size / 2:
                fill_bkg = fill  # the fill is the dominant level (noise-free sky, mostly-empty stamp)
    bkg, sigma = _clipped_median_sigma(data)
    if fill_bkg is not None:
        bkg = fill_bkg

    if not ok(sigma):
        # Over half of the pixels share the median value (low-count integer data, a few sources on a
        # flat sky): the MAD is 0, but the other pixels still tell the noise / signal scale.
        rest = data[data != bkg]
        sigma = _MAD_TO_SIGMA * float(np.median(np.abs(rest - np.median(rest)))) if rest.size >= 2 else 0.0
    if not ok(sigma):
        sigma = float(np.std(s))
    if not ok(sigma):
        # Constant image: every pixel equals bkg, so y = 0 whatever sigma is; tie it to the value's
        # magnitude so the float32 round trip stays relative-precise (1 for an all-zero image).
        bkg = _sorted_median(s)
        sigma = max(floor, abs(bkg)) or 1.0
    return float(bkg), float(sigma)
