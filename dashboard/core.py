"""Logic behind the astroae app, with no Streamlit import: paths and their guard, display stretches, reconstructions
of one image, uploads, slider ranges, selections. Everything here is unit-tested (tests/test_dashboard_plots.py).
"""

from __future__ import annotations

import argparse
import io
import math
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from astroae_core.io.sky import sky_position  # noqa: F401 - pages call core.sky_position
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = REPO_ROOT / "cache" / "demo"
MODELS_DIR = REPO_ROOT / "models"

STRETCHES = ("linear", "log", "asinh", "zscale")
COLORMAPS = ("gray", "inferno", "magma", "viridis", "cividis", "hot")
RESIDUAL_COLORMAP = "RdBu_r"  # red: the original is brighter than the reconstruction (flux the model missed)
DISPLAY_MAX_SIDE = 400  # images larger than this are shown (not computed) on a coarser grid
UPLOAD_SUFFIXES = ("fits", "fit", "fts", "fz", "gz", "bz2")
SCORE_COLUMNS = ("mse", "ssim", "ms_ssim", "latent_mse", "latent_ssim", "score_recon", "score_density",
                 "anomaly_score", "anomaly_rank")
EXPORT_COLUMNS = ("id", "path", "hdu", "split", "ra", "dec", *SCORE_COLUMNS)


# ----------------------------------------------------------------------------------------------------------------
# where things are, and the guard on every path the app reads


class PathNotAllowed(ValueError):
    """A path outside the folders the app may read (the data root and the operator's own cache and models)."""


def data_root(env=None) -> Path:
    """The folder the app may read images from and encode: ``ASTROAE_DATA_ROOT``, else ``<repo>/data``."""
    env = os.environ if env is None else env
    raw = env.get("ASTROAE_DATA_ROOT") or str(REPO_ROOT / "data")
    return Path(raw).expanduser().resolve()


def configured_cache(argv=None, env=None) -> tuple[Path, str]:
    """The cache the operator asked for: ``-- --cache PATH``, else ``ASTROAE_CACHE``, else the demo cache.

    Returns
    -------
    path : Path
        Resolved; it may not exist yet (the app then offers to build it).
    source : str
        Where it came from, for the sidebar.
    """
    env = os.environ if env is None else env
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--cache")
    args, _ = parser.parse_known_args(list(argv or []))
    if args.cache:
        return Path(args.cache).expanduser().resolve(), "--cache"
    if env.get("ASTROAE_CACHE"):
        return Path(env["ASTROAE_CACHE"]).expanduser().resolve(), "ASTROAE_CACHE"
    return DEFAULT_CACHE.resolve(), "demo cache"


def resolve_within(path, roots, *, base=None) -> Path:
    """Resolve ``path`` (symlinks and ``..`` included) and check that it lies inside one of ``roots``.

    Parameters
    ----------
    path : str or Path
        Absolute, or relative to ``base`` (default: the first root).
    roots : sequence of Path
        Allowed folders (or single files).
    base : Path, optional

    Raises
    ------
    PathNotAllowed
        Naming the path, when it resolves outside every root (a ``..`` escape, an absolute path elsewhere, a
        symlink pointing out).
    """
    roots = [Path(r).resolve() for r in roots]
    if not roots:
        raise PathNotAllowed(f"{str(path)!r}: no folder is allowed")
    p = Path(path).expanduser()
    if not p.is_absolute():
        p = Path(base if base is not None else roots[0]) / p
    try:
        resolved = p.resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise PathNotAllowed(f"{str(path)!r} cannot be resolved ({exc})") from None
    from astroae_core.io import is_within

    if is_within(resolved, roots):
        return resolved
    shown = ", ".join(str(r) for r in roots)
    raise PathNotAllowed(f"{str(path)!r} lies outside the folders the app may read ({shown})")


def is_cache_dir(path) -> bool:
    p = Path(path)
    return (p / "meta.json").is_file() and (p / "latents.parquet").is_file()


