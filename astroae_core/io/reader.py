"""Reading FITS images robustly: one 2-D float32 image and its header from any FITS file an astronomer may have.

`read_fits` accepts plain, gzip/bzip2-compressed and tile-compressed (``.fz``) files, finds the first HDU with an
image, applies BSCALE/BZERO/BLANK, takes one plane of a cube, and converts whatever the file holds (big-endian
floats, 8/16/32/64-bit integers, pseudo-unsigned integers) into a native-endian C-contiguous float32 array.
Anything it cannot use raises `FitsReadError` (a `ValueError`) whose message names the file and the reason; no
other exception escapes for any file content.

The order of a read: :mod:`~astroae_core.io.guard` checks the bytes and the headers' structure before astropy
parses anything, :mod:`~astroae_core.io.selection` chooses the HDU and the plane from the headers,
:mod:`~astroae_core.io.tile_guard` checks tile-compression settings, and only then are pixels read and scaled
here.
"""

from __future__ import annotations

import contextlib
import lzma
import math
import numbers
import os
import sys
import threading
import warnings

import numpy as np
from astropy.io import fits

from astroae_core.io.errors import FitsReadError, describe, fits_error
from astroae_core.io.guard import OPENERS, check_structure, is_int, sniff_compression
from astroae_core.io.selection import plane_index, select_hdu
from astroae_core.io.tile_guard import check_tile_compression

__all__ = ["check_read_args", "read_fits", "read_fits_with_index"]


def read_fits(path, hdu=None, plane=None):
    """Read one 2-D image from a FITS file as float32 physical values.

    Parameters
    ----------
    path : str or os.PathLike
        The FITS file: plain (``.fits``, ``.fit``, ``.fts``), tile-compressed (``.fz``) or compressed as a whole
        with gzip or bzip2 (``.gz``, ``.bz2``; recognised by content, not by name).
    hdu : int, str or (str, int) tuple, optional
        Which HDU to read: an index (0 is the primary HDU), an EXTNAME (case-insensitive) or an
        ``(EXTNAME, EXTVER)`` pair. A string of digits that matches no EXTNAME is taken as an index. By default
        (``None``) the first HDU holding image data is used: an empty primary HDU, tables and HDUs whose image
        is one-dimensional are skipped, and a tile-compressed image counts as an image.
    plane : int or tuple of int, optional
        Which plane of a cube to take. The image is the last two numpy axes (FITS ``NAXIS1``, ``NAXIS2``);
        leading axes of length 1 are dropped first, so a ``(1, 1, H, W)`` array is simply an ``(H, W)`` image
        and a ``(1, 3, H, W)`` array is a 3-plane cube. An int indexes the first remaining leading axis (numpy
        axis 0, the slowest FITS axis); a tuple indexes the remaining leading axes in order (a tuple as long as
        all leading axes, length-1 ones included, is also accepted). Negative indices count from the end.
        **Default** (``None``, or axes a tuple leaves out): the middle plane, index ``n // 2`` of each leading
        axis of length ``n`` (plane 2 of a 5-plane cube, plane 2 of a 4-plane cube). A 2-D image has the single
        plane 0.

    Returns
    -------
    image : numpy.ndarray
        2-D float32, C-contiguous, native byte order, in physical units (BSCALE and BZERO applied, integer
        pixels equal to BLANK set to NaN). NaN and infinite pixels are returned as they are.
    header : astropy.io.fits.Header
        A copy of the header of the HDU used (for a tile-compressed HDU, the image header, so that
        `astropy.wcs.WCS` works on it). It describes the returned values: BITPIX is set to -32 and BSCALE,
        BZERO and BLANK are removed. NAXIS keywords still describe the file, so for a plane of a cube use
        ``WCS(header).celestial``.

    Raises
    ------
    FitsReadError
        With a message naming the file and the reason, when the file is missing, a directory, empty, not FITS,
        truncated or corrupt (including a header that claims more data than the file holds); when it holds no
        image HDU, the requested HDU does not exist or is not an image, the image is one-dimensional, a plane
        index is out of range, or every pixel is NaN or infinite.
    TypeError
        When ``hdu`` or ``plane`` is of an unsupported type.

    Notes
    -----
    Plain files are memory-mapped and only the selected plane is converted, to float32 in one pass (integer
    data with scaling goes through float64 in blocks of rows, so temporaries stay small). Files compressed as
    a whole cannot be memory-mapped: they are decompressed in memory (and read twice, see below).

    Before astropy parses anything, the structural keywords of the headers up to the chosen HDU are checked
    by hand: astropy trusts them, and a corrupt ``NAXIS`` or ``TFIELDS`` makes it loop for hours, a size
    larger than the file is only noticed when the pixels are read, and bad tile-compression parameters can
    crash its C decoders. astropy's warnings about non-standard headers are silenced; as that uses
    `warnings.catch_warnings`, which is not thread-safe before Python 3.14, concurrent calls from several
    threads take turns there. The file is closed before `read_fits` returns or raises.

    Examples
    --------
    >>> image, header = read_fits("galaxy.fits")                     # doctest: +SKIP
    >>> cube_plane, _ = read_fits("cube.fits", plane=0)             # doctest: +SKIP
    >>> sci, hdr = read_fits("jw_cal.fits.gz", hdu="SCI")           # doctest: +SKIP
    """
    image, header, _ = read_fits_with_index(path, hdu=hdu, plane=plane)
    return image, header


