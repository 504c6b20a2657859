"""A FITS file that arrives as bytes (an upload): read it, reconstruct and score it with a cache's model, and place it
on the cache's map beside its nearest neighbours."""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from astroae_core.analysis.summary import distance_from_training
from astroae_core.analysis.reconstruction import Reconstruction, reconstruct

__all__ = ["UPLOAD_SUFFIXES", "ReadInfo", "UploadResult", "content_key", "mse_percentile", "process_upload",
           "read_upload", "upload_suffix"]

# What a file that is not FITS usually is, by its first bytes: named in the error instead of the bytes themselves.
_OTHER_FORMATS = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
                  (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"), (b"%PDF", "a PDF document"),
                  (b"PK\x03\x04", "a zip archive"), (b"\x1f\x8b", "a gzip file that holds no FITS image"))


@dataclass(frozen=True)
class ReadInfo:
    """What was read from an uploaded file, and what was done to it before the model saw it.

    Attributes
    ----------
    hdu_index : int
        The HDU the image came from (0: the primary HDU).
    hdu_name : str
        Its EXTNAME ("PRIMARY" for the primary HDU).
    file_shape : tuple of int
        The HDU's data shape in numpy order (a cube's leading axes first).
    plane : tuple of int or None
        The plane taken from a cube (index into its leading axes); None for a 2-D image.
    nonfinite : int
        How many pixels were NaN or infinite.
    fill_value : float or None
        What they were replaced by (the median of the finite pixels), None when there were none.
    model_size : int
        The side of the square the model reads.
    resample : tuple of float
        The image's height and width over ``model_size``: above 1 the image was shrunk (with anti-aliasing).
    """

    hdu_index: int
    hdu_name: str
    file_shape: tuple
    plane: tuple | None
    nonfinite: int
    fill_value: float | None
    model_size: int
    resample: tuple

#: File name endings an upload may have: the FITS suffixes and the compressions :func:`read_fits` opens.
UPLOAD_SUFFIXES = ("fits", "fit", "fts", "fz", "gz", "bz2")


@dataclass
class UploadResult:
    """What is known about one uploaded file (no file is kept).

    Attributes
    ----------
    name : str
        The file's name as uploaded.
    error : str or None
        Why it could not be used (then nothing else is set).
    rec : Reconstruction or None
        Its reconstruction by the cache's model.
    header : astropy.io.fits.Header or None
    place : dict
        Its map coordinates (``pca_x``, ``pca_y``, ``umap_x``, ``umap_y``), empty if it could not be placed.
    neighbors : list of (int, float)
        ``(row position in the cache table, latent distance)``, nearest first.
    mse_percentile : float or None
        Share (0-100) of the cache's images reconstructed better than this one.
    place_error : str or None
        Why it could not be placed on the map.
    training_distance : dict or None
        :func:`~astroae_core.analysis.distance_from_training` of its latent-only error: ``far`` when the model was
        trained on nothing like it.
    read : ReadInfo or None
        What was read (HDU, plane, sizes, non-finite pixels and their fill, the resampling to the model's size).
    key : str
        :func:`content_key` of the file's bytes: the same file uploaded twice is one result.
    also_named : list of str
        Other names the same content was uploaded under.
    """

    name: str
    error: str | None = None
    rec: Reconstruction | None = None
    header: object = None
    place: dict = field(default_factory=dict)
    neighbors: list = field(default_factory=list)
    mse_percentile: float | None = None
    place_error: str | None = None
    training_distance: dict | None = None
    read: ReadInfo | None = None
    key: str = ""
    also_named: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the file could be read and reconstructed."""
        return self.error is None


def upload_suffix(name: str) -> str:
    """The FITS suffix of an uploaded file's name (``.fits``, ``.fits.gz``...), for the temporary file that is read.

    Only short alphanumeric suffixes are kept, so a crafted name cannot put a path in the temporary file's name.
    """
    parts = [s.lower() for s in Path(name).suffixes][-2:]
    kept = [s for s in parts if re.fullmatch(r"\.[a-z0-9]{1,5}", s)]
    return "".join(kept) or ".fits"


def content_key(data: bytes) -> str:
    """An upload's identity: the SHA-256 of its bytes (the same file uploaded twice, under any name, is one)."""
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _plain_reason(data: bytes, reason: str) -> str:
    """The reader's reason, with a file that is not FITS named for what it is instead of its first bytes."""
    if not reason.startswith("not a FITS file"):
        return reason
    for magic, what in _OTHER_FORMATS:
        if data.startswith(magic):
            return f"not a FITS file: it is {what}"
    return "not a FITS file: it does not start with a FITS header ('SIMPLE  =')"


