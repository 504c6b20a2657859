"""An upload (astroae_core.analysis.upload): read from memory, reconstructed, scored and placed on a cache's map."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from astroae_core.analysis import process_upload, read_upload
from astroae_core.analysis.upload import mse_percentile, upload_suffix
from astroae_core.io import FitsReadError

from .conftest import blob_image
from .test_reconstruction import _model


def _fits_bytes(image) -> bytes:
    buf = io.BytesIO()
    fits.PrimaryHDU(np.asarray(image, np.float32)).writeto(buf)
    return buf.getvalue()


def test_read_upload_in_memory_names_the_upload_on_errors():
    image, header = read_upload("galaxy.fits", _fits_bytes(np.ones((8, 8))))
    assert image.shape == (8, 8)
    with pytest.raises(FitsReadError, match="'notes.fits'.*not a FITS file") as err:
        read_upload("notes.fits", b"hello world, not FITS")
    assert "astroae-upload" not in str(err.value)
    with pytest.raises(FitsReadError, match="empty"):
        read_upload("empty.fits", b"")
    assert upload_suffix("a.b.FITS.GZ") == ".fits.gz"
    assert upload_suffix("../../evil") == ".fits"


class FakeCache:
    """What process_upload reads of a LatentCache: ``place``, ``neighbors`` and the table's ``mse``."""

    def __init__(self, mse, *, place_error: str | None = None):
        self.table = pd.DataFrame({"mse": mse})
        self.place_error = place_error
        self.placed = []

    def place(self, z):
        if self.place_error:
            raise ValueError(self.place_error)
        self.placed.append(np.asarray(z))
        return {"pca_x": np.array([1.5]), "pca_y": np.array([-2.0]), "umap_x": np.array([3.0]),
                "umap_y": np.array([4.0])}

    def neighbors(self, z, *, k):
        return np.arange(k)[None], np.linspace(0.1, 1.0, k)[None]


def test_process_upload_scores_and_places_the_image():
    model = _model("unet")
    cache = FakeCache([0.0, 1e-9, 1.0, np.nan])
    res = process_upload("up.fits", _fits_bytes(blob_image(np.random.default_rng(2), 32)), model, cache, k=3)
    assert res.ok and res.error is None and res.rec.x_latent is not None
    assert res.place == {"pca_x": 1.5, "pca_y": -2.0, "umap_x": 3.0, "umap_y": 4.0}
    np.testing.assert_array_equal(cache.placed[0], res.rec.z)  # placed by its own latent
    assert [i for i, _ in res.neighbors] == [0, 1, 2] and res.neighbors[0][1] == pytest.approx(0.1)
    assert res.mse_percentile == pytest.approx(100 * 2 / 3)  # 0 and 1e-9 did better, 1.0 worse; NaN ignored


def test_process_upload_turns_problems_into_messages(monkeypatch):
    model = _model("none")
    bad = process_upload("notes.fits", b"not FITS at all", model, FakeCache([0.1]))
    assert not bad.ok and "not a FITS file" in bad.error and bad.rec is None
    with monkeypatch.context() as mp:
        mp.setattr(model, "preprocess", lambda image: (_ for _ in ()).throw(ValueError("image too small")))
        small = process_upload("small.fits", _fits_bytes(np.ones((8, 8))), model, FakeCache([0.1]))
    assert not small.ok and small.error == "the model cannot use this image: image too small"
    unplaced = process_upload("up.fits", _fits_bytes(np.ones((32, 32))), model, FakeCache([0.1], place_error="no"))
    assert unplaced.ok and unplaced.place == {} and unplaced.place_error == "no" and unplaced.neighbors


def test_mse_percentile_ignores_missing_values():
    t = pd.DataFrame({"mse": [1.0, 2.0, 3.0, np.nan]})
    assert mse_percentile(t, 2.5) == pytest.approx(200 / 3)
    assert mse_percentile(pd.DataFrame({"mse": [np.nan]}), 1.0) is None
    assert mse_percentile(pd.DataFrame({"x": [1.0]}), 1.0) is None


# ----------------------------------------------------------------------------------------------------------------
# what was read, one result per content, plain errors (issue 19)


def test_process_upload_says_what_was_read_from_a_cube_in_an_extension():
    rng = np.random.default_rng(4)
    cube = np.stack([blob_image(rng, 64) for _ in range(3)]).astype(np.float32)
    cube[1, 5:9, 10:12] = np.nan
    cube[1, 0, 0] = np.inf
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(cube, name="SCI")]).writeto(buf)
    res = process_upload("cube.fits", buf.getvalue(), _model("none"), FakeCache([0.1]))
    assert res.ok, res.error
    info = res.read
    assert (info.hdu_index, info.hdu_name, info.file_shape, info.plane) == (1, "SCI", (3, 64, 64), (1,))
    assert info.nonfinite == 9 and info.fill_value == pytest.approx(np.median(cube[1][np.isfinite(cube[1])]))
    assert info.model_size == 32 and info.resample == (2.0, 2.0)
    # a plain 2-D image in the primary HDU: no plane, nothing filled, no resampling
    flat = process_upload("flat.fits", _fits_bytes(blob_image(rng, 32)), _model("none"), FakeCache([0.1])).read
    assert (flat.hdu_index, flat.hdu_name, flat.plane, flat.nonfinite, flat.fill_value, flat.resample) == (
        0, "PRIMARY", None, 0, None, (1.0, 1.0))


def test_the_same_bytes_have_one_key_and_other_bytes_another():
    from astroae_core.analysis.upload import content_key

    a = _fits_bytes(np.ones((8, 8)))
    b = _fits_bytes(np.full((8, 8), 2.0))
    assert content_key(a) == content_key(bytes(a)) and content_key(a) != content_key(b)
    model = _model("none")
    assert process_upload("x.fits", a, model, FakeCache([0.1])).key == process_upload("y.fits", a, model,
                                                                                      FakeCache([0.1])).key


@pytest.mark.parametrize("head, what", [(b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"\xff\xd8\xff\xe0", "a JPEG image"),
                                        (b"%PDF-1.7\n", "a PDF document"), (b"\x00\x01\x02\x03", None)])
def test_a_file_that_is_not_fits_is_named_plainly(head, what):
    res = process_upload("picture.fits", head + bytes(3000), _model("none"), FakeCache([0.1]))
    assert not res.ok and res.error.startswith("not a FITS file")  # the card names the file
    assert "\\" not in res.error and "\ufffd" not in res.error  # no escaped bytes, no replacement characters
    if what:
        assert res.error.endswith(f"it is {what}")
    else:
        assert "does not start with a FITS header" in res.error
