"""How faithful a reconstruction is as photometry: its total flux against the original's in one aperture, and the
shift of its sky level, in the file's units and in the original's noise sigma."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Photometry", "compare_photometry"]

# The aperture: pixels whose 3x3 mean is this many of its own noise sigmas above the sky, grown by a few pixels.
_DETECT_SIGMA = 3.0
_GROW_PIXELS = 3
# Fewer sky pixels than this share of the image: the sky is measured on the image's outer border instead.
_MIN_SKY_FRACTION = 0.1
# The original's total flux in the aperture must exceed this many times its noise for a ratio to be given.
_MIN_SNR = 5.0


@dataclass(frozen=True)
class Photometry:
    """A reconstruction's photometry against its original.

    Attributes
    ----------
    flux_ratio : float
        Total background-subtracted flux of the reconstruction over the original's, both summed in the same
        aperture (NaN when the original's flux there is below 5 times its noise).
    sky_offset : float
        Median of the reconstruction's sky minus the original's (same sky pixels), in the file's units.
    sky_offset_sigma : float
        ``sky_offset`` in units of the original's sky noise (sigma-clipped MAD).
    sky_sigma : float
        The original's sky noise, in the file's units.
    aperture_pixels : int
        How many pixels the aperture holds (the rest, or the border, is sky).
    """

    flux_ratio: float
    sky_offset: float
    sky_offset_sigma: float
    sky_sigma: float
    aperture_pixels: int

    def as_dict(self) -> dict:
        return asdict(self)


def _aperture(image: np.ndarray, sky: float, sigma: float) -> np.ndarray:
    from scipy import ndimage

    smooth = ndimage.uniform_filter(image.astype(np.float64), size=3, mode="nearest")
    # the 3x3 mean of white noise has a third of its sigma
    found = smooth > sky + _DETECT_SIGMA * sigma / 3.0
    if not found.any():
        return found
    return ndimage.binary_dilation(found, iterations=_GROW_PIXELS)


def _border(shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    b = max(1, min(h, w) // 10)
    m = np.zeros(shape, dtype=bool)
    m[:b], m[-b:], m[:, :b], m[:, -b:] = True, True, True, True
    return m


def compare_photometry(original, reconstruction) -> Photometry:
    """The total-flux ratio and the sky offset of ``reconstruction`` against ``original``.

    Parameters
    ----------
    original, reconstruction : array_like, shape (H, W)
        Finite images in the file's units (``Reconstruction.flux`` and ``flux_hat``).

    Returns
    -------
    Photometry
        The aperture holds the original's sources (its 3x3 mean above 3 sigma of the sky, grown by 3 pixels);
        the sky is every other pixel (the image's border when those are under 10% of it). Each image's sky level
        is the median of its sky pixels, subtracted before the fluxes are summed in the aperture.
    """
    from astroae_core.data.noise import robust_stats

    a = np.asarray(original, dtype=np.float64)
    b = np.asarray(reconstruction, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"original and reconstruction must be 2-D images of one shape, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("original and reconstruction must be finite (fill non-finite pixels first)")
    sky0, sigma = robust_stats(a)
    ap = _aperture(a, sky0, sigma)
    sky_px = ~ap if (~ap).mean() >= _MIN_SKY_FRACTION else _border(a.shape) & ~ap
    if not sky_px.any():
        sky_px = _border(a.shape)
    _, sigma = robust_stats(a[sky_px])
    # one estimator for both sky levels (the median of the same pixels): an image against itself is offset by 0
    sky_a, sky_b = float(np.median(a[sky_px])), float(np.median(b[sky_px]))
    total_a = float((a[ap] - sky_a).sum()) if ap.any() else float((a - sky_a).sum())
    total_b = float((b[ap] - sky_b).sum()) if ap.any() else float((b - sky_b).sum())
    n_ap = int(ap.sum()) if ap.any() else a.size
    # a total within noise of zero makes any ratio meaningless: said as NaN
    ratio = total_b / total_a if total_a > _MIN_SNR * sigma * np.sqrt(n_ap) else float("nan")
    offset = sky_b - sky_a
    return Photometry(flux_ratio=ratio, sky_offset=offset, sky_offset_sigma=offset / sigma, sky_sigma=sigma,
                      aperture_pixels=int(ap.sum()))