def read_fits_with_index(path, hdu=None, plane=None):
    """:func:`read_fits`, also returning the index of the HDU the image came from (for a cache's ``hdu`` column).

    Returns
    -------
    image : ndarray
    header : astropy.io.fits.Header
    hdu_index : int
    """
    check_read_args(hdu, plane)
    try:
        fspath = os.fspath(path)
    except TypeError:
        raise TypeError(f"path must be a str or os.PathLike, not {type(path).__name__}") from None
    if isinstance(fspath, bytes):
        fspath = os.fsdecode(fspath)
    with _quiet():
        result, failure = _attempt(fspath, hdu, plane)
    if failure is not None:
        raise failure
    return result


# warnings.catch_warnings swaps the process-wide filter list and puts back what it saved on exit, so two threads
# inside it at once can leave the filters changed for good; before Python 3.14's context-aware warnings the
# quiet sections are therefore taken one thread at a time.
_WARNINGS_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet():
    """Silence warnings (astropy's VerifyWarning and the like) for the duration of one read."""
    lock = contextlib.nullcontext() if getattr(sys.flags, "context_aware_warnings", False) else _WARNINGS_LOCK
    with lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _attempt(fspath, hdu, plane):
    """Run the reader; return ``(result, None)`` or ``(None, FitsReadError)`` with no live frames attached.

    The error is returned rather than raised from inside the reader so that no traceback keeps the reader's
    frames, and with them a memory map of the file, alive: the file is closed when `read_fits` raises.
    """
    try:
        return _read(fspath, hdu, plane), None
    except FitsReadError as exc:
        failure = exc
    except MemoryError as exc:
        failure = fits_error(fspath, f"not enough memory to read it ({describe(exc)})")
        failure.__cause__ = exc
    except Exception as exc:  # anything astropy, numpy or a decompressor may raise on a bad file
        failure = fits_error(fspath, f"corrupt or unreadable FITS file ({describe(exc)})")
        failure.__cause__ = exc
    _drop_tracebacks(failure)
    return None, failure


def _drop_tracebacks(exc):
    """Forget the frames of an exception and of its causes (their messages and types are kept)."""
    seen = set()
    stack = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        e.__traceback__ = None
        stack += [e.__cause__, e.__context__]


def check_read_args(hdu, plane) -> None:
    """Raise TypeError for an ``hdu`` or ``plane`` that :func:`read_fits` cannot take, before any file is opened."""
    _check_hdu_arg(hdu)
    _check_plane_arg(plane)


def _check_hdu_arg(hdu):
    if hdu is None or is_int(hdu) or isinstance(hdu, str):
        return
    if isinstance(hdu, tuple) and len(hdu) == 2 and isinstance(hdu[0], str) and is_int(hdu[1]):
        return
    raise TypeError(f"hdu must be None, an int index, an EXTNAME string or an (EXTNAME, EXTVER) tuple, not {hdu!r}")


def _check_plane_arg(plane):
    if plane is None or is_int(plane):
        return
    if isinstance(plane, (tuple, list)) and all(is_int(p) for p in plane):
        return
    raise TypeError(f"plane must be None, an int or a tuple of ints, not {plane!r}")


