"""Where an image points on the sky: the centre of its celestial WCS (astropy.wcs), in ICRS."""

from __future__ import annotations

import warnings

import numpy as np


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
        usable celestial WCS: a broken WCS loses the position, never the image.
    """
    if header is None:
        return None
    try:
        from astropy.wcs import WCS

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w = WCS(header)
            if not w.has_celestial:
                return None
            ny, nx = shape[0], shape[1]
            c = w.celestial.pixel_to_world((nx - 1) / 2.0, (ny - 1) / 2.0).icrs
            ra, dec = float(c.ra.deg), float(c.dec.deg)
            if not (np.isfinite(ra) and np.isfinite(dec)):
                return None
            return {"ra": ra, "dec": dec, "text": c.to_string("hmsdms", precision=2, sep=":")}
    except Exception:  # noqa: BLE001 - astropy raises many kinds of error on malformed WCS keywords
        return None
