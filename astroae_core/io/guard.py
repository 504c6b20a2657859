"""The structural guard: a hand-written pre-parse of FITS headers, run before astropy touches a file.

A FITS file says how big it is in its own headers, and astropy believes it. A corrupt or hostile file can
therefore hang the reader or make it allocate far more than the file holds: ``NAXIS = 6479602929`` or
``TFIELDS = 1139935`` makes astropy loop for hours over keywords, and an image larger than the file is only
noticed when the pixels are read (after a memory map or an allocation of that size). This module is the
defence. It reads the header blocks itself (80-byte cards, 2880-byte blocks; only the structural keywords are
parsed), walks from HDU to HDU up to the one :func:`~astroae_core.io.read_fits` will use, and raises
:class:`~astroae_core.io.FitsReadError` for impossible values, headers with no END card, a tile-compressed
image its table of tiles cannot hold, and data that would run past the end of the file (or of the decompressed
stream). It returns how many HDUs it checked, and the reader lets astropy look no further. Only impossible
files are refused, never unusual ones.

:func:`sniff_compression` runs first: it recognises whole-file compression by its magic bytes and checks that
what is (or decompresses to) the first card is ``SIMPLE``.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import math
import numbers

from astroae_core.io.errors import describe, fits_error

__all__ = ["BITPIX_VALUES", "BLOCK", "MAX_AXES", "MAX_HDUS", "OPENERS", "check_structure", "is_int",
           "sniff_compression"]

BLOCK = 2880  # FITS block size in bytes
_CARD = 80

# File-level compression recognised by its first bytes (astropy decompresses all of these transparently).
_MAGIC = (
    (b"\x1f\x8b\x08", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"PK\x03\x04", "zip"),
    (b"\x1f\x9d", "lzw"),
)
#: The whole-file compressions this module can read through (zip and LZW are left to astropy).
OPENERS = {"gzip": gzip.open, "bzip2": bz2.open, "xz": lzma.open}

MAX_AXES = 999  # the FITS standard's limit for NAXIS, TFIELDS, ZNAXIS
_MAX_HEADER_BLOCKS = 10_000
MAX_HDUS = 100_000
BITPIX_VALUES = (8, 16, 32, 64, -32, -64)
_STRUCT_KEYS = {
    "BITPIX", "NAXIS", "PCOUNT", "GCOUNT", "GROUPS", "TFIELDS", "ZIMAGE", "ZNAXIS", "XTENSION", "EXTNAME", "EXTVER",
}
_STRUCT_PREFIXES = ("NAXIS", "ZNAXIS", "ZTILE")


def is_int(value) -> bool:
    """Whether a header value (or an argument) is an integer; ``True``/``False`` are not."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def sniff_compression(fspath) -> str | None:
    """Check the first bytes (decompressed if needed); return the file-level compression or None.

    Returns
    -------
    str or None
        ``"gzip"``, ``"bzip2"``, ``"xz"``, ``"zip"`` or ``"lzw"``; None for a plain file.

    Raises
    ------
    FitsReadError
        When the file cannot be opened, its compressed stream is corrupt or empty, or it does not start with
        ``SIMPLE`` (zip and LZW files are not decompressed here: astropy checks those).
    """
    try:
        with open(fspath, "rb") as fh:
            head = fh.read(_CARD)
    except OSError as exc:
        raise fits_error(fspath, f"cannot open it ({describe(exc)})") from exc
    compression = next((name for magic, name in _MAGIC if head.startswith(magic)), None)
    if compression in OPENERS:
        try:
            with OPENERS[compression](fspath, "rb") as fh:
                head = fh.read(_CARD)
        except Exception as exc:
            raise fits_error(fspath, f"truncated or corrupt {compression} data ({describe(exc)})") from exc
        if not head:
            raise fits_error(fspath, f"empty file ({compression} stream holds no data)")
    elif compression is not None:
        return compression  # zip / LZW: leave the checks to astropy
    if not head.startswith(b"SIMPLE"):
        shown = head[:20].decode("ascii", "replace").encode("unicode_escape").decode("ascii")
        what = f"{compression}-compressed data" if compression else "the file"
        raise fits_error(fspath, f"not a FITS file ({what} does not start with 'SIMPLE  =' but with {shown!r})")
    return compression


