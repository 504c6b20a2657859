"""Images are identified by their pixels: the same pixels in another file, folder or compression hash the same."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from astroae_core.io import read_fits
from astroae_core.io.content_hash import HASH_CHARS, pixel_hash


def test_same_pixels_same_hash_wherever_and_however_stored(tmp_path):
    img = np.random.default_rng(0).normal(size=(20, 30)).astype(np.float32)
    fits.PrimaryHDU(img).writeto(tmp_path / "a.fits")
    hdr = fits.Header({"OBJECT": "renamed and recompressed"})
    (tmp_path / "elsewhere").mkdir()
    fits.PrimaryHDU(img.astype(">f4"), header=hdr).writeto(tmp_path / "elsewhere" / "b.fits.gz")
    a, _ = read_fits(tmp_path / "a.fits")
    b, _ = read_fits(tmp_path / "elsewhere" / "b.fits.gz")
    assert pixel_hash(a) == pixel_hash(b) == pixel_hash(img)
    assert len(pixel_hash(a)) == HASH_CHARS


def test_a_changed_pixel_or_shape_changes_the_hash():
    img = np.zeros((8, 8), np.float32)
    other = img.copy()
    other[3, 4] = 1e-6
    assert pixel_hash(img) != pixel_hash(other)
    assert pixel_hash(img) != pixel_hash(img.reshape(4, 16))
