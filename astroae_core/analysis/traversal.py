"""Latents along paths through the latent space: traversal grids (one dimension moved at a time) and straight-line
interpolations between two images; decode them with :func:`astroae_core.analysis.reconstruction.decode_latents`."""

from __future__ import annotations

import numpy as np

__all__ = ["interpolate_latents", "traversal_latents"]


def traversal_latents(center, std, steps=(-2, -1, 0, 1, 2)) -> np.ndarray:
    """Latents for a traversal grid: row ``d`` moves dimension ``d`` by ``steps`` standard deviations.

    Parameters
    ----------
    center : array_like, shape (D,)
        Where every row starts.
    std : array_like, shape (D,)
        Each dimension's standard deviation.
    steps : sequence of float
        Moves, in standard deviations.

    Returns
    -------
    ndarray, shape (D * len(steps), D)
        float32, row-major (dimension, step).
    """
    center = np.asarray(center, dtype=np.float32)
    std = np.asarray(std, dtype=np.float32)
    d = center.size
    z = np.repeat(center[None], d * len(steps), axis=0)
    for i in range(d):
        for j, s in enumerate(steps):
            z[i * len(steps) + j, i] += s * std[i]
    return z


def interpolate_latents(za, zb, n: int) -> np.ndarray:
    """``n`` latents evenly spaced on the straight line from ``za`` to ``zb``, both ends included.

    Parameters
    ----------
    za, zb : array_like, shape (D,)
    n : int
        At least 2 are returned.

    Returns
    -------
    ndarray, shape (max(2, n), D)
        float32.
    """
    t = np.linspace(0.0, 1.0, max(2, int(n)), dtype=np.float32)[:, None]
    za = np.asarray(za, dtype=np.float32)[None]
    zb = np.asarray(zb, dtype=np.float32)[None]
    return (1 - t) * za + t * zb
