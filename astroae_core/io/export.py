"""Exports of a cache's rows for the tools astronomers use: a CSV and a VOTable with every column (units, UCDs and
descriptions where known; paths relative to the data folder, the data folder named), and a zip of FITS cutouts
(original, reconstruction and residual as three HDUs, the original header kept) built one image at a time.
"""

from __future__ import annotations

import io
import re
import warnings
import zipfile
from collections.abc import Iterable
from pathlib import PurePosixPath

import numpy as np
import pandas as pd

__all__ = ["DATA_FOLDER", "FITS_ZIP_MAX", "column_info", "cutout_hdus", "export_csv_bytes", "export_table",
           "export_votable_bytes", "write_cutouts_zip"]

#: The name of the CSV column and the VOTable PARAM that name the folder the ``path`` column is relative to.
DATA_FOLDER = "data_folder"
#: The most images one FITS zip holds (each is read and reconstructed in turn; the zip is held until downloaded).
FITS_ZIP_MAX = 100

_DEG = "deg"
# column name (or regular expression) -> (unit, UCD, description); the first match wins
_INFO = [
    (r"id", (None, "meta.id;meta.main", "image identifier in the cache")),
    (r"path", (None, "meta.file", f"FITS file, relative to the data folder ({DATA_FOLDER})")),
    (r"hash", (None, "meta.id", "content hash of the image's pixels")),
    (r"hdu", (None, "meta.id.part", "FITS HDU the image was read from")),
    (r"split", (None, "meta.code", "train or validation split of the model's training")),
    (r"ra", (_DEG, "pos.eq.ra;meta.main", "right ascension of the image centre (ICRS, from the WCS)")),
    (r"dec", (_DEG, "pos.eq.dec;meta.main", "declination of the image centre (ICRS, from the WCS)")),
    (r"catalog\.ra", (_DEG, "pos.eq.ra", "right ascension from the catalog")),
    (r"catalog\.dec", (_DEG, "pos.eq.dec", "declination from the catalog")),
    (r"catalog\.snr", (None, "stat.snr", "signal-to-noise ratio from the catalog")),
    (r"catalog\.kind", (None, "src.class", "kind of object from the catalog")),
    (r"catalog\..*", (None, None, "from the catalog beside the images")),
    (r"z(\d+)", (None, "stat.value", "latent dimension {0} of the autoencoder")),
    (r"(mse|ssim|ms_ssim)", (None, "stat.fit.goodness", "{0} of the full reconstruction, in the model's [0, 1] "
                                                         "units")),
    (r"latent_(mse|ssim)", (None, "stat.fit.goodness", "{0} of the reconstruction from the latent alone")),
    (r"(pca|umap)_(x|y)", (None, "pos.cartesian.{1}", "{0} map coordinate ({1})")),
    (r"score_(\w+)", (None, "stat.value", "outlier score: {0} (higher is stranger)")),
    (r"anomaly_score", (None, "stat.value", "combined outlier score (higher is stranger)")),
    (r"anomaly_rank", (None, "meta.number", "rank by the combined outlier score (1: the strangest)")),
    (r"label", (None, "meta.code.class", "the user's label")),
    (r"tags", (None, "meta.note", "the user's tags, comma-separated")),
]


def column_info(name: str) -> tuple[str | None, str | None, str | None]:
    """``(unit, ucd, description)`` of a cache column; ``None`` where unknown."""
    for pattern, (unit, ucd, desc) in _INFO:
        m = re.fullmatch(pattern, name)
        if m:
            g = m.groups()
            return unit, ucd.format(*g) if ucd else None, desc.format(*g) if desc else None
    return None, None, None


def _plain(table: pd.DataFrame) -> pd.DataFrame:
    """Columns as numpy-typed data astropy can write: text as object (missing -> ""), numbers and booleans kept."""
    out = {}
    for c in table.columns:
        s = table[c]
        if s.dtype.kind in "biuf":
            out[c] = s.to_numpy()
        else:
            out[c] = np.array(["" if v is None or (isinstance(v, float) and v != v) else str(v) for v in s],
                              dtype=str)
    return pd.DataFrame(out, index=table.index)


def export_table(table: pd.DataFrame, *, data_folder, name: str = "astroae"):
    """Rows of a cache's table as an :class:`astropy.table.Table` with every column, units, UCDs and descriptions.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows of the cache's (view) table; every column is kept, in order.
    data_folder : str or Path
        The folder the ``path`` column is relative to; stored in ``meta[DATA_FOLDER]``.
    name : str
        The table's name.
    """
    from astropy.table import Table

    t = Table.from_pandas(_plain(table.reset_index(drop=True)))
    for c in t.colnames:
        unit, ucd, desc = column_info(c)
        if unit:
            t[c].unit = unit
        if desc:
            t[c].description = desc
        if ucd:
            t[c].meta["ucd"] = ucd
    t.meta["name"] = name
    t.meta[DATA_FOLDER] = str(data_folder)
    return t


