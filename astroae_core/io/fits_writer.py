"""Writing a reconstruction back out as a FITS file: the original flux units and header, with a note of what made it."""

from __future__ import annotations

import io
import warnings

import numpy as np

__all__ = ["reconstruction_fits_bytes"]

# Keys that describe the original file's layout (an extension, a tile-compressed image) or its checksums: copied
# onto a new primary image they would make it invalid or wrongly described.
_LAYOUT_KEYS = ("XTENSION", "PCOUNT", "GCOUNT", "ZIMAGE", "ZBITPIX", "ZNAXIS", "ZCMPTYPE", "CHECKSUM", "DATASUM")


def reconstruction_fits_bytes(flux_hat, header, *, model_sha: str = "", source: str = "",
                              latent_only: bool = False, photometry: dict | None = None) -> bytes:
    """A reconstruction as the bytes of a FITS file, in the original flux units with the original header.

    Parameters
    ----------
    flux_hat : array_like, shape (H, W)
        The reconstruction in the original image's flux units and shape (``Reconstruction.flux_hat``).
    header : astropy.io.fits.Header or None
        The original image's header (its WCS, units...); copied, not changed.
    model_sha : str
        The checkpoint's sha256, recorded in a HISTORY card.
    source : str
        The original file's name, recorded in a HISTORY card.
    latent_only : bool
        Whether this is the reconstruction from the latent alone (said in the HISTORY card).
    photometry : dict, optional
        ``Photometry.as_dict()`` of this reconstruction against the original: written as the cards ``FLUXRAT``
        (total-flux ratio, reconstruction / original, sky-subtracted, one aperture), ``SKYOFF`` (sky offset,
        reconstruction minus original, in the file's units) and ``SKYOFFSG`` (the same in the original's sky sigma),
        so that nobody takes the reconstruction for photometry without seeing how far it is.

    Returns
    -------
    bytes
        A single float32 primary image.
    """
    from astropy.io import fits

    hdr = header.copy() if header is not None else fits.Header()
    for key in _LAYOUT_KEYS:
        hdr.remove(key, ignore_missing=True, remove_all=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy's notes on non-standard cards it fixes on writing
        hdu = fits.PrimaryHDU(np.asarray(flux_hat, dtype=np.float32), header=hdr)
        what = "latent-only reconstruction" if latent_only else "reconstruction"
        hdu.header["HISTORY"] = f"astroae {what} of {source or 'an image'}"[:72]
        if model_sha:
            hdu.header["HISTORY"] = f"astroae model sha256 {model_sha[:40]}"
        if photometry:
            _photometry_cards(hdu.header, photometry)
        buf = io.BytesIO()
        hdu.writeto(buf, output_verify="silentfix")
    return buf.getvalue()


def _photometry_cards(hdr, p: dict) -> None:
    def num(v):
        v = float(v)
        return v if np.isfinite(v) else "NaN"  # a FITS card cannot hold a NaN number

    unit = str(hdr.get("BUNIT", "")).strip()
    hdr["FLUXRAT"] = (num(p["flux_ratio"]), "recon/orig sky-subtracted flux in one aperture")
    hdr["SKYOFF"] = (num(p["sky_offset"]), f"recon minus orig median sky{(' [' + unit + ']') if unit else ''}"[:47])
    hdr["SKYOFFSG"] = (num(p["sky_offset_sigma"]), "sky offset in the original's sky sigma")
    hdr["HISTORY"] = "astroae: not photometry; see FLUXRAT and SKYOFF for how far it is"
