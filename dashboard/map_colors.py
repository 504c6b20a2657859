"""How the latent map turns a numeric column into colours: linear, by rank or on a log scale, with a colour bar
that reads in the column's own values.

Scores have long tails: on a linear scale the few outliers take the top of the colour bar and every other point
gets one colour. By rank, the colours are spread evenly over the images (the colour says "stranger than 90% of the
images"); on a log scale, a skewed positive column (an error, a flux) shows its decades. The colour bar's ticks are
placed at the column's quantiles and labelled with its values, whatever the scale.
"""

from __future__ import annotations

import numpy as np

SCALES = ("rank", "log", "linear")
LABEL_COLORS = {"interesting": "#f0b94d", "artefact": "#e05d5d", "normal": "#59c9a5", "(none)": "#4a5068"}
LABEL_MARKERS = {"interesting": dict(symbol="star", size=15, color="#f0b94d", line=dict(width=1, color="#000")),
                 "artefact": dict(symbol="x", size=11, color="#e05d5d", line=dict(width=1, color="#000")),
                 "normal": dict(symbol="square-open", size=11, color="#59c9a5", line=dict(width=2))}
_TICK_QUANTILES = (0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)


def is_score(column: str) -> bool:
    return str(column).startswith("score_") or column == "anomaly_score"


def is_skewed(values) -> bool:
    """Whether a column's upper tail is long: its 99th percentile lies more than 5 times as far above the median as
    its 1st percentile lies below it, or its maximum lies more than 10 times its 1-99% range above the median (a few
    extreme values that would take the whole colour bar)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < 10:
        return False
    q01, q50, q99 = np.quantile(v, [0.01, 0.5, 0.99])
    return bool(q99 - q50 > 5 * max(q50 - q01, 1e-300) or v.max() - q50 > 10 * max(q99 - q01, 1e-300))


def default_scale(column: str, values) -> str:
    """Rank for the anomaly scores, log for any other skewed column, linear otherwise."""
    if is_score(column):
        return "rank"
    return "log" if is_skewed(values) else "linear"


def _log_scale(finite_values: np.ndarray):
    """log10 of the distance above the smallest value, plus a hundredth of the median distance: zero and negative
    values (z-scores, fractions of 0) still have a place on the scale."""
    lo = float(finite_values.min())
    floor = max(float(np.median(finite_values - lo)) / 100.0, 1e-12)
    return lambda x: np.log10(np.maximum(np.asarray(x, dtype=np.float64) - lo, 0) + floor)


def scaled(values, scale: str) -> tuple[np.ndarray, list[float], list[str]]:
    """Colour values for ``values`` on ``scale``, and the colour bar's ticks.

    Returns
    -------
    colors : numpy.ndarray
        float32, NaN where ``values`` is not finite.
    tickvals, ticktext : list
        Positions on the colour scale and the column's values there (at its quantiles, those too close to the next
        dropped); empty on the linear scale (plotly's own ticks).
    """
    if scale not in SCALES:
        raise ValueError(f"colour scale {scale!r} is not one of {SCALES}")
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    out = np.full(v.shape, np.nan)
    if not finite.any():
        return out.astype(np.float32), [], []
    qs = np.quantile(v[finite], _TICK_QUANTILES)
    if scale == "rank":
        order = np.argsort(v[finite], kind="stable")
        r = np.empty(order.size)
        r[order] = np.arange(order.size) / max(order.size - 1, 1)
        out[finite] = r
        tickvals = list(_TICK_QUANTILES)
    elif scale == "log":
        f = _log_scale(v[finite])
        out[finite] = f(v[finite])
        tickvals = [float(x) for x in f(qs)]
    else:  # plotly's own ticks read well on a linear scale
        out[finite] = v[finite]
        return out.astype(np.float32), [], []
    return out.astype(np.float32), *_spread(tickvals, [f"{q:.3g}" for q in qs])


def _spread(tickvals: list[float], ticktext: list[str], *, gap: float = 0.06) -> tuple[list, list]:
    """The ticks at least ``gap`` of the colour range apart (the last one, the maximum, always kept): labels that
    would print over each other are dropped."""
    span = (tickvals[-1] - tickvals[0]) or 1.0
    keep = [len(tickvals) - 1]
    for i in range(len(tickvals) - 2, -1, -1):
        if tickvals[keep[-1]] - tickvals[i] >= gap * span:
            keep.append(i)
    keep.reverse()
    return [tickvals[i] for i in keep], [ticktext[i] for i in keep]
