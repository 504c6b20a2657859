"""Reading FITS images robustly: one 2-D float32 image and its header from any FITS file an astronomer may have.

`read_fits` accepts plain, gzip/bzip2-compressed and tile-compressed (``.fz``) files, finds the first HDU with an
image, applies BSCALE/BZERO/BLANK, takes one plane of a cube, and converts whatever the file holds (big-endian
floats, 8/16/32/64-bit integers, pseudo-unsigned integers) into a native-endian C-contiguous float32 array.
Anything it cannot use raises `FitsReadError` (a `ValueError`) whose message names the file and the reason; no
other exception escapes for any file content.

`find_fits_files` lists the FITS files under a folder.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import math
import numbers
import contextlib
import os
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits

__all__ = ["FitsReadError", "read_fits", "read_fits_with_index", "find_fits_files", "FITS_SUFFIXES"]

#: Suffixes (lower case) that `find_fits_files` recognises, each also with ``.gz`` or ``.bz2`` appended.
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fz")
_ALL_SUFFIXES = tuple(s + c for s in FITS_SUFFIXES for c in ("", ".gz", ".bz2"))

_BLOCK = 2880  # FITS block size in bytes
_CARD = 80
_CHUNK_PIXELS = 1 << 22  # rows are scaled in blocks of about this many pixels to bound temporary memory

# File-level compression recognised by its first bytes (astropy decompresses all of these transparently).
_MAGIC = (
    (b"\x1f\x8b\x08", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"PK\x03\x04", "zip"),
    (b"\x1f\x9d", "lzw"),
)
_OPENERS = {"gzip": gzip.open, "bzip2": bz2.open, "xz": lzma.open}


class FitsReadError(ValueError):
    """A FITS file cannot be used as an image; the message names the file and the reason.

    Parameters
    ----------
    message : str
        Full message, ``"cannot read '<path>': <reason>"``.
    path : str, optional
        The file concerned.
    reason : str, optional
        Why it cannot be used (the part of the message after the file name).
    """

    def __init__(self, message, path=None, reason=None):
        super().__init__(message)
        self.path = path
        self.reason = reason

    def __reduce__(self):  # keep path/reason across pickling (DataLoader workers, multiprocessing)
        return (self.__class__, (str(self), self.path, self.reason))


def _error(path, reason):
    name = os.fspath(path)
    return FitsReadError(f"cannot read {name!r}: {reason}", path=name, reason=reason)


def _describe(exc):
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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
        failure = _error(fspath, f"not enough memory to read it ({_describe(exc)})")
        failure.__cause__ = exc
    except Exception as exc:  # anything astropy, numpy or a decompressor may raise on a bad file
        failure = _error(fspath, f"corrupt or unreadable FITS file ({_describe(exc)})")
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


# ----------------------------------------------------------------------------------------------------------------
# argument checks


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_read_args(hdu, plane) -> None:
    """Raise TypeError for an ``hdu`` or ``plane`` that :func:`read_fits` cannot take, before any file is opened."""
    _check_hdu_arg(hdu)
    _check_plane_arg(plane)


def _check_hdu_arg(hdu):
    if hdu is None or _is_int(hdu) or isinstance(hdu, str):
        return
    if isinstance(hdu, tuple) and len(hdu) == 2 and isinstance(hdu[0], str) and _is_int(hdu[1]):
        return
    raise TypeError(f"hdu must be None, an int index, an EXTNAME string or an (EXTNAME, EXTVER) tuple, not {hdu!r}")


def _check_plane_arg(plane):
    if plane is None or _is_int(plane):
        return
    if isinstance(plane, (tuple, list)) and all(_is_int(p) for p in plane):
        return
    raise TypeError(f"plane must be None, an int or a tuple of ints, not {plane!r}")


# ----------------------------------------------------------------------------------------------------------------
# the reader


def _read(fspath, hdu, plane):
    try:
        st = os.stat(fspath)
    except FileNotFoundError as exc:
        raise _error(fspath, "no such file") from exc
    except OSError as exc:
        raise _error(fspath, f"cannot access it ({_describe(exc)})") from exc
    if os.path.isdir(fspath):
        raise _error(fspath, "is a directory, not a FITS file")
    file_size = st.st_size
    if file_size == 0:
        raise _error(fspath, "empty file (0 bytes)")

    compression = _sniff(fspath)
    limit = None  # how many HDUs astropy may parse
    if compression is None or compression in _OPENERS:
        limit = _walk(fspath, file_size, compression, hdu)

    try:
        hdul = fits.open(
            fspath,
            mode="readonly",
            memmap=True,
            do_not_scale_image_data=True,  # scaling is done here, once, into float32
            lazy_load_hdus=True,
        )
    except Exception as exc:
        raise _error(fspath, _open_failure(compression, exc)) from exc

    with hdul:
        index, chosen = _select_hdu(fspath, hdul, hdu, limit)
        header = chosen.header
        shape = tuple(int(n) for n in chosen.shape)
        where = _plane_index(fspath, shape, plane)  # checked before any pixel is read
        if isinstance(chosen, fits.CompImageHDU):
            _check_tile_compression(fspath, index, chosen, shape)
        bscale = _number(fspath, header, "BSCALE", 1.0)
        bzero = _number(fspath, header, "BZERO", 0.0)
        blank = header.get("BLANK")
        blank = blank if _is_int(blank) else None
        try:
            image = _load(chosen, shape, where, bscale, bzero, blank)
        except Exception as exc:
            raise _data_error(fspath, index, chosen, compression, exc) from exc
        out_header = header.copy()

    if not np.isfinite(image).any():
        raise _error(fspath, f"all {image.size} pixels are non-finite (NaN or inf)")
    out_header["BITPIX"] = -32
    for key in ("BSCALE", "BZERO", "BLANK"):
        out_header.remove(key, ignore_missing=True, remove_all=True)
    return image, out_header, index


def _sniff(fspath):
    """Check the first bytes (decompressed if needed); return the file-level compression or None."""
    try:
        with open(fspath, "rb") as fh:
            head = fh.read(_CARD)
    except OSError as exc:
        raise _error(fspath, f"cannot open it ({_describe(exc)})") from exc
    compression = next((name for magic, name in _MAGIC if head.startswith(magic)), None)
    if compression in _OPENERS:
        try:
            with _OPENERS[compression](fspath, "rb") as fh:
                head = fh.read(_CARD)
        except Exception as exc:
            raise _error(fspath, f"truncated or corrupt {compression} data ({_describe(exc)})") from exc
        if not head:
            raise _error(fspath, f"empty file ({compression} stream holds no data)")
    elif compression is not None:
        return compression  # zip / LZW: leave the checks to astropy
    if not head.startswith(b"SIMPLE"):
        shown = head[:20].decode("ascii", "replace").encode("unicode_escape").decode("ascii")
        what = f"{compression}-compressed data" if compression else "the file"
        raise _error(fspath, f"not a FITS file ({what} does not start with 'SIMPLE  =' but with {shown!r})")
    return compression


def _open_failure(compression, exc):
    """The reason to give when astropy cannot open a file that passed the structural walk."""
    if isinstance(exc, MemoryError):
        return f"not enough memory to read it ({_describe(exc)})"
    if compression and isinstance(exc, (EOFError, OSError, lzma.LZMAError)):
        return f"truncated or corrupt {compression} data ({_describe(exc)})"
    return f"corrupt or unreadable FITS file ({_describe(exc)})"


# ----------------------------------------------------------------------------------------------------------------
# structural walk: checks astropy does not make


_MAX_AXES = 999  # the FITS standard's limit for NAXIS, TFIELDS, ZNAXIS
_MAX_HEADER_BLOCKS = 10_000
_MAX_HDUS = 100_000
_BITPIX = (8, 16, 32, 64, -32, -64)
_STRUCT_KEYS = {
    "BITPIX", "NAXIS", "PCOUNT", "GCOUNT", "GROUPS", "TFIELDS", "ZIMAGE", "ZNAXIS", "XTENSION", "EXTNAME", "EXTVER",
}
_STRUCT_PREFIXES = ("NAXIS", "ZNAXIS", "ZTILE")


def _walk(fspath, file_size, compression, hdu):
    """Check the structural keywords of the headers astropy will parse, before astropy parses them.

    astropy trusts them: ``NAXIS = 6479602929`` or ``TFIELDS = 1139935`` makes it loop for hours, and data
    beyond the end of the file is only noticed (if at all) when the pixels are read. This walk reads the
    structural cards of each header up to the HDU `read_fits` will use, refuses impossible values, unreadable
    headers and data that would run past the end of the file, and returns how many HDUs it checked: astropy
    is not allowed to look further. Only impossible files are refused, never unusual ones.
    """
    opener = open if compression is None else _OPENERS[compression]
    with opener(fspath, "rb") as fh:
        offset = 0
        for index in range(_MAX_HDUS):
            cards, header_bytes, status = _read_structural_header(fh)
            if status == "eof":
                return index
            if status != "ok":
                where = "header" if index == 0 else f"header of HDU {index}"
                raise _error(fspath, f"truncated or corrupt {where} (no END card before the end of the file)")
            nbytes, image_axes, describe = _geometry(fspath, index, cards)
            data_offset = offset + header_bytes
            if compression is None:
                if data_offset + nbytes > file_size:
                    has = f"file has only {file_size} bytes"
                    raise _error(fspath, _size_message(describe, nbytes, data_offset, index, has))
            else:
                got = _skip(fh, nbytes)
                if got < nbytes:
                    has = f"the {compression} data end {got} bytes into it"
                    raise _error(fspath, _size_message(describe, nbytes, data_offset, index, has))
            if _is_target(index, cards, image_axes, hdu):
                return index + 1
            offset = data_offset + nbytes + (-nbytes) % _BLOCK
            if compression is None:
                if offset >= file_size:
                    return index + 1
                fh.seek(offset)
            else:
                _skip(fh, (-nbytes) % _BLOCK)
    return _MAX_HDUS


def _read_structural_header(fh):
    """Read one header; return (structural cards, bytes read, "ok" | "eof" | "no-end")."""
    cards = {}
    for nblock in range(1, _MAX_HEADER_BLOCKS + 1):
        block = fh.read(_BLOCK)
        if len(block) < _BLOCK:
            return cards, (nblock - 1) * _BLOCK + len(block), "eof" if nblock == 1 and not block else "no-end"
        for i in range(0, _BLOCK, _CARD):
            card = block[i : i + _CARD]
            key = card[:8].rstrip().decode("ascii", "replace")
            if key == "END":
                return cards, nblock * _BLOCK, "ok"
            if card[8:10] == b"= " and (key in _STRUCT_KEYS or key.startswith(_STRUCT_PREFIXES)) and key not in cards:
                cards[key] = _card_value(card[10:])
    return cards, _MAX_HEADER_BLOCKS * _BLOCK, "no-end"


def _card_value(text):
    text = text.strip()
    if text.startswith(b"'"):
        end = text.find(b"'", 1)
        return text[1 : end if end > 0 else None].decode("ascii", "replace").strip()
    text = text.split(b"/")[0].strip()
    if text in (b"T", b"F"):
        return text == b"T"
    try:
        return int(text)
    except ValueError:
        return None


def _geometry(fspath, index, cards):
    """(data bytes, image axes in FITS order or None, description) from an HDU's structural cards.

    The data size is computed as astropy computes it; FitsReadError for impossible or unreadable values.
    """
    for key in ("NAXIS", "TFIELDS", "ZNAXIS"):
        value = cards.get(key)
        if _is_int(value) and not 0 <= value <= _MAX_AXES:
            raise _error(fspath, f"corrupt header: HDU {index} says {key} = {value}, outside 0..{_MAX_AXES}")
    naxis = cards.get("NAXIS", 0)
    if not _is_int(naxis):
        raise _error(fspath, f"corrupt header: HDU {index} has no integer NAXIS")
    if naxis == 0:
        return 0, None, "no data"
    bitpix = cards.get("BITPIX")
    axes = [cards.get(f"NAXIS{i}") for i in range(1, naxis + 1)]
    pcount, gcount = cards.get("PCOUNT", 0), cards.get("GCOUNT", 1)
    named = [("BITPIX", bitpix), *((f"NAXIS{i}", n) for i, n in enumerate(axes, 1)), ("PCOUNT", pcount)]
    named.append(("GCOUNT", gcount))
    for key, value in named:
        if value is None:
            raise _error(fspath, f"corrupt header: HDU {index} has no integer {key}")
        if not _is_int(value) or (value < 0 and key != "BITPIX"):
            raise _error(fspath, f"corrupt header: HDU {index} has {key} = {value!r}")
    groups = index == 0 and cards.get("GROUPS") is True and axes[0] == 0
    pixels = axes[1:] if groups else axes  # random groups: NAXIS1 = 0 is a marker
    nbytes = abs(bitpix) * gcount * (pcount + math.prod(pixels)) // 8
    describe = f"{' x '.join(map(str, pixels))} values of {abs(bitpix) // 8} bytes"

    xtension = cards.get("XTENSION")
    image_axes = None
    if index == 0 and not groups:
        image_axes = axes
    elif isinstance(xtension, str) and xtension.upper() == "IMAGE":
        image_axes = axes
    elif isinstance(xtension, str) and xtension.upper() == "BINTABLE" and cards.get("ZIMAGE") is True:
        image_axes = _tiles_check(fspath, index, cards, axes)
    return nbytes, image_axes, describe


def _tiles_check(fspath, index, cards, axes):
    """Image axes of a tile-compressed image; refuses an image size its table of tiles cannot hold."""
    znaxis = cards.get("ZNAXIS")
    if not _is_int(znaxis):
        return None
    zaxes = [cards.get(f"ZNAXIS{i}") for i in range(1, znaxis + 1)]
    if not all(_is_int(n) and n > 0 for n in zaxes) or len(axes) != 2:
        return zaxes if all(_is_int(n) for n in zaxes) else None
    tiles = [cards.get(f"ZTILE{i}", zaxes[0] if i == 1 else 1) for i in range(1, znaxis + 1)]
    if not all(_is_int(t) and t > 0 for t in tiles):
        return zaxes
    ntiles = math.prod(-(-n // t) for n, t in zip(zaxes, tiles))
    if ntiles != axes[1]:
        dims = " x ".join(map(str, zaxes))
        raise _error(
            fspath,
            f"corrupt header: HDU {index} says a {dims} compressed image in {ntiles} tiles, "
            f"but its table has {axes[1]} rows",
        )
    return zaxes


def _is_target(index, cards, image_axes, hdu):
    """Whether the walk can stop after this HDU: it is the one `read_fits` will read."""
    if hdu is None:
        return image_axes is not None and len(image_axes) >= 2 and min(image_axes) > 0 and min(image_axes[:2]) >= 2
    if _is_int(hdu):
        return hdu >= 0 and index == hdu
    name, ver = (hdu, None) if isinstance(hdu, str) else hdu
    extname = cards.get("EXTNAME")
    if not isinstance(extname, str) or extname.strip().upper() != name.strip().upper():
        return False
    return ver is None or cards.get("EXTVER", 1) == ver


_TILE_CODECS = ("RICE_1", "RICE_ONE", "GZIP_1", "GZIP_2", "PLIO_1", "HCOMPRESS_1", "NOCOMPRESS")
_MAX_TILE_RATIO = 100_000  # no codec shrinks a real image more than this (deflate's limit is 1032)


def _check_tile_compression(fspath, index, hdu, shape):
    """Refuse tile-compression settings that astropy's C decoders do not check (they can crash the process)."""
    table = getattr(hdu, "_bintable", None)
    header = getattr(table, "header", None)
    if header is None:
        return
    ctype = header.get("ZCMPTYPE")
    if ctype not in _TILE_CODECS:
        raise _error(fspath, f"HDU {index}: unsupported tile compression ZCMPTYPE = {ctype!r}")
    settings = {}
    for i in range(1, _MAX_AXES + 1):
        name = header.get(f"ZNAME{i}")
        if name is None:
            break
        settings[str(name).strip().upper()] = header.get(f"ZVAL{i}")
    if ctype in ("RICE_1", "RICE_ONE"):
        bytepix, blocksize = settings.get("BYTEPIX", 4), settings.get("BLOCKSIZE", 32)
        if bytepix not in (1, 2, 4) or not _is_int(bytepix):
            raise _error(fspath, f"corrupt header: HDU {index} says RICE BYTEPIX = {bytepix!r} (must be 1, 2 or 4)")
        if not _is_int(blocksize) or not 1 <= blocksize <= 1 << 16:
            raise _error(fspath, f"corrupt header: HDU {index} says RICE BLOCKSIZE = {blocksize!r}")
    zbitpix = header.get("ZBITPIX")
    rows, width, heap = header.get("NAXIS2"), header.get("NAXIS1"), header.get("PCOUNT", 0)
    if zbitpix in _BITPIX and all(_is_int(n) for n in (rows, width, heap)):
        compressed = rows * width + heap
        nbytes = math.prod(shape) * abs(zbitpix) // 8
        if nbytes > _MAX_TILE_RATIO * (compressed + _BLOCK):
            raise _error(
                fspath,
                f"corrupt header: HDU {index} says a {' x '.join(map(str, shape[::-1]))} image "
                f"({nbytes} bytes) compressed into only {compressed} bytes",
            )
    try:
        _check_tile_streams(fspath, index, table, tuple(int(t) for t in hdu.tile_shape), shape, ctype)
    except FitsReadError:
        raise
    except Exception:  # astropy's internals changed, or something astropy itself will report when decoding
        pass


