"""The embedded demo: realistic galaxy stamps drawn with GalSim, plus a few percent of injected oddities.

``generate_demo_data(out, n=2000, seed=0)`` writes ``out/galaxy_00000.fits`` ... (one float32 primary HDU each,
with a celestial TAN WCS) and ``out/catalog.csv`` with the true parameters of every stamp, so that the latent
space the autoencoder learns can be checked against ground truth: ``kind`` and ``is_anomaly`` say which stamps
are odd and how.

What a stamp holds
------------------
A bulge (Sersic, n = 3 to 4.5) plus disk (exponential) galaxy with random size, inclination, orientation,
bulge fraction and brightness, a small sub-pixel offset from the stamp centre, convolved with a Moffat or
Kolmogorov PSF (FWHM 2 to 3 pixels), observed over a sky background with Poisson and read noise; the sky level is
then subtracted, as it is in survey cutouts (``SKYLEVEL`` in the header keeps it). Pixel values are electrons.

The oddities (``ANOMALY_KINDS``):

- ``merger``: a second galaxy close enough to overlap, with tidal distortion and a faint bridge between the two;
- ``star``: a bright, saturated star beside the galaxy, with four diffraction spikes and bleed trails;
- ``satellite_trail``: a bright straight streak across the whole stamp;
- ``cosmic_rays``: sharp single-pixel hits, small blobs and short tracks that the PSF never touched;
- ``ring``: a ring galaxy (collisional ring with star-forming knots and an off-centre nucleus) instead of a
  bulge + disk galaxy;
- ``detector_edge``: the stamp runs off the mosaic, so a strip (sometimes a corner) is exactly zero.

Reproducibility
---------------
Every stamp has its own seed derived from ``(seed, index)`` with :class:`numpy.random.SeedSequence`; its
parameters come from a NumPy generator and its noise from a GalSim deviate seeded from it. A stamp therefore
does not depend on the order stamps are drawn in or on how many worker processes draw them, and the same
``seed`` gives byte-identical FITS files and catalog (no timestamps anywhere, fixed header card order).

Where things are
----------------
:mod:`~astroae_core.demo.plan` (kinds, seeds, file names), :mod:`~astroae_core.demo.stamp` (one stamp, start to
finish), :mod:`~astroae_core.demo.galaxies` and :mod:`~astroae_core.demo.oddities` (what is drawn),
:mod:`~astroae_core.demo.fits_file` (the file), :mod:`~astroae_core.demo.workers` (the process pool); this module
runs a whole set (its command line is ``astroae demo-data``, in :mod:`astroae_core.cli`).
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from astroae_core.demo.plan import FILE_PREFIX, KINDS, plan_stamps
from astroae_core.demo.stamp import CATALOG_COLUMNS, make_stamp
from astroae_core.demo.workers import available_cpus, run_workers
from astroae_core.io.atomic import atomic_write_text
from astroae_core.io.catalog import CATALOG_NAME
from astroae_core.progress import Progress, report

__all__ = ["generate_demo_data", "main"]


def generate_demo_data(
    out,
    *,
    n: int = 2000,
    seed: int = 0,
    anomaly_fraction: float = 0.04,
    size: int = 187,
    progress: Progress | None = None,
    kinds: Sequence[str] | None = None,
    workers: int | None = None,
):
    """Generate the demo dataset: ``n`` FITS galaxy stamps and ``catalog.csv`` in ``out``.

    Parameters
    ----------
    out : str or Path
        Output folder, created if missing. Files are ``galaxy_00000.fits`` ... (flat) and ``catalog.csv``.
        Stamps listed in a previous ``catalog.csv`` there that are not part of this set are removed, so the
        folder always matches its catalog.
    n : int, optional
        Number of stamps (at least 1).
    seed : int, optional
        Master seed; the same seed gives byte-identical files.
    anomaly_fraction : float, optional
        Fraction of stamps with an injected oddity, in [0, 1). Ignored when ``kinds`` is given.
    size : int, optional
        Stamp side in pixels (at least 32). The galaxies keep their physical size (0.1 arcsec pixels).
    progress : Progress, optional
        Called as ``progress(done, total, "demo-data")`` as stamps are written (see :mod:`astroae_core.progress`).
    kinds : sequence of str, optional
        The kind of every stamp (length ``n``), one of :data:`~astroae_core.demo.KINDS`; overrides the random
        assignment. Meant for tests and for making a gallery of each oddity.
    workers : int, optional
        Worker processes. Default: the CPUs available to this process (at most 8), or 1 for small ``n``.
        The result does not depend on it.

    Returns
    -------
    pandas.DataFrame
        The catalog, one row per stamp, columns :data:`~astroae_core.demo.CATALOG_COLUMNS` (``hlr``,
        ``bulge_hlr``, ``disk_hlr`` and ``psf_fwhm`` in arcsec; ``x_offset``/``y_offset`` in pixels from the stamp
        centre; ``flux``, ``sky_level``, ``noise_sigma`` in electrons; ``snr`` is the optimal S/N of the central
        galaxy). The galaxy columns describe the central galaxy (for a merger, the first of the pair; for a ring,
        the ``bulge_*`` columns describe its nucleus and ``disk_hlr`` is the ring radius). ``psf_beta`` is NaN for
        a Kolmogorov PSF; ``detail`` says what was injected (empty, read back as NaN, for normal galaxies).

    Raises
    ------
    ValueError
        For a bad ``n``, ``anomaly_fraction``, ``size``, ``workers`` or ``kinds``.
    """
    import pandas as pd

    specs = plan_stamps(out, n=n, seed=seed, anomaly_fraction=anomaly_fraction, size=size, kinds=kinds)
    workers = _check_workers(workers, len(specs))
    out = Path(out)
    old_files = _previous_files(out)
    out.mkdir(parents=True, exist_ok=True)

    rows = []
    report(progress, 0, len(specs), "demo-data")
    stamps = map(make_stamp, specs) if workers == 1 else run_workers(specs, workers)
    for row in stamps:
        rows.append(row)
        report(progress, len(rows), len(specs), "demo-data")
    rows.sort(key=lambda r: r["id"])

    catalog = pd.DataFrame(rows, columns=list(CATALOG_COLUMNS))
    buf = io.StringIO()
    catalog.to_csv(buf, index=False, lineterminator="\n")
    # The catalog is written last: a catalog on disk means every stamp it lists is complete.
    atomic_write_text(out / CATALOG_NAME, buf.getvalue())
    new_files = set(catalog["file"])
    for name in sorted(old_files - new_files):
        (out / name).unlink(missing_ok=True)
    return catalog


def _check_workers(workers, n_stamps: int) -> int:
    """The number of worker processes: ``workers`` checked, or a default for ``n_stamps``; never more than those."""
    if workers is None:
        workers = 1 if n_stamps < 64 else min(available_cpus(), 8)  # small sets: start-up would dominate
    elif isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    return min(int(workers), n_stamps)


def _previous_files(out: Path) -> set[str]:
    """Stamp files listed in an existing catalog (ours to replace); nothing else in the folder is touched."""
    cat = out / CATALOG_NAME
    if not cat.is_file():
        return set()
    import pandas as pd

    try:
        files = pd.read_csv(cat, usecols=["file"])["file"].astype(str)
    except (OSError, ValueError):  # an unreadable or foreign catalog (pandas errors are ValueErrors): leave all alone
        return set()
    # Only flat names that look like ours, so a stray catalog can never make us delete elsewhere.
    return {f for f in files if f.startswith(FILE_PREFIX) and f.endswith(".fits") and "/" not in f and "\\" not in f}


def dry_run_summary(out, *, n: int, seed: int, anomaly_fraction: float, size: int) -> str:
    """What :func:`generate_demo_data` with these arguments would write, in one sentence (ValueError for bad
    ones, as the run itself would raise)."""
    specs = plan_stamps(out, n=n, seed=seed, anomaly_fraction=anomaly_fraction, size=size, kinds=None)
    counts = Counter(s.kind for s in specs)
    summary = ", ".join(f"{k} {counts[k]}" for k in KINDS if counts[k])
    return (f"dry run: would write {len(specs)} FITS stamps ({size}x{size} float32, "
            f"{specs[0].name} .. {specs[-1].name}) and {CATALOG_NAME} to {out} "
            f"with seed {seed}; kinds: {summary}")

