"""Plotly figure builders for the astroae app (no Streamlit import; unit-tested in tests/test_dashboard_plots.py).

Images are heatmaps with the FITS convention (pixel (0, 0) at the bottom left) and the pixel value in flux units on
hover; maps are WebGL scatters whose points carry the image id in ``customdata`` so that a click or a box/lasso
selection can be turned back into images.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from astroae_core.analysis import WEAK_INFLUENCE, Reconstruction

from . import display, formatting, map_colors, selection

ACCENT = "#f0b94d"
ROW_COLORS = {"full": "#8f9bb3", "latent_only": ACCENT, "pca": "#5b8def", "mean_image": "#4a5068"}
ROW_LABELS = {"full": "full (with skips)", "latent_only": "latent only", "pca": "PCA-{k}", "mean_image": "mean image"}
# Viridis without its darkest fifth: the low end stays visible on the dark theme.
MAP_COLORSCALE = [[0.0, "#3b528b"], [0.25, "#2c728e"], [0.5, "#21918c"], [0.75, "#5ec962"], [1.0, "#fde725"]]
QUALITATIVE = ("#5b8def", "#f0b94d", "#e05d5d", "#59c9a5", "#b07cf0", "#f08fc0", "#9bd0ff", "#c9c95b",
               "#ff9f5b", "#7ee081")


def _round_sig(a, sig: int = 5) -> np.ndarray:
    """Round to ``sig`` significant digits (smaller JSON for hover values, no visible change)."""
    a = np.asarray(a, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.where((a != 0) & np.isfinite(a), np.floor(np.log10(np.abs(a))), 0)
    scale = 10.0 ** (sig - 1 - mag)
    return np.round(a * scale) / scale


def _base_layout(fig: go.Figure, height: int) -> go.Figure:
    bottom = 10 if fig.layout.legend.y is None or fig.layout.legend.y >= 0 else 60
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=bottom), paper_bgcolor="rgba(0,0,0,0)",
                      plot_bgcolor="rgba(0,0,0,0)")
    return fig


# ----------------------------------------------------------------------------------------------------------------
# images


@dataclass
class Panel:
    """One image of a side-by-side figure.

    ``display`` is what is coloured (display values in [0, 1] for images; the residual itself for a residual),
    ``hover`` what the mouse shows (flux units), ``zmid`` makes the colour scale symmetric (residuals).
    ``ticks`` labels the colour bar in the file's units: ``(positions on the display scale, labels)``; without it
    the bar is labelled with the coloured values themselves.
    """

    title: str
    display: np.ndarray
    hover: np.ndarray
    colorscale: object = "gray"
    zmin: float = 0.0
    zmax: float = 1.0
    zmid: float | None = None
    colorbar: bool = True
    hover_label: str = "flux"
    ticks: tuple | None = None


def _grid_placement(shape, grid) -> dict:
    """Heatmap ``x0, dx, y0, dy`` that put a display grid's cells on the image's own 0-based pixel coordinates."""
    (ny, nx), (gy, gx) = shape, grid
    return dict(x0=0.5 * nx / gx - 0.5, dx=nx / gx, y0=0.5 * ny / gy - 0.5, dy=ny / gy)


def _colorbar(p: Panel, domain) -> dict:
    """A horizontal colour bar under its panel, labelled in the file's units."""
    bar = dict(orientation="h", thickness=10, len=min(0.9 * (domain[1] - domain[0]), 0.5), lenmode="fraction",
               x=(domain[0] + domain[1]) / 2, xanchor="center", y=0.0, yanchor="bottom", yref="container",
               title=dict(text=p.hover_label, side="bottom"), tickfont=dict(size=10))
    if p.ticks is not None:
        bar.update(tickvals=list(p.ticks[0]), ticktext=list(p.ticks[1]))
    else:
        bar.update(exponentformat="power", nticks=5)
    return bar


