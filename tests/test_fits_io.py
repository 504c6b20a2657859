"""Tests for the FITS reader (astroae_core.io): read_fits, FitsReadError, find_fits_files.

Every test writes its own FITS files with astropy into ``tmp_path``; the real-data test reads the CEERS cutouts
beside the checkout when they are there.
"""

from __future__ import annotations

import bz2
import gzip
import os
import pickle
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from astroae_core.io import FitsReadError, find_fits_files, read_fits

CEERS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ceers_jwst"


# ----------------------------------------------------------------------------------------------------------------
# helpers


def ramp(shape=(40, 50), dtype=np.float32):
    """A non-symmetric test image (distinct values, so transposes and flips would show)."""
    return (np.arange(np.prod(shape), dtype=np.float64).reshape(shape) * 0.5 - 7.0).astype(dtype)


def wcs_header():
    h = fits.Header()
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CRVAL1"], h["CRVAL2"] = 214.9, 52.9
    h["CRPIX1"], h["CRPIX2"] = 20.0, 25.0
    h["CDELT1"], h["CDELT2"] = -8.3e-6, 8.3e-6
    h["CUNIT1"], h["CUNIT2"] = "deg", "deg"
    h["OBJECT"] = "test galaxy"
    return h


def write(path, *hdus):
    fits.HDUList(list(hdus)).writeto(path, overwrite=True)
    return path


def primary_file(path, data, header=None):
    return write(path, fits.PrimaryHDU(data, header=header))


def check_image(image, shape=None):
    assert isinstance(image, np.ndarray) and not isinstance(image, np.memmap)
    assert image.ndim == 2
    assert image.dtype == np.float32 and image.dtype.isnative
    assert image.flags.c_contiguous and image.flags.writeable
    if shape is not None:
        assert image.shape == shape


def refused(path, *keywords, **kwargs):
    """Assert read_fits refuses ``path`` with a message naming the file and containing every keyword."""
    with pytest.raises(FitsReadError) as info:
        read_fits(path, **kwargs)
    message = str(info.value)
    assert os.fspath(path) in message, message
    for word in keywords:
        assert word.lower() in message.lower(), f"{word!r} not in {message!r}"
    assert isinstance(info.value, ValueError)
    return message


def set_card(raw: bytes, key: str, value: int) -> bytes:
    """Overwrite the integer value of a header card in the raw bytes of a FITS file."""
    start = raw.index(key.ljust(8).encode() + b"= ")
    card = f"{key:<8}= {value:>20}".ljust(80).encode()
    return raw[:start] + card + raw[start + 80 :]


# ----------------------------------------------------------------------------------------------------------------
# reading images


def test_primary_image(tmp_path):
    data = ramp()
    path = primary_file(tmp_path / "p.fits", data, wcs_header())
    image, header = read_fits(path)
    check_image(image, data.shape)
    np.testing.assert_array_equal(image, data)
    assert isinstance(header, fits.Header)
    assert header["OBJECT"] == "test galaxy"
    assert header["BITPIX"] == -32
    assert WCS(header).has_celestial


def test_str_path_and_keywords(tmp_path):
    data = ramp()
    path = primary_file(tmp_path / "p.fits", data)
    image, _ = read_fits(path=str(path), hdu=None, plane=None)
    np.testing.assert_array_equal(image, data)


def test_image_only_in_extension(tmp_path):
    data = ramp((30, 20))
    path = write(tmp_path / "ext.fits", fits.PrimaryHDU(), fits.ImageHDU(data, header=wcs_header(), name="SCI"))
    image, header = read_fits(path)
    check_image(image, (30, 20))
    np.testing.assert_array_equal(image, data)
    assert header["EXTNAME"] == "SCI"
    assert header["CTYPE1"] == "RA---TAN"


def test_table_before_image_is_skipped(tmp_path):
    table = fits.BinTableHDU.from_columns([fits.Column(name="a", format="E", array=np.arange(3.0))], name="CAT")
    data = ramp((10, 12))
    path = write(tmp_path / "mixed.fits", fits.PrimaryHDU(), table, fits.ImageHDU(data, name="IMG"))
    image, header = read_fits(path)
    np.testing.assert_array_equal(image, data)
    assert header["EXTNAME"] == "IMG"


def test_one_d_primary_then_image_extension(tmp_path):
    data = ramp((10, 12))
    path = write(tmp_path / "spec.fits", fits.PrimaryHDU(np.arange(9.0)), fits.ImageHDU(data))
    image, _ = read_fits(path)
    np.testing.assert_array_equal(image, data)


