"""One demo stamp, start to finish: observing conditions, the central galaxy, the oddity, the detector, the file
and its catalog row (:func:`make_stamp`, which runs in the workers).

The random draws happen in a fixed order from the stamp's own generator, so a stamp depends only on the master
seed, its index and its kind; every step below keeps its place in that order (moving a draw would change every
stamp, and the shipped checkpoints were trained on these exact files).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from astroae_core.demo.fits_file import fits_bytes, header_cards, pix2world
from astroae_core.demo.galaxies import bulge_disk, draw_galaxy_params, gsparams, merger_companion, ring_galaxy
from astroae_core.demo.instrument import FIELD_CENTER, FIELD_RADIUS, GAIN, PIXEL_SCALE, READ_NOISE
from astroae_core.demo.oddities import (add_cosmic_rays, bright_star, satellite_trail, saturate_and_bleed,
                                        zero_detector_edge)
from astroae_core.demo.plan import StampSpec
from astroae_core.io.atomic import atomic_path

__all__ = ["CATALOG_COLUMNS", "make_stamp"]

CATALOG_COLUMNS = (
    "file", "id", "kind", "is_anomaly", "flux", "hlr", "bulge_hlr", "disk_hlr", "bulge_fraction",
    "sersic_n_bulge", "q", "beta_deg", "e1", "e2", "psf_model", "psf_fwhm", "psf_beta", "sky_level",
    "read_noise", "noise_sigma", "snr", "ra", "dec", "x_offset", "y_offset", "image_seed", "detail",
)


@dataclass
class _Sky:
    """The observing conditions of one stamp."""

    sky: float  # electrons / pixel
    noise_sigma: float  # electrons rms per pixel (sky Poisson noise and read noise)
    psf_fwhm: float  # arcsec
    psf_model: str
    psf_beta: float  # NaN for a Kolmogorov PSF
    psf: object  # the GalSim profile


@dataclass
class _Target:
    """The central galaxy's parameters and where it lies: in the stamp (pixels) and on the sky (degrees)."""

    params: dict
    dx: float
    dy: float
    snr: float
    ra0: float
    dec0: float


def make_stamp(spec: StampSpec) -> dict:
    """Draw, write (atomically) and describe one stamp; returns its catalog row (columns :data:`CATALOG_COLUMNS`).

    Parameters
    ----------
    spec : StampSpec
        The stamp's index, kind, master seed, size and file.

    Returns
    -------
    dict
        The stamp's catalog row.
    """
    import galsim

    ss = np.random.SeedSequence([spec.seed, spec.index])
    image_seed = int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
    rng = np.random.default_rng(ss)
    # GalSim treats seed 0 as "seed from the clock", so keep it in [1, 2**31 - 1).
    dev = galsim.BaseDeviate(1 + image_seed % (2**31 - 2))

    sky = _observing_conditions(rng)
    # The central galaxy is drawn the same way for every kind, so a stamp's galaxy, position and sky do not
    # depend on which oddity (if any) it gets.
    target = _place_target(rng, spec.kind)
    clean, flux, target.params, detail = _draw_scene(rng, spec, sky, target)
    data, detail = _observe(rng, dev, spec.kind, clean, sky, detail)

    cards = header_cards(spec, target.ra0, target.dec0, sky.psf_model, sky.psf_fwhm, sky.sky, image_seed)
    ra, dec = pix2world(cards, (spec.size - 1) / 2 + target.dx, (spec.size - 1) / 2 + target.dy)
    with atomic_path(spec.path, suffix=".fits") as tmp:
        tmp.write_bytes(fits_bytes(data, cards))
    return _catalog_row(spec, sky, target, flux=flux, ra=ra, dec=dec, image_seed=image_seed, detail=detail)


def _observing_conditions(rng) -> _Sky:
    """Sky level, noise and PSF of one stamp."""
    import galsim

    gsp = gsparams()
    sky = float(np.exp(rng.uniform(np.log(80.0), np.log(800.0))))  # e-/pixel: dark to bright sky
    noise_sigma = math.sqrt(sky / GAIN + READ_NOISE**2)
    psf_fwhm = float(rng.uniform(0.2, 0.3))  # arcsec = 2-3 pixels
    # Mostly Kolmogorov (seeing-limited): its Fourier transform is a table look-up, while a Moffat's needs a
    # Bessel function per k-pixel and makes a stamp several times slower to draw.
    if rng.random() < 0.3:
        psf_model, psf_beta = "moffat", float(rng.uniform(2.5, 4.5))
        psf = galsim.Moffat(beta=psf_beta, fwhm=psf_fwhm, gsparams=gsp)
    else:
        psf_model, psf_beta = "kolmogorov", math.nan
        psf = galsim.Kolmogorov(fwhm=psf_fwhm, gsparams=gsp)
    psf = psf.shear(g1=float(rng.normal(0, 0.02)), g2=float(rng.normal(0, 0.02)))  # slight optical ellipticity
    return _Sky(sky=sky, noise_sigma=noise_sigma, psf_fwhm=psf_fwhm, psf_model=psf_model, psf_beta=psf_beta,
                psf=psf)


