"""Turn any 2-D FITS image into the network's input, and back.

``preprocess`` does three things, in this order:

1. **Non-finite pixels** (NaN, +/-inf: masked or saturated pixels, gaps) are replaced by the median of the
   finite pixels. The median is a neutral "sky-like" value: it does not create edges the network would try
   to reproduce, and it does not move the background estimate. An image with no finite pixel at all is
   refused with a ``ValueError``.
2. **Resize** to ``size x size`` with an anti-aliased bilinear (triangle) filter: downsampling (a 4000x4000
   mosaic tile) uses ``torch.nn.functional.interpolate(mode="bilinear", antialias=True)`` in float32, which
   low-pass filters first, so noise and high-frequency structure average out instead of aliasing into fake
   patterns, and never holds more than the input plus a small intermediate. Pure upsampling (100x100 CEERS
   cutouts) is the same bilinear filter (anti-aliasing is a no-op there), done in numpy because torch's
   per-call overhead dominates on small images. A non-square image is stretched to a square (its aspect
   ratio is not kept), because the network needs a fixed square input and padding would invent pixels; the
   original shape is remembered in :class:`Norm` so ``Norm.invert(..., to_original_shape=True)`` can undo it.
   The filter has positive weights only, so the resized image stays within the original value range.
3. **Normalize** the resized image to ``[0, 1]`` with one of two methods. Min and max are those of the
   resized image. The asinh background and noise are measured on the coarser of the original and resized
   grids: after downsampling that is what the network sees (averaging lowered the noise); after upsampling
   the original pixels are the independent samples, and interpolated pixels would under-estimate sigma.

   ``"minmax"`` (the seed's): ``x = (v - min) / (max - min)``. A constant image maps to all zeros
   (``scale = 1``), which inverts exactly.

   ``"asinh"`` (default): an asinh stretch in units of the image's own noise, so that faint outskirts and
   bright cores both keep contrast and every image gets the same treatment whatever its flux units::

       bkg   = sigma-clipped median                    (the sky level)
       sigma = sigma-clipped MAD standard deviation    (robust noise: sources and hot pixels do not count)
       k     = asinh_softening * sigma                 (the knee: linear below ~k, logarithmic above)
       y     = arcsinh((v - bkg) / k)
       y_lo  = arcsinh(-asinh_min_sigma / asinh_softening)     (asinh_min_sigma sigma below the sky -> 0)
       y_hi  = arcsinh(asinh_max_sigma / asinh_softening)      if asinh_max_sigma is set (fixed S/N scale)
             = max(max(y), arcsinh(asinh_min_range_sigma / asinh_softening))   otherwise
       x     = clip((y - y_lo) / (y_hi - y_lo), 0, 1)

   Why these defaults: with the knee at 3 sigma the noise stays in the linear part of the curve (it keeps its
   Gaussian look at low amplitude) while everything brighter than a few sigma is compressed logarithmically,
   which is what lets an 8-number code describe both the faint disk and the bright bulge (the CEERS cutouts
   span ~-2 to ~500 sigma). The lower clip at 5 sigma below the sky almost never touches real noise (3e-7 of
   Gaussian pixels) but stops a single very negative artefact from squeezing the range. By default nothing is
   clipped at the top (the brightest pixel maps to 1), so the stretch inverts exactly for every pixel; the top
   is never closer than ``asinh_min_range_sigma`` (10) sigma to the sky, so an empty noise field is not blown
   up to full contrast. Setting ``asinh_max_sigma`` gives every image the same S/N-to-grey mapping instead,
   clipping brighter pixels (those do not invert exactly).

   Fills and degenerate noise: a single exact value on more than 5% of the pixels and 10x more frequent
   than any other value is a fill (zeros off the survey mosaic, the flat sky of a noise-free simulation),
   not noise: background and sigma are measured on the other pixels (without this, a zero strip over a
   quarter of a CEERS cutout collapses the clipped MAD 20x and clips the real sky), and when the fill covers
   more than half of the image it *is* the background. If the MAD is still 0 (low-count integer data), sigma
   is the MAD of the pixels that differ from the background, then the plain standard deviation; a truly
   constant image uses ``sigma = |value|`` (or 1 for an all-zero image): every pixel equals the background,
   ``y = 0``, and the image maps to the constant grey of a blank sky (about 0.4) with no division by zero.

``Norm`` holds plain numbers only, so it can be stored in checkpoints (``torch.load(weights_only=True)``),
caches and JSON, and maps a reconstruction back to flux units.

The steps live beside this module: :mod:`~astroae_core.data.pixels` (1), :mod:`~astroae_core.data.resize` (2),
:mod:`~astroae_core.data.normalization` (3, and :class:`Norm`) with :mod:`~astroae_core.data.noise` (the robust
background and sigma); the settings are :class:`~astroae_core.data.config.PreprocessConfig`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from astroae_core.data.config import PreprocessConfig
from astroae_core.data.normalization import Norm, normalize
from astroae_core.data.pixels import replace_nonfinite
from astroae_core.data.resize import resize_image

__all__ = ["preprocess"]


def preprocess(image, *, config: PreprocessConfig | None = None, **overrides) -> tuple[np.ndarray, Norm]:
    """Replace non-finite pixels, resize with anti-aliasing, and normalize to ``[0, 1]``.

    See the module docstring for the exact rules.

    Parameters
    ----------
    image : array_like
        2-D image (any real dtype, any byte order; ``(1, H, W)`` is accepted).
    config : PreprocessConfig, optional
        Settings; defaults to ``PreprocessConfig()``.
    **overrides
        Field overrides applied on top of ``config``, e.g. ``preprocess(img, method="minmax", size=64)``.

    Returns
    -------
    x : numpy.ndarray
        float32, shape ``(1, size, size)``, finite, all values in ``[0, 1]``.
    norm : Norm
        Parameters to map ``x`` (or a reconstruction of it) back to flux units with :meth:`Norm.invert`.

    Raises
    ------
    ValueError
        If the image is not 2-D, is empty, or has no finite pixel, or a setting is invalid.
    TypeError
        If an override is not a :class:`PreprocessConfig` field.
    """
    config = config if config is not None else PreprocessConfig()
    if overrides:
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(PreprocessConfig)})
        if unknown:
            raise TypeError(f"preprocess() got unknown setting(s): {', '.join(unknown)}")
        config = dataclasses.replace(config, **overrides)

    a, n_replaced = replace_nonfinite(image)
    orig_shape = a.shape
    v = resize_image(a, config.size).astype(np.float64)
    # Noise statistics come from the coarser of the two grids, where pixels are independent samples:
    # upsampling interpolates between original pixels, which lowers the typical deviation but not the
    # extremes, so a sigma measured on the upsampled grid would be too small (and clip real noise).
    stats_image = a if a.size < v.size else v
    del a  # let a big mosaic go before the float64 work of normalizing
    return normalize(v, stats_image, config=config, orig_shape=orig_shape, n_replaced=n_replaced)
