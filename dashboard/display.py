"""Images for the screen: display stretches (astropy.visualization), colour maps, display-sized grids, mosaics and
PNG encoding. Nothing here changes what is measured; it only decides how values look."""

from __future__ import annotations

import io
import math
import re
import warnings
from functools import lru_cache

import numpy as np

STRETCHES = ("linear", "log", "asinh", "zscale")
COLORMAPS = ("gray", "inferno", "magma", "viridis", "cividis", "hot")
RESIDUAL_COLORMAP = "RdBu_r"  # red: the original is brighter than the reconstruction (flux the model missed)
DISPLAY_MAX_SIDE = 400  # images larger than this are shown (not computed) on a coarser grid


def _stretch_object(name: str):
    from astropy.visualization import AsinhStretch, LinearStretch, LogStretch

    if name == "log":
        return LogStretch(a=1000)  # ds9's default exponent
    if name == "asinh":
        return AsinhStretch(a=0.1)
    if name in ("linear", "zscale"):
        return LinearStretch()
    raise ValueError(f"stretch must be one of {STRETCHES}, got {name!r}")


def stretch_limits(reference, stretch: str) -> tuple[float, float]:
    """The flux interval a stretch maps to [0, 1], measured on ``reference`` (the original image).

    ``zscale`` uses IRAF's zscale algorithm; the others the finite minimum and maximum. Always ``vmin < vmax``.
    """
    from astroae_core.analysis.clip_limits import clip_limits

    if stretch not in STRETCHES:
        raise ValueError(f"stretch must be one of {STRETCHES}, got {stretch!r}")
    return clip_limits(reference, "zscale" if stretch == "zscale" else "min/max")


def colorbar_ticks(limits: tuple[float, float], stretch: str, *, n: int = 5) -> tuple[list[float], list[str]]:
    """Colour-bar ticks for an image drawn under ``stretch`` over ``limits``, labelled in the file's units.

    The values are picked evenly on the display scale (so a log stretch does not crowd them at one end), rounded
    to two significant digits, and placed where the stretch puts those rounded values. Returns
    ``(positions in [0, 1], labels)``.
    """
    vmin, vmax = limits
    obj = _stretch_object(stretch)
    flux = [vmin + (vmax - vmin) * float(obj.inverse(np.array([f]))[0]) for f in np.linspace(0, 1, n)]
    span = vmax - vmin
    vals, kept = [], []
    for f in flux:
        digits = max(0, 1 - math.floor(math.log10(abs(f)))) if f else 0
        # two significant digits, but never coarser than a hundredth of the range (ticks must stay distinct)
        digits = max(digits, -math.floor(math.log10(span / 100)) if span > 0 else 0)
        v = round(f, digits)
        if not vmin <= v <= vmax:  # rounded past an end: round towards the inside instead
            v = (math.floor if v > vmax else math.ceil)(f * 10.0**digits) / 10.0**digits
        if vmin <= v <= vmax and (not vals or v > vals[-1]):
            vals.append(v)
            kept.append(digits)
    pos = apply_stretch(np.array(vals, dtype=np.float64), stretch, limits).astype(float).tolist()
    return pos, [_tick_text(v, d) for v, d in zip(vals, kept)]


def _tick_text(v: float, digits: int) -> str:
    """A label for ``v`` rounded to ``digits`` decimals: plain for 0.01 <= |v| < 1e5, else ``1.25e-05``; never a
    mix of the two on one bar for values of one size."""
    if v == 0:
        return "0"
    if 1e-2 <= abs(v) < 1e5:
        return f"{v:.{max(0, digits)}f}"
    sig = max(1, digits + math.floor(math.log10(abs(v))) + 1)
    return f"{v:.{sig - 1}e}"


def apply_stretch(image, stretch: str, limits: tuple[float, float]) -> np.ndarray:
    """Map flux values to display values in [0, 1]: clip to ``limits``, then apply the stretch.

    The same ``limits`` (from the original) are used for the original and its reconstruction, so that both are
    shown under one stretch. Non-finite pixels become 0.
    """
    from astropy.visualization import ManualInterval

    vmin, vmax = limits
    a = np.asarray(image, dtype=np.float64)
    a = np.where(np.isfinite(a), a, vmin)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = _stretch_object(stretch)(ManualInterval(vmin, vmax)(a, clip=True), clip=True)
    out = np.where(np.isfinite(out), out, 0.0)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def residual_limit(residual, *, percentile: float = 99.5) -> float:
    """Half-width of the symmetric colour range of a residual: a high percentile of ``|residual|`` (> 0)."""
    r = np.abs(np.asarray(residual, dtype=np.float64))
    r = r[np.isfinite(r)]
    m = float(np.percentile(r, percentile)) if r.size else 0.0
    if not m > 0:
        m = float(r.max()) if r.size and r.max() > 0 else 1.0
    return m