def check_structure(fspath, file_size: int, compression: str | None, hdu) -> int:
    """Check the structural keywords of the headers astropy will parse, before astropy parses them.

    astropy trusts them: ``NAXIS = 6479602929`` or ``TFIELDS = 1139935`` makes it loop for hours, and data
    beyond the end of the file is only noticed (if at all) when the pixels are read. This walk reads the
    structural cards of each header up to the HDU `read_fits` will use, refuses impossible values, unreadable
    headers and data that would run past the end of the file, and returns how many HDUs it checked: astropy
    is not allowed to look further. Only impossible files are refused, never unusual ones.

    Parameters
    ----------
    fspath : str
        The file.
    file_size : int
        Its size in bytes (the limit for a plain file; a compressed stream is read to its end instead).
    compression : {None, "gzip", "bzip2", "xz"}
        The whole-file compression :func:`sniff_compression` found (one of :data:`OPENERS`, or None).
    hdu : int, str, (str, int) tuple or None
        The ``hdu`` argument of `read_fits`: the walk stops after the HDU it names (or, for None, after the
        first HDU whose header describes a 2-D image).

    Returns
    -------
    int
        How many HDUs were checked (astropy may parse these and no more).

    Raises
    ------
    FitsReadError
        For a header with no END card, an impossible or missing structural value, or data that runs past the
        end of the file.
    """
    opener = open if compression is None else OPENERS[compression]
    with opener(fspath, "rb") as fh:
        offset = 0
        for index in range(MAX_HDUS):
            cards, header_bytes, status = _read_structural_header(fh)
            if status == "eof":
                return index
            if status != "ok":
                where = "header" if index == 0 else f"header of HDU {index}"
                raise fits_error(fspath, f"truncated or corrupt {where} (no END card before the end of the file)")
            nbytes, image_axes, claim = _geometry(fspath, index, cards)
            data_offset = offset + header_bytes
            if compression is None:
                if data_offset + nbytes > file_size:
                    has = f"file has only {file_size} bytes"
                    raise fits_error(fspath, _size_message(claim, nbytes, data_offset, index, has))
            else:
                got = _skip(fh, nbytes)
                if got < nbytes:
                    has = f"the {compression} data end {got} bytes into it"
                    raise fits_error(fspath, _size_message(claim, nbytes, data_offset, index, has))
            if _is_target(index, cards, image_axes, hdu):
                return index + 1
            offset = data_offset + nbytes + (-nbytes) % BLOCK
            if compression is None:
                if offset >= file_size:
                    return index + 1
                fh.seek(offset)
            else:
                _skip(fh, (-nbytes) % BLOCK)
    return MAX_HDUS