def _place_target(rng, kind: str) -> _Target:
    """The central galaxy's parameters, sub-pixel offset, S/N and position in the field."""
    params = draw_galaxy_params(rng)
    dx, dy = (float(v) for v in rng.uniform(-0.5, 0.5, size=2))  # sub-pixel centroid offset, pixels
    # Bright, well-resolved galaxies, as in a morphology sample (CEERS cutouts peak at hundreds of sigma): at low
    # S/N the sky noise, which neither an 8-number code nor PCA-8 can reproduce, would dominate every pixel MSE.
    target_snr = float(np.clip(rng.lognormal(np.log(1500.0), 0.6), 300.0, 20000.0))
    # Position on the sky: uniform over a disk around the field centre (small field: flat-sky approximation).
    r_sky = FIELD_RADIUS * math.sqrt(rng.random())
    t_sky = 2 * math.pi * rng.random()
    dec0 = FIELD_CENTER[1] + r_sky * math.sin(t_sky)
    ra0 = (FIELD_CENTER[0] + r_sky * math.cos(t_sky) / math.cos(math.radians(dec0))) % 360.0
    if kind in ("merger", "ring"):
        # A structural oddity lost in the noise would be a wrong label, not an anomaly.
        target_snr = max(target_snr, float(rng.uniform(600.0, 1500.0)))
    return _Target(params=params, dx=dx, dy=dy, snr=target_snr, ra0=ra0, dec0=dec0)


def _draw_scene(rng, spec: StampSpec, sky: _Sky, target: _Target):
    """The noiseless scene in electrons: the galaxy at its S/N, plus the oddities that are part of the sky.

    Returns ``(image, flux, galaxy parameters, detail)``; a ring replaces the bulge + disk galaxy and its
    parameters.
    """
    import galsim

    gsp, size = gsparams(), spec.size
    detail, gal_p = "", target.params
    if spec.kind == "ring":
        gal, gal_p, detail = ring_galaxy(rng, gsp)
    else:
        gal = bulge_disk(gal_p, gsp)
    image = galsim.ImageD(size, size, scale=PIXEL_SCALE)
    galsim.Convolve(gal, sky.psf, gsparams=gsp).drawImage(image=image, offset=(target.dx, target.dy), method="auto")
    # Scale to the drawn S/N: the optimal S/N of the noiseless galaxy is sqrt(sum I^2) / sigma and linear in flux.
    snr_per_flux = math.sqrt(float(np.sum(image.array**2))) / sky.noise_sigma
    flux = target.snr / snr_per_flux
    clean = image.array * flux

    # Oddities that are part of the sky scene go through the noise.
    if spec.kind == "merger":
        extra, detail = merger_companion(rng, gal_p, gsp)
        comp = galsim.ImageD(size, size, scale=PIXEL_SCALE)
        galsim.Convolve(extra, sky.psf, gsparams=gsp).drawImage(image=comp, offset=(target.dx, target.dy),
                                                                method="auto")
        clean = clean + comp.array * flux
    elif spec.kind == "star":
        star_img, detail = bright_star(rng, sky.psf, sky.psf_fwhm, size)
        clean = clean + star_img
    elif spec.kind == "satellite_trail":
        trail, detail = satellite_trail(rng, sky.psf_fwhm, sky.noise_sigma, size)
        clean = clean + trail
    return clean, flux, gal_p, detail


def _observe(rng, dev, kind: str, clean, sky: _Sky, detail: str):
    """The detector: sky, Poisson and read noise, cosmic rays, saturation, sky subtraction, a mosaic edge.

    Returns the float32 image and the (possibly updated) detail.
    """
    import galsim

    raw = galsim.ImageD(clean + sky.sky, scale=PIXEL_SCALE)
    raw.addNoise(galsim.PoissonNoise(dev))  # photon noise of sky + sources (GAIN is 1: electrons)
    data = raw.array
    # Read noise from NumPy: GalSim's Gaussian deviates cost much more.
    data += rng.normal(0.0, READ_NOISE, size=data.shape)
    if kind == "cosmic_rays":
        detail = add_cosmic_rays(rng, data, sky.noise_sigma)
    data = saturate_and_bleed(data)
    data = data - sky.sky
    if kind == "detector_edge":
        detail = zero_detector_edge(rng, data)
    return data.astype(np.float32), detail


def _catalog_row(spec: StampSpec, sky: _Sky, target: _Target, *, flux: float, ra: float, dec: float,
                 image_seed: int, detail: str) -> dict:
    """The stamp's row of ``catalog.csv``."""
    import galsim

    gal_p = target.params
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
        "psf_model": sky.psf_model,
        "psf_fwhm": _sig(sky.psf_fwhm),
        "psf_beta": _sig(sky.psf_beta),
        "sky_level": _sig(sky.sky),
        "read_noise": READ_NOISE,
        "noise_sigma": _sig(sky.noise_sigma),
        "snr": _sig(target.snr),
        "ra": round(ra, 8),
        "dec": round(dec, 8),
        "x_offset": _sig(target.dx),
        "y_offset": _sig(target.dy),
        "image_seed": image_seed,
        "detail": detail,
    }


def _sig(x: float, digits: int = 6) -> float:
    """Round to ``digits`` significant figures, so the CSV stays readable (NaN passes through)."""
    x = float(x)
    return x if not math.isfinite(x) else float(f"{x:.{digits}g}")
