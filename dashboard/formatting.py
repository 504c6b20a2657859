"""Values as text for the screen: metric values, table cells, sky positions, short file and model names, column
names, markdown escaping, and the by-kind error table with display column names."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from astroae_core.cache import CATALOG_PREFIX

METRIC_LABELS = {"mse": "MSE", "psnr": "PSNR", "ssim": "SSIM", "ms_ssim": "MS-SSIM"}
SMALL_VALUE_COLUMNS = ("mse", "latent_mse", "score_recon", "score_peak")  # errors of order 1e-4: exponent format


def model_label(path) -> str:
    """A short name for a checkpoint: ``demo.pt``, or ``run/best.pt`` for the generic names a training run writes."""
    p = Path(str(path))
    generic = p.name in ("best.pt", "last.pt") or p.name.startswith("epoch_")
    return f"{p.parent.name}/{p.name}" if generic and p.parent.name else p.name


def column_label(name) -> str:
    """A table column's name for the screen: a catalog column without the cache's prefix and marked as such
    (``catalog.kind`` -> ``kind (catalog)``); any other name unchanged."""
    name = str(name)
    return f"{name.removeprefix(CATALOG_PREFIX)} (catalog)" if name.startswith(CATALOG_PREFIX) else name


def format_sky(ra, dec) -> str:
    """RA/Dec in degrees and sexagesimal, or a note that there is no sky position."""
    if ra is None or dec is None or not (np.isfinite(ra) and np.isfinite(dec)):
        return "no sky position (no celestial WCS)"
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    c = SkyCoord(ra * u.deg, dec * u.deg)
    return f"RA {ra:.6f}°, Dec {dec:+.6f}°  ({c.to_string('hmsdms', precision=2, sep=':')})"


def format_metric(name: str, value) -> str:
    """A metric (``mse``, ``psnr``, ``ssim``, ``ms_ssim``) as text; ``n/a`` when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if name == "psnr":
        return "∞ dB" if math.isinf(value) else f"{value:.2f} dB"
    if name == "mse":
        return f"{value:.3g}"
    return f"{value:.4f}"


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


def by_kind_table(by_kind: dict, *, latent_dim: int = 8) -> pd.DataFrame:
    """The evaluation's ``by_kind`` (error per catalog kind) as a table with display column names."""
    rows = [{"kind": kind, "images": r["n"], "latent-only MSE": r["mse"], f"PCA-{latent_dim} MSE": r["ref_mse"],
             f"latent ÷ PCA-{latent_dim}": r["ratio"], "share of the latent's error": r["share"],
             f"share of PCA-{latent_dim}'s error": r["ref_share"]} for kind, r in by_kind.items()]
    return pd.DataFrame(rows)