def test_hdu_by_index_and_extname(tmp_path):
    sci, err = ramp((16, 18)), ramp((16, 18)) * 0 + 3.0
    path = write(
        tmp_path / "multi.fits",
        fits.PrimaryHDU(),
        fits.ImageHDU(sci, name="SCI"),
        fits.ImageHDU(err, name="ERR"),
        fits.BinTableHDU.from_columns([fits.Column(name="a", format="E", array=np.arange(3.0))], name="TAB"),
    )
    np.testing.assert_array_equal(read_fits(path)[0], sci)
    np.testing.assert_array_equal(read_fits(path, hdu=1)[0], sci)
    np.testing.assert_array_equal(read_fits(path, hdu=2)[0], err)
    np.testing.assert_array_equal(read_fits(path, hdu=np.int64(2))[0], err)
    np.testing.assert_array_equal(read_fits(path, hdu="ERR")[0], err)
    np.testing.assert_array_equal(read_fits(path, hdu="err")[0], err)  # EXTNAME is case-insensitive
    np.testing.assert_array_equal(read_fits(path, hdu=("SCI", 1))[0], sci)
    refused(path, "no HDU named", hdu=("SCI", 2))
    np.testing.assert_array_equal(read_fits(path, hdu="2")[0], err)  # digits that match no EXTNAME: an index
    assert read_fits(path, hdu="ERR")[1]["EXTNAME"] == "ERR"

    refused(path, "hdu=7", "out of range", hdu=7)
    refused(path, "NOPE", "no HDU named", hdu="NOPE")
    refused(path, "hdu=3", "table", "not an image", hdu=3)
    refused(path, "hdu=0", "no image data", hdu=0)
    with pytest.raises(TypeError):
        read_fits(path, hdu=1.5)


@pytest.mark.parametrize(
    ("ctype", "kwargs", "exact"),
    [
        ("GZIP_1", {"quantize_level": 0.0}, True),  # quantize_level 0 with GZIP: lossless float compression
        ("GZIP_2", {"quantize_level": 0.0}, True),
        ("RICE_1", {"quantize_level": 16.0}, False),  # (RICE_1 with quantize_level 0 writes zeros: don't)
    ],
)
def test_tile_compressed_fz(tmp_path, ctype, kwargs, exact):
    rng = np.random.default_rng(0)
    data = (rng.normal(0.0, 1.0, (64, 48)) + ramp((64, 48)) * 0.01).astype(np.float32)
    comp = fits.CompImageHDU(data, header=wcs_header(), compression_type=ctype, name="SCI", **kwargs)
    path = write(tmp_path / "img.fits.fz", fits.PrimaryHDU(), comp)
    image, header = read_fits(path)
    check_image(image, data.shape)
    if exact:
        np.testing.assert_array_equal(image, data)
    else:  # quantized: error within a fraction of the noise
        assert np.max(np.abs(image - data)) < 0.2 * data.std()
    assert header["EXTNAME"] == "SCI"
    assert "ZBITPIX" not in header and "ZIMAGE" not in header  # the image header, not the binary table's
    assert WCS(header).has_celestial
    np.testing.assert_array_equal(read_fits(path, hdu="SCI")[0], image)
    np.testing.assert_array_equal(read_fits(path, hdu=1)[0], image)


def test_tile_compressed_scaled_integers(tmp_path):
    raw = np.arange(-50, 50, dtype=np.int16).reshape(10, 10)
    comp = fits.CompImageHDU(raw, compression_type="RICE_1")
    comp.header["BSCALE"], comp.header["BZERO"] = 0.5, 100.0
    path = write(tmp_path / "ints.fz", fits.PrimaryHDU(), comp)
    image, header = read_fits(path)
    np.testing.assert_array_equal(image, raw * 0.5 + 100.0)
    assert "BSCALE" not in header and "BZERO" not in header


@pytest.mark.parametrize("codec", ["gzip", "bz2"])
def test_whole_file_compressed(tmp_path, codec):
    data = ramp((33, 44), dtype=">f4")
    plain = write(tmp_path / "plain.fits", fits.PrimaryHDU(), fits.ImageHDU(data, header=wcs_header()))
    module = {"gzip": gzip, "bz2": bz2}[codec]
    path = tmp_path / f"img.fits.{'gz' if codec == 'gzip' else 'bz2'}"
    path.write_bytes(module.compress(plain.read_bytes()))
    image, header = read_fits(path)
    check_image(image, data.shape)
    np.testing.assert_array_equal(image, data.astype(np.float32))
    assert header["CTYPE2"] == "DEC--TAN"