def _walk_folders(root: Path, max_depth: int):
    """Yield ``(folder, file names, is_cache)`` under ``root`` (resolved): sorted, hidden folders skipped, symlinks
    not followed, no deeper than ``max_depth``, and never inside a cache."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        d = Path(dirpath)
        depth = len(d.relative_to(root).parts)
        dirnames[:] = sorted(n for n in dirnames if not n.startswith(".")) if depth < max_depth else []
        cache = is_cache_dir(d)
        if cache:
            dirnames[:] = []
        yield d, filenames, cache


def find_caches(roots, *, max_depth: int = 3, limit: int = 100) -> list[Path]:
    """Latent caches (folders with ``meta.json`` and ``latents.parquet``) under ``roots``, without following
    symlinks out of them; hidden folders are skipped."""
    found: list[Path] = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        for d, _, cache in _walk_folders(root.resolve(), max_depth):
            if cache and d not in found:
                found.append(d)
            if len(found) >= limit:
                return found
    return found


def find_data_folders(root, *, max_depth: int = 3, limit: int = 200) -> list[tuple[str, int]]:
    """Folders under ``root`` that hold FITS files directly: ``[(relative path, number of files), ...]``."""
    from astroae_core.io import FITS_SUFFIXES

    suffixes = tuple(s + c for s in FITS_SUFFIXES for c in ("", ".gz", ".bz2"))
    root = Path(root)
    if not root.is_dir():
        return []
    root = root.resolve()
    out = []
    for d, filenames, cache in _walk_folders(root, max_depth):
        if cache:
            continue
        n = sum(1 for f in filenames if f.lower().endswith(suffixes))
        if n:
            out.append((str(d.relative_to(root)) if d != root else ".", n))
        if len(out) >= limit:
            break
    return out


def find_models(models_dir=MODELS_DIR) -> list[Path]:
    d = Path(models_dir)
    return sorted(p.resolve() for p in d.glob("*.pt")) if d.is_dir() else []


def cache_slug(folder) -> str:
    """A folder name for the cache of ``folder``: its path with anything unusual replaced by ``-``."""
    text = "-".join(Path(folder).parts) if str(folder) not in ("", ".") else "root"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "cache"


def cache_checkpoint(meta: dict) -> Path | None:
    """The checkpoint a cache was encoded with (``meta["checkpoint"]["path"]``), or None."""
    ck = meta.get("checkpoint")
    path = ck.get("path") if isinstance(ck, dict) else ck
    return Path(path) if path else None


def cache_checkpoint_sha(meta: dict) -> str | None:
    ck = meta.get("checkpoint")
    return ck.get("sha256") if isinstance(ck, dict) else None


# ----------------------------------------------------------------------------------------------------------------
# display stretches (astropy.visualization) and colour maps


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
    if stretch not in STRETCHES:
        raise ValueError(f"stretch must be one of {STRETCHES}, got {stretch!r}")
    a = np.asarray(reference, dtype=np.float64)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return 0.0, 1.0
    if stretch == "zscale":
        from astropy.visualization import ZScaleInterval

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lo, hi = ZScaleInterval().get_limits(a)
    else:
        lo, hi = float(a.min()), float(a.max())
    lo, hi = float(lo), float(hi)
    if not hi > lo:
        hi = lo + (abs(lo) or 1.0) * 1e-6 if lo else 1.0
    return lo, hi


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


def model_label(path) -> str:
    """A short name for a checkpoint: ``demo.pt``, or ``run/best.pt`` for the generic names a training run writes."""
    p = Path(str(path))
    generic = p.name in ("best.pt", "last.pt") or p.name.startswith("epoch_")
    return f"{p.parent.name}/{p.name}" if generic and p.parent.name else p.name


def default_outlier_count(n_images: int) -> int:
    """How many outliers the map highlights by default: about 5% of the images, between 3 and 20."""
    return int(min(20, max(3, n_images // 20)))


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


# ----------------------------------------------------------------------------------------------------------------
# one image through a model


@dataclass
class Reconstruction:
    """An image, the model's reconstruction of it and the numbers describing the match.

    ``x``/``x_hat``/``x_latent`` are normalized (model input space, S x S); ``flux*`` are in the original flux
    units at the original shape (``x_latent``/``flux_latent`` are None for a model without skips, where the full
    reconstruction already comes from the latent alone).
    """

    x: np.ndarray
    x_hat: np.ndarray
    z: np.ndarray
    norm: object
    flux: np.ndarray
    flux_hat: np.ndarray
    metrics: dict
    x_latent: np.ndarray | None = None
    flux_latent: np.ndarray | None = None
    metrics_latent: dict | None = None
    skip_mode: str = "none"


def _metrics_one(x, x_hat) -> dict:
    from astroae_core.analysis import image_metrics

    m = image_metrics(x[None, None], x_hat[None, None])
    return {k: float(v[0]) for k, v in m.items()}


def reconstruct(model, image) -> Reconstruction:
    """Preprocess ``image`` as the model was trained, encode, decode (and decode from the latent alone for a model
    with skips), map back to flux units and measure MSE/PSNR/SSIM/MS-SSIM in the model's [0, 1] space."""
    import torch

    from astroae_core.data import replace_nonfinite

    flux, _ = replace_nonfinite(image)
    x, norm = model.preprocess(flux)
    with torch.inference_mode():
        xt = torch.from_numpy(x[None])
        out = model(xt)
        x_hat = out["x_hat"][0, 0].float().numpy()
        z = out["z"][0].float().numpy()
        x_lat = model.decode(out["z"])[0, 0].float().numpy() if model.config.has_skips else None
    rec = Reconstruction(
        x=x[0], x_hat=x_hat, z=z, norm=norm, flux=flux,
        flux_hat=norm.invert(x_hat, to_original_shape=True), metrics=_metrics_one(x[0], x_hat),
        skip_mode=model.config.skip_mode,
    )
    if x_lat is not None:
        rec.x_latent = x_lat
        rec.flux_latent = norm.invert(x_lat, to_original_shape=True)
        rec.metrics_latent = _metrics_one(x[0], x_lat)
    return rec