def _heatmap(p: Panel, shape, sky, domain) -> go.Heatmap:
    disp = np.asarray(p.display, dtype=np.float64)
    kw = dict(zmin=p.zmin, zmax=p.zmax) if p.zmid is None else dict(zmin=p.zmin, zmax=p.zmax, zmid=p.zmid)
    # float32 for what is sent: the figure of a 187-pixel image stays near 2 MB with RA/Dec on every pixel (RA in
    # float32 is good to 1.5e-5 degrees, 0.05 arcsec, at RA 150; hover shows 5 decimals)
    hover = _round_sig(p.hover, 5).astype(np.float32)
    where = "x %{x:.0f}, y %{y:.0f}"
    if sky is not None and sky.ra.shape == disp.shape:
        hover = np.stack([hover, sky.ra.astype(np.float32), sky.dec.astype(np.float32)], axis=-1)
        where += "<br>RA %{customdata[1]:.5f}°, Dec %{customdata[2]:+.5f}°"
        value = f"{p.hover_label} %{{customdata[0]:.5g}}"
    else:
        value = f"{p.hover_label} %{{customdata:.5g}}"
    scale = display.plotly_colorscale(p.colorscale) if isinstance(p.colorscale, str) else p.colorscale
    return go.Heatmap(z=_round_sig(disp, 4).astype(np.float32), customdata=hover, colorscale=scale,
                      showscale=p.colorbar, name=p.title,
                      hovertemplate=f"{where}<br>{value}<extra>{p.title}</extra>",
                      colorbar=_colorbar(p, domain) if p.colorbar else None,
                      **_grid_placement(shape or disp.shape, disp.shape), **kw)


def _image_axes(fig: go.Figure, i: int, sky, *, first: bool) -> None:
    """Axes of panel ``i``: WCS ticks (RA/Dec where round values cross the edges) or none; linked zoom and pan."""
    ax = "" if i == 1 else str(i)
    bare = dict(ticks="", showgrid=False, zeroline=False, showline=False, constrain="domain")
    if sky is None:  # no WCS: an image needs no axis, and tick marks without labels look like stray dashes
        fig.update_xaxes(showticklabels=False, matches="x" if i > 1 else None, row=1, col=i, **bare)
        fig.update_yaxes(showticklabels=False, scaleanchor=f"x{ax}", matches="y" if i > 1 else None, row=1, col=i,
                         **bare)
        return
    tick = dict(ticks="outside", ticklen=4, showgrid=False, zeroline=False, showline=True, constrain="domain",
                tickfont=dict(size=10), linecolor="#666", tickangle=0)
    fig.update_xaxes(tickvals=[p for p, _ in sky.x_ticks], ticktext=[t for _, t in sky.x_ticks],
                     title=dict(text=f"{sky.x_name} ({sky.frame})", font=dict(size=11), standoff=2),
                     matches="x" if i > 1 else None, row=1, col=i, **tick)
    fig.update_yaxes(tickvals=[p for p, _ in sky.y_ticks], ticktext=[t for _, t in sky.y_ticks],
                     showticklabels=first, title=dict(text=f"{sky.y_name} ({sky.frame})" if first else "",
                                                      font=dict(size=11), standoff=2),
                     scaleanchor=f"x{ax}", matches="y" if i > 1 else None, row=1, col=i, **tick)


def image_panels(panels: list[Panel], *, height: int = 420, shape=None, sky=None) -> go.Figure:
    """Images side by side with linked zoom and pan, a colour bar under each and each pixel's value on hover.

    Parameters
    ----------
    panels : list of Panel
    shape : (ny, nx), optional
        The size of the image the panels show (they may be drawn on a coarser grid): axes and hover are in its
        0-based pixel coordinates. Default: each panel's own grid.
    sky : SkyAxes, optional
        :func:`astroae_core.io.sky_axes.sky_axes` of the image on the panels' grid: RA/Dec ticks on the axes and
        RA/Dec in degrees on hover.
    """
    n = len(panels)
    fig = make_subplots(rows=1, cols=n, subplot_titles=[p.title for p in panels],
                        horizontal_spacing=0.06 if sky is not None else 0.03)
    for i, p in enumerate(panels, start=1):
        domain = fig.layout["xaxis" if i == 1 else f"xaxis{i}"].domain
        fig.add_trace(_heatmap(p, shape, sky, domain), row=1, col=i)
        _image_axes(fig, i, sky, first=i == 1)
    fig = _base_layout(fig, height)
    bottom = 115 if sky is not None else 60  # the colour bars sit at the figure's foot, under the axis labels
    fig.update_layout(margin=dict(l=10, r=10, t=40, b=bottom if any(p.colorbar for p in panels) else 10),
                      dragmode="zoom")
    return fig