def read_info(data_shape, header, hdu_index: int, image, *, model_size: int) -> ReadInfo:
    """:class:`ReadInfo` of an image read from HDU ``hdu_index`` whose header is ``header``."""
    from astroae_core.io.selection import plane_index

    naxis = int(header.get("NAXIS", 0) or 0)
    shape = tuple(int(header.get(f"NAXIS{k}", 0) or 0) for k in range(naxis, 0, -1)) or tuple(data_shape)
    plane = plane_index("upload", shape, None) if len(shape) > 2 and any(n > 1 for n in shape[:-2]) else None
    a = np.asarray(image)
    finite = np.isfinite(a)
    bad = int(a.size - np.count_nonzero(finite))
    fill = float(np.median(a[finite])) if bad and finite.any() else None
    h, w = a.shape[-2:]
    return ReadInfo(hdu_index=int(hdu_index), hdu_name=str(header.get("EXTNAME", "PRIMARY" if hdu_index == 0 else "")),
                    file_shape=shape, plane=plane, nonfinite=bad, fill_value=fill, model_size=int(model_size),
                    resample=(h / model_size, w / model_size))


def read_upload(name: str, data: bytes, *, with_index: bool = False):
    """Read a FITS file held in memory, through a private temporary file deleted at once.

    Parameters
    ----------
    name : str
        The file's name as uploaded (its suffix says how it is compressed).
    data : bytes
        The file's contents.

    Returns
    -------
    image : ndarray
    header : astropy.io.fits.Header
    hdu_index : int
        Only with ``with_index=True``: the HDU the image came from.

    Raises
    ------
    FitsReadError
        Naming the uploaded file (not the temporary one) and the reason.
    """
    from astroae_core.io import FitsReadError, read_fits_with_index

    if not data:
        raise FitsReadError(f"cannot read {name!r}: empty file (0 bytes)", path=name, reason="empty file (0 bytes)")
    fd, tmp = tempfile.mkstemp(prefix="astroae-upload-", suffix=upload_suffix(name))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        try:
            image, header, index = read_fits_with_index(tmp)
            return (image, header, index) if with_index else (image, header)
        except FitsReadError as exc:
            reason = _plain_reason(data, exc.reason or str(exc))
            raise FitsReadError(f"cannot read {name!r}: {reason}", path=name, reason=reason) from None
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def process_upload(name: str, data: bytes, model, cache, *, k: int = 8) -> UploadResult:
    """Read, reconstruct and score an upload, and place it on the cache's map with its nearest neighbours.

    Parameters
    ----------
    name : str
        The file's name as uploaded.
    data : bytes
        The file's contents.
    model : AutoEncoder
        The cache's own model, so that the upload's latent lives in the cache's space.
    cache : LatentCache
        Where it is placed (``cache.place``) and whose images are its neighbours (``cache.neighbors``).
    k : int
        How many neighbours.

    Returns
    -------
    UploadResult
        Problems become ``error`` (the reason, naming the file) or ``place_error``, never an exception.
    """
    from astroae_core.io import FitsReadError

    key = content_key(data)
    try:
        image, header, index = read_upload(name, data, with_index=True)
    except FitsReadError as exc:
        return UploadResult(name, error=exc.reason or str(exc), key=key)
    info = read_info(image.shape, header, index, image, model_size=model.config.in_size)
    try:
        rec = reconstruct(model, image)
    except (ValueError, RuntimeError) as exc:
        return UploadResult(name, error=f"the model cannot use this image: {exc}", key=key)
    res = UploadResult(name, rec=rec, header=header, read=info, key=key)
    try:
        res.place = {key: float(np.ravel(v)[0]) for key, v in cache.place(rec.z).items()}
    except Exception as exc:  # noqa: BLE001 - a map that cannot place new points still shows the rest
        res.place, res.place_error = {}, str(exc)
    idx, dist = cache.neighbors(rec.z, k=k)
    res.neighbors = [(int(i), float(d)) for i, d in zip(np.ravel(idx), np.ravel(dist))]
    res.mse_percentile = mse_percentile(cache.table, rec.metrics["mse"])
    res.training_distance = distance_from_training([(rec.metrics_latent or rec.metrics)["mse"]], model)
    return res


def mse_percentile(table, mse: float) -> float | None:
    """Share (0-100) of a cache table's images whose ``mse`` is below ``mse``; None without finite MSEs."""
    mses = table["mse"].to_numpy(dtype=float) if "mse" in table else np.array([])
    mses = mses[np.isfinite(mses)]
    return float((mses < mse).mean() * 100) if mses.size else None
