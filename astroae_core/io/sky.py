"""Where an image points on the sky: its celestial WCS (astropy.wcs), and the centre of it in ICRS."""

from __future__ import annotations

import warnings

import numpy as np


def celestial_wcs(header):
    """The header's celestial WCS, or None where it has none or a broken one (a broken WCS loses the position,
    never the image)."""
    if header is None:
        return None
    try:
        from astropy.wcs import WCS

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w = WCS(header)
            return w.celestial if w.has_celestial else None
    except Exception:  # noqa: BLE001 - astropy raises many kinds of error on malformed WCS keywords
        return None


def sky_position(header, shape) -> dict | None:
    """RA/Dec of the image centre from the header's celestial WCS.

    Parameters
    ----------
    header : astropy.io.fits.Header or None
    shape : tuple of int
        ``(ny, nx)`` of the image the header describes.

    Returns
    -------
    dict or None
        ``{"ra": deg, "dec": deg, "text": "hh:mm:ss.ss +dd:mm:ss.ss"}`` (ICRS), or None where the header has no
        usable celestial WCS.
    """
    w = celestial_wcs(header)
    if w is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c = w.pixel_to_world((shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0).icrs
    except Exception:  # noqa: BLE001 - as above: a WCS that parses may still fail to transform
        return None
    ra, dec = float(c.ra.deg), float(c.dec.deg)
    if not (np.isfinite(ra) and np.isfinite(dec)):
        return None
    return {"ra": ra, "dec": dec, "text": c.to_string("hmsdms", precision=2, sep=":")}
