"""The encoder's per-file sky position: wcslib's fast path agrees with astropy's full WCS, and steps aside where it
would not."""

import numpy as np
import pytest
from astropy.io import fits

from astroae_core.io import sky_centre
from astroae_core.io.sky import _centre_by_astropy, _icrs_centre_by_wcslib
from tests.conftest import wcs_header


def _tan(**extra) -> fits.Header:
    h = fits.Header()
    h.update(NAXIS=2, NAXIS1=100, NAXIS2=80, CTYPE1="RA---TAN", CTYPE2="DEC--TAN", CRVAL1=214.825, CRVAL2=52.825,
             CRPIX1=6503.5, CRPIX2=3112.5, CDELT1=8.3333333333333e-06, CDELT2=8.3333333333333e-06,
             PC1_1=-0.64678977951046, PC1_2=-0.76266832969569, PC2_1=-0.76266832969569, PC2_2=0.64678977951046,
             CUNIT1="deg", CUNIT2="deg", RADESYS="ICRS", LONPOLE=180.0, LATPOLE=52.825)
    h.update(extra)
    return h


def _cd(rng) -> fits.Header:
    """A random CD-matrix TAN WCS anywhere on the sky (no RADESYS: wcslib and astropy take ICRS)."""
    s, t = rng.uniform(1e-5, 1e-3), rng.uniform(0, 2 * np.pi)
    h = fits.Header()
    h.update(CTYPE1="RA---TAN", CTYPE2="DEC--TAN", CRVAL1=rng.uniform(0, 360), CRVAL2=rng.uniform(-89, 89),
             CRPIX1=rng.uniform(-500, 500), CRPIX2=rng.uniform(-500, 500), CD1_1=-s * np.cos(t), CD1_2=s * np.sin(t),
             CD2_1=s * np.sin(t), CD2_2=s * np.cos(t))
    return h


FAST = {"conftest": wcs_header(), "ceers-like PC": _tan(), "SIN": _tan(CTYPE1="RA---SIN", CTYPE2="DEC--SIN"),
        "TPV": _tan(CTYPE1="RA---TPV", CTYPE2="DEC--TPV", PV1_1=1.0, PV1_4=1e-4, PV2_1=1.0, PV2_5=2e-4),
        **{f"random CD {k}": _cd(np.random.default_rng(k)) for k in range(6)}}
FULL = {"SIP": _tan(CTYPE1="RA---TAN-SIP", CTYPE2="DEC--TAN-SIP", A_ORDER=2, B_ORDER=2, A_2_0=1e-5, B_0_2=-2e-5),
        "FK5": _tan(RADESYS="FK5", EQUINOX=2000.0), "FK4 B1950": _tan(RADESYS="FK4", EQUINOX=1950.0),
        "galactic": _tan(CTYPE1="GLON-TAN", CTYPE2="GLAT-TAN"),
        "Dec first": _tan(CTYPE1="DEC--TAN", CTYPE2="RA---TAN", CRVAL1=52.825, CRVAL2=214.825),
        "cube": _tan(NAXIS=3, NAXIS3=5, WCSAXES=3, CTYPE3="FREQ", CRVAL3=1e9, CDELT3=1e6, CRPIX3=1.0, CUNIT3="Hz")}
NONE = {"no WCS": fits.Header(), "unknown projection": _tan(CTYPE1="RA---XYZ", CTYPE2="DEC--XYZ"),
        "no pole for LATPOLE": _tan(CTYPE1="DEC--TAN", CTYPE2="RA---TAN")}  # a declination of 214.8 deg


@pytest.mark.parametrize("name", FAST)
def test_wcslib_gives_astropys_centre_for_a_plain_icrs_wcs(name):
    fast = _icrs_centre_by_wcslib(FAST[name], (80, 100))
    assert fast is not None, "took the full path"
    np.testing.assert_allclose(fast, _centre_by_astropy(FAST[name], (80, 100)), rtol=0, atol=1e-10)
    assert sky_centre(FAST[name], (80, 100)) == fast


@pytest.mark.parametrize("name", FULL)
def test_distortions_other_frames_and_axes_take_astropys_full_path(name):
    assert _icrs_centre_by_wcslib(FULL[name], (80, 100)) is None
    full = _centre_by_astropy(FULL[name], (80, 100))
    assert full is not None and sky_centre(FULL[name], (80, 100)) == full


@pytest.mark.parametrize("name", NONE)
def test_no_usable_wcs_gives_none_either_way(name):
    assert sky_centre(NONE[name], (80, 100)) is None
    assert _centre_by_astropy(NONE[name], (80, 100)) is None


def test_the_fk5_centre_is_moved_to_icrs():
    fk5, icrs = sky_centre(_tan(RADESYS="FK5", EQUINOX=2000.0), (80, 100)), sky_centre(_tan(), (80, 100))
    assert 1e-6 < np.hypot(fk5[0] - icrs[0], fk5[1] - icrs[1]) < 1e-4  # FK5 J2000 and ICRS differ by ~20 mas


def test_ceers_cutouts_take_the_fast_path_and_agree(ceers_dir):
    for f in sorted(ceers_dir.rglob("*.fits"))[:14]:
        h = fits.getheader(f)
        shape = (h["NAXIS2"], h["NAXIS1"])
        fast = _icrs_centre_by_wcslib(h, shape)
        assert fast is not None, f
        np.testing.assert_allclose(fast, _centre_by_astropy(h, shape), rtol=0, atol=1e-10)