@pytest.mark.parametrize(
    ("raw", "bscale", "bzero", "expected"),
    [
        (np.array([[3, -4], [0, 32767]], np.int16), 2.0, 10.0, [[16.0, 2.0], [10.0, 65544.0]]),
        (np.array([[0, 255], [1, 128]], np.uint8), 0.5, -1.0, [[-1.0, 126.5], [-0.5, 63.0]]),
        (np.array([[-100000, 7], [0, 1]], np.int32), 0.25, 1000.0, [[-24000.0, 1001.75], [1000.0, 1000.25]]),
        (
            np.array([[2**40, -3], [0, 1]], np.int64),
            1.0,
            float(2**20),
            [[2.0**40 + 2**20, 2**20 - 3], [2**20, 2**20 + 1]],
        ),
        (np.array([[1, 2], [3, 4]], np.int16), None, None, [[1.0, 2.0], [3.0, 4.0]]),
    ],
    ids=["int16", "uint8", "int32", "int64", "int16-unscaled"],
)
def test_integer_scaling(tmp_path, raw, bscale, bzero, expected):
    hdu = fits.PrimaryHDU(raw)
    if bscale is not None:
        hdu.header["BSCALE"], hdu.header["BZERO"] = bscale, bzero
    path = write(tmp_path / "int.fits", hdu)
    with fits.open(path, do_not_scale_image_data=True) as hdul:  # the file really holds the raw integers
        assert hdul[0].header["BITPIX"] == raw.dtype.itemsize * 8
        np.testing.assert_array_equal(hdul[0].data, raw)
    image, header = read_fits(path)
    check_image(image, raw.shape)
    np.testing.assert_array_equal(image, np.array(expected, np.float32))
    assert header["BITPIX"] == -32 and "BSCALE" not in header and "BZERO" not in header


@pytest.mark.parametrize(("dtype", "bits"), [(np.uint16, 16), (np.uint32, 32)])
def test_pseudo_unsigned(tmp_path, dtype, bits):
    top = np.iinfo(dtype).max
    data = np.array([[0, 1], [top - 1, top]], dtype)
    path = primary_file(tmp_path / "u.fits", data)
    with fits.open(path, do_not_scale_image_data=True) as hdul:  # stored signed, with BZERO = 2**(bits-1)
        assert hdul[0].header["BZERO"] == 2 ** (bits - 1)
    image, _ = read_fits(path)
    np.testing.assert_array_equal(image, data.astype(np.float64).astype(np.float32))
    if bits == 16:
        assert image[1, 1] == 65535.0


@pytest.mark.parametrize("blank", [-32768, 0])
def test_blank_becomes_nan(tmp_path, blank):
    raw = np.array([[blank, 5], [6, blank]], np.int16)
    hdu = fits.PrimaryHDU(raw)
    hdu.header["BLANK"] = blank
    path = write(tmp_path / "blank.fits", hdu)
    image, header = read_fits(path)
    assert np.isnan(image[0, 0]) and np.isnan(image[1, 1])
    np.testing.assert_array_equal(image[[0, 1], [1, 0]], [5.0, 6.0])
    assert "BLANK" not in header


@pytest.mark.parametrize("dtype", [">f8", ">f4", "<f8", ">i2", ">i4"])
def test_byte_orders(tmp_path, dtype):
    data = (ramp((20, 30), np.float64) * (1 if dtype[1] == "f" else 2)).astype(dtype)
    path = primary_file(tmp_path / "be.fits", data)
    image, _ = read_fits(path)
    check_image(image, data.shape)
    np.testing.assert_array_equal(image, data.astype(np.float32))


def test_cube_planes(tmp_path):
    cube = np.stack([np.full((12, 14), k, np.float32) + ramp((12, 14)) * 0.001 for k in range(5)])
    path = primary_file(tmp_path / "cube.fits", cube)
    image, header = read_fits(path)
    check_image(image, (12, 14))
    np.testing.assert_array_equal(image, cube[2])  # default: the middle plane
    assert header["NAXIS"] == 3  # header describes the file
    for k in range(5):
        np.testing.assert_array_equal(read_fits(path, plane=k)[0], cube[k])
    np.testing.assert_array_equal(read_fits(path, plane=-1)[0], cube[4])
    np.testing.assert_array_equal(read_fits(path, plane=(3,))[0], cube[3])
    refused(path, "out of range", "plane=5", plane=5)
    refused(path, "out of range", plane=-6)
    refused(path, "out of range", plane=(1, 1))
    with pytest.raises(TypeError):
        read_fits(path, plane="2")


def test_even_cube_middle_plane(tmp_path):
    cube = np.arange(4, dtype=np.float32)[:, None, None] + np.zeros((4, 6, 7), np.float32)
    path = primary_file(tmp_path / "cube4.fits", cube)
    assert read_fits(path)[0][0, 0] == 2.0


def test_4d_degenerate_axes(tmp_path):
    data = ramp((1, 1, 15, 16))
    path = primary_file(tmp_path / "deg.fits", data)
    image, _ = read_fits(path)
    check_image(image, (15, 16))
    np.testing.assert_array_equal(image, data[0, 0])
    np.testing.assert_array_equal(read_fits(path, plane=0)[0], data[0, 0])
    np.testing.assert_array_equal(read_fits(path, plane=(0, 0))[0], data[0, 0])
    refused(path, "out of range", plane=1)