_HEAP_ITEM = {"B": 1, "I": 2, "J": 4, "K": 8, "E": 4, "D": 8}


def _check_tile_streams(fspath, index, table, tile_shape, shape, ctype):
    """Check the tile descriptors, and the size each HCOMPRESS tile stream announces, against the image.

    astropy's HCOMPRESS decoder allocates a tile of the size the header implies but fills as many pixels as
    the stream's own header says, so a corrupt stream corrupts memory (glibc aborts the process).
    """
    names = table.data.dtype.names
    if "COMPRESSED_DATA" not in names:
        return
    column = names.index("COMPRESSED_DATA") + 1
    tform = str(table.header.get(f"TFORM{column}", "")).strip().upper().lstrip("0123456789")
    item = _HEAP_ITEM.get(tform[1:2]) if tform[:1] in ("P", "Q") else None
    h = table.header
    heap_size = int(h["NAXIS1"]) * int(h["NAXIS2"]) + int(h.get("PCOUNT", 0)) - int(table._theap)
    descriptors = np.asarray(table.data["COMPRESSED_DATA"], dtype=np.int64).reshape(-1, 2)
    if item is None or len(shape) != len(tile_shape):
        return
    grid = [-(-n // t) for n, t in zip(shape, tile_shape)]
    if len(descriptors) != math.prod(grid):
        expected = math.prod(grid)
        raise _error(fspath, f"corrupt tile table: HDU {index} has {len(descriptors)} tiles, expected {expected}")
    counts, offsets = descriptors[:, 0], descriptors[:, 1]
    if (counts < 0).any() or (offsets < 0).any() or ((offsets + counts * item) > heap_size).any():
        raise _error(fspath, f"corrupt tile table: HDU {index} has tiles pointing outside its {heap_size}-byte heap")
    if ctype != "HCOMPRESS_1" or item != 1:
        return
    heap = table._get_raw_data(heap_size, np.uint8, table._data_offset + table._theap)
    for row, corner in enumerate(np.ndindex(*grid)):
        count, offset = int(counts[row]), int(offsets[row])
        if count == 0:
            continue  # stored another way (GZIP_COMPRESSED_DATA / UNCOMPRESSED_DATA)
        dims = [min(t, n - c * t) for n, t, c in zip(shape, tile_shape, corner)]
        head = bytes(heap[offset : offset + min(count, 14)])
        if len(head) < 10 or head[:2] != b"\xdd\x99":
            raise _error(fspath, f"corrupt HCOMPRESS data in HDU {index}: tile {row} does not start like one")
        ny, nx = int.from_bytes(head[2:6], "big", signed=True), int.from_bytes(head[6:10], "big", signed=True)
        if nx != dims[-1] or ny * nx != math.prod(dims):
            raise _error(
                fspath,
                f"corrupt HCOMPRESS data in HDU {index}: tile {row} says {ny} x {nx} pixels, "
                f"the header {' x '.join(map(str, dims))}",
            )


def _skip(fh, nbytes, chunk=1 << 20):
    """Read and discard ``nbytes`` from a stream; return how many were there."""
    done = 0
    while done < nbytes:
        got = len(fh.read(min(chunk, nbytes - done)))
        if not got:
            break
        done += got
    return done


def _size_message(describe, nbytes, data_offset, index, has):
    return (
        f"truncated or corrupt: header of HDU {index} says {describe} "
        f"({nbytes} bytes of data from offset {data_offset}) but {has}"
    )


def _claim_of(hdu):
    """A description of the data an HDU's header claims, or None."""
    target = getattr(hdu, "_bintable", None) if isinstance(hdu, fits.CompImageHDU) else hdu
    if target is None:
        return None
    try:
        h = target.header
        naxis = int(h["NAXIS"])
        axes = [int(h[f"NAXIS{i}"]) for i in range(1, naxis + 1)]
        bpp = abs(int(h["BITPIX"])) // 8
        return f"{' x '.join(map(str, axes))} values of {bpp} bytes ({bpp * math.prod(axes)} bytes)"
    except Exception:
        return None


def _data_error(fspath, index, chosen, compression, exc):
    claim = _claim_of(chosen)
    says = f"; header says {claim}" if claim else ""
    if isinstance(exc, MemoryError):
        return _error(fspath, f"not enough memory to read HDU {index}{says} ({_describe(exc)})")
    where = f"{compression} data" if compression else "data"
    return _error(fspath, f"truncated or corrupt {where} in HDU {index}{says} ({_describe(exc)})")


def _number(fspath, header, key, default):
    value = header.get(key, default)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise _error(fspath, f"invalid {key} value {value!r} in header")
    return float(value)


# ----------------------------------------------------------------------------------------------------------------
# choosing the HDU


def _is_image_hdu(h):
    return isinstance(h, (fits.PrimaryHDU, fits.ImageHDU)) and not isinstance(h, fits.GroupsHDU)


def _kind(h):
    if type(h).__name__ == "_CorruptedHDU":
        return "corrupted HDU"
    if isinstance(h, fits.GroupsHDU):
        return "random-groups HDU"
    if isinstance(h, (fits.BinTableHDU, fits.TableHDU)):
        return f"table ({type(h).__name__})"
    return type(h).__name__


def _label(index, h):
    name = getattr(h, "name", "") or ""
    return f"HDU {index} ({name})" if name and name != "PRIMARY" else f"HDU {index}"


def _usable(h):
    """'ok', 'empty' or '1-D' for an image HDU, judged from its header (no data read)."""
    shape = tuple(int(n) for n in h.shape)
    if not shape or 0 in shape:
        return "empty", shape
    if len(shape) < 2 or shape[-1] < 2 or shape[-2] < 2:
        return "1-D", shape
    return "ok", shape


def _one_d_reason(label, shape):
    return f"{label} holds 1-D data (shape {shape}), not a 2-D image"


def _select_hdu(fspath, hdul, hdu, limit=None):
    if hdu is None:
        seen, one_d = [], None
        for index, h in _iter_hdus(hdul, limit):
            if _is_image_hdu(h):
                status, shape = _usable(h)
                if status == "ok":
                    return index, h
                if status == "1-D" and one_d is None:
                    one_d = _one_d_reason(_label(index, h), shape)
                seen.append(f"{type(h).__name__} ({'empty' if status == 'empty' else '1-D'})")
            else:
                seen.append(_kind(h))
        if one_d is not None:
            raise _error(fspath, one_d)
        found = ", ".join(seen) if seen else "nothing readable"
        raise _error(fspath, f"no image HDU (found: {found})")

    index, h = _resolve_hdu(fspath, hdul, hdu, limit)
    label = _label(index, h)
    if not _is_image_hdu(h):
        raise _error(fspath, f"{label} (hdu={hdu!r}) is a {_kind(h)}, not an image")
    status, shape = _usable(h)
    if status == "empty":
        raise _error(fspath, f"{label} (hdu={hdu!r}) has no image data")
    if status == "1-D":
        raise _error(fspath, _one_d_reason(f"{label} (hdu={hdu!r})", shape))
    return index, h


def _iter_hdus(hdul, limit):
    """Iterate over (index, HDU) lazily: at most ``limit`` HDUs (those the structural walk checked).

    Also stops if astropy goes back to an earlier header: with some corrupt gzip-compressed files it seeks
    back to the start after a corrupted HDU and would yield the same HDUs for ever (so ``len(hdul)`` and
    ``hdul.index_of`` never return); header offsets must grow.
    """
    last = -1
    index = 0
    while index < (_MAX_HDUS if limit is None else limit):
        try:
            h = hdul[index]
        except IndexError:
            return
        loc = getattr(h, "_header_offset", None)
        if _is_int(loc):
            if loc <= last:
                return
            last = loc
        yield index, h
        index += 1


def _resolve_hdu(fspath, hdul, hdu, limit=None):
    """(index, HDU) for an explicit ``hdu`` argument."""
    if _is_int(hdu):
        hdus = []
        for index, h in _iter_hdus(hdul, limit):
            if index == hdu:
                return index, h
            hdus.append(h)
        n = len(hdus)
        if -n <= hdu < 0:
            return n + hdu, hdus[hdu]
        raise _error(fspath, f"hdu={hdu!r} out of range: the file has {n} HDU{'s' if n != 1 else ''}")
    name, ver = (hdu, None) if isinstance(hdu, str) else hdu
    names = []
    for index, h in _iter_hdus(hdul, limit):
        extname = str(getattr(h, "name", "") or "")
        names.append(extname)
        if extname.strip().upper() == name.strip().upper() and (ver is None or getattr(h, "ver", 1) == ver):
            return index, h
    if isinstance(hdu, str) and hdu.strip().isdigit():
        return _resolve_hdu(fspath, hdul, int(hdu), limit)
    raise _error(fspath, f"no HDU named hdu={hdu!r} (EXTNAMEs present: {[n for n in names if n]})")


# ----------------------------------------------------------------------------------------------------------------
# planes and conversion


def _plane_index(fspath, shape, plane):
    """Index (a tuple) into the leading (non-spatial) axes of an array of ``shape`` that gives one 2-D plane."""
    lead = shape[:-2]
    kept = [axis for axis, n in enumerate(lead) if n != 1]
    if plane is None:
        given = ()
    elif _is_int(plane):
        given = (int(plane),)
    else:
        given = tuple(int(p) for p in plane)

    if len(given) == len(lead) and len(given) > len(kept):
        axes = list(range(len(lead)))  # a tuple covering every leading axis, length-1 ones included
    elif not kept:
        if any(p not in (0, -1) for p in given) or len(given) > 1:
            raise _error(
                fspath, f"plane={plane!r} out of range: the image is 2-D (shape {shape}), it has only plane 0"
            )
        axes, given = [], ()
    elif len(given) <= len(kept):
        axes = kept[: len(given)]
    else:
        raise _error(
            fspath,
            f"plane={plane!r} out of range: the data (shape {shape}) has only {len(kept)} non-spatial axes "
            f"of length > 1",
        )

    index = [n // 2 for n in lead]  # default: the middle plane of every leading axis (0 for length-1 axes)
    for axis, p in zip(axes, given):
        n = lead[axis]
        if not -n <= p < n:
            raise _error(
                fspath, f"plane={plane!r} out of range: index {p} on an axis of length {n} (shape {shape})"
            )
        index[axis] = p % n
    return tuple(index)


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
    out = np.empty(raw.shape, dtype=np.float32)
    is_int = raw.dtype.kind in "iu"
    if blank is not None and not is_int:
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


# ----------------------------------------------------------------------------------------------------------------
# finding files


def find_fits_files(root, *, confine_to=None):
    """List the FITS files under a folder, recursively.

    Parameters
    ----------
    root : str or os.PathLike
        Folder to search. A single file is returned as a one-element list if its name has a FITS suffix.
    confine_to : path or sequence of paths, optional
        Leave out files whose real path (symbolic links followed) lies outside all of these folders.

    Returns
    -------
    list of pathlib.Path
        Sorted paths (starting with ``root``) of the files whose names end, case-insensitively, in ``.fits``,
        ``.fit``, ``.fts`` or ``.fz``, each optionally followed by ``.gz`` or ``.bz2``. Hidden files and
        folders (names starting with ``.``) below ``root`` are skipped, and symbolic links to folders are not
        followed. Files are not opened: `read_fits` decides whether they are usable.

    Raises
    ------
    FileNotFoundError
        If ``root`` does not exist.
    """
    root = Path(root)
    if root.is_file():
        return [root] if _has_fits_suffix(root.name) else []
    if not root.is_dir():
        raise FileNotFoundError(f"no such folder: {os.fspath(root)!r}")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found.extend(Path(dirpath) / f for f in filenames if not f.startswith(".") and _has_fits_suffix(f))
    if confine_to is not None:
        found = [f for f in found if is_within(f, confine_to)]
    return sorted(found)


def is_within(path, roots) -> bool:
    """Whether ``path``'s real location (symbolic links and ``..`` resolved) lies inside one of ``roots`` (a path
    or a sequence of paths); False for a path that cannot be resolved (a symlink loop)."""
    roots = [roots] if isinstance(roots, (str, os.PathLike)) else list(roots)
    try:
        real = Path(path).resolve()
        return any(real == r or real.is_relative_to(r) for r in (Path(r).resolve() for r in roots))
    except (OSError, RuntimeError):
        return False


def _has_fits_suffix(name):
    return name.lower().endswith(_ALL_SUFFIXES)