def export_csv_bytes(table: pd.DataFrame, *, data_folder) -> bytes:
    """CSV (UTF-8) of every column, with a ``data_folder`` column naming the folder the paths are relative to."""
    out = table.reset_index(drop=True).copy()
    out[DATA_FOLDER] = str(data_folder)
    return out.to_csv(index=False).encode("utf-8")


def export_votable_bytes(table: pd.DataFrame, *, data_folder, name: str = "astroae") -> bytes:
    """A VOTable (TABLEDATA) of every column, with units, UCDs and descriptions, and the data folder as a PARAM."""
    from astropy.io.votable import from_table
    from astropy.io.votable.tree import Param

    t = export_table(table, data_folder=data_folder, name=name)
    vot = from_table(t, table_id=re.sub(r"\W", "_", name))
    vt = vot.get_first_table()
    vt.name = name
    for field in vt.fields:
        ucd = t[field.name].meta.get("ucd")
        if ucd:
            field.ucd = ucd
    folder = str(data_folder)
    vt.params.append(Param(vot, name=DATA_FOLDER, ID=DATA_FOLDER, datatype="char", arraysize="*", value=folder,
                           ucd="meta.file"))
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # column names with dots are legal names but not XML ids: astropy notes it
        vot.to_xml(buf)
    return buf.getvalue()


_LAYOUT_KEYS = ("XTENSION", "PCOUNT", "GCOUNT", "EXTEND", "ZIMAGE", "ZBITPIX", "ZNAXIS", "ZCMPTYPE", "CHECKSUM",
                "DATASUM", "EXTNAME", "SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "BSCALE", "BZERO")


def _header(header):
    from astropy.io import fits

    h = header.copy() if header is not None else fits.Header()
    for key in _LAYOUT_KEYS:
        h.remove(key, ignore_missing=True, remove_all=True)
    return h


def cutout_hdus(original, reconstruction, header=None, *, source: str = "", model_sha: str = ""):
    """One image's cutout file: HDU 0 the original (its header kept), HDU 1 ``RECONSTRUCTION`` and HDU 2
    ``RESIDUAL`` (original minus reconstruction), all in the file's flux units with its WCS.

    Raises
    ------
    ValueError
        If the two images differ in shape.
    """
    from astropy.io import fits

    a = np.asarray(original, dtype=np.float32)
    b = np.asarray(reconstruction, dtype=np.float32)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"original {a.shape} and reconstruction {b.shape} of {source or 'an image'} must be the "
                         "same 2-D shape")
    h = _header(header)
    prim = fits.PrimaryHDU(a, header=h)
    prim.header["EXTNAME"] = "ORIGINAL"
    if source:
        prim.header["HISTORY"] = f"astroae cutout of {source}"[:72]
    rec = fits.ImageHDU(b, header=h, name="RECONSTRUCTION")
    res = fits.ImageHDU(a - b, header=h, name="RESIDUAL")
    if model_sha:
        for hdu in (rec, res):
            hdu.header["HISTORY"] = f"astroae model sha256 {model_sha[:40]}"
    return fits.HDUList([prim, rec, res])


def write_cutouts_zip(fileobj, items: Iterable, *, limit: int = FITS_ZIP_MAX) -> dict:
    """Write a zip of FITS cutouts to ``fileobj``, one image at a time (only one image's arrays held at once).

    Parameters
    ----------
    fileobj : writable binary file
        Where the zip goes (a temporary file, a BytesIO).
    items : iterable
        ``(name, make)`` pairs: ``make()`` returns the image's :func:`cutout_hdus` or raises ``ValueError`` (an
        unreadable file), which is listed in the zip's ``manifest.csv`` instead; called lazily, in order.
    limit : int
        At most this many images are written; the rest are listed as not included.

    Returns
    -------
    dict
        ``{"written": n, "failed": [(name, reason)], "left_out": n}``.
    """
    written, failed, left, manifest = 0, [], 0, ["file,status"]
    with zipfile.ZipFile(fileobj, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, make in items:
            rel = [p for p in PurePosixPath(str(name).replace("\\", "/")).parts if p not in ("..", "/", ".")]
            stem = "/".join(rel) or "image"
            if written >= limit:
                left += 1
                manifest.append(f'"{stem}",left out (more than {limit} images)')
                continue
            try:
                hdul = make()
            except ValueError as exc:
                failed.append((stem, str(exc)))
                manifest.append(f'"{stem}","not written: {str(exc).replace(chr(34), chr(39))}"')
                continue
            buf = io.BytesIO()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                hdul.writeto(buf, output_verify="silentfix")
            zf.writestr(re.sub(r"(\.(fits|fit|fts|fz))?(\.(gz|bz2))?$", "", stem, flags=re.I) + "_cutout.fits",
                        buf.getvalue())
            del hdul, buf
            written += 1
            manifest.append(f'"{stem}",written')
        zf.writestr("manifest.csv", "\n".join(manifest) + "\n")
    return {"written": written, "failed": failed, "left_out": left}
