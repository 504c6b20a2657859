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
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["PreprocessConfig", "Norm", "preprocess", "resize_image", "replace_nonfinite", "METHODS"]

#: Normalization methods understood by :func:`preprocess`.
METHODS = ("minmax", "asinh")

# A noise estimate below this many float32 ulps of the image's largest |value| is rounding, not noise.
_SIGMA_FLOOR_ULPS = 16.0


@dataclass(frozen=True)
class PreprocessConfig:
    """Settings of :func:`preprocess`; stored in checkpoints as a plain dict.

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
        return cls(**_checked_fields(cls, d))


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"PreprocessConfig.{name} must be a number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"PreprocessConfig.{name} must be finite and > 0, got {value!r}")


def _checked_fields(cls, d):
    if not isinstance(d, dict):
        raise ValueError(f"{cls.__name__}.from_dict expects a dict, got {type(d).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names, key=str)
    if unknown:
        raise ValueError(
            f"unknown {cls.__name__} key(s): {', '.join(map(repr, unknown))}; known keys: {', '.join(sorted(names))}"
        )
    return dict(d)


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
        x = _as_2d(np.asarray(x, dtype=np.float64), "Norm.invert input")
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
        return cls(**_checked_fields(cls, d))


def _as_2d(a: np.ndarray, what: str) -> np.ndarray:
    # Accept (1, H, W) and (1, 1, H, W): the network's own shapes for one image.
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise ValueError(f"{what} must be a 2-D image (or have leading length-1 axes), got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{what} is empty (shape {a.shape})")
    return a


def replace_nonfinite(image) -> tuple[np.ndarray, int]:
    """Return a float32 copy-if-needed of ``image`` with NaN/inf replaced by the median of the finite pixels.

    Parameters
    ----------
    image : array_like
        2-D image (leading length-1 axes are dropped).

    Returns
    -------
    image : numpy.ndarray
        float32, C-contiguous, native byte order, 2-D.
    n_replaced : int
        Number of pixels replaced.

    Raises
    ------
    ValueError
        If the image is not 2-D, is empty, or has no finite pixel.
    """
    a = _as_2d(np.asarray(image), "image")
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool) or np.iscomplexobj(a):
        raise ValueError(f"image must hold real numbers, got dtype {a.dtype}")
    # One float32 copy at most (none for an already-native float32 array): big mosaics stay cheap.
    a = np.ascontiguousarray(a, dtype=np.float32)
    finite = np.isfinite(a)
    n_bad = int(a.size - np.count_nonzero(finite))
    if n_bad == 0:
        return a, 0
    if n_bad == a.size:
        raise ValueError(f"image has no finite pixels (all {a.size} are NaN or inf); nothing to normalize")
    fill = np.median(a[finite])
    a = a.copy() if not a.flags.writeable or np.may_share_memory(a, np.asarray(image)) else a
    a[~finite] = fill
    return a, n_bad


def resize_image(image, shape) -> np.ndarray:
    """Anti-aliased bilinear resize of a 2-D image, in float32.

    Parameters
    ----------
    image : array_like
        2-D finite image.
    shape : int or tuple of int
        Output ``(height, width)``; an int means square.

    Returns
    -------
    numpy.ndarray
        float32 array of the requested shape (a float32 copy of the input when the shape already matches).
    """
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape), int(shape))
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"resize_image needs a positive (height, width), got {shape!r}")
    a = np.asarray(image)
    if a.ndim != 2:
        raise ValueError(f"resize_image needs a 2-D image, got shape {a.shape}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if a.shape == shape:
        return a.copy()
    if shape[0] >= a.shape[0] and shape[1] >= a.shape[1]:
        # Pure upsampling: anti-aliasing does nothing, and this two-tap numpy version of torch's bilinear
        # kernel (same result to float32 rounding) is ~10x faster on cutouts, where torch's per-call
        # thread-pool overhead dominates; that matters when loading thousands of small files.
        return _upsample_bilinear(_upsample_bilinear(a, shape[0]).T, shape[1]).T.copy()

    import torch  # deferred: reading FITS should not pay for importing torch
    import torch.nn.functional as F

    # from_numpy shares memory: the only big buffer is the input itself; the separable filter's
    # intermediate is (H, out_W), small for downsampling. torch warns on read-only arrays, hence the copy.
    t = torch.from_numpy(a if a.flags.writeable else a.copy())[None, None]
    with torch.no_grad():
        out = F.interpolate(t, size=shape, mode="bilinear", antialias=True, align_corners=False)
    return out[0, 0].numpy()


def _upsample_bilinear(a: np.ndarray, n_out: int) -> np.ndarray:
    """Linear interpolation along axis 0 with pixel-centre alignment (torch ``align_corners=False``)."""
    n_in = a.shape[0]
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    src = np.clip(src, 0.0, n_in - 1)  # torch clamps at the first pixel; the last is clamped below
    i0 = np.floor(src).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w1 = (src - i0).astype(np.float32)[:, None]
    a0 = a[i0]
    # a0 + w (a1 - a0) rather than (1 - w) a0 + w a1: a constant image stays exactly constant.
    return a0 + w1 * (a[i1] - a0)


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


def _robust_stats(v: np.ndarray) -> tuple[float, float]:
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
    del a  # let a big mosaic go before the float64 work below

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
        bkg, sigma = _robust_stats(np.asarray(stats_image, dtype=np.float64))
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
