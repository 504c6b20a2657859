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


# Keywords of distortions that astropy.wcs.WCS applies beyond wcslib (SIP, lookup tables): a header with any of them
# takes the full path.
_DISTORTION_KEYWORDS = ("A_ORDER", "B_ORDER", "AP_ORDER", "BP_ORDER", "CPDIS1", "CPDIS2", "D2IMDIS1", "D2IMDIS2")


def sky_centre(header, shape) -> tuple[float, float] | None:
    """(RA, Dec) in degrees, ICRS, of the image centre; None without a usable celestial WCS.

    The encoder calls it for every file. The common case, a 2-axis RA/Dec WCS in ICRS without SIP or lookup-table
    distortions, is evaluated by wcslib from the header's text (:class:`astropy.wcs.Wcsprm`, as
    :class:`astropy.wcs.WCS` does inside): a third of the time of building a ``WCS``, which copies and verifies the
    header three times (benchmarks/RESULTS.md, 6.1c). Any other header takes astropy's full path, other frames
    through its coordinate transforms.
    """
    if header is None:
        return None
    centre = _icrs_centre_by_wcslib(header, shape)
    return centre if centre is not None else _centre_by_astropy(header, shape)


def _icrs_centre_by_wcslib(header, shape) -> tuple[float, float] | None:
    """The centre by wcslib alone where that is all ``WCS`` would do; None where it is not (or fails)."""
    if "CTYPE1" not in header or any(k in header for k in _DISTORTION_KEYWORDS):
        return None
    try:
        from astropy.wcs import Wcsprm

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w = Wcsprm(header.tostring(endcard=False, padding=False).encode("ascii"), relax=True)
            w.fix()
            w.set()  # as WCS() does: raises on a singular matrix or an ill-conditioned pole
            if not (w.naxis == 2 and (w.lng, w.lat) == (0, 1) and w.radesys == "ICRS" and w.ctype[0].startswith("RA")):
                return None
            ra, dec = (float(v) for v in w.p2s([[(shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0]], 0)["world"][0])
    except Exception:  # noqa: BLE001 - the full path decides what a header that wcslib rejects here gives
        return None
    return (ra, dec) if np.isfinite(ra) and np.isfinite(dec) else None


def _centre_by_astropy(header, shape) -> tuple[float, float] | None:
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
