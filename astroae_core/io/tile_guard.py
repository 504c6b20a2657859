"""Checks of a tile-compressed (``.fz``) image that astropy's C decoders do not make.

A tile-compressed image is a binary table of compressed tiles. astropy hands each tile to a C decoder with
the parameters the header gives, and settings the decoders do not check can crash the process instead of
raising (an HCOMPRESS stream that announces more pixels than its tile holds corrupts memory: glibc aborts).
:func:`check_tile_compression` runs after astropy has parsed the headers and before any tile is decoded, and
raises :class:`~astroae_core.io.FitsReadError` for such settings.

astropy has no public access to the binary table behind a :class:`~astropy.io.fits.CompImageHDU` (its header,
the heap bytes); those two are read through its private ``_bintable`` and ``_get_raw_data``. Everything else
comes from public API (``compressed_data``, ``fileinfo``, ``tile_shape``, the table header's ``THEAP``).
"""

from __future__ import annotations

import math

import numpy as np
from astropy.io.fits import VerifyError

from astroae_core.io.errors import FitsReadError, fits_error
from astroae_core.io.guard import BITPIX_VALUES, BLOCK, MAX_AXES, is_int

__all__ = ["check_tile_compression"]

_TILE_CODECS = ("RICE_1", "RICE_ONE", "GZIP_1", "GZIP_2", "PLIO_1", "HCOMPRESS_1", "NOCOMPRESS")
_MAX_TILE_RATIO = 100_000  # no codec shrinks a real image more than this (deflate's limit is 1032)
_HEAP_ITEM = {"B": 1, "I": 2, "J": 4, "K": 8, "E": 4, "D": 8}  # bytes per heap item of a P/Q column
_HCOMPRESS_MAGIC = b"\xdd\x99"


def check_tile_compression(fspath, index: int, hdu, shape: tuple[int, ...]) -> None:
    """Refuse tile-compression settings that astropy's C decoders do not check (they can crash the process).

    Parameters
    ----------
    fspath : str
        The file (for messages).
    index : int
        The HDU's index (for messages).
    hdu : astropy.io.fits.CompImageHDU
        The tile-compressed HDU, headers parsed, no tile decoded yet.
    shape : tuple of int
        The image's shape (numpy order) as its header gives it.

    Raises
    ------
    FitsReadError
        For an unknown ZCMPTYPE, impossible RICE parameters, an image far larger than any codec could have
        compressed into the table, a tile table that does not match the image or points outside its heap, or
        an HCOMPRESS tile whose stream announces another size than its tile.
    """
    table = getattr(hdu, "_bintable", None)  # no public API for the table header (see the module docstring)
    header = getattr(table, "header", None)
    if header is None:
        return
    ctype = header.get("ZCMPTYPE")
    if ctype not in _TILE_CODECS:
        raise fits_error(fspath, f"HDU {index}: unsupported tile compression ZCMPTYPE = {ctype!r}")
    if ctype in ("RICE_1", "RICE_ONE"):
        _check_rice(fspath, index, header)
    _check_ratio(fspath, index, header, shape)
    try:
        tile_shape = tuple(int(t) for t in hdu.tile_shape)
        tiles = _tile_table(fspath, index, hdu, header, tile_shape, shape)
        if tiles is not None and ctype == "HCOMPRESS_1" and tiles["item"] == 1:
            _check_hcompress_streams(fspath, index, hdu, tiles, tile_shape, shape)
    except FitsReadError:  # a ValueError, but the verdict of these checks, not a failure to inspect
        raise
    except (AttributeError, IndexError, KeyError, OSError, TypeError, ValueError, VerifyError):
        # The table is too broken to inspect (a missing or non-integer NAXIS1/PCOUNT/THEAP, a TFORM astropy does
        # not recognise, descriptors it cannot convert, a heap beyond the file): astropy reads the same table
        # through the same code when it decodes, fails there the same way, and the reader reports that failure
        # as a FitsReadError. An AttributeError means astropy's private layout changed: only this extra check is
        # lost then.
        return


def _compression_settings(header) -> dict:
    """The ZNAMEi / ZVALi pairs of a compressed table's header, names upper-cased."""
    settings = {}
    for i in range(1, MAX_AXES + 1):
        name = header.get(f"ZNAME{i}")
        if name is None:
            break
        settings[str(name).strip().upper()] = header.get(f"ZVAL{i}")
    return settings


def _check_rice(fspath, index, header) -> None:
    settings = _compression_settings(header)
    bytepix, blocksize = settings.get("BYTEPIX", 4), settings.get("BLOCKSIZE", 32)
    if bytepix not in (1, 2, 4) or not is_int(bytepix):
        raise fits_error(fspath, f"corrupt header: HDU {index} says RICE BYTEPIX = {bytepix!r} (must be 1, 2 or 4)")
    if not is_int(blocksize) or not 1 <= blocksize <= 1 << 16:
        raise fits_error(fspath, f"corrupt header: HDU {index} says RICE BLOCKSIZE = {blocksize!r}")


