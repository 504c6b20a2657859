"""The demo's fast FITS writer: a stamp's header cards, the file's bytes, and the TAN projection of its WCS.

Written by hand rather than through astropy, whose Header/Card machinery and ``astropy.wcs.WCS`` construction
cost more per stamp than drawing it. The output is exactly what astropy writes for the same header and data
(the tests compare bytes, card by card and file by file), and :func:`pix2world` is checked against astropy.
"""

from __future__ import annotations

import math

import numpy as np

from astroae_core.demo.instrument import GAIN, PIXEL_SCALE, READ_NOISE, SATURATION
from astroae_core.demo.plan import StampSpec

__all__ = ["card", "fits_bytes", "header_cards", "pix2world"]


def header_cards(spec: StampSpec, ra0: float, dec0: float, psf_model: str, psf_fwhm: float, sky: float,
                  image_seed: int) -> list[tuple]:
    """The header as (keyword, value, comment): fixed order, no dates, a north-up TAN WCS centred on the stamp."""
    import galsim

    from astroae_core import __version__

    c = (spec.size + 1) / 2  # FITS pixels are 1-based: the centre of pixel (size+1)/2
    return [
        ("BUNIT", "electron", "sky-subtracted counts"),
        ("WCSAXES", 2, "number of WCS axes"),
        ("CTYPE1", "RA---TAN", "right ascension, gnomonic projection"),
        ("CTYPE2", "DEC--TAN", "declination, gnomonic projection"),
        ("CUNIT1", "deg", ""),
        ("CUNIT2", "deg", ""),
        ("CRPIX1", c, "reference pixel (stamp centre)"),
        ("CRPIX2", c, "reference pixel (stamp centre)"),
        ("CRVAL1", round(ra0, 9), "[deg] RA at reference pixel"),
        ("CRVAL2", round(dec0, 9), "[deg] Dec at reference pixel"),
        ("CDELT1", -PIXEL_SCALE / 3600, "[deg] RA grows to the left (east)"),
        ("CDELT2", PIXEL_SCALE / 3600, "[deg]"),
        ("RADESYS", "ICRS", ""),
        ("OBJECT", f"demo-{spec.index:05d}", "object name"),
        ("ID", spec.index, "row id in catalog.csv"),
        ("KIND", spec.kind, "galaxy, or the kind of injected oddity"),
        ("ANOMALY", spec.kind != "galaxy", "an oddity was injected"),
        ("PIXSCALE", PIXEL_SCALE, "[arcsec/pixel]"),
        ("PSFMODEL", psf_model, "PSF profile"),
        ("PSFFWHM", round(psf_fwhm, 6), "[arcsec] PSF FWHM"),
        ("SKYLEVEL", round(sky, 4), "[electron/pixel] sky level (subtracted)"),
        ("SKYSUB", True, "sky level subtracted"),
        ("GAIN", GAIN, "[electron/ADU]"),
        ("RDNOISE", READ_NOISE, "[electron] read noise"),
        ("SATURATE", round(SATURATION - sky, 4), "[electron] saturation, sky subtracted"),
        ("TELESCOP", "SIMULATED", "GalSim simulation"),
        ("ORIGIN", "astroae", ""),
        ("GENERATR", f"astroae.demo_data {__version__}", "program that made this file"),
        ("GALSIMV", galsim.__version__, "GalSim version"),
        ("SEED", spec.seed, "master seed of the dataset"),
        ("IMSEED", image_seed, "this stamp's seed (from SEED and ID)"),
    ]


def card(key: str, value, comment: str = "") -> str:
    """One 80-character header card, formatted exactly as astropy formats it (the tests compare bytes)."""
    if isinstance(value, str):
        v = "'{:8}'".format(value.replace("'", "''"))
        v = f"{v:20}"
    elif isinstance(value, (bool, np.bool_)):
        v = f"{'T' if value else 'F':>20}"
    elif isinstance(value, (int, np.integer)):
        v = f"{int(value):>20d}"
    else:
        v = str(float(value)).replace("e", "E")
        if len(v) > 20:  # astropy keeps at most 20 characters, shortening the mantissa
            e = v.find("E")
            v = v[:20] if e < 0 else v[: 20 - (len(v) - e)] + v[e:]
        v = f"{v:>20}"
    card = f"{key:8}= {v}" + (f" / {comment}" if comment else "")
    if len(key) > 8 or len(card) > 80:
        raise ValueError(f"FITS card {key!r} does not fit in 80 characters: {card!r}")
    return f"{card:80}"


def fits_bytes(data, cards) -> bytes:
    """A complete single-HDU FITS file (float32 image) as bytes.

    Assembled here because astropy's Header/Card machinery costs a large part of a whole run; the layout is
    what astropy writes for ``PrimaryHDU(data, Header(cards))``, and the tests check that the two are
    byte-identical.
    """
    ny, nx = data.shape
    head = [
        card("SIMPLE", True, "conforms to FITS standard"),
        card("BITPIX", -32, "array data type"),
        card("NAXIS", 2, "number of array dimensions"),
        card("NAXIS1", nx),
        card("NAXIS2", ny),
    ]
    head += [card(*c) for c in cards]
    head.append(f"{'END':80}")
    text = "".join(head)
    text += " " * (-len(text) % 2880)
    body = np.ascontiguousarray(data, dtype=">f4").tobytes()
    return text.encode("ascii") + body + b"\0" * (-len(body) % 2880)


def pix2world(cards, x: float, y: float) -> tuple[float, float]:
    """Sky position of 0-based pixel (x, y): the inverse gnomonic (TAN) projection of the header's WCS.

    Written out rather than through ``astropy.wcs.WCS``, whose construction costs more than drawing a stamp;
    the tests check it against astropy.
    """
    header = {k: v for k, v, _ in cards}
    xi = math.radians(header["CDELT1"] * (x + 1 - header["CRPIX1"]))
    eta = math.radians(header["CDELT2"] * (y + 1 - header["CRPIX2"]))
    ra0, dec0 = math.radians(header["CRVAL1"]), math.radians(header["CRVAL2"])
    den = math.cos(dec0) - eta * math.sin(dec0)
    ra = ra0 + math.atan2(xi, den)
    dec = math.atan2(math.sin(dec0) + eta * math.cos(dec0), math.hypot(xi, den))
    return math.degrees(ra) % 360.0, math.degrees(dec)
