"""Drawing an image beside its reconstruction as an astronomer's viewer: the clip limits, the sky axes, a blink
between original and reconstruction, and the photometry said in words. Used by the Reconstructions page and the
upload cards."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from astroae_core.analysis.clip_limits import CLIP_CHOICES
from astroae_core.io.sky_axes import sky_axes

from . import display, plots


@dataclass(frozen=True)
class ViewSettings:
    """How the images are drawn: ``clip`` (a :data:`CLIP_CHOICES` entry) and ``manual`` limits, sky labels in
    ``sexagesimal`` or degrees, and ``blink``."""

    clip: str
    manual: tuple | None
    sexagesimal: bool
    blink: bool


def view_controls(key: str, stretch: str, reference=None) -> ViewSettings:
    """The viewer's controls in one row; ``reference`` (the original image) fills the manual limits' defaults."""
    a, b, c, d = st.columns([2, 2, 2, 1])
    default = "zscale" if stretch == "zscale" else "min/max"
    clip = a.selectbox("Clip limits", CLIP_CHOICES, index=CLIP_CHOICES.index(default), key=f"{key}_clip",
                       help="The flux interval the stretch maps to the colour map, measured on the original: its "
                       "minimum and maximum, the central 99.5/99/95% of its pixels, IRAF's zscale, or yours.")
    manual = None
    if clip == "manual":
        finite = np.asarray(reference, dtype=float)[np.isfinite(reference)] if reference is not None else []
        lo0, hi0 = (float(np.min(finite)), float(np.max(finite))) if len(finite) else (0.0, 1.0)
        lo = b.number_input("min", value=lo0, key=f"{key}_min", format="%.6g")
        hi = b.number_input("max", value=hi0, key=f"{key}_max", format="%.6g")
        manual = (lo, hi)
    units = c.radio("Sky coordinates", ["sexagesimal", "degrees"], key=f"{key}_sky", horizontal=True)
    blink = d.toggle("Blink", key=f"{key}_blink", help="One panel alternating the original and the reconstruction "
                     "under the same stretch and limits (buttons above it: blink, stop, either image).")
    return ViewSettings(clip, manual, units == "sexagesimal", blink)


@st.cache_data(max_entries=32, show_spinner=False)
def _sky(header_text: str, shape: tuple, grid: tuple, sexagesimal: bool):
    from astropy.io import fits

    return sky_axes(fits.Header.fromstring(header_text), shape, grid_shape=grid, sexagesimal=sexagesimal)


def header_unit(header) -> str:
    """The file's flux unit (BUNIT), or ``"flux"``."""
    unit = str(header.get("BUNIT", "")).strip() if header is not None else ""
    return unit or "flux"


def show_images(rec, header, stretch: str, cmap: str, view: ViewSettings, *, key: str, latent_only: bool = False,
                height: int = 430) -> dict:
    """Original | reconstruction | residual (or the blink panel) with WCS axes and colour bars; returns the figure
    as drawn (a dict), for tests and callers."""
    panels = plots.reconstruction_panels(rec, stretch, cmap, latent_only=latent_only, clip=view.clip,
                                         manual=view.manual, unit=header_unit(header))
    grid = tuple(np.asarray(panels[0].display).shape)
    sky = None
    if header is not None:
        sky = _sky(header.tostring(), tuple(rec.flux.shape), grid, view.sexagesimal)
    if view.blink:
        fig = plots.blink_figure(panels[0], panels[1], shape=rec.flux.shape, sky=sky, height=height + 100)
    else:
        fig = plots.image_panels(panels, shape=rec.flux.shape, sky=sky, height=height)
    st.plotly_chart(fig, key=key, config={"displaylogo": False, "scrollZoom": True})
    return fig.to_plotly_json()


def photometry_sentence(p, unit: str) -> str:
    """A reconstruction's photometry in one sentence (:class:`~astroae_core.analysis.photometry.Photometry`)."""
    if p is None:
        return ""
    ratio = (f"holds **{p.flux_ratio:.0%}** of the original's flux" if np.isfinite(p.flux_ratio)
             else "cannot be compared in flux (the original has no significant flux above its sky)")
    u = "" if unit == "flux" else f" {unit}"
    return (f"**Photometry**: the reconstruction {ratio} (sky-subtracted, summed in one aperture of "
            f"{p.aperture_pixels:,} pixels); its sky is offset by **{p.sky_offset:+.3g}{u}** "
            f"(**{p.sky_offset_sigma:+.2f} σ** of the original's sky noise). It is a picture of what the model "
            "learned, not a measurement.")