def blink_figure(first: Panel, second: Panel, *, height: int = 520, shape=None, sky=None,
                 interval_ms: int = 700, cycles: int = 20) -> go.Figure:
    """One panel that alternates two images (original and reconstruction) under one stretch and one set of limits:
    buttons show either, or blink between them ``cycles`` times, one every ``interval_ms``."""
    fig = image_panels([first], height=height, shape=shape, sky=sky)
    trace = fig.data[0]
    frames = []
    for p in (first, second):
        t = _heatmap(p, shape, sky, fig.layout.xaxis.domain)
        frames.append(go.Frame(name=p.title, data=[t], traces=[0],
                               layout=dict(annotations=[dict(fig.layout.annotations[0].to_plotly_json(),
                                                             text=f"<b>{p.title}</b>")])))
    fig.frames = frames
    trace.update(name=first.title)
    anim = dict(frame=dict(duration=interval_ms, redraw=True), transition=dict(duration=0), mode="immediate")
    fig.update_layout(updatemenus=[dict(
        type="buttons", direction="left", x=0.0, xanchor="left", y=1.12, yanchor="bottom", showactive=False,
        bgcolor="#262b3a", bordercolor="#59607a", font=dict(color="#e6e6e6"),
        pad=dict(r=4, t=0), buttons=[
            dict(label="▶ Blink", method="animate", args=[[first.title, second.title] * cycles, anim]),
            dict(label="■ Stop", method="animate", args=[[None], dict(anim, frame=dict(duration=0, redraw=False))]),
            dict(label=first.title, method="animate", args=[[first.title], dict(anim, frame=dict(duration=0,
                                                                                               redraw=True))]),
            dict(label=second.title, method="animate", args=[[second.title], dict(anim, frame=dict(duration=0,
                                                                                                 redraw=True))]),
        ])], margin=dict(t=80))
    return fig


def reconstruction_panels(rec: Reconstruction, stretch: str, cmap: str, *, latent_only: bool = False,
                          max_side: int = display.DISPLAY_MAX_SIDE, clip: str | None = None,
                          manual: tuple[float, float] | None = None, unit: str = "flux") -> list[Panel]:
    """Original | reconstruction | residual (original − reconstruction), the first two under one stretch and one
    set of clip limits measured on the original (``clip``: one of
    :data:`~astroae_core.analysis.clip_limits.CLIP_CHOICES`, by default zscale for the zscale stretch and min/max
    otherwise; ``manual`` for ``"manual"``), their colour bars in the file's ``unit``; the residual on a
    symmetric diverging scale. ``latent_only`` shows the image decoded from the latent alone (a model with
    skips)."""
    from astroae_core.analysis.clip_limits import clip_limits

    flux = display.display_grid(rec.flux, max_side=max_side)
    recon_flux = rec.flux_latent if latent_only else rec.flux_hat
    recon = display.display_grid(recon_flux, max_side=max_side)
    resid = flux - recon
    clip = clip or ("zscale" if stretch == "zscale" else "min/max")
    limits = clip_limits(flux, clip, manual=manual)
    ticks = display.colorbar_ticks(limits, stretch)
    m = display.residual_limit(resid)
    label = "latent-only reconstruction" if latent_only else (
        "reconstruction (full, with skips)" if rec.skip_mode != "none" else "reconstruction (from the latent)")
    return [
        Panel("original", display.apply_stretch(flux, stretch, limits), flux, cmap, hover_label=unit, ticks=ticks),
        Panel(label, display.apply_stretch(recon, stretch, limits), recon, cmap, hover_label=unit, ticks=ticks),
        Panel("residual (original − reconstruction)", resid, resid, display.RESIDUAL_COLORMAP, -m, m, 0.0, True,
              f"residual {unit}" if unit != "flux" else "residual"),
    ]


