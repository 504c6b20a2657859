"""A reconstruction written as FITS (astroae_core.io.fits_writer): original flux units and header."""

from __future__ import annotations

import io

import numpy as np
from astropy.io import fits

from astroae_core.io import reconstruction_fits_bytes

from .conftest import wcs_header




def test_reconstruction_fits_keeps_header_and_flux():
    data = np.arange(256, dtype=np.float32).reshape(16, 16) * 0.5
    raw = reconstruction_fits_bytes(data, wcs_header(), model_sha="ab" * 32, source="x.fits")
    with fits.open(io.BytesIO(raw)) as hdul:
        np.testing.assert_array_equal(hdul[0].data, data)
        h = hdul[0].header
        assert h["OBJECT"] == "blob" and h["CRVAL1"] == 150.0 and h["BUNIT"] == "e-/s"
        assert any("astroae" in str(v) for v in h["HISTORY"])
        assert any("ab" * 20 in str(v) for v in h["HISTORY"])


def test_reconstruction_fits_from_an_extension_header():
    h = fits.ImageHDU(np.zeros((4, 4), np.float32), name="SCI").header
    raw = reconstruction_fits_bytes(np.ones((4, 4), np.float32), h)
    with fits.open(io.BytesIO(raw)) as hdul:
        assert hdul[0].data.shape == (4, 4) and "XTENSION" not in hdul[0].header


def test_reconstruction_fits_without_a_header_and_latent_only():
    header = wcs_header()
    raw = reconstruction_fits_bytes(np.ones((4, 4)), None, latent_only=True)
    with fits.open(io.BytesIO(raw)) as hdul:
        assert hdul[0].data.dtype.kind == "f" and hdul[0].data.dtype.itemsize == 4
        assert any("latent-only reconstruction of an image" in str(v) for v in hdul[0].header["HISTORY"])
    reconstruction_fits_bytes(np.ones((4, 4)), header)
    assert "HISTORY" not in header  # the caller's header is copied, not changed
