"""How the latents follow what a catalog knows about each image: rank correlation of every latent dimension with
every numeric catalog column."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["latent_correlations"]

#: Identifiers, not quantities: never correlated (matched on a column name's last dotted part, case-insensitive,
#: so ``catalog.id`` is one too; as is any name ending in ``_seed``).
NOT_CORRELATED = frozenset({"id", "index", "image_seed", "seed"})


def _quantity(s: pd.Series) -> pd.Series | None:
    """A catalog column as float64 with NaN for missing values, or None when it cannot be correlated (not numeric,
    fewer than 3 finite values, no spread)."""
    if pd.api.types.is_bool_dtype(s):
        v = s.astype("float64")
    elif pd.api.types.is_numeric_dtype(s):
        v = pd.to_numeric(s, errors="coerce").astype("float64")
    else:
        return None
    v = v.where(np.isfinite(v))
    if v.notna().sum() < 3 or v.nunique(dropna=True) < 2:
        return None
    return v.reset_index(drop=True)


def _correlation(a: pd.Series, b: pd.Series, method: str) -> float:
    ok = a.notna() & b.notna()
    a, b = a[ok], b[ok]
    if len(a) < 3:
        return np.nan
    if method == "spearman":
        a, b = a.rank(), b.rank()
    a, b = a.to_numpy() - a.mean(), b.to_numpy() - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else np.nan


def latent_correlations(z_table: pd.DataFrame, catalog: pd.DataFrame, *, method: str = "spearman") -> pd.DataFrame:
    """Correlation of every latent column with every numeric catalog column (pairwise complete observations).

    Parameters
    ----------
    z_table : pandas.DataFrame
        Latent columns (``z0``..), one row per image.
    catalog : pandas.DataFrame
        Catalog values for the same rows (booleans count as 0/1). Non-numeric columns, identifiers
        (:data:`NOT_CORRELATED`, ``*_seed``) and columns with fewer than 3 finite values or no spread are left out.
    method : {"spearman", "pearson"}
        Spearman (rank) correlation is the default: catalog quantities such as flux are heavy-tailed and
        the latents need only be monotonic in them.

    Returns
    -------
    pandas.DataFrame
        Index: the latent columns (named ``latent``); columns: the catalog columns kept, as named in ``catalog``;
        NaN where undefined.
    """
    if method not in ("spearman", "pearson"):
        raise ValueError(f"method must be 'spearman' or 'pearson', got {method!r}")
    cols = {}
    for c in catalog.columns:
        bare = str(c).rsplit(".", 1)[-1].lower()
        if bare in NOT_CORRELATED or bare.endswith("_seed"):
            continue
        v = _quantity(catalog[c])
        if v is not None:
            cols[str(c)] = v
    zt = z_table.reset_index(drop=True).astype("float64")
    out = pd.DataFrame(index=pd.Index(list(zt.columns), name="latent"), columns=list(cols), dtype="float64")
    for name, v in cols.items():
        for zc in zt.columns:
            out.loc[zc, name] = _correlation(zt[zc], v, method)
    return out