def decoded_image(img01, stretch: str, cmap: str, *, title: str = "", height: int = 420) -> go.Figure:
    """One image decoded by the model (normalized units, [0, 1]) under the display stretch.

    The limits are fixed at [0, 1] (zscale: measured on the image) so that a slider's effect is not hidden by a
    per-image rescaling."""
    img = np.asarray(img01, dtype=np.float64)
    limits = display.stretch_limits(img, "zscale") if stretch == "zscale" else (0.0, 1.0)
    panel = Panel(title or "decoded", display.apply_stretch(img, stretch, limits), img, cmap, hover_label="value",
                  colorbar=False)
    fig = image_panels([panel], height=height)
    fig.update_layout(margin=dict(l=0, r=0, t=30 if title else 5, b=0))
    return fig


# ----------------------------------------------------------------------------------------------------------------
# the latent map


def _density(xs, ys, *, bins: int = 256) -> go.Heatmap:
    """Log-scaled counts of every point on a ``bins`` x ``bins`` grid, empty cells transparent: the map's shading
    under a sampled scatter (a few hundred kB instead of every point)."""
    counts, xe, ye = np.histogram2d(xs, ys, bins=bins)
    z = np.where(counts > 0, np.log10(np.maximum(counts, 1)), np.nan).T.astype(np.float32)
    return go.Heatmap(x=((xe[:-1] + xe[1:]) / 2).astype(np.float32), y=((ye[:-1] + ye[1:]) / 2).astype(np.float32),
                      z=z, colorscale=[[0.0, "rgb(40,48,70)"], [1.0, "rgb(150,170,215)"]], showscale=False,
                      hoverinfo="skip", name="density of all images", opacity=0.8)


@dataclass
class _MapPoints:
    """Every row of the map as plotly gets it: coordinates, ``customdata`` keys (ids, or row positions above
    :data:`selection.MAP_ROWS_AS_CUSTOMDATA_ABOVE` rows) and the hover text naming a point."""

    table: object
    x: str
    y: str
    xs: np.ndarray
    ys: np.ndarray
    key: np.ndarray
    big: bool

    @classmethod
    def of(cls, table, x: str, y: str) -> "_MapPoints":
        big = len(table) > selection.MAP_ROWS_AS_CUSTOMDATA_ABOVE
        key = np.arange(len(table), dtype=np.int32) if big else table["id"].to_numpy()[:, None]
        return cls(table, x, y, table[x].to_numpy(dtype=np.float32), table[y].to_numpy(dtype=np.float32), key, big)

    @property
    def who(self) -> str:
        return "image #%{customdata}" if self.big else "%{customdata[0]}"

    @property
    def size_opacity(self) -> tuple[int, float]:
        return (3, 0.6) if self.big else (6, 0.9)  # a million full-size dots would be one blot

    @cached_property
    def id_text(self):
        # once per figure: comparing a million ids as strings is the costly part
        return self.table["id"].astype(str)


