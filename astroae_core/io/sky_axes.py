"""Sky coordinates for drawing an image: RA/Dec of every displayed pixel and the pixel positions where round RA and
Dec values cross the image's edges (the tick marks of WCS axes), from the header's celestial WCS (astropy.wcs)."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np

from astroae_core.io.sky import celestial_wcs

__all__ = ["SkyAxes", "sky_axes"]

# Tick spacings on offer: RA in seconds of time (sexagesimal) and Dec in arcseconds, or degrees for both.
_RA_SECONDS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)
_DEC_ARCSEC = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 18000, 36000)
_DEGREES = tuple(m * 10.0**e for e in range(-7, 3) for m in (1, 2, 5))


@dataclass(frozen=True)
class SkyAxes:
    """What WCS axes need, in the image's pixel coordinates (0-based, ``x`` along FITS axis 1).

    Attributes
    ----------
    x_ticks, y_ticks : list of (float, str)
        Pixel positions along the bottom and left edges where a round value of ``x_name``/``y_name`` crosses, and
        its label (sexagesimal labels after the first drop the leading fields the one before shows).
    x_name, y_name : str
        ``"RA"`` or ``"Dec"``: the coordinate that changes most along each axis.
    ra, dec : ndarray, shape (ny, nx)
        Degrees (ICRS) at the centres of the pixels asked for.
    frame : str
        The coordinate frame named on the axes (``"ICRS"``).
    """

    x_ticks: list
    y_ticks: list
    x_name: str
    y_name: str
    ra: np.ndarray
    dec: np.ndarray
    frame: str = "ICRS"


def _world(w, x, y):
    """RA, Dec (ICRS degrees) at 0-based pixel positions."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = w.pixel_to_world(x, y).icrs
    return np.asarray(c.ra.deg, dtype=np.float64), np.asarray(c.dec.deg, dtype=np.float64)


def _step(span_deg: float, name: str, sexagesimal: bool, n: int) -> float:
    """A round tick spacing in degrees giving about ``n`` ticks over ``span_deg``."""
    want = span_deg / max(1, n)
    if not sexagesimal:
        choices = _DEGREES
    elif name == "RA":
        choices = tuple(s * 15 / 3600 for s in _RA_SECONDS)
    else:
        choices = tuple(s / 3600 for s in _DEC_ARCSEC)
    return min(choices, key=lambda c: abs(np.log(c / want)) if c > 0 else np.inf)


def _label(value: float, name: str, step: float, sexagesimal: bool) -> str:
    from astropy.coordinates import Angle

    if not sexagesimal:
        dec = max(0, int(np.ceil(-np.log10(step) - 1e-9)))
        return f"{value % 360 if name == 'RA' else value:.{dec}f}°"
    if name == "RA":
        secs = step * 3600 / 15
        prec = max(0, int(np.ceil(-np.log10(secs) - 1e-9))) if secs < 1 else 0
        return Angle(value % 360, unit="deg").to_string(unit="hourangle", sep="hms", precision=prec, pad=True)
    arcsec = step * 3600
    prec = max(0, int(np.ceil(-np.log10(arcsec) - 1e-9))) if arcsec < 1 else 0
    return Angle(value, unit="deg").to_string(unit="deg", sep="dms", precision=prec, alwayssign=True, pad=True)


_FIELD = re.compile(r"[+-]?\d+(?:\.\d+)?[hdms]")


def _abbreviate(labels: list[str]) -> list[str]:
    """Sexagesimal labels after the first without the leading fields they share with the one before
    (``10h00m24.2s, 24.0s, 23.8s``), as sky charts and WCSAxes write them: narrow panels keep them apart."""
    out, prev = [], None
    for label in labels:
        fields = _FIELD.findall(label)
        if prev is None or "".join(fields) != label:
            out.append(label)
        else:
            k = 0
            while k < len(fields) - 1 and k < len(prev) and fields[k] == prev[k]:
                k += 1
            out.append("".join(fields[k:]))
        prev = fields
    return out