def _read(fspath, hdu, plane):
    try:
        st = os.stat(fspath)
    except FileNotFoundError as exc:
        raise fits_error(fspath, "no such file") from exc
    except OSError as exc:
        raise fits_error(fspath, f"cannot access it ({describe(exc)})") from exc
    if os.path.isdir(fspath):
        raise fits_error(fspath, "is a directory, not a FITS file")
    file_size = st.st_size
    if file_size == 0:
        raise fits_error(fspath, "empty file (0 bytes)")

    compression = sniff_compression(fspath)
    limit = None  # how many HDUs astropy may parse
    if compression is None or compression in OPENERS:
        limit = check_structure(fspath, file_size, compression, hdu)

    try:
        hdul = fits.open(
            fspath,
            mode="readonly",
            memmap=True,
            do_not_scale_image_data=True,  # scaling is done here, once, into float32
            lazy_load_hdus=True,
        )
    except Exception as exc:
        raise fits_error(fspath, _open_failure(compression, exc)) from exc

    with hdul:
        index, chosen = select_hdu(fspath, hdul, hdu, limit)
        header = chosen.header
        shape = tuple(int(n) for n in chosen.shape)
        where = plane_index(fspath, shape, plane)  # checked before any pixel is read
        if isinstance(chosen, fits.CompImageHDU):
            check_tile_compression(fspath, index, chosen, shape)
        bscale = _number(fspath, header, "BSCALE", 1.0)
        bzero = _number(fspath, header, "BZERO", 0.0)
        blank = header.get("BLANK")
        blank = blank if is_int(blank) else None
        try:
            image = _load(chosen, shape, where, bscale, bzero, blank)
        except Exception as exc:
            raise _data_error(fspath, index, chosen, compression, exc) from exc
        out_header = header.copy()

    if not np.isfinite(image).any():
        raise fits_error(fspath, f"all {image.size} pixels are non-finite (NaN or inf)")
    out_header["BITPIX"] = -32
    for key in ("BSCALE", "BZERO", "BLANK"):
        out_header.remove(key, ignore_missing=True, remove_all=True)
    return image, out_header, index


def _open_failure(compression, exc):
    """The reason to give when astropy cannot open a file that passed the structural walk."""
    if isinstance(exc, MemoryError):
        return f"not enough memory to read it ({describe(exc)})"
    if compression and isinstance(exc, (EOFError, OSError, lzma.LZMAError)):
        return f"truncated or corrupt {compression} data ({describe(exc)})"
    return f"corrupt or unreadable FITS file ({describe(exc)})"


def _claim_of(hdu):
    """A description of the data an HDU's header claims, or None."""
    # For a tile-compressed image, the claim is the table's; astropy has no public API for the table's header.
    target = getattr(hdu, "_bintable", None) if isinstance(hdu, fits.CompImageHDU) else hdu
    if target is None:
        return None
    try:
        h = target.header
        naxis = int(h["NAXIS"])
        axes = [int(h[f"NAXIS{i}"]) for i in range(1, naxis + 1)]
        bpp = abs(int(h["BITPIX"])) // 8
        return f"{' x '.join(map(str, axes))} values of {bpp} bytes ({bpp * math.prod(axes)} bytes)"
    except (KeyError, TypeError, ValueError):  # a missing or non-integer size keyword: the message goes without
        return None


def _data_error(fspath, index, chosen, compression, exc):
    claim = _claim_of(chosen)
    says = f"; header says {claim}" if claim else ""
    if isinstance(exc, MemoryError):
        return fits_error(fspath, f"not enough memory to read HDU {index}{says} ({describe(exc)})")
    where = f"{compression} data" if compression else "data"
    return fits_error(fspath, f"truncated or corrupt {where} in HDU {index}{says} ({describe(exc)})")


def _number(fspath, header, key, default):
    value = header.get(key, default)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise fits_error(fspath, f"invalid {key} value {value!r} in header")
    return float(value)


_CHUNK_PIXELS = 1 << 22  # rows are scaled in blocks of about this many pixels to bound temporary memory


def _load(chosen, shape, where, bscale, bzero, blank):
    """Read the selected plane of an HDU's data as physical float32 values (the only pixel access)."""
    raw = chosen.data
    if not isinstance(raw, np.ndarray) or raw.shape != shape:
        got = raw.shape if isinstance(raw, np.ndarray) else type(raw).__name__
        raise ValueError(f"data of shape {got} where the header says {shape}")
    return _physical_float32(raw[where], bscale, bzero, blank)


def _physical_float32(raw, bscale, bzero, blank):
    """One conversion from the (possibly memory-mapped, big-endian) raw array to native float32."""
    with np.errstate(all="ignore"):  # overflow to inf is a value, not an error
        return _convert(raw, bscale, bzero, blank)


def _convert(raw, bscale, bzero, blank):
    """``raw * bscale + bzero`` as float32, BLANK integer pixels as NaN (float64 in blocks of rows when scaled)."""
    out = np.empty(raw.shape, dtype=np.float32)
    integer_data = raw.dtype.kind in "iu"
    if blank is not None and not integer_data:
        blank = None
    if bscale == 1.0 and bzero == 0.0 and blank is None:
        np.copyto(out, raw, casting="unsafe")
        return out
    rows = max(1, _CHUNK_PIXELS // max(1, raw.shape[1]))
    for start in range(0, raw.shape[0], rows):
        block = raw[start : start + rows]
        tmp = block.astype(np.float64)
        if bscale != 1.0:
            tmp *= bscale
        if bzero != 0.0:
            tmp += bzero
        if blank is not None:
            tmp[block == blank] = np.nan
        out[start : start + rows] = tmp
    return out