def _point_traces(fig: go.Figure, pts: _MapPoints, color: str | None, drawn: np.ndarray, *, scale: str = "linear",
                  labels=None) -> None:
    """The drawn points, coloured by a numeric column (one scale: linear, rank or log, see :mod:`map_colors`), a
    label column or the user's labels (``color="label"``; a trace per value) or not."""
    table, who = pts.table, pts.who
    size, opacity = pts.size_opacity
    base = dict(mode="markers", hovertemplate=f"{who}<extra></extra>")
    dx, dy, dkey = pts.xs[drawn], pts.ys[drawn], pts.key[drawn]
    label = formatting.column_label(color)
    if color and color in table.columns and table[color].dtype.kind in "biuf":
        full = table[color].to_numpy(dtype=float)
        cv, tickvals, ticktext = map_colors.scaled(full, scale)  # quantiles over every image, not the drawn ones
        vals, cv = full[drawn], cv[drawn]
        ok = np.isfinite(vals)
        if (~ok).any():
            fig.add_trace(go.Scattergl(x=dx[~ok], y=dy[~ok], customdata=dkey[~ok], name=f"{label} missing",
                                       marker=dict(size=size - 1, color="#555b6e"), **base))
        title = label if scale == "linear" else f"{label} ({scale})"
        fig.add_trace(go.Scattergl(
            x=dx[ok], y=dy[ok], customdata=dkey[ok], name=label, showlegend=False, mode="markers",
            text=np.char.mod("%.4g", vals[ok]), hovertemplate=f"{who}<br>{label} = %{{text}}<extra></extra>",
            marker=dict(size=size, color=cv[ok], colorscale=MAP_COLORSCALE, opacity=opacity,
                        colorbar=dict(title=dict(text=title), thickness=12, tickvals=tickvals or None,
                                      ticktext=ticktext or None))))
    elif color and (color in table.columns or (color == "label" and labels is not None)):
        mine = color == "label" and labels is not None  # the labelled images are marked on top: only the rest here
        col = labels if mine else table[color]
        cats = col.astype("string").fillna("").replace("", "(none)").to_numpy()[drawn]
        palette = map_colors.LABEL_COLORS if color == "label" else {}
        for i, lab in enumerate(sorted(set(cats), key=lambda v: (-(cats == v).sum(), v))):
            if mine and lab != "(none)":
                continue
            m = cats == lab
            fig.add_trace(go.Scattergl(
                x=dx[m], y=dy[m], customdata=dkey[m], name="unlabelled" if mine else str(lab), mode="markers",
                hovertemplate=f"{who}<br>{label} = {lab}<extra></extra>",
                marker=dict(size=size, color=palette.get(lab, QUALITATIVE[i % len(QUALITATIVE)]),
                            opacity=min(opacity, 0.85))))
    else:
        fig.add_trace(go.Scattergl(x=dx, y=dy, customdata=dkey, name="images",
                                   marker=dict(size=size - 1, color="#9bb0d6", opacity=min(opacity, 0.8)), **base))


def _overlay(fig: go.Figure, pts: _MapPoints, ids: list, name: str, marker: dict) -> None:
    """The rows with ``ids`` drawn again on top (drawn as points or not), as one trace named ``name``."""
    if not len(ids):
        return
    if pts.big:
        rows = np.flatnonzero(pts.id_text.isin([str(i) for i in ids]).to_numpy())
        px, py, cd = pts.xs[rows], pts.ys[rows], pts.key[rows]
    else:
        sub = selection.rows_for_ids(pts.table, ids)
        px, py, cd = sub[pts.x], sub[pts.y], sub["id"].to_numpy()[:, None]
    if len(px):
        fig.add_trace(go.Scattergl(x=px, y=py, customdata=cd, name=name, marker=marker, mode="markers",
                                   hovertemplate=f"{pts.who}<br>{name}<extra></extra>"))