def _check_ratio(fspath, index, header, shape) -> None:
    """Refuse an image far larger than its table could hold compressed (a header that lies about its size)."""
    zbitpix = header.get("ZBITPIX")
    rows, width, heap = header.get("NAXIS2"), header.get("NAXIS1"), header.get("PCOUNT", 0)
    if zbitpix in BITPIX_VALUES and all(is_int(n) for n in (rows, width, heap)):
        compressed = rows * width + heap
        nbytes = math.prod(shape) * abs(zbitpix) // 8
        if nbytes > _MAX_TILE_RATIO * (compressed + BLOCK):
            raise fits_error(
                fspath,
                f"corrupt header: HDU {index} says a {' x '.join(map(str, shape[::-1]))} image "
                f"({nbytes} bytes) compressed into only {compressed} bytes",
            )


def _tile_table(fspath, index, hdu, header, tile_shape, shape) -> dict | None:
    """Check the tile descriptors against the image and the heap; return them, or None when not checkable.

    Returns ``{"grid", "counts", "offsets", "item", "heap_size", "theap"}``: tiles per axis, each tile's item
    count and heap offset, the bytes per item, the heap's size and where it starts after the table rows.
    """
    table = hdu.compressed_data
    names = table.dtype.names
    if "COMPRESSED_DATA" not in names:
        return None
    column = names.index("COMPRESSED_DATA") + 1
    tform = str(header.get(f"TFORM{column}", "")).strip().upper().lstrip("0123456789")
    item = _HEAP_ITEM.get(tform[1:2]) if tform[:1] in ("P", "Q") else None
    theap = int(header.get("THEAP", int(header["NAXIS1"]) * int(header["NAXIS2"])))
    heap_size = int(header["NAXIS1"]) * int(header["NAXIS2"]) + int(header.get("PCOUNT", 0)) - theap
    descriptors = np.asarray(table["COMPRESSED_DATA"], dtype=np.int64).reshape(-1, 2)
    if item is None or len(shape) != len(tile_shape):
        return None
    grid = [-(-n // t) for n, t in zip(shape, tile_shape)]
    if len(descriptors) != math.prod(grid):
        expected = math.prod(grid)
        raise fits_error(fspath, f"corrupt tile table: HDU {index} has {len(descriptors)} tiles, expected {expected}")
    counts, offsets = descriptors[:, 0], descriptors[:, 1]
    if (counts < 0).any() or (offsets < 0).any() or ((offsets + counts * item) > heap_size).any():
        raise fits_error(
            fspath, f"corrupt tile table: HDU {index} has tiles pointing outside its {heap_size}-byte heap"
        )
    return {"grid": grid, "counts": counts, "offsets": offsets, "item": item, "heap_size": heap_size,
            "theap": theap}


def _check_hcompress_streams(fspath, index, hdu, tiles, tile_shape, shape) -> None:
    """Check the size each HCOMPRESS tile stream announces against its tile.

    astropy's HCOMPRESS decoder allocates a tile of the size the header implies but fills as many pixels as
    the stream's own header says, so a corrupt stream corrupts memory (glibc aborts the process).
    """
    start = hdu.fileinfo()["datLoc"] + tiles["theap"]
    # No public API reads a table's heap without decoding it (see the module docstring).
    heap = hdu._bintable._get_raw_data(tiles["heap_size"], np.uint8, start)
    for row, corner in enumerate(np.ndindex(*tiles["grid"])):
        count, offset = int(tiles["counts"][row]), int(tiles["offsets"][row])
        if count == 0:
            continue  # stored another way (GZIP_COMPRESSED_DATA / UNCOMPRESSED_DATA)
        dims = [min(t, n - c * t) for n, t, c in zip(shape, tile_shape, corner)]
        head = bytes(heap[offset : offset + min(count, 14)])
        if len(head) < 10 or head[:2] != _HCOMPRESS_MAGIC:
            raise fits_error(fspath, f"corrupt HCOMPRESS data in HDU {index}: tile {row} does not start like one")
        ny, nx = int.from_bytes(head[2:6], "big", signed=True), int.from_bytes(head[6:10], "big", signed=True)
        if nx != dims[-1] or ny * nx != math.prod(dims):
            raise fits_error(
                fspath,
                f"corrupt HCOMPRESS data in HDU {index}: tile {row} says {ny} x {nx} pixels, "
                f"the header {' x '.join(map(str, dims))}",
            )