def display_grid(image, *, max_side: int = DISPLAY_MAX_SIDE) -> np.ndarray:
    """``image`` as float32, resampled (anti-aliased) so that its longer side is at most ``max_side``."""
    from astroae_core.data import resize_image

    a = np.asarray(image, dtype=np.float32)
    h, w = a.shape
    if max(h, w) <= max_side:
        return a
    s = max_side / max(h, w)
    finite = np.where(np.isfinite(a), a, np.nanmedian(a) if np.isfinite(a).any() else 0.0)
    return resize_image(finite, (max(1, round(h * s)), max(1, round(w * s))))


@lru_cache(maxsize=32)
def colormap_lut(name: str) -> np.ndarray:
    """A (256, 3) uint8 lookup table for a plotly colour scale name (``"gray"``, ``"inferno"``, ``"RdBu_r"``...)."""
    import plotly.colors as pc

    if name == "gray":
        ramp = np.linspace(0, 255, 256).round().astype(np.uint8)
        return np.stack([ramp] * 3, axis=1)
    cols = pc.sample_colorscale(pc.get_colorscale(name), list(np.linspace(0, 1, 256)))
    rgb = [tuple(float(v) for v in re.findall(r"[\d.]+", c)[:3]) for c in cols]
    return np.clip(np.round(np.array(rgb)), 0, 255).astype(np.uint8)


def plotly_colorscale(name: str):
    """The colour scale to give plotly: ``"gray"`` as an explicit black-to-white ramp, others by name."""
    return [[0.0, "rgb(0,0,0)"], [1.0, "rgb(255,255,255)"]] if name == "gray" else name


def colorize(display01, cmap: str) -> np.ndarray:
    """Display values in [0, 1] (any shape) to RGB uint8 (shape + (3,)) with a colour map."""
    a = np.nan_to_num(np.asarray(display01, dtype=np.float32), nan=0.0)
    idx = np.clip(np.round(a * 255), 0, 255).astype(np.uint8)
    return colormap_lut(cmap)[idx]


def preview_rgb(previews, stretch: str, cmap: str) -> np.ndarray:
    """Previews (N, h, w) or (h, w), uint8 or [0, 1] floats, to RGB uint8 under ``stretch`` (limits per image)."""
    p = np.asarray(previews)
    single = p.ndim == 2
    p = p[None] if single else p
    p = p.astype(np.float32) / 255.0 if p.dtype == np.uint8 else p.astype(np.float32)
    out = np.empty(p.shape + (3,), dtype=np.uint8)
    for i, im in enumerate(p):
        out[i] = colorize(apply_stretch(im, stretch, stretch_limits(im, stretch)), cmap)
    return out[0] if single else out


def decoded_rgb(images01, stretch: str, cmap: str) -> np.ndarray:
    """Decoded images (N, h, w) in the model's [0, 1] units to RGB under one fixed stretch for all of them
    (limits [0, 1]; zscale measured on all images together), so that tiles can be compared with each other."""
    a = np.asarray(images01, dtype=np.float32)
    limits = stretch_limits(a, "zscale") if stretch == "zscale" else (0.0, 1.0)
    return colorize(apply_stretch(a, stretch, limits), cmap)


def mosaic(images, ncols: int, *, pad: int = 2, fill: float = 0.0) -> np.ndarray:
    """Tile images (N, h, w[, c]) into one array, ``ncols`` per row, separated by ``pad`` pixels of ``fill``."""
    images = np.asarray(images)
    n, h, w = images.shape[:3]
    rest = images.shape[3:]
    nrows = math.ceil(n / ncols)
    out = np.full((nrows * h + (nrows - 1) * pad, ncols * w + (ncols - 1) * pad, *rest), fill, dtype=images.dtype)
    for i in range(n):
        r, c = divmod(i, ncols)
        out[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = images[i]
    return out


def png_bytes(rgb) -> bytes:
    """An RGB (or grey) uint8 array as PNG file bytes (fast settings: small images, sent on every slider move)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def png_data_uri(rgb) -> str:
    """An RGB (or grey) uint8 array as a ``data:image/png;base64,...`` URI (:func:`png_bytes` inline)."""
    import base64

    return "data:image/png;base64," + base64.b64encode(png_bytes(rgb)).decode("ascii")