def _edge_ticks(pos: np.ndarray, values: np.ndarray, name: str, sexagesimal: bool, n: int) -> list:
    """Where round values of a coordinate sampled along an edge (``values`` at pixel ``pos``) are crossed."""
    v = np.unwrap(np.radians(values)) if name == "RA" else np.radians(values)
    v = np.degrees(v)
    lo, hi = float(v.min()), float(v.max())
    if not hi > lo:
        return []
    step = _step(hi - lo, name, sexagesimal, n)
    ticks = []
    for k in range(int(np.ceil(lo / step)), int(np.floor(hi / step)) + 1):
        target = k * step
        cross = np.flatnonzero((v[:-1] - target) * (v[1:] - target) <= 0)
        if cross.size:
            i = int(cross[0])
            d = v[i + 1] - v[i]
            p = pos[i] + (pos[i + 1] - pos[i]) * ((target - v[i]) / d if d else 0.0)
            ticks.append((float(p), str(_label(target, name, step, sexagesimal))))
    if sexagesimal and ticks:
        ticks = list(zip([p for p, _ in ticks], _abbreviate([t for _, t in ticks])))
    return ticks


def sky_axes(header, shape, *, grid_shape=None, sexagesimal: bool = True, n_ticks: int = 3) -> SkyAxes | None:
    """WCS axes for an image of ``shape`` described by ``header``, or None without a usable celestial WCS.

    Parameters
    ----------
    header : astropy.io.fits.Header or None
        The image's header (for a plane of a cube, its celestial axes are used).
    shape : tuple of int
        ``(ny, nx)`` of the image the header describes.
    grid_shape : tuple of int, optional
        ``(gy, gx)`` of the grid the image is drawn on (a coarser display grid spanning the same pixels): RA/Dec
        are given at its cell centres. Default: ``shape``.
    sexagesimal : bool
        Tick labels as ``10h00m01s`` / ``+02d00m30s`` (True) or decimal degrees.
    n_ticks : int
        About how many ticks per axis.
    """
    w = celestial_wcs(header)
    if w is None:
        return None
    ny, nx = int(shape[0]), int(shape[1])
    gy, gx = grid_shape or (ny, nx)
    try:
        xs = np.linspace(-0.5, nx - 0.5, 4 * nx + 1)
        ys = np.linspace(-0.5, ny - 0.5, 4 * ny + 1)
        ra_b, dec_b = _world(w, xs, np.full_like(xs, -0.5))  # the bottom edge
        ra_l, dec_l = _world(w, np.full_like(ys, -0.5), ys)  # the left edge
        cx = (np.arange(gx) + 0.5) * nx / gx - 0.5
        cy = (np.arange(gy) + 0.5) * ny / gy - 0.5
        ra, dec = _world(w, *np.meshgrid(cx, cy))
    except Exception:  # noqa: BLE001 - a WCS that cannot be evaluated loses the axes, never the image
        return None
    if not (np.isfinite(ra).all() and np.isfinite(dec).all() and np.isfinite(ra_b).all() and np.isfinite(ra_l).all()):
        return None
    cosd = np.cos(np.radians(float(np.median(dec))))
    ra_change_x = np.ptp(np.unwrap(np.radians(ra_b))) * cosd
    x_name = "RA" if ra_change_x >= np.ptp(np.radians(dec_b)) else "Dec"
    y_name = "Dec" if x_name == "RA" else "RA"
    x_vals = ra_b if x_name == "RA" else dec_b
    y_vals = dec_l if y_name == "Dec" else ra_l
    return SkyAxes(x_ticks=_edge_ticks(xs, x_vals, x_name, sexagesimal, n_ticks),
                   y_ticks=_edge_ticks(ys, y_vals, y_name, sexagesimal, n_ticks),
                   x_name=x_name, y_name=y_name, ra=ra, dec=dec)