def test_4d_one_real_plane_axis(tmp_path):
    data = np.stack([ramp((15, 16)) + 100 * k for k in range(3)])[None]  # (1, 3, 15, 16)
    path = primary_file(tmp_path / "stokes.fits", data)
    image, _ = read_fits(path)
    check_image(image, (15, 16))
    np.testing.assert_array_equal(image, data[0, 1])
    np.testing.assert_array_equal(read_fits(path, plane=2)[0], data[0, 2])
    np.testing.assert_array_equal(read_fits(path, plane=(0, 2))[0], data[0, 2])  # all leading axes
    refused(path, "out of range", plane=3)
    refused(path, "out of range", plane=(1, 2))


def test_4d_two_plane_axes(tmp_path):
    data = np.arange(2 * 3, dtype=np.float32).reshape(2, 3, 1, 1) + np.zeros((2, 3, 5, 6), np.float32)
    path = primary_file(tmp_path / "two.fits", data)
    assert read_fits(path)[0][0, 0] == data[1, 1, 0, 0]  # middle of each leading axis
    assert read_fits(path, plane=0)[0][0, 0] == data[0, 1, 0, 0]
    assert read_fits(path, plane=(0, 2))[0][0, 0] == data[0, 2, 0, 0]


def test_plane_on_2d_image(tmp_path):
    path = primary_file(tmp_path / "flat.fits", ramp())
    np.testing.assert_array_equal(read_fits(path, plane=0)[0], ramp())
    refused(path, "out of range", "2-D", plane=1)


def test_nan_and_inf_preserved(tmp_path):
    data = ramp((10, 10))
    data[1, 2], data[3, 4], data[5, 6] = np.nan, np.inf, -np.inf
    path = primary_file(tmp_path / "nan.fits", data)
    image, _ = read_fits(path)
    assert np.isnan(image[1, 2]) and image[3, 4] == np.inf and image[5, 6] == -np.inf
    finite = np.isfinite(data)
    np.testing.assert_array_equal(image[finite], data[finite])


def test_mostly_nan_image_loads(tmp_path):
    data = np.full((8, 8), np.nan, np.float32)
    data[4, 4] = 1.0
    image, _ = read_fits(primary_file(tmp_path / "nan1.fits", data))
    assert image[4, 4] == 1.0 and np.isnan(image).sum() == 63


@pytest.mark.parametrize("value", [0.0, 7.5])
def test_constant_image(tmp_path, value):
    image, _ = read_fits(primary_file(tmp_path / "const.fits", np.full((9, 11), value, np.float32)))
    check_image(image, (9, 11))
    assert (image == value).all()


def test_large_image_memmapped(tmp_path):
    data = np.zeros((3000, 2500), ">f4")
    data[::7, ::5] = 3.0
    path = primary_file(tmp_path / "large.fits", data)
    image, _ = read_fits(path)
    check_image(image, data.shape)
    np.testing.assert_array_equal(image, data)


def test_large_scaled_image_in_blocks(tmp_path):
    raw = (np.arange(3000 * 1500, dtype=np.int64) % 30000).astype(np.int16).reshape(3000, 1500)
    hdu = fits.PrimaryHDU(raw)
    hdu.header["BSCALE"], hdu.header["BZERO"] = 0.5, -3.0
    image, _ = read_fits(write(tmp_path / "large_int.fits", hdu))
    np.testing.assert_array_equal(image, (raw * 0.5 - 3.0).astype(np.float32))


def test_file_closed_after_read(tmp_path):
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.is_dir():
        pytest.skip("needs /proc/self/fd to list open files")
    path = primary_file(tmp_path / "closed.fits", ramp())

    def open_on_path():
        found = 0
        for fd in fd_dir.iterdir():
            try:
                found += os.readlink(fd) == str(path)
            except OSError:
                pass
        return found

    image, _ = read_fits(path)
    assert open_on_path() == 0
    refused(path, "out of range", plane=3)  # refused before the pixels are read
    assert open_on_path() == 0
    refused(path, "out of range", hdu=4)
    assert open_on_path() == 0
    nan = primary_file(tmp_path / "nan.fits", np.full((5, 5), np.nan, np.float32))
    refused(nan, "non-finite")  # refused after the pixels were read through the memory map
    assert open_on_path() == 0
    image += 1  # a private copy, not a view of the file
    assert read_fits(path)[0][0, 0] == ramp()[0, 0]