def _read_structural_header(fh):
    """Read one header; return (structural cards, bytes read, "ok" | "eof" | "no-end")."""
    cards = {}
    for nblock in range(1, _MAX_HEADER_BLOCKS + 1):
        block = fh.read(BLOCK)
        if len(block) < BLOCK:
            return cards, (nblock - 1) * BLOCK + len(block), "eof" if nblock == 1 and not block else "no-end"
        for i in range(0, BLOCK, _CARD):
            card = block[i : i + _CARD]
            key = card[:8].rstrip().decode("ascii", "replace")
            if key == "END":
                return cards, nblock * BLOCK, "ok"
            if card[8:10] == b"= " and (key in _STRUCT_KEYS or key.startswith(_STRUCT_PREFIXES)) and key not in cards:
                cards[key] = _card_value(card[10:])
    return cards, _MAX_HEADER_BLOCKS * BLOCK, "no-end"


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
        if is_int(value) and not 0 <= value <= MAX_AXES:
            raise fits_error(fspath, f"corrupt header: HDU {index} says {key} = {value}, outside 0..{MAX_AXES}")
    naxis = cards.get("NAXIS", 0)
    if not is_int(naxis):
        raise fits_error(fspath, f"corrupt header: HDU {index} has no integer NAXIS")
    if naxis == 0:
        return 0, None, "no data"
    bitpix = cards.get("BITPIX")
    axes = [cards.get(f"NAXIS{i}") for i in range(1, naxis + 1)]
    pcount, gcount = cards.get("PCOUNT", 0), cards.get("GCOUNT", 1)
    named = [("BITPIX", bitpix), *((f"NAXIS{i}", n) for i, n in enumerate(axes, 1)), ("PCOUNT", pcount)]
    named.append(("GCOUNT", gcount))
    for key, value in named:
        if value is None:
            raise fits_error(fspath, f"corrupt header: HDU {index} has no integer {key}")
        if not is_int(value) or (value < 0 and key != "BITPIX"):
            raise fits_error(fspath, f"corrupt header: HDU {index} has {key} = {value!r}")
    groups = index == 0 and cards.get("GROUPS") is True and axes[0] == 0
    pixels = axes[1:] if groups else axes  # random groups: NAXIS1 = 0 is a marker
    nbytes = abs(bitpix) * gcount * (pcount + math.prod(pixels)) // 8
    claim = f"{' x '.join(map(str, pixels))} values of {abs(bitpix) // 8} bytes"

    xtension = cards.get("XTENSION")
    image_axes = None
    if index == 0 and not groups:
        image_axes = axes
    elif isinstance(xtension, str) and xtension.upper() == "IMAGE":
        image_axes = axes
    elif isinstance(xtension, str) and xtension.upper() == "BINTABLE" and cards.get("ZIMAGE") is True:
        image_axes = _tiles_check(fspath, index, cards, axes)
    return nbytes, image_axes, claim


def _tiles_check(fspath, index, cards, axes):
    """Image axes of a tile-compressed image; refuses an image size its table of tiles cannot hold."""
    znaxis = cards.get("ZNAXIS")
    if not is_int(znaxis):
        return None
    zaxes = [cards.get(f"ZNAXIS{i}") for i in range(1, znaxis + 1)]
    if not all(is_int(n) and n > 0 for n in zaxes) or len(axes) != 2:
        return zaxes if all(is_int(n) for n in zaxes) else None
    tiles = [cards.get(f"ZTILE{i}", zaxes[0] if i == 1 else 1) for i in range(1, znaxis + 1)]
    if not all(is_int(t) and t > 0 for t in tiles):
        return zaxes
    ntiles = math.prod(-(-n // t) for n, t in zip(zaxes, tiles))
    if ntiles != axes[1]:
        dims = " x ".join(map(str, zaxes))
        raise fits_error(
            fspath,
            f"corrupt header: HDU {index} says a {dims} compressed image in {ntiles} tiles, "
            f"but its table has {axes[1]} rows",
        )
    return zaxes


def _is_target(index, cards, image_axes, hdu):
    """Whether the walk can stop after this HDU: it is the one `read_fits` will read."""
    if hdu is None:
        return image_axes is not None and len(image_axes) >= 2 and min(image_axes) > 0 and min(image_axes[:2]) >= 2
    if is_int(hdu):
        return hdu >= 0 and index == hdu
    name, ver = (hdu, None) if isinstance(hdu, str) else hdu
    extname = cards.get("EXTNAME")
    if not isinstance(extname, str) or extname.strip().upper() != name.strip().upper():
        return False
    return ver is None or cards.get("EXTVER", 1) == ver


def _skip(fh, nbytes, chunk=1 << 20):
    """Read and discard ``nbytes`` from a stream; return how many were there."""
    done = 0
    while done < nbytes:
        got = len(fh.read(min(chunk, nbytes - done)))
        if not got:
            break
        done += got
    return done


def _size_message(claim, nbytes, data_offset, index, has):
    return (
        f"truncated or corrupt: header of HDU {index} says {claim} "
        f"({nbytes} bytes of data from offset {data_offset}) but {has}"
    )

