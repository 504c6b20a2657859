"""Survey-like degradations of one image in flux units, for testing a model on what real surveys deliver: a fainter
galaxy (more noise for the same flux), an off-centre or smaller/larger galaxy, a neighbour in the stamp, an edge
off the mosaic. Each takes a ``seed``; each keeps the image's sky level and noise where it invents pixels (sky noise
measured with :func:`~astroae_core.data.noise.robust_stats`), so only the named change differs."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from astroae_core.data.noise import robust_stats

__all__ = ["fainter", "shifted", "rescaled", "with_neighbour", "zero_edge", "sky_noise"]


def _image(image) -> np.ndarray:
    a = np.array(image, dtype=np.float64)
    if a.ndim != 2 or not np.isfinite(a).all():
        raise ValueError(f"expected a finite 2-D image, got shape {a.shape}")
    return a


def _fill_mask(a: np.ndarray) -> np.ndarray:
    # Exact zeros on more than 1% of the pixels are off the survey mosaic: no sky there to add noise to.
    zeros = a == 0
    return zeros if zeros.mean() > 0.01 else np.zeros_like(zeros)


def sky_noise(image) -> tuple[float, float]:
    """Sky level and noise sigma of ``image`` (robust: sources, hot pixels and exact-zero fills do not count)."""
    return robust_stats(_image(image))


def fainter(image, *, factor: float = 10.0, seed: int = 0) -> np.ndarray:
    """The same galaxy ``factor`` times fainter, seen with the same sky noise, at the image's flux scale.

    Dividing the source by ``factor`` and keeping the noise is, up to a scale that normalization removes, keeping
    the source and multiplying the noise by ``factor``: Gaussian noise of ``sigma * sqrt(factor**2 - 1)`` is added
    to every pixel but the exact-zero fill, so the total noise is ``factor * sigma``.
    """
    a = _image(image)
    if not factor >= 1:
        raise ValueError(f"factor must be >= 1, got {factor!r}")
    _, sigma = robust_stats(a)
    noise = np.random.default_rng(seed).normal(0.0, sigma * np.sqrt(factor**2 - 1), a.shape)
    return np.where(_fill_mask(a), a, a + noise)


def _sky(shape, bkg: float, sigma: float, rng) -> np.ndarray:
    return bkg + rng.normal(0.0, sigma, shape)


def shifted(image, *, fraction: tuple[float, float] = (0.1, 0.2), seed: int = 0) -> np.ndarray:
    """The galaxy moved off-centre by a whole number of pixels, ``fraction`` (a range) of the side, in a random
    direction; the stamp's uncovered side shows sky (its level plus its noise)."""
    a = _image(image)
    rng = np.random.default_rng(seed)
    bkg, sigma = robust_stats(a)
    dist = rng.uniform(*fraction) * min(a.shape)
    angle = rng.uniform(0, 2 * np.pi)
    dy, dx = int(round(dist * np.sin(angle))), int(round(dist * np.cos(angle)))
    out = _sky(a.shape, bkg, sigma, rng)
    h, w = a.shape
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = a[ys, xs]
    return out


def rescaled(image, *, factor: float, seed: int = 0) -> np.ndarray:
    """The galaxy ``factor`` times larger (> 1) or smaller (< 1) on the sky, about the stamp's centre.

    Bilinear resampling; the pixels it brings in from outside the stamp are sky, and noise is added back to the
    image's own sigma where the resampling smoothed it (a shrunk image averages pixels, an enlarged one
    interpolates between them).
    """
    a = _image(image)
    if not factor > 0:
        raise ValueError(f"factor must be > 0, got {factor!r}")
    rng = np.random.default_rng(seed)
    bkg, sigma = robust_stats(a)
    centre = (np.asarray(a.shape) - 1) / 2
    scale = 1.0 / factor
    out = ndimage.affine_transform(a, np.diag([scale, scale]), offset=centre - scale * centre, order=1,
                                   mode="constant", cval=np.nan)
    outside = np.isnan(out)
    out[outside] = _sky(int(outside.sum()), bkg, sigma, rng)
    _, smoothed = robust_stats(out)
    if smoothed < sigma:
        out = out + np.where(outside, 0.0, rng.normal(0.0, np.sqrt(sigma**2 - smoothed**2), a.shape))
    return out


def with_neighbour(image, other, *, flux_ratio: tuple[float, float] = (0.25, 0.75),
                   offset: tuple[float, float] = (0.3, 0.4), seed: int = 0) -> np.ndarray:
    """``image`` with ``other`` (sky subtracted) pasted in as a neighbour: its peak ``flux_ratio`` (a range) times
    the galaxy's peak above the sky, its centre ``offset`` (a range) of the side away from the stamp's centre in a
    random direction. ``other`` is resampled to ``image``'s shape if they differ."""
    a, b = _image(image), _image(other)
    if b.shape != a.shape:
        b = ndimage.zoom(b, (a.shape[0] / b.shape[0], a.shape[1] / b.shape[1]), order=1)[: a.shape[0], : a.shape[1]]
    rng = np.random.default_rng(seed)
    bkg_a, _ = robust_stats(a)
    bkg_b, _ = robust_stats(b)
    b = np.where(_fill_mask(b), 0.0, b - bkg_b)
    peak_a, peak_b = float(np.max(a) - bkg_a), float(np.max(b))
    ratio = rng.uniform(*flux_ratio) * peak_a / peak_b if peak_b > 0 else 0.0
    dist = rng.uniform(*offset) * min(a.shape)
    angle = rng.uniform(0, 2 * np.pi)
    moved = ndimage.shift(b, (dist * np.sin(angle), dist * np.cos(angle)), order=1, mode="constant", cval=0.0)
    return a + ratio * moved


def zero_edge(image, *, fraction: tuple[float, float] = (0.15, 0.3), seed: int = 0) -> np.ndarray:
    """A strip along one random side, ``fraction`` (a range) of the side wide, set to exactly 0: the cutout runs
    off the survey mosaic (about 5% of the CEERS cutouts have one)."""
    a = _image(image)
    rng = np.random.default_rng(seed)
    side = int(rng.integers(4))
    n = max(1, int(round(rng.uniform(*fraction) * min(a.shape))))
    out = a.copy()
    strip = [np.s_[:n, :], np.s_[-n:, :], np.s_[:, :n], np.s_[:, -n:]][side]
    out[strip] = 0.0
    return out
