"""Tests for preprocessing (astroae_core.data): resize, normalization, inversion, degenerate images."""

import json

import numpy as np
import pytest
import torch

from astroae_core.data import Norm, PreprocessConfig, preprocess, replace_nonfinite, resize_image

METHODS = ["asinh", "minmax"]


def galaxy(shape=(100, 100), *, seed=0, sky=0.01, noise=0.01, peak=3.0, radius=4.0):
    """A noisy sky with a round exponential-ish galaxy, like a CEERS cutout."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    r2 = (yy - shape[0] / 2) ** 2 + (xx - shape[1] / 2) ** 2
    img = sky + noise * rng.standard_normal(shape) + peak * np.exp(-np.sqrt(r2) / radius)
    return img.astype(np.float32)


def check_x(x, size=187):
    assert isinstance(x, np.ndarray)
    assert x.dtype == np.float32
    assert x.shape == (1, size, size)
    assert np.isfinite(x).all()
    assert x.min() >= 0.0 and x.max() <= 1.0


@pytest.mark.parametrize("method", METHODS)
def test_shape_dtype_range(method):
    x, norm = preprocess(galaxy(), method=method)
    check_x(x)
    assert x.max() == pytest.approx(1.0)  # the galaxy core maps to the top of the range
    assert norm.method == method and norm.orig_shape == (100, 100)


@pytest.mark.parametrize("dtype", [">f8", "<f8", ">i2", "uint16", ">f4"])
def test_any_dtype_and_byte_order(dtype):
    img = (galaxy() * 1000).astype(dtype)
    x, _ = preprocess(img)
    check_x(x)


@pytest.mark.parametrize("method", METHODS)
def test_round_trip_non_constant(method):
    img = galaxy()
    x, norm = preprocess(img, method=method)
    resized = resize_image(img, 187)
    back = norm.invert(x)
    assert back.dtype == np.float32 and back.shape == (187, 187)
    # float32 precision relative to the image's dynamic range
    np.testing.assert_allclose(back, resized, rtol=1e-5, atol=1e-6 * np.ptp(resized))
    # (S, S) input and a torch tensor work too
    np.testing.assert_array_equal(norm.invert(x[0]), back)
    np.testing.assert_array_equal(norm.invert(torch.from_numpy(x)), back)


@pytest.mark.parametrize("method", METHODS)
def test_round_trip_is_flux_unit_independent(method):
    # The same image in erg/s/cm^2/Hz (1e-20) or in counts must give the same network input.
    img = galaxy()
    x1, _ = preprocess(img, method=method)
    x2, n2 = preprocess(img.astype(np.float64) * 1e-20, method=method)
    np.testing.assert_allclose(x1, x2, atol=2e-6)
    np.testing.assert_allclose(n2.invert(x2), resize_image(img, 187) * 1e-20, rtol=1e-5, atol=1e-26)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("value", [0.0, 1e-20, 7.5, -3e10])
def test_constant_image(method, value):
    img = np.full((60, 80), value, dtype=np.float32)
    with np.errstate(all="raise"):  # no division by zero, no invalid values anywhere
        x, norm = preprocess(img, method=method)
    check_x(x)
    assert np.ptp(x) == 0  # a constant image stays constant
    # An all-zero image has no flux scale: asinh then uses sigma = 1, so zeros come back within ~1e-7.
    np.testing.assert_allclose(norm.invert(x), np.float32(value), rtol=1e-6, atol=1e-6 if value == 0 else 0)
    assert norm.invert(x, to_original_shape=True).shape == (60, 80)


def test_constant_image_documented_levels():
    x_mm, _ = preprocess(np.full((10, 10), 3.0), method="minmax")
    assert np.all(x_mm == 0.0)  # minmax: scale=1, all zeros
    x_as, _ = preprocess(np.full((10, 10), 3.0), method="asinh")
    x_sky, _ = preprocess(galaxy(peak=0.0), method="asinh")
    # asinh: the grey of a blank sky (background level), the same as a source-free noise field's median
    assert 0.3 < x_as[0, 0, 0] < 0.5
    assert abs(float(np.median(x_sky)) - float(x_as[0, 0, 0])) < 0.02


@pytest.mark.parametrize("method", METHODS)
def test_nan_and_inf_replaced_by_median(method):
    img = galaxy((64, 64))
    img[3, 5] = np.nan
    img[10:12, 20] = np.inf
    img[40, 41] = -np.inf
    x, norm = preprocess(img, method=method, size=64)  # same size: no resize, pixels comparable
    check_x(x, 64)
    assert norm.n_replaced == 4
    fixed, n = replace_nonfinite(img)
    assert n == 4
    finite_median = np.median(img[np.isfinite(img)])
    assert fixed[3, 5] == finite_median and fixed[10, 20] == finite_median and fixed[40, 41] == finite_median
    assert np.isnan(img[3, 5])  # the caller's array is untouched
    np.testing.assert_allclose(norm.invert(x), fixed, rtol=1e-5, atol=1e-6 * np.ptp(fixed))


def test_all_nonfinite_is_refused():
    img = np.full((20, 20), np.nan)
    img[0, 0] = np.inf
    with pytest.raises(ValueError, match="no finite pixels"):
        preprocess(img)


@pytest.mark.parametrize("shape", [(100,), (0, 5), (2, 3, 4)])
def test_bad_shapes_are_refused(shape):
    with pytest.raises(ValueError, match="shape"):
        preprocess(np.ones(shape))


def test_leading_unit_axis_accepted():
    x, norm = preprocess(galaxy()[None])
    check_x(x)
    assert norm.orig_shape == (100, 100)


def test_large_image_downsampled_keeps_gradient():
    n = 3000
    ramp = np.broadcast_to(np.linspace(0.0, 1.0, n, dtype=np.float32), (n, n))
    x, norm = preprocess(ramp, method="minmax")
    check_x(x)
    assert norm.orig_shape == (n, n)
    row = x[0, 93]
    assert np.all(np.diff(row) > 0)  # still a monotonic ramp
    assert np.ptp(x[0, :, 50]) < 1e-6  # and constant down the columns
    # interior pixels sit where a pixel-centre mapping puts them (edges lose a little to the filter's border)
    centres = ((np.arange(187) + 0.5) * n / 187 - 0.5) / (n - 1)
    expected = (centres - centres[0]) / (centres[-1] - centres[0])
    np.testing.assert_allclose(row[10:-10], expected[10:-10], atol=2e-3)
    back = norm.invert(x, to_original_shape=True)
    assert back.shape == (n, n)
    assert np.abs(back - ramp)[:, 100:-100].max() < 5e-3


def test_upsampling_small_cutout():
    img = galaxy((100, 100))
    x, norm = preprocess(img, size=187)
    check_x(x)
    back = norm.invert(x, to_original_shape=True)
    assert back.shape == (100, 100)
    # up then down again is close to the original (bilinear is smooth, so allow the noise to blur a bit)
    assert np.abs(back - img).mean() < 0.3 * img.std()


def test_antialiasing_checkerboard_averages_out():
    board = (np.indices((1000, 1000)).sum(axis=0) % 2).astype(np.float32)
    small = resize_image(board, 187)
    assert small.shape == (187, 187)
    assert abs(small.mean() - 0.5) < 1e-3
    assert small.std() < 0.01  # an aliasing resampler would give a 0/1 moire pattern here


def test_non_square_is_stretched_to_square_and_back():
    img = galaxy((50, 300))
    x, norm = preprocess(img, size=64)
    check_x(x, 64)
    assert norm.orig_shape == (50, 300)
    assert norm.invert(x, to_original_shape=True).shape == (50, 300)


def test_zero_filled_stamp_keeps_real_noise_estimate():
    # A quarter of the cutout off the mosaic (exact zeros), like ~5% of the CEERS images. The zero spike
    # must not collapse the noise estimate (which would clip the real sky to 0).
    img = galaxy(noise=0.01, sky=0.005)
    img[:, :25] = 0.0
    x, norm = preprocess(img)
    check_x(x)
    assert 0.007 < norm.sigma < 0.013
    assert (x == 0).mean() < 1e-3
    # mostly zeros (a detector edge) still gives a finite, invertible result
    img[:, :80] = 0.0
    x, norm = preprocess(img)
    check_x(x)
    assert norm.sigma > 0 and norm.offset == 0.0


def test_noise_free_blob_on_flat_sky_round_trips():
    yy, xx = np.mgrid[:64, :64]
    blob = (100.0 + 50 * np.exp(-((yy - 32) ** 2 + (xx - 32) ** 2) / 18.0)).astype(np.float32)
    blob[blob < 100.001] = 100.0  # exactly flat sky
    x, norm = preprocess(blob, size=64)
    check_x(x, 64)
    assert norm.offset == 100.0
    np.testing.assert_allclose(norm.invert(x), blob, rtol=1e-6)


def test_asinh_max_sigma_clips_top():
    img = galaxy()
    x, norm = preprocess(img, asinh_max_sigma=20.0)
    check_x(x)
    assert (x == 1.0).sum() > 10  # the bright core is clipped
    assert norm.hi == pytest.approx(np.arcsinh(20.0 / 3.0))


def test_noise_field_is_not_stretched_to_full_contrast():
    x, _ = preprocess(galaxy(peak=0.0))
    assert x.max() < 0.8 and float(np.median(x)) < 0.5


def test_config_dict_round_trip_and_unknown_keys():
    cfg = PreprocessConfig(size=64, method="minmax", asinh_max_sigma=50.0)
    d = cfg.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert PreprocessConfig.from_dict(d) == cfg
    assert PreprocessConfig.from_dict({}) == PreprocessConfig()
    with pytest.raises(ValueError, match="'bogus'.*'colour'|'colour'.*'bogus'"):
        PreprocessConfig.from_dict({**d, "bogus": 1, "colour": "red"})


@pytest.mark.parametrize(
    "kwargs, bad",
    [({"method": "log"}, "'log'"), ({"size": 0}, "0"), ({"asinh_softening": -1.0}, "-1.0"),
     ({"asinh_max_sigma": float("nan")}, "nan"), ({"size": 12.5}, "12.5")],
)
def test_config_validation_names_bad_value(kwargs, bad):
    with pytest.raises(ValueError, match=bad):
        PreprocessConfig(**kwargs)


def test_unknown_override_is_refused():
    with pytest.raises(TypeError, match="sise"):
        preprocess(galaxy(), sise=64)


def test_config_object_and_overrides_combine():
    x, norm = preprocess(galaxy(), config=PreprocessConfig(size=32), method="minmax")
    check_x(x, 32)
    assert norm.method == "minmax"


@pytest.mark.parametrize("method", METHODS)
def test_norm_dict_round_trip(method):
    x, norm = preprocess(galaxy(), method=method)
    d = norm.to_dict()
    d2 = json.loads(json.dumps(d))
    assert Norm.from_dict(d2) == norm
    assert all(isinstance(v, (int, float, str, list)) for v in d.values())
    with pytest.raises(ValueError, match="extra"):
        Norm.from_dict({**d, "extra": 1})
    # weights_only checkpoints can hold it
    buf = __import__("io").BytesIO()
    torch.save({"norm": d}, buf)
    buf.seek(0)
    assert Norm.from_dict(torch.load(buf, weights_only=True)["norm"]) == norm


@pytest.mark.parametrize("method", METHODS)
def test_norm_apply_is_forward_map(method):
    img = galaxy()
    x, norm = preprocess(img, method=method)
    np.testing.assert_allclose(norm.apply(resize_image(img, 187)), x[0], atol=1e-6)
