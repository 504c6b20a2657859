"""Which part of a FITS file is the image: choosing the HDU and the plane of a cube.

:func:`select_hdu` picks the HDU `read_fits` reads (the first 2-D image by default, or the one the ``hdu``
argument names) from an open, lazily loaded :class:`~astropy.io.fits.HDUList`, looking at no more HDUs than the
structural guard checked. :func:`plane_index` turns the ``plane`` argument into an index of the leading axes.
Both judge from headers alone: no pixel is read.
"""

from __future__ import annotations

from astropy.io import fits

from astroae_core.io.errors import fits_error
from astroae_core.io.guard import MAX_HDUS, is_int

__all__ = ["plane_index", "select_hdu"]


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


def select_hdu(fspath, hdul, hdu, limit: int | None = None):
    """The HDU `read_fits` reads, as ``(index, hdu)``.

    Parameters
    ----------
    fspath : str
        The file (for messages).
    hdul : astropy.io.fits.HDUList
        The open file, lazily loaded.
    hdu : int, str, (str, int) tuple or None
        `read_fits`'s ``hdu`` argument; None: the first HDU holding a 2-D image.
    limit : int, optional
        Look at no more than this many HDUs (those :func:`~astroae_core.io.guard.check_structure` checked).

    Raises
    ------
    FitsReadError
        When there is no image HDU, or the one asked for does not exist, is not an image, is empty or is 1-D.
    """
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
            raise fits_error(fspath, one_d)
        found = ", ".join(seen) if seen else "nothing readable"
        raise fits_error(fspath, f"no image HDU (found: {found})")

    index, h = _resolve_hdu(fspath, hdul, hdu, limit)
    label = _label(index, h)
    if not _is_image_hdu(h):
        raise fits_error(fspath, f"{label} (hdu={hdu!r}) is a {_kind(h)}, not an image")
    status, shape = _usable(h)
    if status == "empty":
        raise fits_error(fspath, f"{label} (hdu={hdu!r}) has no image data")
    if status == "1-D":
        raise fits_error(fspath, _one_d_reason(f"{label} (hdu={hdu!r})", shape))
    return index, h


def _iter_hdus(hdul, limit):
    """Iterate over (index, HDU) lazily: at most ``limit`` HDUs (those the structural walk checked).

    Also stops if astropy goes back to an earlier header: with some corrupt gzip-compressed files it seeks
    back to the start after a corrupted HDU and would yield the same HDUs for ever (so ``len(hdul)`` and
    ``hdul.index_of`` never return); header offsets must grow.
    """
    last = -1
    index = 0
    while index < (MAX_HDUS if limit is None else limit):
        try:
            h = hdul[index]
        except IndexError:
            return
        # Private, because the public HDU.fileinfo() is missing on the corrupted HDUs this check is for.
        loc = getattr(h, "_header_offset", None)
        if is_int(loc):
            if loc <= last:
                return
            last = loc
        yield index, h
        index += 1


def _resolve_hdu(fspath, hdul, hdu, limit=None):
    """(index, HDU) for an explicit ``hdu`` argument."""
    if is_int(hdu):
        hdus = []
        for index, h in _iter_hdus(hdul, limit):
            if index == hdu:
                return index, h
            hdus.append(h)
        n = len(hdus)
        if -n <= hdu < 0:
            return n + hdu, hdus[hdu]
        raise fits_error(fspath, f"hdu={hdu!r} out of range: the file has {n} HDU{'s' if n != 1 else ''}")
    name, ver = (hdu, None) if isinstance(hdu, str) else hdu
    names = []
    for index, h in _iter_hdus(hdul, limit):
        extname = str(getattr(h, "name", "") or "")
        names.append(extname)
        if extname.strip().upper() == name.strip().upper() and (ver is None or getattr(h, "ver", 1) == ver):
            return index, h
    if isinstance(hdu, str) and hdu.strip().isdigit():
        return _resolve_hdu(fspath, hdul, int(hdu), limit)
    raise fits_error(fspath, f"no HDU named hdu={hdu!r} (EXTNAMEs present: {[n for n in names if n]})")


def plane_index(fspath, shape: tuple[int, ...], plane) -> tuple[int, ...]:
    """Index (a tuple) into the leading (non-spatial) axes of an array of ``shape`` that gives one 2-D plane.

    ``plane`` is `read_fits`'s argument (None, an int or a tuple of ints; see there for the rules); the default
    is the middle plane of every leading axis. FitsReadError when an index is out of range.
    """
    lead = shape[:-2]
    kept = [axis for axis, n in enumerate(lead) if n != 1]
    if plane is None:
        given = ()
    elif is_int(plane):
        given = (int(plane),)
    else:
        given = tuple(int(p) for p in plane)

    if len(given) == len(lead) and len(given) > len(kept):
        axes = list(range(len(lead)))  # a tuple covering every leading axis, length-1 ones included
    elif not kept:
        if any(p not in (0, -1) for p in given) or len(given) > 1:
            raise fits_error(
                fspath, f"plane={plane!r} out of range: the image is 2-D (shape {shape}), it has only plane 0"
            )
        axes, given = [], ()
    elif len(given) <= len(kept):
        axes = kept[: len(given)]
    else:
        raise fits_error(
            fspath,
            f"plane={plane!r} out of range: the data (shape {shape}) has only {len(kept)} non-spatial axes "
            f"of length > 1",
        )

    index = [n // 2 for n in lead]  # default: the middle plane of every leading axis (0 for length-1 axes)
    for axis, p in zip(axes, given):
        n = lead[axis]
        if not -n <= p < n:
            raise fits_error(
                fspath, f"plane={plane!r} out of range: index {p} on an axis of length {n} (shape {shape})"
            )
        index[axis] = p % n
    return tuple(index)