def latent_map(table, x: str, y: str, color: str | None, *, outlier_ids=(), highlight_id=None, neighbor_ids=(),
               uploads=(), color_scale: str = "linear", labels=None, height: int = 620) -> go.Figure:
    """WebGL scatter of the dataset on a 2-D map; every point of the table is drawn and carries ``customdata``.

    Parameters
    ----------
    table : DataFrame
        The cache table (``id``, ``path``, the axis columns, the colour column).
    color : str or None
        Numeric column (continuous scale) or a label column (one trace per value, up to 10 shown by name).
    outlier_ids, neighbor_ids : iterable
        Ids drawn again as open circles (outliers) and open diamonds (nearest neighbours).
    highlight_id : optional
        The chosen image, drawn as a large cross.
    uploads : iterable of dict
        ``{"name", "x", "y"}`` for uploaded images placed on the map (stars).
    color_scale : str
        ``"linear"``, ``"rank"`` or ``"log"`` for a numeric ``color`` (:func:`map_colors.scaled`); the colour bar is
        labelled in the column's values.
    labels : pandas.Series, optional
        The user's label of each row (``""`` for none): ``color="label"`` colours by it, and labelled images are
        marked on top (a star, a cross, a square per label).

    Notes
    -----
    Above :data:`selection.MAP_POINTS_DRAWN_MAX` rows, a log-scaled density image of every point lies under a
    fixed random sample of that many points (:func:`selection.map_sample`); outliers, the chosen image and its
    neighbours are always drawn. Up to :data:`selection.MAP_ROWS_AS_CUSTOMDATA_ABOVE` points, each point's
    ``customdata`` is ``[id]`` and hover shows the id. Above it (survey-sized caches), ``customdata`` is the
    point's row position in ``table`` (int32, sent as a compact binary array) and hover shows ``image #row``: id
    strings are slow to validate and serialize, integers are not. :func:`selection.selection_ids` with ``table=``
    turns either kind back into ids, so clicks and box/lasso selections stay exact.
    """
    fig = go.Figure()
    pts = _MapPoints.of(table, x, y)
    drawn = selection.map_sample(len(table))
    if len(drawn) < len(table):  # survey-sized: every point shades the density, a fixed sample is drawn as points
        fig.add_trace(_density(pts.xs, pts.ys))
    _point_traces(fig, pts, color, drawn, scale=color_scale, labels=labels)
    _overlay(fig, pts, list(outlier_ids), "outliers",
             dict(size=13, symbol="circle-open", color="#ff5a5a", line=dict(width=2)))
    if labels is not None:
        lab = np.asarray(labels, dtype=object)
        for name, marker in map_colors.LABEL_MARKERS.items():
            _overlay(fig, pts, table["id"].to_numpy()[lab == name].tolist(), f"labelled {name}", marker)
    _overlay(fig, pts, list(neighbor_ids), "nearest neighbours",
             dict(size=13, symbol="diamond-open", color="#59c9a5", line=dict(width=2)))
    if highlight_id is not None:
        _overlay(fig, pts, [highlight_id], "chosen image", dict(size=18, symbol="x", color=ACCENT, line=dict(width=1)))
    ups = list(uploads)
    if ups:
        fig.add_trace(go.Scattergl(x=[u["x"] for u in ups], y=[u["y"] for u in ups], mode="markers+text",
                                   text=[u["name"] for u in ups], textposition="top center", name="uploads",
                                   hovertemplate="upload %{text}<extra></extra>",
                                   marker=dict(size=16, symbol="star", color="#ffffff",
                                               line=dict(width=1, color=ACCENT))))
    fig.update_layout(xaxis_title=x, yaxis_title=y, legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0),
                      dragmode="pan", hovermode="closest", uirevision=f"{x}{y}")
    return _base_layout(fig, height)


# ----------------------------------------------------------------------------------------------------------------
# metrics


def metric_histograms(table, metrics=("mse", "ssim", "ms_ssim"), *, by: str = "split", height: int = 320) -> go.Figure:
    """Distributions of per-image metrics, one colour per ``by`` value (train / val...)."""
    metrics = [m for m in metrics if m in table.columns and table[m].notna().any()]
    # errors span decades (a few oddities 100x the rest): MSE is binned in log10, or one bar holds everything
    logged = {m for m in metrics if m in formatting.SMALL_VALUE_COLUMNS}
    titles = [("log₁₀ " if m in logged else "") + formatting.METRIC_LABELS.get(m, m) for m in metrics]
    fig = make_subplots(rows=1, cols=max(1, len(metrics)), subplot_titles=titles, horizontal_spacing=0.06)
    groups = sorted(table[by].astype(str).unique()) if by in table.columns else ["all"]
    for j, g in enumerate(groups):
        sub = table[table[by].astype(str) == g] if by in table.columns else table
        for i, m in enumerate(metrics, start=1):
            v = sub[m].to_numpy(dtype=float)
            if m in logged:
                with np.errstate(divide="ignore", invalid="ignore"):
                    v = np.log10(v)
            v = v[np.isfinite(v)]
            fig.add_trace(go.Histogram(x=v, name=str(g), legendgroup=str(g), showlegend=i == 1, opacity=0.7,
                                       marker_color=QUALITATIVE[j % len(QUALITATIVE)], nbinsx=40), row=1, col=i)
    fig.update_layout(barmode="overlay", legend=dict(orientation="h", y=-0.15, yanchor="top", x=0))
    return _base_layout(fig, height)