def test_warnings_as_errors_do_not_escape(tmp_path):
    raw = bytearray(primary_file(tmp_path / "odd.fits", ramp()).read_bytes())
    # a non-standard card (lower-case keyword, unquoted string value) makes astropy warn on verification
    start = raw.index(b"END     ")
    raw[start : start + 160] = b"badkey  = this is not valid".ljust(80) + b"END".ljust(80)
    path = tmp_path / "odd2.fits"
    path.write_bytes(bytes(raw))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            image, _ = read_fits(path)
        except FitsReadError:
            pass
        else:
            np.testing.assert_array_equal(image, ramp())
        image, _ = read_fits(primary_file(tmp_path / "fine.fits", ramp()))
    np.testing.assert_array_equal(image, ramp())


def test_threads_leave_warning_filters_alone(tmp_path):
    paths = [primary_file(tmp_path / f"t{i}.fits", ramp((30, 30)) + i) for i in range(4)]
    before = list(warnings.filters)

    def work(i):
        for _ in range(15):
            np.testing.assert_array_equal(read_fits(paths[i % 4])[0], ramp((30, 30)) + i % 4)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(work, range(8)))
    assert list(warnings.filters) == before


def test_error_pickles():
    err = FitsReadError("cannot read 'x.fits': empty file (0 bytes)", path="x.fits", reason="empty file (0 bytes)")
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, FitsReadError) and str(back) == str(err)
    assert back.path == "x.fits" and back.reason == "empty file (0 bytes)"


# ----------------------------------------------------------------------------------------------------------------
# refusals


def test_not_fits(tmp_path):
    path = tmp_path / "notes.fits"
    path.write_text("SIMPLY not a FITS file\n" * 200)
    refused(path, "not a FITS file")


def test_binary_junk(tmp_path):
    path = tmp_path / "junk.fits"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    refused(path, "not a FITS file")


def test_gzip_of_not_fits(tmp_path):
    path = tmp_path / "text.fits.gz"
    path.write_bytes(gzip.compress(b"hello world\n" * 100))
    refused(path, "not a FITS file", "gzip")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.fits"
    path.write_bytes(b"")
    refused(path, "empty")


def test_empty_gzip(tmp_path):
    path = tmp_path / "empty.fits.gz"
    path.write_bytes(gzip.compress(b""))
    refused(path, "empty")


def test_missing_file(tmp_path):
    refused(tmp_path / "nowhere.fits", "no such file")


def test_directory(tmp_path):
    folder = tmp_path / "folder.fits"
    folder.mkdir()
    refused(folder, "directory")


