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
            if not w.has_celestial:
                return None
            # an image's 2-D sky WCS is already its celestial part: no second WCS built to say so
            return w if w.naxis == 2 and (w.wcs.lng, w.wcs.lat) == (0, 1) else w.celestial
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
    centre = sky_centre(header, shape)
    if centre is None:
        return None
    from astropy.coordinates import SkyCoord

    c = SkyCoord(centre[0], centre[1], unit="deg", frame="icrs")
    return {"ra": centre[0], "dec": centre[1], "text": c.to_string("hmsdms", precision=2, sep=":")}


def sky_centre(header, shape) -> tuple[float, float] | None:
    """(RA, Dec) in degrees, ICRS, of the image centre; None without a usable celestial WCS.

    The encoder calls it for every file: a WCS already in ICRS is evaluated directly (``all_pix2world``), any other
    frame through astropy's coordinate transforms.
    """
    w = celestial_wcs(header)
    if w is None:
        return None
    x, y = (shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if w.wcs.radesys == "ICRS" and w.wcs.lng == 0 and w.wcs.ctype[0].startswith("RA"):
                ra, dec = (float(v) for v in w.all_pix2world([[x, y]], 0)[0])
            else:
                c = w.pixel_to_world(x, y).icrs
                ra, dec = float(c.ra.deg), float(c.dec.deg)
    except Exception:  # noqa: BLE001 - as above: a WCS that parses may still fail to transform
        return None
    return (ra, dec) if np.isfinite(ra) and np.isfinite(dec) else None
