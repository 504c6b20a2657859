"""A varied set of GalSim galaxies to pretrain on before a recipe's own images (``TrainConfig.synthetic``).

Each stamp is one galaxy near the centre, drawn in pixels at the training images' own size: a Sersic bulge and an
exponential disk, star-forming knots (GalSim's ``RandomKnots``, each a clump a few pixels across) carrying up to
half of the light, sheared and rotated, convolved with a Gaussian PSF; 0-4 neighbours anywhere in the stamp; Gaussian sky noise from a peak S/N
of 20 to 3,000; and, in one stamp of twenty, a strip of zeros where a cutout runs off its mosaic. The ranges are
broad on purpose: the set is there to show the model more kinds of galaxy than a development set holds, not to
copy one.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np

from astroae_core.demo.galaxies import gsparams
from astroae_core.progress import report

__all__ = ["kept_synthetic_galaxies", "source_hash", "synthetic_galaxies"]


def _loguniform(rng, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _galaxy(galsim, rng, *, hlr: float, flux: float, gsparams):
    """A bulge + disk + knots profile of half-light radius about ``hlr`` pixels, sheared and rotated."""
    disk = galsim.Exponential(half_light_radius=hlr, gsparams=gsparams)
    bulge = galsim.Sersic(n=float(rng.choice([2.0, 3.0, 4.0])), half_light_radius=hlr * rng.uniform(0.15, 0.6),
                          gsparams=gsparams)
    b, k = rng.beta(0.9, 2.0), rng.uniform(0.0, 0.5)
    parts = [(1 - b) * (1 - k) * disk, b * (1 - k) * bulge]
    if k > 0.02:
        knots = galsim.RandomKnots(int(rng.integers(5, 40)), half_light_radius=hlr * rng.uniform(0.8, 1.6),
                                   flux=k, rng=galsim.BaseDeviate(int(rng.integers(1, 2**31))), gsparams=gsparams)
        # clumps a few pixels across, not points
        parts.append(galsim.Convolve(knots, galsim.Gaussian(sigma=rng.uniform(0.5, 2.5), gsparams=gsparams)))
    q = rng.uniform(0.2, 1.0)
    return galsim.Add(parts).shear(q=q, beta=rng.uniform(0, math.pi) * galsim.radians).withFlux(flux)


def synthetic_galaxies(n: int, *, size: int, seed: int = 0, transform=None, progress=None) -> np.ndarray:
    """``n`` synthetic galaxy stamps of ``size`` x ``size`` pixels, in flux units (float32, sky noise added).

    Parameters
    ----------
    n : int
        Number of stamps.
    size : int
        Side in pixels (the training images' own, before preprocessing).
    seed : int
        Every draw follows from it: the same seed gives the same stamps.
    transform : callable, optional
        Applied to each stamp (float32) as it is drawn, e.g. the training's preprocessing, so that only its outputs
        are held: ``n`` stamps of a large side are never in memory at once.
    progress : Progress, optional
        Called as stamps are drawn (stage ``"synthetic galaxies"``); see :mod:`astroae_core.progress`.

    Returns
    -------
    numpy.ndarray
        Shape ``(n, size, size)``, or ``(n, *transform(stamp).shape)`` in the transform's dtype.
    """
    import galsim

    if n < 0 or size < 8:
        raise ValueError(f"synthetic_galaxies needs n >= 0 and size >= 8, got n={n!r}, size={size!r}")
    gsp = gsparams()  # the demo stamps' settings
    rng = np.random.default_rng(seed)
    out = None
    for i in range(n):
        psf = galsim.Gaussian(fwhm=_loguniform(rng, 1.3, 5.0), gsparams=gsp)
        hlr = _loguniform(rng, 0.03 * size, 0.2 * size)
        scene = [_galaxy(galsim, rng, hlr=hlr, flux=1.0, gsparams=gsp).shift(*rng.normal(0, 0.02 * size, 2))]
        for _ in range(int(rng.choice(5, p=[0.3, 0.3, 0.2, 0.12, 0.08]))):
            scene.append(_galaxy(galsim, rng, hlr=_loguniform(rng, 1.0, 0.12 * size), flux=_loguniform(rng, 0.01, 1.0),
                                 gsparams=gsp).shift(*rng.uniform(-0.5 * size, 0.5 * size, 2)))
        image = galsim.Convolve(galsim.Add(scene), psf).drawImage(nx=size, ny=size, scale=1.0).array
        sigma = float(image.max()) / _loguniform(rng, 20.0, 3000.0)
        image = image + rng.normal(0.0, sigma, image.shape)
        if rng.random() < 0.05:
            cut = int(rng.uniform(0.1, 0.4) * size)
            side = int(rng.integers(4))
            view = np.rot90(image, side)  # a view: writing into it writes into image
            view[:cut] = 0.0
        image = image.astype(np.float32)
        if transform is not None:
            image = transform(image)
        if out is None:
            out = np.empty((n, *np.shape(image)), np.asarray(image).dtype)
        out[i] = image
        report(progress, i + 1, n, "synthetic galaxies")
    return out if out is not None else np.empty((0, size, size), np.float32)


_DRAWING = (_loguniform, _galaxy, synthetic_galaxies, gsparams)


def kept_synthetic_galaxies(n: int, *, size: int, seed: int, transform, transform_key: dict, folder: Path | None,
                            progress=None) -> np.ndarray:
    """:func:`synthetic_galaxies` drawn once and kept in ``folder``; later calls with the same arguments read it.

    Drawing is most of a pretraining's set-up (about 20 stamps/s), and a cross-validation draws the same set in
    every fold. The file is named by a hash of the arguments, of ``transform_key`` (what ``transform`` does: it
    cannot hash a function; the caller names the code behind it), of the source of the functions that draw a
    stamp and of the GalSim, numpy and PyTorch versions, so a change to any of them draws again. Written
    atomically: two processes drawing at once both end with the same file. The :data:`KEPT_SETS` newest sets are
    kept.

    Parameters
    ----------
    n, size, seed, transform, progress
        As for :func:`synthetic_galaxies`.
    transform_key : dict
        JSON-serializable description of ``transform`` (for the training, its preprocessing config).
    folder : Path or None
        Where sets are kept (:func:`astroae_core.io.paths.project_cache_dir`); None draws without keeping.
    """
    if folder is None:
        return synthetic_galaxies(n, size=size, seed=seed, transform=transform, progress=progress)
    import galsim
    import torch  # its resampling shrinks large stamps in the preprocessing

    from astroae_core.io import atomic_path

    key = json.dumps({"n": n, "size": size, "seed": seed, "transform": transform_key, "galsim": galsim.__version__,
                      "numpy": np.__version__, "torch": torch.__version__,
                      "code": _drawing_code()}, sort_keys=True)
    path = Path(folder) / f"synthetic-{hashlib.sha256(key.encode()).hexdigest()[:20]}.npy"
    if path.is_file():
        try:
            x = np.load(path)
            report(progress, n, n, "synthetic galaxies")
            return x
        except (OSError, ValueError, EOFError):  # damaged: draw it again below
            pass
    x = synthetic_galaxies(n, size=size, seed=seed, transform=transform, progress=progress)
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # a handle: np.save would add ".npy" to a name
            np.save(fh, x)
        _keep_newest(Path(folder), KEPT_SETS)
    except OSError:  # a full or read-only disk costs the next run its drawing, nothing more
        pass
    return x


#: Sets kept in the folder; older ones are removed as a new one is written (8,000 CEERS stamps, preprocessed to
#: 187 x 187 float32, are 1.1 GB).
KEPT_SETS = 3


def _keep_newest(folder: Path, keep: int) -> None:
    sets = sorted(folder.glob("synthetic-*.npy"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in sets[keep:]:
        old.unlink(missing_ok=True)


def _drawing_code() -> str:
    """SHA-256 of the source of the functions that draw a stamp (an edit elsewhere keeps the kept sets)."""
    import inspect

    h = hashlib.sha256()
    for fn in _DRAWING:
        h.update(inspect.getsource(fn).encode())
    return h.hexdigest()


def source_hash(*files) -> str:
    """SHA-256 of the files' bytes, in order: what a kept set's key records of the code that made it."""
    h = hashlib.sha256()
    for f in files:
        h.update(Path(f).read_bytes())
    return h.hexdigest()