def decode_latents(model, z) -> np.ndarray:
    """Decode latents (N, D) or (D,) from the latent alone; returns (N, S, S) float32 in [0, 1]."""
    import torch

    z = np.atleast_2d(np.asarray(z, dtype=np.float32))
    with torch.inference_mode():
        return model.decode(torch.from_numpy(z))[:, 0].float().numpy()


def reconstruction_fits_bytes(flux_hat, header, *, model_sha: str = "", source: str = "", latent_only=False) -> bytes:
    """The reconstruction as a FITS file in the original flux units, with the original header (WCS included)."""
    from astropy.io import fits

    hdr = header.copy() if header is not None else fits.Header()
    for key in ("XTENSION", "PCOUNT", "GCOUNT", "ZIMAGE", "ZBITPIX", "ZNAXIS", "ZCMPTYPE", "CHECKSUM", "DATASUM"):
        hdr.remove(key, ignore_missing=True, remove_all=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hdu = fits.PrimaryHDU(np.asarray(flux_hat, dtype=np.float32), header=hdr)
        what = "latent-only reconstruction" if latent_only else "reconstruction"
        hdu.header["HISTORY"] = f"astroae {what} of {source or 'an image'}"[:72]
        if model_sha:
            hdu.header["HISTORY"] = f"astroae model sha256 {model_sha[:40]}"
        buf = io.BytesIO()
        hdu.writeto(buf, output_verify="silentfix")
    return buf.getvalue()


def format_sky(ra, dec) -> str:
    if ra is None or dec is None or not (np.isfinite(ra) and np.isfinite(dec)):
        return "no sky position (no celestial WCS)"
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    c = SkyCoord(ra * u.deg, dec * u.deg)
    return f"RA {ra:.6f}°, Dec {dec:+.6f}°  ({c.to_string('hmsdms', precision=2, sep=':')})"


def format_metric(name: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if name == "psnr":
        return "∞ dB" if math.isinf(value) else f"{value:.2f} dB"
    if name == "mse":
        return f"{value:.3g}"
    return f"{value:.4f}"


SMALL_VALUE_COLUMNS = ("mse", "latent_mse", "score_recon", "score_peak")  # errors of order 1e-4: exponent format


def format_value(name: str, value, *, short: bool = False) -> str:
    """A table or caption value as text with a fixed precision per column, so that rows line up and nothing
    shows ``None`` or 17 digits.

    ``short`` (gallery captions): 3 significant digits in exponent form for the small error columns, else two
    decimals. Missing values (None, NaN) become an em dash.
    """
    if value is None or (isinstance(value, (float, np.floating)) and not np.isfinite(value)):
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if name in SMALL_VALUE_COLUMNS:
            return f"{v:.2e}"
        if name in ("ra", "dec"):
            return f"{v:.6f}"
        if short:
            return f"{v:.2f}"
        return f"{v:.4g}" if v != 0 and (abs(v) >= 1e4 or abs(v) < 1e-3) else f"{v:.4f}"
    return str(value)


def short_name(path) -> str:
    """A file's name without its FITS suffixes (``a/b/galaxy_001.fits.gz`` -> ``galaxy_001``), for captions."""
    name = Path(str(path)).name
    return re.sub(r"(\.(fits|fit|fts|fz))?(\.(gz|bz2))?$", "", name, flags=re.IGNORECASE) or name


def md_escape(text) -> str:
    """Text shown literally inside Streamlit markdown (an uploaded file's name cannot add links or formatting)."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~$])", r"\\\1", str(text))


METRIC_LABELS = {"mse": "MSE", "psnr": "PSNR", "ssim": "SSIM", "ms_ssim": "MS-SSIM"}


# ----------------------------------------------------------------------------------------------------------------
# uploads


@dataclass
class UploadResult:
    """What the app learned about one uploaded file (kept in session state; no file is kept)."""

    name: str
    error: str | None = None
    rec: Reconstruction | None = None
    header: object = None
    place: dict = field(default_factory=dict)
    neighbors: list = field(default_factory=list)  # [(row index in the cache table, distance), ...]
    mse_percentile: float | None = None
    place_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def upload_suffix(name: str) -> str:
    """The FITS suffix of an uploaded file's name (``.fits``, ``.fits.gz``...), used for the temporary file."""
    parts = [s.lower() for s in Path(name).suffixes][-2:]
    kept = [s for s in parts if re.fullmatch(r"\.[a-z0-9]{1,5}", s)]
    return "".join(kept) or ".fits"


def read_upload(name: str, data: bytes):
    """Read an uploaded FITS file held in memory (through a private temporary file, deleted at once).

    Raises
    ------
    FitsReadError
        Naming the uploaded file (not the temporary one) and the reason.
    """
    from astroae_core.io import FitsReadError, read_fits

    if not data:
        raise FitsReadError(f"cannot read {name!r}: empty file (0 bytes)", path=name, reason="empty file (0 bytes)")
    fd, tmp = tempfile.mkstemp(prefix="astroae-upload-", suffix=upload_suffix(name))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        try:
            return read_fits(tmp)
        except FitsReadError as exc:
            reason = exc.reason or str(exc)
            raise FitsReadError(f"cannot read {name!r}: {reason}", path=name, reason=reason) from None
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def process_upload(name: str, data: bytes, model, cache, *, k: int = 8) -> UploadResult:
    """Read, encode, reconstruct and score an upload, and place it on the cache's map with its neighbours.

    ``model`` must be the cache's own model (so that its latent lives in the cache's space). Problems become
    ``UploadResult.error`` (a sentence naming the file and the reason), never an exception.
    """
    from astroae_core.io import FitsReadError

    try:
        image, header = read_upload(name, data)
    except FitsReadError as exc:
        return UploadResult(name, error=exc.reason or str(exc))
    try:
        rec = reconstruct(model, image)
    except (ValueError, RuntimeError) as exc:
        return UploadResult(name, error=f"the model cannot use this image: {exc}")
    res = UploadResult(name, rec=rec, header=header)
    try:
        res.place = {k_: float(np.ravel(v)[0]) for k_, v in cache.place(rec.z).items()}
    except Exception as exc:  # noqa: BLE001 - a map that cannot place new points still shows the rest
        res.place, res.place_error = {}, str(exc)
    idx, dist = cache.neighbors(rec.z, k=k)
    res.neighbors = [(int(i), float(d)) for i, d in zip(np.ravel(idx), np.ravel(dist))]
    mses = cache.table["mse"].to_numpy(dtype=float) if "mse" in cache.table else np.array([])
    mses = mses[np.isfinite(mses)]
    if mses.size:
        res.mse_percentile = float((mses < rec.metrics["mse"]).mean() * 100)
    return res


# ----------------------------------------------------------------------------------------------------------------
# latents: columns, slider ranges, traversals, what each dimension tracks


def latent_columns(table) -> list[str]:
    """``z0``, ``z1``, ... in numeric order."""
    cols = [c for c in table.columns if re.fullmatch(r"z\d+", str(c))]
    return sorted(cols, key=lambda c: int(c[1:]))


@dataclass(frozen=True)
class SliderRange:
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


def traversal_latents(center, std, steps=(-2, -1, 0, 1, 2)) -> np.ndarray:
    """Latents for a traversal grid: row ``d`` moves dimension ``d`` by ``steps`` standard deviations.

    Returns (D * len(steps), D), row-major (dimension, step).
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
    """``n`` latents evenly spaced on the straight line from ``za`` to ``zb`` (both ends included)."""
    t = np.linspace(0.0, 1.0, max(2, int(n)), dtype=np.float32)[:, None]
    za = np.asarray(za, dtype=np.float32)[None]
    zb = np.asarray(zb, dtype=np.float32)[None]
    return (1 - t) * za + t * zb


def tracked_columns(correlations, columns) -> dict:
    """For each latent dimension, the catalog column it correlates with most: ``{z<d>: (column, r)}``.

    ``correlations`` is a DataFrame (index ``z0..``, columns catalog parameters) or None.
    """
    out = {}
    if correlations is None or getattr(correlations, "empty", True):
        return out
    for col in columns:
        if col not in correlations.index:
            continue
        row = correlations.loc[col].astype(float).dropna()
        if row.empty:
            continue
        best = row.abs().idxmax()
        out[col] = (str(best), float(row[best]))
    return out


def slider_influence(cache, model, *, max_images: int = 32, seed: int = 0) -> dict:
    """Each latent dimension's influence for the sliders page: the one stored in the cache at encode time
    (``meta["influence"]``), or, for a cache made before that, measured now by the same function
    (:func:`astroae_core.analysis.inference.measure_influence`) with the cache's previews standing in for the real images
    (their spread is measured on thumbnails, so it is a little smaller than at full resolution).

    Returns
    -------
    dict
        ``vs_data`` (per dimension: mean absolute change of the latent-only decode for +/-2 sd, over the spread of
        the real images), ``relative`` (over the spread of the decoded images), ``decoded_vs_data``, ``stored``
        (bool: read from the cache).
    """
    stored = cache.meta.get("influence") or {}
    if stored.get("vs_data") is not None:
        return {"vs_data": np.asarray(stored["vs_data"], dtype=float),
                "relative": np.asarray(stored["relative"], dtype=float),
                "decoded_vs_data": float(stored["decoded_vs_data"]), "stored": True}
    from astroae_core.analysis import measure_influence

    z = cache.latents()
    rows = np.random.default_rng(seed).choice(len(z), size=min(max_images, len(z)), replace=False)
    rows.sort()  # memory-mapped previews: read only the sampled thumbnails, in file order
    images = np.asarray(cache.previews[rows], dtype=np.float32) / 255.0
    out = measure_influence(model, z[rows], images=images, std=z.std(0), max_images=len(rows), seed=seed)
    return {"vs_data": out["vs_data"], "relative": out["relative"], "decoded_vs_data": out["decoded_vs_data"],
            "stored": False}


def influence_verdict(influence, has_skips: bool, decoded_vs_data: float | None = None) -> str:
    """A few sentences on how much the sliders move the image (``influence`` relative to the dataset's spread)."""
    inf = np.asarray(influence, dtype=float)
    if inf.size == 0 or not np.isfinite(inf).any():
        return "Influence could not be measured."
    top = float(np.nanmax(inf))
    weak = int((inf < 0.02 * top).sum()) if top > 0 else inf.size
    parts = [f"The strongest slider moves the decoded image by {top:.0%} of the dataset's own variation"]
    if weak:
        parts.append(f"{weak} of {inf.size} move it by less than 2% of that")
    text = "; ".join(parts) + "."
    if decoded_vs_data is not None:
        text += (f" Images decoded from the latent vary {decoded_vs_data:.0%} as much as the real images do"
                 + (" — the latent alone draws nearly the same image every time." if decoded_vs_data < 0.2 else "."))
    if has_skips:
        text += (" This model has skip connections: its full reconstructions copy detail from the input around "
                 "the bottleneck, so the sliders (which decode from the latent alone) show only what the "
                 f"{inf.size} numbers carry.")
    return text


# ----------------------------------------------------------------------------------------------------------------
# how much the latent carries (issue 5): the stored or computed evaluation in plain words


def carry_summary(evaluation: dict) -> dict:
    """Summarize an evaluation (``astroae_core.analysis.evaluate``'s, or the one a cache stores): ratios and plain sentences.

    Returns
    -------
    dict
        ``latent_vs_pca`` (latent-only MSE / PCA MSE), ``latent_vs_full`` (latent-only MSE / full MSE),
        ``beats_pca`` (bool), ``explained_vs_mean`` (share of the mean image's error the latent alone removes),
        ``carried`` ({row: share of the mean image's error removed} for full, latent_only, pca), ``headline`` (how
        much of the image the numbers carry, one sentence) and ``sentence`` (the headline and the details).
    """
    rows = evaluation.get("rows", {})
    k = evaluation.get("latent_dim", 8)
    skips = evaluation.get("skip_mode", "none") != "none"
    lat, full, pca = rows.get("latent_only", {}), rows.get("full", {}), rows.get("pca", {})
    mean = rows.get("mean_image", {})
    lmse, fmse, pmse = lat.get("mse"), full.get("mse"), pca.get("mse")
    ratio_pca = lmse / pmse if lmse is not None and pmse else None
    ratio_full = lmse / fmse if lmse is not None and fmse else None
    beats = bool(ratio_pca is not None and ratio_pca < 1)
    carried = {}
    if mean.get("mse"):
        carried = {r: 1.0 - rows[r]["mse"] / mean["mse"] for r in ("full", "latent_only", "pca")
                   if rows.get(r, {}).get("mse") is not None}
    explained = carried.get("latent_only")
    headline = ""
    if explained is not None and "pca" in carried:
        headline = (f"How much of the image the {k} numbers carry: decoded from them alone, the model removes "
                    f"{max(explained, 0):.0%} of the error of the mean image; PCA with {k} components removes "
                    f"{carried['pca']:.0%}")
        headline += (f"; the full model, whose skip connections pass the image around the numbers, "
                     f"{carried['full']:.0%}." if skips and "full" in carried else ".")
    s = [headline] if headline else []
    if lmse is not None and pmse:
        s.append(f"From its {k} numbers alone the model reconstructs with MSE {lmse:.3g}, "
                 f"{ratio_pca:.3g}× the MSE of PCA with {k} components ({pmse:.3g})"
                 + (f" — the latent beats PCA-{k}." if beats else f" — it does NOT beat PCA-{k}."))
    if explained is not None and explained < 0:
        s.append(f"It is worse than simply predicting the mean image (MSE {mean['mse']:.3g}).")
    elif explained is not None and not headline:  # the headline already says it
        s.append(f"It removes {explained:.0%} of the error of the mean image.")
    if skips and lmse is not None and fmse:
        s.append(f"The full reconstruction (with skip connections) has MSE {fmse:.3g}; from the latent alone it is "
                 f"{ratio_full:.3g}× that: the difference is what the skips carry around the bottleneck, not "
                 f"through the {k} numbers.")
        dvd = evaluation.get("decoded_vs_data")
        s.append("The latent sliders decode from the numbers alone, so they show only what the latent carries"
                 + (f": decoded that way, images vary {dvd:.0%} as much as the real ones"
                    + (", so the sliders barely change the image." if dvd < 0.2 else ".")
                    if dvd is not None else "."))
    if "effective_dim" in evaluation:
        s.append(f"Effective dimensionality of the latent: {evaluation['effective_dim']:.2f} of {k}.")
    return {"latent_vs_pca": ratio_pca, "latent_vs_full": ratio_full, "beats_pca": beats,
            "explained_vs_mean": explained, "carried": carried, "headline": headline, "sentence": " ".join(s)}


def by_kind_table(by_kind: dict, *, latent_dim: int = 8) -> pd.DataFrame:
    """The evaluation's ``by_kind`` (error per catalog kind) as a table for display, most images first."""
    rows = [{"kind": kind, "images": r["n"], "latent-only MSE": r["mse"], f"PCA-{latent_dim} MSE": r["ref_mse"],
             f"latent ÷ PCA-{latent_dim}": r["ratio"], "share of the latent's error": r["share"],
             f"share of PCA-{latent_dim}'s error": r["ref_share"]} for kind, r in by_kind.items()]
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------------------------
# selections and exports


#: Above this many points the latent map's points carry their row position in ``customdata`` instead of the id
#: string (see :func:`dashboard.plots.latent_map`): a million ids take tens of seconds to serialize.
MAP_ROWS_AS_CUSTOMDATA_ABOVE = 20_000


#: Above this many rows the latent map shades the density of every point and draws a fixed random sample of this
#: many as points (a box or lasso still selects every row inside it: :func:`rows_in_selection`). A million WebGL
#: points took 14-17 s to reach the screen in chromium here (benchmarks/cache_scale.py); panning 100k took 9 s,
#: 50k 5 s (benchmarks/slider_latency.py --map-rows 100000).
MAP_POINTS_DRAWN_MAX = 50_000


def map_sample(n: int, *, max_points: int | None = None, seed: int = 0) -> np.ndarray:
    """Row positions the latent map draws as points, sorted: all ``n`` up to ``max_points`` (default
    :data:`MAP_POINTS_DRAWN_MAX`), else a seeded sample of ``max_points``."""
    k = MAP_POINTS_DRAWN_MAX if max_points is None else int(max_points)
    if n <= k:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def _in_polygon(px: np.ndarray, py: np.ndarray, vx: np.ndarray, vy: np.ndarray) -> np.ndarray:
    # even-odd rule: a point is inside when a ray to +x crosses the boundary an odd number of times
    inside = np.zeros(len(px), dtype=bool)
    j = len(vx) - 1
    for i in range(len(vx)):
        crosses = (vy[i] > py) != (vy[j] > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = (vx[j] - vx[i]) * (py - vy[i]) / (vy[j] - vy[i]) + vx[i]
        inside ^= crosses & (px < x_at)
        j = i
    return inside


def _selection_field(selection, name: str) -> list:
    """One field (``points``, ``box``, ``lasso``) of a plotly selection, a dict or an attribute object; [] if absent."""
    if not selection:
        return []
    value = selection.get(name) if hasattr(selection, "get") else getattr(selection, name, None)
    return value or []


def rows_in_selection(xs, ys, selection) -> np.ndarray:
    """Row positions of every point inside a plotly selection's boxes and lasso polygons (their union).

    Computed from the shapes on the server, so that on a map drawing only a sample of its points
    (:data:`MAP_POINTS_DRAWN_MAX`) a box or lasso still selects every image inside it.

    Parameters
    ----------
    xs, ys : array_like, shape (N,)
        Map coordinates of all rows.
    selection : dict
        ``st.plotly_chart``'s selection: ``box`` (each with ``x`` = [x0, x1], ``y`` = [y0, y1]) and ``lasso``
        (each with the polygon's vertex lists ``x`` and ``y``).
    """
    xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    inside = np.zeros(len(xs), dtype=bool)
    for box in _selection_field(selection, "box"):
        (x0, x1), (y0, y1) = sorted(box["x"][:2]), sorted(box["y"][:2])
        inside |= (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)
    for lasso in _selection_field(selection, "lasso"):
        vx, vy = np.asarray(lasso["x"], dtype=np.float64), np.asarray(lasso["y"], dtype=np.float64)
        if len(vx) < 3:
            continue
        near = np.flatnonzero((xs >= vx.min()) & (xs <= vx.max()) & (ys >= vy.min()) & (ys <= vy.max()))
        inside[near[_in_polygon(xs[near], ys[near], vx, vy)]] = True
    return np.flatnonzero(inside)


def selection_ids(selection, table=None, *, axes=None) -> list:
    """Image ids from a plotly selection (``st.plotly_chart(..., on_select=...)``'s ``selection``): each point's
    ``customdata[0]`` (or ``customdata``), in order, without repeats.

    With ``table``, the table the map was drawn from: when it has more than :data:`MAP_ROWS_AS_CUSTOMDATA_ABOVE`
    rows the map's ``customdata`` are row positions, and they are turned into that table's ids. With ``axes``
    (the map's x and y columns) and more than :data:`MAP_POINTS_DRAWN_MAX` rows, a box or lasso selects every row
    inside it (:func:`rows_in_selection`), not only the points drawn."""
    if (table is not None and axes is not None and len(table) > MAP_POINTS_DRAWN_MAX
            and (_selection_field(selection, "box") or _selection_field(selection, "lasso"))):
        rows = rows_in_selection(table[axes[0]].to_numpy(), table[axes[1]].to_numpy(), selection)
        return table["id"].iloc[rows].tolist()
    if table is not None and len(table) > MAP_ROWS_AS_CUSTOMDATA_ABOVE:
        rows = selection_ids(selection)
        return table["id"].iloc[[int(r) for r in rows]].tolist() if rows else []
    out, seen = [], set()
    for p in _selection_field(selection, "points"):
        cd = p.get("customdata")
        if cd is None:
            continue
        v = cd[0] if isinstance(cd, (list, tuple)) else cd
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out


def rows_for_ids(table, ids):
    """Rows of ``table`` whose ``id`` is in ``ids`` (ids compared as strings, as they travel through JSON)."""
    want = [str(i) for i in ids]
    key = table["id"].astype(str)
    sub = table[key.isin(want)]
    order = {v: i for i, v in enumerate(want)}
    return sub.iloc[np.argsort([order[v] for v in sub["id"].astype(str)], kind="stable")]


def selection_csv(table, ids) -> bytes:
    """CSV (UTF-8) of the selected rows: id, path, RA/Dec and the scores present in the cache."""
    sub = rows_for_ids(table, ids)
    cols = [c for c in EXPORT_COLUMNS if c in sub.columns]
    return sub[cols].to_csv(index=False).encode("utf-8")


def pick_options(table, must=(), *, limit: int = 1000) -> list:
    """Ids for an image picker: ``must`` first (the chosen image, outliers...), then the table's first ids, at most
    ``limit`` in all (beyond that a picker is unusable; search on the Reconstructions page instead)."""
    out = list(dict.fromkeys(must))
    seen = set(out)
    for i in table["id"].tolist()[: limit + len(out)]:
        if len(out) >= max(limit, len(must)):
            break
        if i not in seen:
            out.append(i)
            seen.add(i)
    return out


def top_outliers(table, n: int = 20):
    """The ``n`` strangest images: lowest ``anomaly_rank`` (1 is the strangest), else highest ``anomaly_score``."""
    if "anomaly_rank" in table:
        return table.nsmallest(n, "anomaly_rank")
    if "anomaly_score" in table:
        return table.nlargest(n, "anomaly_score")
    return table.head(0)


def map_axes(table, kind: str) -> tuple[str, str]:
    """Column names of the map's axes: ``umap_x/umap_y`` or ``pca_x/pca_y`` (PCA when UMAP is missing)."""
    kind = kind.lower()
    if kind == "umap" and {"umap_x", "umap_y"} <= set(table.columns) and table["umap_x"].notna().any():
        return "umap_x", "umap_y"
    return "pca_x", "pca_y"


def color_options(table) -> list[str]:
    """Columns a map can be coloured by: numbers (scores, catalog parameters, latents) and labels with few values."""
    skip = {"id", "path", "pca_x", "pca_y", "umap_x", "umap_y"}
    out = []
    for c in table.columns:
        if c in skip:
            continue
        s = table[c]
        if s.dtype.kind in "biuf":
            if s.notna().any():
                out.append(str(c))
        elif s.nunique(dropna=True) <= 30:
            out.append(str(c))
    first = [c for c in ("anomaly_score", "mse", "kind", "split") if c in out]
    return first + [c for c in out if c not in first]


def search_table(table, query: str, *, sort_by: str | None = None, ascending: bool = True):
    """Rows whose path (or id) contains ``query`` (case-insensitive), sorted by a column."""
    sub = table
    q = (query or "").strip().lower()
    if q:
        mask = table["path"].astype(str).str.lower().str.contains(q, regex=False)
        mask |= table["id"].astype(str).str.lower().str.contains(q, regex=False)
        sub = table[mask]
    if sort_by and sort_by in sub.columns:
        sub = sub.sort_values(sort_by, ascending=ascending, na_position="last", kind="stable")
    return sub