def test_truncated_in_data(tmp_path):
    raw = primary_file(tmp_path / "full.fits", ramp((100, 120))).read_bytes()
    path = tmp_path / "half.fits"
    path.write_bytes(raw[: len(raw) // 2])
    refused(path, "truncated", "header of HDU 0 says", f"only {len(raw) // 2} bytes")


def test_truncated_in_header(tmp_path):
    raw = primary_file(tmp_path / "full.fits", ramp((100, 120)), wcs_header()).read_bytes()
    path = tmp_path / "cut.fits"
    path.write_bytes(raw[:1000])
    refused(path, "truncated", "header")


def test_truncated_gzip(tmp_path):
    raw = gzip.compress(primary_file(tmp_path / "full.fits", ramp((100, 120))).read_bytes())
    path = tmp_path / "cut.fits.gz"
    path.write_bytes(raw[: len(raw) // 2])
    refused(path, "truncated", "gzip")


def test_tables_only(tmp_path):
    table = fits.BinTableHDU.from_columns([fits.Column(name="flux", format="D", array=np.arange(5.0))])
    path = write(tmp_path / "cat.fits", fits.PrimaryHDU(), table)
    refused(path, "no image HDU", "BinTableHDU")


def test_one_d(tmp_path):
    refused(primary_file(tmp_path / "spec.fits", np.arange(50, dtype=np.float32)), "1-D")


def test_single_row_is_one_d(tmp_path):
    refused(primary_file(tmp_path / "row.fits", np.arange(50, dtype=np.float32)[None, :]), "1-D")


@pytest.mark.parametrize("fill", [np.nan, np.inf])
def test_all_non_finite(tmp_path, fill):
    data = np.full((10, 10), fill, np.float32)
    data[0, 0] = -np.inf
    refused(primary_file(tmp_path / "allnan.fits", data), "non-finite")


def test_all_blank_integers(tmp_path):
    hdu = fits.PrimaryHDU(np.full((4, 4), -1, np.int16))
    hdu.header["BLANK"] = -1
    refused(write(tmp_path / "blank.fits", hdu), "non-finite")


def test_out_of_range_plane(tmp_path):
    path = primary_file(tmp_path / "cube.fits", np.zeros((3, 8, 8), np.float32) + 1)
    refused(path, "out of range", "plane=3", plane=3)
    refused(path, "out of range", plane=(0, 1))


@pytest.mark.parametrize("side", [10**5, 10**7])
def test_absurd_naxis(tmp_path, side):
    raw = primary_file(tmp_path / "small.fits", ramp((100, 120))).read_bytes()
    raw = set_card(set_card(raw, "NAXIS1", side), "NAXIS2", side)
    path = tmp_path / "absurd.fits"
    path.write_bytes(raw)
    refused(path, "header of HDU 0 says", f"{side} x {side}", f"only {len(raw)} bytes")


def test_absurd_naxis_in_extension(tmp_path):
    raw = write(tmp_path / "small.fits", fits.PrimaryHDU(), fits.ImageHDU(ramp((100, 120)))).read_bytes()
    raw = raw[:2880] + set_card(raw[2880:], "NAXIS2", 10**6)
    path = tmp_path / "absurd_ext.fits"
    path.write_bytes(raw)
    refused(path, "header of HDU 1 says", "120 x 1000000")


def test_absurd_naxis_gzip(tmp_path):
    raw = primary_file(tmp_path / "small.fits", ramp((100, 120))).read_bytes()
    path = tmp_path / "absurd.fits.gz"
    path.write_bytes(gzip.compress(set_card(set_card(raw, "NAXIS1", 10**6), "NAXIS2", 10**6)))
    refused(path, "header of HDU 0 says", "gzip")


def set_raw_card(raw: bytes, old: bytes, new: bytes) -> bytes:
    """Replace the first card starting with ``old`` by the card ``new`` (padded to 80 bytes)."""
    start = raw.index(old)
    return raw[:start] + new.ljust(80) + raw[start + 80 :]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("card", "value"),
    [("NAXIS", 6479602929), ("NAXIS", 1000), ("NAXIS", -1), ("NAXIS2", -3)],
)
def test_impossible_structural_values_refused_quickly(tmp_path, card, value):
    # astropy itself loops over range(NAXIS) while parsing: NAXIS = 6479602929 would take hours
    raw = write(tmp_path / "src.fits", fits.PrimaryHDU(), fits.ImageHDU(ramp((20, 30)))).read_bytes()
    raw = raw[:2880] + set_card(raw[2880:], card, value)
    path = tmp_path / "bad.fits"
    path.write_bytes(raw)
    refused(path, "corrupt header", "HDU 1", f"{card} = {value}")
    gz = tmp_path / "bad.fits.gz"
    gz.write_bytes(gzip.compress(raw))
    refused(gz, "corrupt header", f"{card} = {value}")


@pytest.mark.timeout(60)
def test_huge_tfields_refused_quickly(tmp_path):
    comp = fits.CompImageHDU(ramp((20, 30)), compression_type="GZIP_1", quantize_level=0.0)
    raw = write(tmp_path / "src.fz", fits.PrimaryHDU(), comp).read_bytes()
    path = tmp_path / "bad.fz"
    path.write_bytes(set_card(raw, "TFIELDS", 1139935))
    refused(path, "corrupt header", "TFIELDS = 1139935")


def test_rice_parameters_checked_before_decoding(tmp_path):
    # astropy's C RICE decoder trusts BYTEPIX: 44880 reads far outside its buffer (a crash, not an exception)
    comp = fits.CompImageHDU((ramp((20, 30)) * 10).astype(np.int32), compression_type="RICE_1")
    raw = write(tmp_path / "src.fz", fits.PrimaryHDU(), comp).read_bytes()
    start = raw.index(b"ZNAME2  = 'BYTEPIX '")
    zval = raw.index(b"ZVAL2   =", start)
    path = tmp_path / "bad.fz"
    path.write_bytes(raw[:zval] + b"ZVAL2   =                44880".ljust(80) + raw[zval + 80 :])
    refused(path, "BYTEPIX = 44880")


def test_hcompress_stream_size_checked_before_decoding(tmp_path):
    # astropy's HCOMPRESS decoder fills as many pixels as the tile stream announces, whatever the buffer it got:
    # a corrupt stream corrupts memory and aborts the process. Run in a subprocess so a regression cannot take
    # the test session down with it.
    data = np.random.default_rng(3).normal(size=(40, 48)).astype(np.float32)
    comp = fits.CompImageHDU(data, compression_type="HCOMPRESS_1", tile_shape=(20, 48))
    raw = bytearray(write(tmp_path / "src.fz", fits.PrimaryHDU(), comp).read_bytes())
    start = raw.index(b"\xdd\x99", 2 * 2880)  # the first tile stream: magic, then rows and columns (int32)
    assert int.from_bytes(raw[start + 2 : start + 6], "big") == 20
    # 60 rows: more than the tile holds, but below astropy's own (bytes vs pixels) allocation check
    raw[start + 2 : start + 6] = (60).to_bytes(4, "big")
    path = tmp_path / "bad.fz"
    path.write_bytes(bytes(raw))
    code = (
        "import sys\n"
        "from astroae_core.io import read_fits, FitsReadError\n"
        "try:\n    read_fits(sys.argv[1])\n"
        "except FitsReadError as exc:\n    print(exc)\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120, cwd=root,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "corrupt HCOMPRESS data" in done.stdout and "60 x 48" in done.stdout


def test_tile_descriptors_inside_heap(tmp_path):
    comp = fits.CompImageHDU((ramp((20, 30)) * 10).astype(np.int32), compression_type="RICE_1")
    raw = bytearray(write(tmp_path / "src.fz", fits.PrimaryHDU(), comp).read_bytes())
    # first row of the table, at the start of the data of HDU 1: (count, offset) of tile 0, as two int32
    data_start = raw.index(b"END" + b" " * 77, 2880) // 2880 * 2880 + 2880
    raw[data_start + 4 : data_start + 8] = (10**6).to_bytes(4, "big")
    path = tmp_path / "bad.fz"
    path.write_bytes(bytes(raw))
    refused(path, "corrupt tile table", "outside")


def test_tile_count_must_match_image_size(tmp_path):
    comp = fits.CompImageHDU((ramp((20, 30)) * 10).astype(np.int32), compression_type="RICE_1")
    raw = write(tmp_path / "src.fz", fits.PrimaryHDU(), comp).read_bytes()
    path = tmp_path / "bad.fz"
    path.write_bytes(set_card(raw, "ZNAXIS2", 10**9))
    refused(path, "corrupt header", "tiles", "rows")


@pytest.mark.timeout(60)
def test_corrupt_extension_in_gzip_does_not_loop(tmp_path):
    # after a corrupted HDU in a gzip stream astropy seeks back to the start and yields HDUs for ever
    raw = write(tmp_path / "src.fits", fits.PrimaryHDU(), fits.ImageHDU(ramp((20, 30)))).read_bytes()
    raw = set_raw_card(raw, b"XTENSION= 'IMAGE   '", b"XTENSION= 'IMAGE   '.          / Image extension")
    path = tmp_path / "loop.fits.gz"
    path.write_bytes(gzip.compress(raw))
    refused(path, "no image HDU", "corrupted HDU")
    refused(path, "hdu=5", "out of range", hdu=5)
    refused(path, "no HDU named", hdu="SCI")


def test_missing_end_card_in_extension(tmp_path):
    raw = write(tmp_path / "src.fits", fits.PrimaryHDU(), fits.ImageHDU(ramp((20, 30)))).read_bytes()
    path = tmp_path / "noend.fits"
    path.write_bytes(raw[:2880] + raw[2880:].replace(b"END" + b" " * 77, b"XND" + b" " * 77, 1))
    refused(path, "header of HDU 1", "no END card")


# ----------------------------------------------------------------------------------------------------------------
# truncation at many offsets: only FitsReadError, or a valid image


def _truncation_sources(tmp_path, kind):
    data = ramp((48, 64))
    if kind == "plain":
        raw = write(tmp_path / "src.fits", fits.PrimaryHDU(), fits.ImageHDU(data, name="SCI")).read_bytes()
    elif kind == "fz":
        comp = fits.CompImageHDU((data * 10).astype(np.int16), compression_type="RICE_1")
        raw = write(tmp_path / "src.fz", fits.PrimaryHDU(), comp).read_bytes()
    else:
        raw = gzip.compress(write(tmp_path / "src.fits", fits.PrimaryHDU(data)).read_bytes())
    return raw


TRUNCATIONS = [(kind, i) for kind, n in (("plain", 20), ("fz", 10), ("gz", 8)) for i in range(n)]


@pytest.mark.parametrize(("kind", "step"), TRUNCATIONS, ids=[f"{k}-{i}" for k, i in TRUNCATIONS])
def test_truncated_anywhere(tmp_path, kind, step):
    raw = _truncation_sources(tmp_path, kind)
    n = sum(1 for k, _ in TRUNCATIONS if k == kind)
    offsets = sorted({1, 79, 2880, 2880 * 2 - 1, *np.linspace(100, len(raw) - 1, n).astype(int).tolist()})
    cut = offsets[step % len(offsets)] if step < len(offsets) else len(raw) - 1 - step
    path = tmp_path / f"cut.{'fits.gz' if kind == 'gz' else kind}"
    path.write_bytes(raw[:cut])
    try:
        image, header = read_fits(path)
    except FitsReadError as exc:
        assert os.fspath(path) in str(exc)
        return
    check_image(image, (48, 64))
    assert isinstance(header, fits.Header)


def test_truncated_only_in_padding_still_reads(tmp_path):
    data = ramp((48, 64))
    raw = write(tmp_path / "src.fits", fits.PrimaryHDU(), fits.ImageHDU(data)).read_bytes()
    path = tmp_path / "nopad.fits"
    path.write_bytes(raw[: 2 * 2880 + data.nbytes])  # data complete, final padding missing
    np.testing.assert_array_equal(read_fits(path)[0], data)


# ----------------------------------------------------------------------------------------------------------------
# finding files


def test_find_fits_files(tmp_path):
    names = [
        "a.fits", "b.FITS", "c.fit", "d.fts", "e.fz", "sub/f.fits.gz", "sub/g.FIT.BZ2", "sub/deeper/h.fits.fz",
        "sub/deeper/i.fts.gz", "sub/j.fz.bz2",
    ]
    ignored = [
        "notes.txt", "k.fits.txt", "l.gz", "m.fitsx", ".hidden.fits", ".cache/n.fits", "sub/.git/o.fits",
        "p.fits.zip",
    ]
    for name in names + ignored:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "dir.fits").mkdir()  # a folder with a FITS-like name is not a file
    found = find_fits_files(tmp_path)
    assert found == sorted(found)
    assert all(isinstance(p, Path) for p in found)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in found) == sorted(names)
    assert find_fits_files(str(tmp_path / "sub" / "deeper")) == sorted(
        [tmp_path / "sub/deeper/h.fits.fz", tmp_path / "sub/deeper/i.fts.gz"]
    )
    assert find_fits_files(tmp_path / "a.fits") == [tmp_path / "a.fits"]
    assert find_fits_files(tmp_path / "notes.txt") == []
    with pytest.raises(FileNotFoundError):
        find_fits_files(tmp_path / "missing")


def test_find_then_read(tmp_path):
    (tmp_path / "x").mkdir()
    primary_file(tmp_path / "x" / "one.fits", ramp())
    (tmp_path / "x" / "two.fits.gz").write_bytes(gzip.compress((tmp_path / "x" / "one.fits").read_bytes()))
    files = find_fits_files(tmp_path)
    assert [p.name for p in files] == ["one.fits", "two.fits.gz"]
    for p in files:
        np.testing.assert_array_equal(read_fits(p)[0], ramp())


# ----------------------------------------------------------------------------------------------------------------
# real data


@pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")
def test_ceers_real_cutouts():
    if not CEERS.is_dir():
        pytest.skip(f"real-data folder {CEERS} is not there (it lies beside the checkout, not in it)")
    files = find_fits_files(CEERS)
    assert len(files) == 700
    for path in files:
        image, header = read_fits(path)
        assert image.shape == (100, 100) and image.dtype == np.float32 and image.flags.c_contiguous
        assert np.isfinite(image).all()
        assert "CTYPE1" in header
    assert WCS(header).has_celestial


def test_read_fits_with_index_names_the_hdu_used(tmp_path):
    from astroae_core.io import read_fits_with_index

    path = tmp_path / "ext.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("a", "E", array=[1.0])]),
                  fits.ImageHDU(np.ones((4, 5), np.float32), name="SCI")]).writeto(path)
    image, header, index = read_fits_with_index(path)
    assert index == 2 and image.shape == (4, 5)


