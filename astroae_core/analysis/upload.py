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

__all__ = ["UPLOAD_SUFFIXES", "UploadResult", "mse_percentile", "process_upload", "read_upload", "upload_suffix"]

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


def read_upload(name: str, data: bytes):
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

    Raises
    ------
    FitsReadError
        Naming the uploaded file (not the temporary one) and the reason.
    """
    from astroae_core.io import FitsReadError, read_fits

    if not data:
        raise FitsReadError(f"cannot read {name!r}: empty file (0 bytes)", path=name, reason="empty file (0 bytes)")
    fd, tmp = tempfile.mkstemp(prefix="astroae-upload-", suffix=upload_suffix(name))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        try:
            return read_fits(tmp)
        except FitsReadError as exc:
            reason = exc.reason or str(exc)
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

    try:
        image, header = read_upload(name, data)
    except FitsReadError as exc:
        return UploadResult(name, error=exc.reason or str(exc))
    try:
        rec = reconstruct(model, image)
    except (ValueError, RuntimeError) as exc:
        return UploadResult(name, error=f"the model cannot use this image: {exc}")
    res = UploadResult(name, rec=rec, header=header)
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