def log_ticks(values) -> tuple[list[float], list[str]]:
    """Ticks for a log axis over ``values``: 1, 2 and 5 of each decade (only the 1s over more than 3 decades),
    every label in one exponent form (``2e-3``, ``5e-3``, ``1e-2``): no ``2, 1e-3, 5`` mixes."""
    v = np.asarray([x for x in values if x is not None], dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if not v.size:
        return [], []
    lo, hi = np.floor(np.log10(v.min())), np.ceil(np.log10(v.max()))
    mults = (1,) if hi - lo > 3 else (1, 2, 5)
    ticks = [m * 10.0**e for e in range(int(lo), int(hi) + 1) for m in mults]
    ticks = [t for t in ticks if v.min() / 1.5 <= t <= v.max() * 1.5] or [10.0**lo]
    return ticks, [f"{t:.0e}".replace("e-0", "e-").replace("e+0", "e").replace("e+", "e") for t in ticks]


def training_curves(history: list[dict], *, height: int = 360, loss_name: str = "loss") -> go.Figure:
    """Loss (train, validation) and validation MSE (full vs latent only) per epoch, best epoch marked; each chart
    with its y-axis title, log ticks in one exponent form, and its legend under it."""
    validated = any(h.get("val_loss") is not None for h in history)
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1, subplot_titles=[
        "loss", "validation MSE" if validated or not history else "validation MSE: none (trained on every image)"])
    if not history:
        return _base_layout(fig, height)
    ep = [h.get("epoch", i + 1) for i, h in enumerate(history)]

    def series(key):
        return [h.get(key) for h in history]

    lines = [("train_loss", "train loss", 1, "#8f9bb3"), ("val_loss", "validation loss", 1, QUALITATIVE[0])]
    # Without skips the full reconstruction is the latent-only one: one line, named for both.
    if series("val_mse") == series("val_latent_mse"):
        lines.append(("val_latent_mse", "val MSE (latent only = full)", 2, ACCENT))
    else:
        lines += [("val_mse", "val MSE (full)", 2, ROW_COLORS["full"]),
                  ("val_latent_mse", "val MSE (latent only)", 2, ACCENT)]
    drawn = {1: [], 2: []}
    for key, name, col, colr in lines:
        vals = series(key)
        if any(v is not None for v in vals):
            drawn[col] += vals
            fig.add_trace(go.Scatter(x=ep, y=vals, mode="lines+markers", name=name, line=dict(color=colr),
                                     marker=dict(size=4), legend="legend" if col == 1 else "legend2"), row=1, col=col)
    vl = [v if v is not None else np.inf for v in series("val_loss")]
    if np.isfinite(vl).any():
        best = ep[int(np.argmin(vl))]
        for col in (1, 2):
            fig.add_vline(x=best, line=dict(color="#59c9a5", dash="dot"), row=1, col=col)
        fig.add_annotation(x=best, y=1.0, yref="paper", text=f"best epoch {best}", showarrow=False, xanchor="left",
                           font=dict(color="#59c9a5"))
    for col, title in ((1, loss_name), (2, "MSE (model's [0, 1] units)")):
        vals, text = log_ticks(drawn[col])
        fig.update_yaxes(type="log", tickvals=vals, ticktext=text, title_text=title, row=1, col=col)
    fig.update_xaxes(title_text="epoch", dtick=1 if len(ep) <= 12 else None)
    d1, d2 = fig.layout.xaxis.domain, fig.layout.xaxis2.domain
    under = dict(orientation="h", y=-0.3, yanchor="top", xanchor="left")
    fig.update_layout(legend=dict(under, x=d1[0]), legend2=dict(under, x=d2[0]))
    return _base_layout(fig, height)


def row_label(row: str, latent_dim: int = 8, skip_mode: str = "unet") -> str:
    if skip_mode == "none" and row == "latent_only":
        return "model (no skips)"
    return ROW_LABELS[row].format(k=latent_dim)


