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
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from astroae_core.io.atomic import atomic_path, atomic_write_text
from astroae_core.io.catalog import CATALOG_NAME

__all__ = [
    "ANOMALY_KINDS",
    "CATALOG_COLUMNS",
    "KINDS",
    "assign_kinds",
    "generate_demo_data",
    "main",
]

ANOMALY_KINDS = ("merger", "star", "satellite_trail", "cosmic_rays", "ring", "detector_edge")
KINDS = ("galaxy", *ANOMALY_KINDS)

PIXEL_SCALE = 0.1  # arcsec / pixel: ground-based-to-HST-like sampling; a 187-pixel stamp is 18.7 arcsec
FIELD_CENTER = (150.1, 2.2)  # deg (RA, Dec): one fixed field (COSMOS-like), so all stamps share a sky region
FIELD_RADIUS = 0.5  # deg: stamps are spread over a 1-degree field
READ_NOISE = 5.0  # electrons rms per pixel
GAIN = 1.0  # electrons / ADU; images are in electrons
SATURATION = 90_000.0  # electrons: full well, so bright stars saturate and bleed like on a real CCD
FILE_PREFIX = "galaxy_"

CATALOG_COLUMNS = (
    "file", "id", "kind", "is_anomaly", "flux", "hlr", "bulge_hlr", "disk_hlr", "bulge_fraction",
    "sersic_n_bulge", "q", "beta_deg", "e1", "e2", "psf_model", "psf_fwhm", "psf_beta", "sky_level",
    "read_noise", "noise_sigma", "snr", "ra", "dec", "x_offset", "y_offset", "image_seed", "detail",
)

_BULGE_N = (3.0, 3.5, 4.0, 4.5)  # discrete, so GalSim builds its Sersic tables once per worker, not per stamp
_BULGE_N_P = (0.2, 0.25, 0.4, 0.15)

_GSPARAMS = None  # created lazily: GalSim is imported only when stamps are actually drawn


def _gsparams():
    global _GSPARAMS
    if _GSPARAMS is None:
        import galsim

        # Looser than GalSim's defaults (5e-3, 1e-3) to draw ~30% faster: the change is below 3% of the noise
        # even at S/N 300 (measured), so invisible. The larger maximum_fft_size lets big n=4 bulges be drawn
        # instead of raising.
        _GSPARAMS = galsim.GSParams(folding_threshold=1e-2, maxk_threshold=3e-3, maximum_fft_size=8192)
    return _GSPARAMS


# ----------------------------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------------------------


def assign_kinds(n: int, *, seed: int = 0, anomaly_fraction: float = 0.04) -> list[str]:
    """Decide which stamps get which oddity.

    ``round(n * anomaly_fraction)`` stamps (chosen at random) are anomalies; the kinds are dealt out as evenly as
    possible in a random order, so every kind appears at least once as soon as there are six or more anomalies
    (for example ``n >= 138`` at the default fraction of 0.04).

    Parameters
    ----------
    n : int
        Number of stamps, at least 1.
    seed : int, optional
        Master seed.
    anomaly_fraction : float, optional
        Fraction of anomalous stamps, in [0, 1).

    Returns
    -------
    list of str
        ``n`` kinds, ``"galaxy"`` for normal stamps.
    """
    n = _check_n(n)
    anomaly_fraction = _check_fraction(anomaly_fraction)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xA40]))
    n_anom = int(round(n * anomaly_fraction))
    kinds = ["galaxy"] * n
    if n_anom:
        where = rng.choice(n, size=n_anom, replace=False)
        dealt = np.resize(rng.permutation(len(ANOMALY_KINDS)), n_anom)  # even deal: each kind before any repeats
        for i, k in zip(sorted(where.tolist()), rng.permutation(dealt).tolist()):
            kinds[i] = ANOMALY_KINDS[k]
    return kinds


