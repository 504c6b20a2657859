"""The tables behind the latent map: which points the map draws, a plotly selection turned back into image ids, map
axes and colours. (Search and filters: astroae_core.analysis.subset; exports: astroae_core.io.export.)"""

from __future__ import annotations

import numpy as np

from astroae_core.cache import CATALOG_PREFIX

#: The catalog's kind of object (``catalog.csv``'s ``kind`` column, as the demo data has): offered first as a map
#: colour and shown beside a chosen image's scores.
KIND_COLUMN = CATALOG_PREFIX + "kind"


def default_outlier_count(n_images: int) -> int:
    """How many outliers the map highlights by default: about 5% of the images, between 3 and 20."""
    return int(min(20, max(3, n_images // 20)))


#: Above this many points the latent map's points carry their row position in ``customdata`` instead of the id
#: string (see :func:`dashboard.plots.latent_map`): a million ids take tens of seconds to serialize.
MAP_ROWS_AS_CUSTOMDATA_ABOVE = 20_000


#: Above this many rows the latent map shades the density of every point and draws a fixed random sample of this
#: many as points (a box or lasso still selects every row inside it: :func:`rows_in_selection`): the browser takes
#: seconds to draw and pan each further 10,000 WebGL points (benchmarks/cache_scale.py, benchmarks/slider_latency.py
#: --map-rows; figures in benchmarks/RESULTS.md).
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
    first = [c for c in ("anomaly_score", "mse", KIND_COLUMN, "split") if c in out]
    return first + [c for c in out if c not in first]