def baseline_bars(rows: dict, *, latent_dim: int = 8, skip_mode: str = "unet", height: int = 320) -> go.Figure:
    """The model (full and latent only) beside PCA-k and the mean image: MSE, SSIM and MS-SSIM. For a model
    without skips the full reconstruction is the latent-only one and is drawn once."""
    skip = ("full",) if skip_mode == "none" else ()
    order = [r for r in ("full", "latent_only", "pca", "mean_image") if r in rows and r not in skip]
    labels = [row_label(r, latent_dim, skip_mode) for r in order]
    metrics = [("mse", "MSE (lower is better)"), ("ssim", "SSIM (higher is better)"),
               ("ms_ssim", "MS-SSIM (higher is better)")]
    metrics = [(m, t) for m, t in metrics
               if any(rows[r].get(m) is not None and np.isfinite(rows[r].get(m)) for r in order)]
    fig = make_subplots(rows=1, cols=max(1, len(metrics)), subplot_titles=[t for _, t in metrics],
                        horizontal_spacing=0.07)
    for i, (m, _) in enumerate(metrics, start=1):
        vals = [rows[r].get(m) for r in order]
        vals = [v if v is not None and np.isfinite(v) else None for v in vals]
        fig.add_trace(go.Bar(x=labels, y=vals, marker_color=[ROW_COLORS[r] for r in order], showlegend=False,
                             text=[f"{v:.3g}" if v is not None else "n/a" for v in vals], textposition="outside",
                             hovertemplate="%{x}: %{y:.5g}<extra></extra>"), row=1, col=i)
    return _base_layout(fig, height)


def influence_bars(influence, labels, tracked: dict | None = None, *, height: int = 300) -> go.Figure:
    """Each latent dimension's influence on the decoded image (relative to the images' spread), with the catalog
    column it tracks most; the dotted line is :data:`~astroae_core.analysis.summary.WEAK_INFLUENCE` of the
    strongest."""
    inf = np.asarray(influence, dtype=float)
    tracked = tracked or {}
    text = [f"{formatting.column_label(tracked[l][0])} (ρ={tracked[l][1]:+.2f})" if l in tracked else ""
            for l in labels]
    fig = go.Figure(go.Bar(x=list(labels), y=inf, marker_color=ACCENT, text=text, textposition="outside",
                           hovertemplate="%{x}: %{y:.3g} of the data's spread<br>%{text}<extra></extra>"))
    if inf.size and np.nanmax(inf) > 0:
        fig.add_hline(y=WEAK_INFLUENCE * float(np.nanmax(inf)), line=dict(color="#e05d5d", dash="dot"),
                      annotation_text=f"{WEAK_INFLUENCE:.0%} of the strongest", annotation_position="top left")
    fig.update_layout(yaxis_title="influence (fraction of the data's spread)")
    return _base_layout(fig, height)


# ----------------------------------------------------------------------------------------------------------------
# labelled image grids (traversals, interpolations) sent as one PNG


def image_grid(tiles_rgb, ncols: int, *, row_labels=(), col_labels=(), pad: int = 2, height: int | None = None,
               title: str = "") -> go.Figure:
    """Tiles (N, h, w, 3) uint8 laid out ``ncols`` per row as one PNG, rows and columns labelled on the axes."""
    tiles = np.asarray(tiles_rgb, dtype=np.uint8)
    n, h, w = tiles.shape[:3]
    grid = display.mosaic(tiles, ncols, pad=pad, fill=0)
    nrows = -(-n // ncols)
    fig = go.Figure(go.Image(source=display.png_data_uri(grid), hoverinfo="skip"))
    fig.update_xaxes(tickvals=[c * (w + pad) + w / 2 for c in range(ncols)][: len(col_labels)],
                     ticktext=list(col_labels), ticks="", showgrid=False, zeroline=False, side="top")
    fig.update_yaxes(tickvals=[r * (h + pad) + h / 2 for r in range(nrows)][: len(row_labels)],
                     ticktext=list(row_labels), ticks="", showgrid=False, zeroline=False)
    if height is None:
        height = int(min(900, max(160, 110 * nrows * (h / w) + 60)))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=50 if title else 30, b=10), title=title or None,
                      paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)")
    return fig