def generate_demo_data(
    out,
    *,
    n: int = 2000,
    seed: int = 0,
    anomaly_fraction: float = 0.04,
    size: int = 187,
    progress: bool = True,
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
    progress : bool, optional
        Show a tqdm progress bar on stderr.
    kinds : sequence of str, optional
        The kind of every stamp (length ``n``), one of :data:`KINDS`; overrides the random assignment. Meant for
        tests and for making a gallery of each oddity.
    workers : int, optional
        Worker processes. Default: the CPUs available to this process (at most 8), or 1 for small ``n``.
        The result does not depend on it.

    Returns
    -------
    pandas.DataFrame
        The catalog, one row per stamp, columns :data:`CATALOG_COLUMNS` (``hlr``, ``bulge_hlr``, ``disk_hlr``
        and ``psf_fwhm`` in arcsec; ``x_offset``/``y_offset`` in pixels from the stamp centre; ``flux``,
        ``sky_level``, ``noise_sigma`` in electrons; ``snr`` is the optimal S/N of the central galaxy). The
        galaxy columns describe the central galaxy (for a merger, the first of the pair; for a ring, the
        ``bulge_*`` columns describe its nucleus and ``disk_hlr`` is the ring radius). ``psf_beta`` is NaN for a
        Kolmogorov PSF; ``detail`` says what was injected (empty, read back as NaN, for normal galaxies).

    Raises
    ------
    ValueError
        For a bad ``n``, ``anomaly_fraction``, ``size``, ``workers`` or ``kinds``.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    specs = _plan(out, n=n, seed=seed, anomaly_fraction=anomaly_fraction, size=size, kinds=kinds)
    if workers is None:
        workers = 1 if len(specs) < 64 else min(_available_cpus(), 8)  # small sets: start-up would dominate
    elif isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    workers = min(int(workers), len(specs))
    out = Path(out)
    old_files = _previous_files(out)
    out.mkdir(parents=True, exist_ok=True)

    rows = []
    with tqdm(total=len(specs), desc="demo-data", unit="stamp", disable=not progress) as bar:
        if workers == 1:
            for spec in specs:
                rows.append(_make_stamp(spec))
                bar.update()
        else:
            for row in _run_workers(specs, workers):
                rows.append(row)
                bar.update()
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


def main(argv=None) -> int:
    """Command line: ``python -m astroae_core demo-data --out DIR [--n N] [--seed S] [--dry-run]``.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status (0 on success; argument errors exit with status 2 through argparse).
    """
    parser = argparse.ArgumentParser(
        prog="python -m astroae_core demo-data",
        description="Generate the embedded demo dataset: GalSim galaxy stamps (FITS) with injected oddities "
        "and a catalog.csv of the true parameters.",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--n", type=int, default=2000, help="number of stamps (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    parser.add_argument("--anomaly-fraction", type=float, default=0.04,
                        help="fraction of stamps with an injected oddity (default 0.04)")
    parser.add_argument("--size", type=int, default=187, help="stamp side in pixels (default 187)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: CPUs, max 8)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--dry-run", action="store_true", help="print what would be written, write nothing")
    args = parser.parse_args(argv)
    try:
        if args.dry_run:
            specs = _plan(args.out, n=args.n, seed=args.seed, anomaly_fraction=args.anomaly_fraction,
                          size=args.size, kinds=None)
            counts = Counter(s.kind for s in specs)
            summary = ", ".join(f"{k} {counts[k]}" for k in KINDS if counts[k])
            print(f"dry run: would write {len(specs)} FITS stamps ({args.size}x{args.size} float32, "
                  f"{specs[0].name} .. {specs[-1].name}) and {CATALOG_NAME} to {args.out} "
                  f"with seed {args.seed}; kinds: {summary}")
            return 0
        t0 = time.perf_counter()
        catalog = generate_demo_data(args.out, n=args.n, seed=args.seed, anomaly_fraction=args.anomaly_fraction,
                                     size=args.size, progress=not args.no_progress, workers=args.workers)
    except ValueError as exc:
        parser.error(str(exc))
    n_anom = int(catalog["is_anomaly"].sum())
    print(f"wrote {len(catalog)} stamps ({n_anom} anomalies) and {CATALOG_NAME} to {args.out} "
          f"in {time.perf_counter() - t0:.1f} s")
    return 0


# ----------------------------------------------------------------------------------------------------------------
# Planning (cheap, no GalSim): what each stamp is
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    """Everything a worker needs to draw and write one stamp (plain fields: sent to workers as JSON)."""

    index: int
    name: str
    path: str
    kind: str
    seed: int  # master seed (header card)
    size: int


def _check_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    return int(n)


def _check_fraction(f) -> float:
    try:
        ok = 0.0 <= float(f) < 1.0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"anomaly_fraction must be in [0, 1), got {f!r}")
    return float(f)


def _plan(out, *, n, seed, anomaly_fraction, size, kinds) -> list[_Spec]:
    n = _check_n(n)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 32:
        raise ValueError(f"size must be an integer >= 32 pixels, got {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if kinds is None:
        kinds = assign_kinds(n, seed=seed, anomaly_fraction=anomaly_fraction)
    else:
        _check_fraction(anomaly_fraction)
        kinds = list(kinds)
        if len(kinds) != n:
            raise ValueError(f"kinds must have one entry per stamp (n={n}), got {len(kinds)}")
        bad = sorted({k for k in kinds if k not in KINDS})
        if bad:
            raise ValueError(f"unknown kind(s) {bad}; choose from {list(KINDS)}")
    width = max(5, len(str(n - 1)))
    out = Path(out)
    specs = []
    for i, kind in enumerate(kinds):
        name = f"{FILE_PREFIX}{i:0{width}d}.fits"
        specs.append(_Spec(index=i, name=name, path=str(out / name), kind=kind, seed=int(seed), size=int(size)))
    return specs


def _previous_files(out: Path) -> set[str]:
    """Stamp files listed in an existing catalog (ours to replace); nothing else in the folder is touched."""
    cat = out / CATALOG_NAME
    if not cat.is_file():
        return set()
    import pandas as pd

    try:
        files = pd.read_csv(cat, usecols=["file"])["file"].astype(str)
    except Exception:  # an unreadable or foreign catalog: leave everything alone
        return set()
    # Only flat names that look like ours, so a stray catalog can never make us delete elsewhere.
    return {f for f in files if f.startswith(FILE_PREFIX) and f.endswith(".fits") and "/" not in f and "\\" not in f}


def _available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _run_workers(specs: list[_Spec], workers: int):
    """Draw ``specs`` in ``workers`` fresh Python processes; yield catalog rows as stamps finish.

    Plain subprocesses rather than :mod:`multiprocessing`: GalSim links OpenMP (libgomp), and a process forked
    after OpenMP ran in its parent hangs, while spawn/forkserver re-import the caller's ``__main__`` and so fail
    from an unguarded script. A fresh interpreter has neither problem. Each worker reads its share of the specs
    as JSON on stdin and writes one JSON catalog row per finished stamp on stdout.
    """
    import selectors

    env = dict(os.environ)
    # The package may be used from a checkout without being installed: make it importable in the workers.
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    # One OpenMP thread per worker: the workers already use the cores.
    env.setdefault("OMP_NUM_THREADS", "1")
    cmd = [sys.executable, "-c", "from astroae_core.demo.generate import _worker_main; _worker_main()"]
    procs = []
    sel = selectors.DefaultSelector()
    try:
        for k in range(workers):
            share = [s.__dict__ for s in specs[k::workers]]  # interleaved, so slow kinds spread evenly
            err = tempfile.TemporaryFile()
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env)
            procs.append((proc, err))
            try:
                proc.stdin.write(json.dumps(share).encode())
                proc.stdin.close()
            except BrokenPipeError:  # the worker died at start-up; its exit status and stderr are reported below
                pass
            sel.register(proc.stdout, selectors.EVENT_READ, proc)
        open_pipes = len(procs)
        while open_pipes:
            for key, _ in sel.select():
                line = key.fileobj.readline()
                if not line:
                    sel.unregister(key.fileobj)
                    open_pipes -= 1
                    continue
                yield json.loads(line)
        for proc, err in procs:
            if proc.wait() != 0:
                err.seek(0)
                tail = err.read().decode(errors="replace")[-3000:]
                raise RuntimeError(f"demo-data worker failed with exit status {proc.returncode}:\n{tail}")
    finally:
        sel.close()
        for proc, err in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            err.close()


def _worker_main() -> None:
    """Entry point of a worker process (see :func:`_run_workers`)."""
    specs = [_Spec(**d) for d in json.loads(sys.stdin.buffer.read())]
    for spec in specs:
        # NaN is written as the bare token NaN, which json.loads reads back.
        sys.stdout.write(json.dumps(_make_stamp(spec)) + "\n")
        sys.stdout.flush()


# ----------------------------------------------------------------------------------------------------------------
# Drawing one stamp (runs in the workers)
# ----------------------------------------------------------------------------------------------------------------


def _make_stamp(spec: _Spec) -> dict:
    """Draw, write (atomically) and describe one stamp; returns its catalog row."""
    import galsim

    ss = np.random.SeedSequence([spec.seed, spec.index])
    image_seed = int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
    rng = np.random.default_rng(ss)
    # GalSim treats seed 0 as "seed from the clock", so keep it in [1, 2**31 - 1).
    dev = galsim.BaseDeviate(1 + image_seed % (2**31 - 2))
    size = spec.size
    gsp = _gsparams()

    # --- observing conditions -----------------------------------------------------------------------------------
    sky = float(np.exp(rng.uniform(np.log(80.0), np.log(800.0))))  # e-/pixel: dark to bright sky
    noise_sigma = math.sqrt(sky / GAIN + READ_NOISE**2)
    psf_fwhm = float(rng.uniform(0.2, 0.3))  # arcsec = 2-3 pixels
    # Mostly Kolmogorov (seeing-limited): its Fourier transform is a table look-up, while a Moffat's needs a
    # Bessel function per k-pixel and makes a stamp ~5x slower to draw.
    if rng.random() < 0.3:
        psf_model, psf_beta = "moffat", float(rng.uniform(2.5, 4.5))
        psf = galsim.Moffat(beta=psf_beta, fwhm=psf_fwhm, gsparams=gsp)
    else:
        psf_model, psf_beta = "kolmogorov", math.nan
        psf = galsim.Kolmogorov(fwhm=psf_fwhm, gsparams=gsp)
    psf = psf.shear(g1=float(rng.normal(0, 0.02)), g2=float(rng.normal(0, 0.02)))  # slight optical ellipticity

    # --- the central galaxy: drawn the same way for every kind, so a stamp's galaxy, position and sky do not ----
    # --- depend on which oddity (if any) it gets ------------------------------------------------------------------
    gal_p = _draw_galaxy_params(rng)
    dx, dy = (float(v) for v in rng.uniform(-0.5, 0.5, size=2))  # sub-pixel centroid offset, pixels
    # Bright, well-resolved galaxies, as in a morphology sample (CEERS cutouts peak at hundreds of sigma): at low
    # S/N the sky noise, which neither an 8-number code nor PCA-8 can reproduce, would dominate every pixel MSE.
    target_snr = float(np.clip(rng.lognormal(np.log(1500.0), 0.6), 300.0, 20000.0))
    # Position on the sky: uniform over a disk around the field centre (small field: flat-sky approximation).
    r_sky = FIELD_RADIUS * math.sqrt(rng.random())
    t_sky = 2 * math.pi * rng.random()
    dec0 = FIELD_CENTER[1] + r_sky * math.sin(t_sky)
    ra0 = (FIELD_CENTER[0] + r_sky * math.cos(t_sky) / math.cos(math.radians(dec0))) % 360.0
    if spec.kind in ("merger", "ring"):
        # A structural oddity lost in the noise would be a wrong label, not an anomaly.
        target_snr = max(target_snr, float(rng.uniform(600.0, 1500.0)))

    detail = ""
    if spec.kind == "ring":
        gal, gal_p, detail = _ring_galaxy(rng, gsp)
    else:
        gal = _bulge_disk(gal_p, gsp)

    image = galsim.ImageD(size, size, scale=PIXEL_SCALE)
    galsim.Convolve(gal, psf, gsparams=gsp).drawImage(image=image, offset=(dx, dy), method="auto")
    # Scale to the drawn S/N: the optimal S/N of the noiseless galaxy is sqrt(sum I^2) / sigma and linear in flux.
    snr_per_flux = math.sqrt(float(np.sum(image.array**2))) / noise_sigma
    flux = target_snr / snr_per_flux
    clean = image.array * flux

    # --- oddities that are part of the sky scene (they go through the noise) ------------------------------------
    if spec.kind == "merger":
        extra, detail = _merger_companion(rng, gal_p, gsp)
        comp = galsim.ImageD(size, size, scale=PIXEL_SCALE)
        galsim.Convolve(extra, psf, gsparams=gsp).drawImage(image=comp, offset=(dx, dy), method="auto")
        clean = clean + comp.array * flux
    elif spec.kind == "star":
        star_img, detail = _bright_star(rng, psf, psf_fwhm, size)
        clean = clean + star_img
    elif spec.kind == "satellite_trail":
        trail, detail = _satellite_trail(rng, psf_fwhm, noise_sigma, size)
        clean = clean + trail

    # --- detector: sky, Poisson + read noise, cosmic rays, saturation, sky subtraction --------------------------
    raw = galsim.ImageD(clean + sky, scale=PIXEL_SCALE)
    raw.addNoise(galsim.PoissonNoise(dev))  # photon noise of sky + sources (GAIN is 1: electrons)
    data = raw.array
    # Read noise from NumPy: GalSim's Gaussian deviates cost ten times more and this is a tenth of the run time.
    data += rng.normal(0.0, READ_NOISE, size=data.shape)
    if spec.kind == "cosmic_rays":
        detail = _add_cosmic_rays(rng, data, noise_sigma)
    data = _saturate_and_bleed(data)
    data = data - sky
    if spec.kind == "detector_edge":
        detail = _zero_detector_edge(rng, data)
    data = data.astype(np.float32)

    # --- header, file, row ------------------------------------------------------------------------------------
    cards = _header_cards(spec, ra0, dec0, psf_model, psf_fwhm, sky, image_seed)
    ra, dec = _pix2world(cards, (size - 1) / 2 + dx, (size - 1) / 2 + dy)
    with atomic_path(spec.path, suffix=".fits") as tmp:
        tmp.write_bytes(_fits_bytes(data, cards))

    g = galsim.Shear(q=gal_p["q"], beta=gal_p["beta_deg"] * galsim.degrees)
    return {
        "file": spec.name,
        "id": spec.index,
        "kind": spec.kind,
        "is_anomaly": spec.kind != "galaxy",
        "flux": _sig(flux),
        "hlr": _sig(gal_p["hlr"]),
        "bulge_hlr": _sig(gal_p["bulge_hlr"]),
        "disk_hlr": _sig(gal_p["disk_hlr"]),
        "bulge_fraction": _sig(gal_p["bulge_fraction"]),
        "sersic_n_bulge": gal_p["sersic_n_bulge"],
        "q": _sig(gal_p["q"]),
        "beta_deg": _sig(gal_p["beta_deg"]),
        "e1": _sig(g.g1),
        "e2": _sig(g.g2),
        "psf_model": psf_model,
        "psf_fwhm": _sig(psf_fwhm),
        "psf_beta": _sig(psf_beta),
        "sky_level": _sig(sky),
        "read_noise": READ_NOISE,
        "noise_sigma": _sig(noise_sigma),
        "snr": _sig(target_snr),
        "ra": round(ra, 8),
        "dec": round(dec, 8),
        "x_offset": _sig(dx),
        "y_offset": _sig(dy),
        "image_seed": image_seed,
        "detail": detail,
    }


def _sig(x: float, digits: int = 6) -> float:
    """Round to ``digits`` significant figures, so the CSV stays readable (NaN passes through)."""
    x = float(x)
    return x if not math.isfinite(x) else float(f"{x:.{digits}g}")


def _draw_galaxy_params(rng) -> dict:
    """Bulge + disk parameters of a field galaxy (sizes in arcsec, angles in degrees)."""
    hlr = float(np.exp(rng.uniform(np.log(0.3), np.log(2.0))))  # 3-20 pixels, more small than big
    bulge_fraction = float(rng.beta(0.9, 1.8))  # mostly disk-dominated, some bulge-dominated
    n_b = float(rng.choice(_BULGE_N, p=_BULGE_N_P))
    # Bulges are more compact than their disks; in bulge-dominated galaxies the two are closer in size, which
    # also keeps a faint disk of an elliptical from spreading over the whole stamp.
    size_ratio = float(rng.uniform(0.15 + 0.4 * bulge_fraction, 0.6 + 0.3 * bulge_fraction))
    # Disk inclination with an intrinsic thickness of 0.15; bulges are rounder.
    cos_i = rng.random()
    q = float(math.sqrt((1 - 0.15**2) * cos_i**2 + 0.15**2))
    q_bulge = float(rng.uniform(max(q, 0.6), 1.0))
    beta = float(rng.uniform(0.0, 180.0))
    # Scale the pair so that the composite profile has exactly the drawn half-light radius.
    s = hlr / _composite_hlr(bulge_fraction, n_b, size_ratio)
    return {
        "hlr": hlr, "bulge_fraction": bulge_fraction, "sersic_n_bulge": n_b, "bulge_hlr": s * size_ratio,
        "disk_hlr": s, "q": q, "q_bulge": q_bulge, "beta_deg": beta,
    }


def _composite_hlr(bf: float, n_b: float, ratio: float) -> float:
    """Half-light radius of ``bf`` * Sersic(n_b, hlr=ratio) + (1 - bf) * Exponential(hlr=1) (circular)."""
    from scipy.optimize import brentq
    from scipy.special import gammainc, gammaincinv

    bn_b, bn_d = gammaincinv(2 * n_b, 0.5), gammaincinv(2.0, 0.5)

    def enclosed(r):
        return bf * gammainc(2 * n_b, bn_b * (r / ratio) ** (1 / n_b)) + (1 - bf) * gammainc(2.0, bn_d * r) - 0.5

    lo, hi = min(ratio, 1.0), max(ratio, 1.0)  # the answer lies between the two components' radii
    if enclosed(lo) >= 0:
        return lo
    if enclosed(hi) <= 0:
        return hi
    return float(brentq(enclosed, lo, hi, xtol=1e-10))


def _bulge_disk(p: dict, gsp):
    import galsim

    beta = p["beta_deg"] * galsim.degrees
    bulge = galsim.Sersic(n=p["sersic_n_bulge"], half_light_radius=p["bulge_hlr"], gsparams=gsp)
    disk = galsim.Exponential(half_light_radius=p["disk_hlr"], gsparams=gsp)
    bf = p["bulge_fraction"]
    return galsim.Add(
        [bulge.withFlux(bf).shear(q=p["q_bulge"], beta=beta), disk.withFlux(1 - bf).shear(q=p["q"], beta=beta)],
        gsparams=gsp,
    )


def _ring_galaxy(rng, gsp):
    """A collisional ring galaxy of unit flux: a clumpy, lopsided ring around an off-centre nucleus.

    The ring is a necklace of overlapping Gaussians on a circle (smooth and thin, and analytic, so GalSim draws it
    quickly), brighter on one side as the expanding density wave of a real ring is; a few compact star-forming
    knots sit on it, a faint diffuse disk fills it, and the old nucleus is displaced from the ring's centre.
    """
    import galsim

    radius = float(rng.uniform(0.8, 1.8))  # arcsec: 8-18 pixels
    width = float(rng.uniform(0.08, 0.18)) * radius  # Gaussian sigma across the ring
    w_ring, w_disk = 0.6, float(rng.uniform(0.08, 0.15))
    nucleus_frac = float(rng.uniform(0.06, 0.15))
    knot_frac = 1.0 - w_ring - w_disk - nucleus_frac
    n_beads = max(24, int(2 * math.pi * radius / width))  # spaced closer than their width: a smooth ring
    phi = 2 * math.pi * np.arange(n_beads) / n_beads
    lopsided = 1 + float(rng.uniform(0.2, 0.7)) * np.cos(phi - rng.uniform(0, 2 * math.pi))
    bead_flux = w_ring * lopsided / lopsided.sum()
    parts = [
        galsim.Gaussian(sigma=width, flux=float(f), gsparams=gsp).shift(radius * math.cos(t), radius * math.sin(t))
        for t, f in zip(phi, bead_flux)
    ]
    n_knots = int(rng.integers(3, 9))
    wk = rng.uniform(0.5, 1.5, size=n_knots)
    for t, f in zip(rng.uniform(0, 2 * math.pi, size=n_knots), wk / wk.sum() * knot_frac):
        parts.append(galsim.Gaussian(sigma=float(rng.uniform(0.5, 1.0)) * width, flux=float(f), gsparams=gsp)
                     .shift(radius * math.cos(t), radius * math.sin(t)))
    parts.append(galsim.Exponential(half_light_radius=radius, flux=w_disk, gsparams=gsp))
    off = float(rng.uniform(0.0, 0.3)) * radius
    t_n = float(rng.uniform(0, 2 * math.pi))
    n_nuc, nucleus_hlr = 4.0, float(rng.uniform(0.08, 0.2))
    parts.append(galsim.Sersic(n=n_nuc, half_light_radius=nucleus_hlr, flux=nucleus_frac, gsparams=gsp)
                 .shift(off * math.cos(t_n), off * math.sin(t_n)))
    face_on = galsim.Add(parts, gsparams=gsp)
    q = float(rng.uniform(0.6, 1.0))  # inclination of the ring plane; more inclined, the PSF fills the hole
    beta = float(rng.uniform(0.0, 180.0))
    gal = face_on.shear(q=q, beta=beta * galsim.degrees)
    params = {
        # A shear keeps areas, so the face-on profile gives the circularized half-light radius.
        "hlr": _measured_hlr(face_on), "bulge_fraction": nucleus_frac, "sersic_n_bulge": n_nuc,
        "bulge_hlr": nucleus_hlr, "disk_hlr": radius, "q": q, "q_bulge": 1.0, "beta_deg": beta,
    }
    detail = f"ring_radius={radius:.3g}arcsec knots={n_knots} nucleus_offset={off:.3g}arcsec"
    return gal, params, detail


def _measured_hlr(profile) -> float:
    """Half-light radius (arcsec) about the origin, measured on a finely sampled PSF-free image.

    GalSim's ``calculateHLR`` takes about half a minute for a sum of many components; sampling the profile
    (analytic in real space) and sorting radii takes milliseconds.
    """
    scale, npix = PIXEL_SCALE / 2, 256
    arr = profile.drawImage(nx=npix, ny=npix, scale=scale, method="no_pixel").array
    yy, xx = np.mgrid[0:npix, 0:npix]
    r = np.hypot(xx - (npix - 1) / 2, yy - (npix - 1) / 2).ravel() * scale
    order = np.argsort(r, kind="stable")
    cum = np.cumsum(arr.ravel()[order])
    return float(r[order][np.searchsorted(cum, 0.5 * cum[-1])])


def _merger_companion(rng, primary: dict, gsp):
    """A second, tidally stretched galaxy overlapping the first, plus a faint bridge (fluxes relative to the first).

    The primary is left as catalogued; the bridge lying across it stands in for its own tidal distortion.
    """
    import galsim

    comp_p = _draw_galaxy_params(rng)
    scale = float(rng.uniform(0.5, 1.1)) * primary["hlr"] / comp_p["hlr"]
    for key in ("hlr", "bulge_hlr", "disk_hlr"):
        comp_p[key] *= scale
    flux_ratio = float(rng.uniform(0.4, 1.0))  # a major merger: a minor companion would pass for a normal galaxy
    # Close enough that the light overlaps, far enough that two nuclei show (at least ~2 PSF widths apart).
    sep = max(float(rng.uniform(0.8, 1.4)) * (primary["hlr"] + comp_p["hlr"]), 0.6)  # arcsec
    phi = float(rng.uniform(0, 180))
    ux, uy = math.cos(math.radians(phi)), math.sin(math.radians(phi))
    tide = float(rng.uniform(0.1, 0.3))  # both galaxies are stretched along the line joining them
    companion = (_bulge_disk(comp_p, gsp).withFlux(flux_ratio)
                 .shear(g=tide, beta=phi * galsim.degrees).shift(sep * ux, sep * uy))
    bridge = (galsim.Exponential(half_light_radius=0.3 * sep, flux=0.1 * (1 + flux_ratio), gsparams=gsp)
              .shear(q=0.3, beta=phi * galsim.degrees).shift(sep / 2 * ux, sep / 2 * uy))
    extra = galsim.Add([companion, bridge], gsparams=gsp)
    return extra, f"separation={sep:.3g}arcsec flux_ratio={flux_ratio:.3g} angle={phi:.3g}deg"


def _bright_star(rng, psf, psf_fwhm: float, size: int):
    """A saturated star beside the galaxy with four diffraction spikes (array in electrons, before noise)."""
    import galsim

    flux = float(np.exp(rng.uniform(np.log(5e6), np.log(5e7))))  # bright enough to saturate and show spikes
    r = float(rng.uniform(0.12, 0.38)) * size  # pixels from the centre: beside, not on, the galaxy
    t = float(rng.uniform(0, 2 * math.pi))
    sx, sy = r * math.cos(t), r * math.sin(t)
    img = galsim.ImageD(size, size, scale=PIXEL_SCALE)
    # no_pixel samples the PSF profile directly, so its wings reach the stamp edge without the FFT wrap-around
    # that would show at these fluxes (the pixel response hardly matters for a saturated star).
    psf.withFlux(flux).drawImage(image=img, offset=(sx, sy), method="no_pixel")
    arr = img.array.copy()
    # Diffraction spikes from a secondary-mirror spider: 4 thin lines through the star, intensity ~ 1/r^2.
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    cx, cy = (size - 1) / 2 + sx, (size - 1) / 2 + sy
    ang0 = float(rng.uniform(0, math.pi / 2))
    fwhm_pix = psf_fwhm / PIXEL_SCALE
    width = 0.45 * fwhm_pix  # gaussian sigma across the spike: thinner than the PSF core
    # Per pixel along the spike at r ~ fwhm; the four spikes together hold ~3-6% of the star's light.
    spike_amp = 4e-3 * flux * float(rng.uniform(0.8, 1.2))
    for k in range(2):  # two lines through the star = four spikes
        a = ang0 + k * math.pi / 2
        u = (xx - cx) * math.cos(a) + (yy - cy) * math.sin(a)
        v = -(xx - cx) * math.sin(a) + (yy - cy) * math.cos(a)
        along = (fwhm_pix / (fwhm_pix + np.abs(u))) ** 2
        # Faint periodic modulation along the spike, as real spikes show (diffraction fringes).
        along *= 1 + 0.25 * np.cos(2 * np.pi * np.abs(u) / (1.7 * fwhm_pix))
        arr += spike_amp * along * np.exp(-0.5 * (v / width) ** 2) / (math.sqrt(2 * math.pi) * width)
    # dx, dy: the star's position relative to the stamp centre.
    detail = f"star_flux={flux:.3g}e- dx={sx:.3g}px dy={sy:.3g}px spike_angle={math.degrees(ang0):.3g}deg"
    return arr, detail


def _satellite_trail(rng, psf_fwhm: float, noise_sigma: float, size: int):
    """A straight streak crossing the whole stamp (array in electrons, before noise)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    c = (size - 1) / 2
    ang = float(rng.uniform(0, math.pi))
    d = float(rng.uniform(-0.3, 0.3)) * size  # the line's distance from the centre
    v = -(xx - c) * math.sin(ang) + (yy - c) * math.cos(ang) - d
    u = (xx - c) * math.cos(ang) + (yy - c) * math.sin(ang)
    # A satellite is out of focus: a bit wider than the PSF.
    sigma = float(rng.uniform(1.0, 1.8)) * psf_fwhm / PIXEL_SCALE / 2.355
    peak = float(np.exp(rng.uniform(np.log(8.0), np.log(150.0)))) * noise_sigma
    # Tumbling satellites glint: the brightness varies slowly along the trail.
    period = float(rng.uniform(40, 160))
    glint = 1 + float(rng.uniform(0.0, 0.4)) * np.sin(2 * np.pi * u / period + rng.uniform(0, 2 * np.pi))
    arr = peak * glint * np.exp(-0.5 * (v / sigma) ** 2)
    return arr, f"angle={math.degrees(ang):.3g}deg distance={d:.3g}px peak={peak / noise_sigma:.3g}sigma"


def _add_cosmic_rays(rng, data, noise_sigma: float) -> str:
    """Add sharp hits (not PSF-convolved) in place: single pixels, small blobs and short tracks."""
    size = data.shape[0]
    n_hits = int(rng.integers(5, 16))
    kinds = Counter()
    for _ in range(n_hits):
        x0, y0 = rng.uniform(2, size - 3, size=2)
        e = float(np.exp(rng.uniform(np.log(30.0), np.log(400.0)))) * noise_sigma
        r = rng.random()
        if r < 0.4:
            data[int(y0), int(x0)] += e
            kinds["pixel"] += 1
        elif r < 0.7:
            # A blob: the hit plus a few neighbours with part of its charge.
            data[int(y0), int(x0)] += e
            for _ in range(int(rng.integers(1, 4))):
                ox, oy = rng.integers(-1, 2, size=2)
                data[int(y0) + oy, int(x0) + ox] += e * float(rng.uniform(0.2, 0.6))
            kinds["blob"] += 1
        else:
            # A track: a grazing particle deposits charge along a short straight line, sampled finely.
            length = float(rng.uniform(4, 30))
            a = float(rng.uniform(0, 2 * math.pi))
            steps = int(length * 4) + 1
            t = np.linspace(0, length, steps)
            xs = np.clip(np.rint(x0 + t * math.cos(a)), 0, size - 1).astype(int)
            ys = np.clip(np.rint(y0 + t * math.sin(a)), 0, size - 1).astype(int)
            np.add.at(data, (ys, xs), e / 4 * rng.uniform(0.5, 1.5, size=steps))
            kinds["track"] += 1
    return f"hits={n_hits} " + " ".join(f"{k}={kinds[k]}" for k in ("pixel", "blob", "track"))


def _saturate_and_bleed(data):
    """Clip at the full well; the excess charge of a saturated column spills along it (bleed trails)."""
    over = data > SATURATION
    if not over.any():
        return data
    data = data.copy()
    for col in np.flatnonzero(over.any(axis=0)):
        column = data[:, col]
        rows = np.flatnonzero(column > SATURATION)
        excess = float(np.sum(column[rows] - SATURATION))
        spill = int(excess // SATURATION)  # pixels the excess fills to the well depth
        lo = max(0, rows.min() - spill // 2)
        hi = min(len(column), rows.max() + 1 + spill - spill // 2)
        column[lo:hi] = SATURATION
    return np.minimum(data, SATURATION)


def _zero_detector_edge(rng, data) -> str:
    """Zero, in place, the part of the stamp beyond the mosaic edge: a strip along one side, or a corner."""
    size = data.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    c = (size - 1) / 2
    mask = np.zeros(data.shape, bool)
    corner = rng.random() < 0.25
    sides = rng.permutation(4)[: 2 if corner else 1]
    base = int(sides[0])
    if corner:
        # Two adjacent sides (a corner of the mosaic); keep the second one adjacent to the first.
        sides = [base, (base + 1) % 4]
    parts = []
    for side in sides:
        frac = float(rng.uniform(0.1, 0.4))  # how deep the strip reaches into the stamp
        tilt = float(rng.uniform(-25, 25)) if rng.random() < 0.5 else 0.0  # mosaics are rarely north-aligned
        a = math.radians(90 * int(side) + tilt)
        # Signed distance from the centre towards the side; beyond (0.5 - frac) * size is off the mosaic.
        dist = (xx - c) * math.cos(a) + (yy - c) * math.sin(a)
        mask |= dist > (0.5 - frac) * size
        parts.append(f"side={'ENWS'[int(side)]} depth={frac:.3g} tilt={tilt:.3g}deg")
    data[mask] = 0.0
    return f"zero_fraction={mask.mean():.3g} " + " ".join(parts)


# ----------------------------------------------------------------------------------------------------------------
# FITS
# ----------------------------------------------------------------------------------------------------------------


def _header_cards(spec: _Spec, ra0: float, dec0: float, psf_model: str, psf_fwhm: float, sky: float,
                  image_seed: int) -> list[tuple]:
    """The header as (keyword, value, comment): fixed order, no dates, a north-up TAN WCS centred on the stamp."""
    import galsim

    from astroae_core import __version__

    c = (spec.size + 1) / 2  # FITS pixels are 1-based: the centre of pixel (size+1)/2
    return [
        ("BUNIT", "electron", "sky-subtracted counts"),
        ("WCSAXES", 2, "number of WCS axes"),
        ("CTYPE1", "RA---TAN", "right ascension, gnomonic projection"),
        ("CTYPE2", "DEC--TAN", "declination, gnomonic projection"),
        ("CUNIT1", "deg", ""),
        ("CUNIT2", "deg", ""),
        ("CRPIX1", c, "reference pixel (stamp centre)"),
        ("CRPIX2", c, "reference pixel (stamp centre)"),
        ("CRVAL1", round(ra0, 9), "[deg] RA at reference pixel"),
        ("CRVAL2", round(dec0, 9), "[deg] Dec at reference pixel"),
        ("CDELT1", -PIXEL_SCALE / 3600, "[deg] RA grows to the left (east)"),
        ("CDELT2", PIXEL_SCALE / 3600, "[deg]"),
        ("RADESYS", "ICRS", ""),
        ("OBJECT", f"demo-{spec.index:05d}", "object name"),
        ("ID", spec.index, "row id in catalog.csv"),
        ("KIND", spec.kind, "galaxy, or the kind of injected oddity"),
        ("ANOMALY", spec.kind != "galaxy", "an oddity was injected"),
        ("PIXSCALE", PIXEL_SCALE, "[arcsec/pixel]"),
        ("PSFMODEL", psf_model, "PSF profile"),
        ("PSFFWHM", round(psf_fwhm, 6), "[arcsec] PSF FWHM"),
        ("SKYLEVEL", round(sky, 4), "[electron/pixel] sky level (subtracted)"),
        ("SKYSUB", True, "sky level subtracted"),
        ("GAIN", GAIN, "[electron/ADU]"),
        ("RDNOISE", READ_NOISE, "[electron] read noise"),
        ("SATURATE", round(SATURATION - sky, 4), "[electron] saturation, sky subtracted"),
        ("TELESCOP", "SIMULATED", "GalSim simulation"),
        ("ORIGIN", "astroae", ""),
        ("GENERATR", f"astroae.demo_data {__version__}", "program that made this file"),
        ("GALSIMV", galsim.__version__, "GalSim version"),
        ("SEED", spec.seed, "master seed of the dataset"),
        ("IMSEED", image_seed, "this stamp's seed (from SEED and ID)"),
    ]


def _card(key: str, value, comment: str = "") -> str:
    """One 80-character header card, formatted exactly as astropy formats it (the tests compare bytes)."""
    if isinstance(value, str):
        v = "'{:8}'".format(value.replace("'", "''"))
        v = f"{v:20}"
    elif isinstance(value, (bool, np.bool_)):
        v = f"{'T' if value else 'F':>20}"
    elif isinstance(value, (int, np.integer)):
        v = f"{int(value):>20d}"
    else:
        v = str(float(value)).replace("e", "E")
        if len(v) > 20:  # astropy keeps at most 20 characters, shortening the mantissa
            e = v.find("E")
            v = v[:20] if e < 0 else v[: 20 - (len(v) - e)] + v[e:]
        v = f"{v:>20}"
    card = f"{key:8}= {v}" + (f" / {comment}" if comment else "")
    if len(key) > 8 or len(card) > 80:
        raise ValueError(f"FITS card {key!r} does not fit in 80 characters: {card!r}")
    return f"{card:80}"


def _fits_bytes(data, cards) -> bytes:
    """A complete single-HDU FITS file (float32 image) as bytes.

    Assembled here because astropy's Header/Card machinery costs ~40 ms per stamp, a third of the whole run;
    the layout is what astropy writes for ``PrimaryHDU(data, Header(cards))``, and the tests check that the two
    are byte-identical.
    """
    ny, nx = data.shape
    head = [
        _card("SIMPLE", True, "conforms to FITS standard"),
        _card("BITPIX", -32, "array data type"),
        _card("NAXIS", 2, "number of array dimensions"),
        _card("NAXIS1", nx),
        _card("NAXIS2", ny),
    ]
    head += [_card(*c) for c in cards]
    head.append(f"{'END':80}")
    text = "".join(head)
    text += " " * (-len(text) % 2880)
    body = np.ascontiguousarray(data, dtype=">f4").tobytes()
    return text.encode("ascii") + body + b"\0" * (-len(body) % 2880)


def _pix2world(cards, x: float, y: float) -> tuple[float, float]:
    """Sky position of 0-based pixel (x, y): the inverse gnomonic (TAN) projection of the header's WCS.

    Written out rather than through ``astropy.wcs.WCS``, whose construction costs more than drawing a stamp;
    the tests check it against astropy.
    """
    header = {k: v for k, v, _ in cards}
    xi = math.radians(header["CDELT1"] * (x + 1 - header["CRPIX1"]))
    eta = math.radians(header["CDELT2"] * (y + 1 - header["CRPIX2"]))
    ra0, dec0 = math.radians(header["CRVAL1"]), math.radians(header["CRVAL2"])
    den = math.cos(dec0) - eta * math.sin(dec0)
    ra = ra0 + math.atan2(xi, den)
    dec = math.atan2(math.sin(dec0) + eta * math.cos(dec0), math.hypot(xi, den))
    return math.degrees(ra) % 360.0, math.degrees(dec)


if __name__ == "__main__":
    sys.exit(main())