# ----------------------------------------------------------------------------------------------------------------
# the guard's pieces on their own


def test_guard_walks_only_up_to_the_hdu_to_read(tmp_path):
    from astroae_core.io.guard import check_structure, sniff_compression

    path = write(tmp_path / "three.fits", fits.PrimaryHDU(), fits.ImageHDU(ramp(), name="SCI"),
                 fits.ImageHDU(ramp(), name="ERR"))
    size = path.stat().st_size
    assert sniff_compression(path) is None
    assert check_structure(path, size, None, None) == 2  # the first 2-D image is HDU 1: astropy may parse two
    assert check_structure(path, size, None, "err") == 3
    assert check_structure(path, size, None, 0) == 1
    gz = tmp_path / "three.fits.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert sniff_compression(gz) == "gzip"
    assert check_structure(gz, gz.stat().st_size, "gzip", ("SCI", 1)) == 2
    with pytest.raises(FitsReadError, match="file has only"):
        check_structure(path, size - 2880, None, "ERR")


def test_selection_from_headers_alone(tmp_path):
    from astroae_core.io.selection import plane_index, select_hdu

    path = write(tmp_path / "cube.fits", fits.PrimaryHDU(), fits.ImageHDU(np.zeros((5, 1, 6, 7), np.float32)))
    with fits.open(path, lazy_load_hdus=True) as hdul:
        index, hdu = select_hdu(os.fspath(path), hdul, None)
        assert index == 1 and hdu.shape == (5, 1, 6, 7)
    assert plane_index("x", (5, 1, 6, 7), None) == (2, 0)
    assert plane_index("x", (5, 1, 6, 7), -1) == (4, 0)
    with pytest.raises(FitsReadError, match="out of range"):
        plane_index("x", (5, 1, 6, 7), 5)
