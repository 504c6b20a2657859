"""Why an image is an outlier: which separate score flagged it and what that score says, in plain words with its
numbers.

:func:`~astroae_core.analysis.outliers.anomaly_scores` makes ``anomaly_score`` the *largest* of the separate
scores' robust z-scores, so exactly one score sets each image's place in the ranking: :func:`score_zscores` repeats
that computation on a cache table's ``score_*`` columns, and :func:`explain` names the score whose z-score is the
largest and turns its raw value into a sentence against the dataset's typical value ("reconstruction error 85x the
dataset's median", "isolated in latent space: 3.1x the typical distance to its nearest neighbours"). Other scores
that are high too (z above ``also_above``) are listed after it.

An image can be the strangest of all while its reconstruction is excellent: a zero-filled detector edge is easy to
reproduce (a flat region is the easiest thing there is) but a large flat region is what ``score_flat`` looks for.
:func:`explain` says so whenever the score that flagged an image is not the reconstruction error and its MSE is
ordinary.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from astroae_core.analysis.outliers import robust_z

__all__ = ["SCORE_TITLES", "explain", "score_columns", "score_zscores"]

#: Short names of the separate scores, for a column or a badge.
SCORE_TITLES = {"score_recon": "reconstruction error", "score_density": "isolated in latent space",
                "score_peak": "one pixel off", "score_flat": "flat region"}

_STANDS_OUT = {"score_density": "its isolation in latent space", "score_peak": "one pixel's residual",
               "score_flat": "its flat region"}


def score_columns(table: pd.DataFrame) -> list[str]:
    """The separate scores in ``table`` (``score_*`` columns), in table order."""
    return [c for c in table.columns if str(c).startswith("score_")]


def _finite(a: np.ndarray) -> np.ndarray:
    bad = ~np.isfinite(a)
    if bad.any():
        a = a.copy()
        a[bad] = np.median(a[~bad]) if (~bad).any() else 0.0
    return a


def score_zscores(table: pd.DataFrame) -> pd.DataFrame:
    """Each separate score on the common scale :func:`~astroae_core.analysis.anomaly_scores` combines.

    Parameters
    ----------
    table : pandas.DataFrame
        A cache table (its ``score_*`` columns, raw values).

    Returns
    -------
    pandas.DataFrame
        Same index, one column per score (same names), float64 robust z-scores; their row-wise maximum is the
        table's ``anomaly_score``.
    """
    cols = score_columns(table)
    return pd.DataFrame({c: robust_z(_finite(table[c].to_numpy(dtype=np.float64))) for c in cols},
                        index=table.index)


def _g(v: float) -> str:
    return f"{v:.2g}" if abs(v) < 1e-2 or abs(v) >= 1e4 else f"{v:.3g}"


def _times(v: float, typical: float) -> str:
    if not typical > 0:
        return "far above"
    r = v / typical
    return f"{r:.1f}x" if r < 10 else f"{r:.0f}x"


def _sentence(col: str, value: float, z: float, ref: np.ndarray) -> str:
    """One score's verdict on one image, against the dataset's values ``ref`` of that score."""
    med = float(np.median(ref))
    if col == "score_recon":
        return (f"reconstruction error {z:.0f} sigma above the dataset's: MSE {_g(value)}, "
                f"{_times(value, med)} the median {_g(med)}")
    if col == "score_density":
        return (f"isolated in latent space: {_times(value, med)} the typical distance to its nearest neighbours "
                f"({value:.2f} against {med:.2f}, {z:.0f} sigma)")
    if col == "score_peak":
        return (f"one pixel far from its reconstruction: the largest residual is {value:.2f} of the image's range, "
                f"{_times(value, med)} the typical image's largest ({med:.2f}; {z:.0f} sigma)")
    if col == "score_flat":
        return (f"{value:.0%} of the image is one flat value (a zero-filled edge, a saturated or masked region); "
                f"{int((ref == 0).sum()):,} of the {ref.size:,} images have no such region ({z:.0f} sigma)")
    return f"{col} = {_g(value)}, {_times(value, med)} the median {_g(med)} ({z:.0f} sigma)"


def _short(col: str, value: float, z: float, ref: np.ndarray) -> str:
    """The same verdict in a few words, for a table cell."""
    med = float(np.median(ref))
    if col == "score_recon":
        return f"MSE {_times(value, med)} the median ({z:.0f}σ)"
    if col == "score_density":
        return f"{_times(value, med)} the typical neighbour distance ({z:.0f}σ)"
    if col == "score_peak":
        return f"a pixel {value:.2f} off, {_times(value, med)} typical ({z:.0f}σ)"
    if col == "score_flat":
        return f"{value:.0%} of the image flat ({z:.0f}σ)"
    return f"{col} {_times(value, med)} the median ({z:.0f}σ)"


def explain(table: pd.DataFrame, rows=None, *, also_above: float = 3.0) -> pd.DataFrame:
    """Which score flagged each image, and why, in words.

    Parameters
    ----------
    table : pandas.DataFrame
        A cache table (``score_*`` columns; ``mse`` for the note on good reconstructions).
    rows : array_like of index labels, optional
        The rows to explain (default: all). The dataset's statistics always come from the whole table.
    also_above : float
        Other scores with a z-score above this are named after the one that flagged the image.

    Returns
    -------
    pandas.DataFrame
        Index ``rows``; columns ``flagged_by`` (the ``score_*`` column with the largest z-score), ``flagged``
        (its title in :data:`SCORE_TITLES`), ``z`` (its z-score, the image's ``anomaly_score``), ``reason``
        (sentences with the numbers) and ``short`` (the flagging score's verdict in a few words).

    Raises
    ------
    ValueError
        If the table has no ``score_*`` column.
    """
    cols = score_columns(table)
    if not cols:
        raise ValueError("the table has no score_* columns to explain (is it a latent cache's table?)")
    zs = score_zscores(table)
    rows = table.index if rows is None else pd.Index(rows)
    raw = {c: _finite(table[c].to_numpy(dtype=np.float64)) for c in cols}
    pos = table.index.get_indexer(rows)
    if (pos < 0).any():
        raise ValueError(f"rows {list(rows[pos < 0][:5])} are not in the table")
    z_sub = zs.to_numpy()[pos]
    best = z_sub.argmax(axis=1) if len(cols) else np.zeros(len(pos), int)
    mse_pct = table["mse"].rank(pct=True).to_numpy()[pos] if "mse" in table.columns else None
    out = {"flagged_by": [], "flagged": [], "z": [], "reason": [], "short": []}
    for i, p in enumerate(pos):
        col = cols[best[i]]
        parts = [_sentence(col, raw[col][p], z_sub[i, best[i]], raw[col])]
        others = [c for j, c in enumerate(cols) if j != best[i] and z_sub[i, j] > also_above]
        if others:
            parts.append("also " + "; ".join(_sentence(c, raw[c][p], zs[c].iat[p], raw[c]) for c in others))
        if col != "score_recon" and mse_pct is not None and mse_pct[i] < 0.9 and "score_recon" not in others:
            parts.append(f"its reconstruction is ordinary (MSE lower than {1 - mse_pct[i]:.0%} of the images): "
                         f"the model reproduces it; what stands out is {_STANDS_OUT.get(col, col)}")
        out["flagged_by"].append(col)
        out["flagged"].append(SCORE_TITLES.get(col, col))
        out["z"].append(float(z_sub[i, best[i]]))
        out["short"].append(_short(col, raw[col][p], z_sub[i, best[i]], raw[col]))
        out["reason"].append(". ".join(s[0].upper() + s[1:] for s in parts) + ".")
    return pd.DataFrame(out, index=rows)
