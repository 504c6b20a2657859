"""The galaxies of the demo scenes, as GalSim profiles: a bulge + disk field galaxy, a collisional ring galaxy,
and the tidally stretched companion (with its bridge) of a merger.

Sizes are in arcsec, fluxes relative (unit flux for the central galaxy: the stamp scales it to its S/N).
"""

from __future__ import annotations

import math

import numpy as np

from astroae_core.demo.instrument import PIXEL_SCALE

__all__ = ["bulge_disk", "draw_galaxy_params", "gsparams", "merger_companion", "ring_galaxy"]

_BULGE_N = (3.0, 3.5, 4.0, 4.5)  # discrete, so GalSim builds its Sersic tables once per worker, not per stamp
_BULGE_N_P = (0.2, 0.25, 0.4, 0.15)

_GSPARAMS = None  # created lazily: GalSim is imported only when stamps are actually drawn


def gsparams():
    """The GalSim settings every profile of a stamp is drawn with (one object per process)."""
    global _GSPARAMS
    if _GSPARAMS is None:
        import galsim

        # Looser than GalSim's defaults (5e-3, 1e-3): faster to draw, and the change stays far below the noise
        # even at the highest S/N drawn. The larger maximum_fft_size lets big n=4 bulges be drawn instead of
        # raising.
        _GSPARAMS = galsim.GSParams(folding_threshold=1e-2, maxk_threshold=3e-3, maximum_fft_size=8192)
    return _GSPARAMS


def draw_galaxy_params(rng) -> dict:
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


def bulge_disk(p: dict, gsp):
    """The unit-flux bulge (Sersic) + disk (exponential) profile of :func:`draw_galaxy_params`'s parameters."""
    import galsim

    beta = p["beta_deg"] * galsim.degrees
    bulge = galsim.Sersic(n=p["sersic_n_bulge"], half_light_radius=p["bulge_hlr"], gsparams=gsp)
    disk = galsim.Exponential(half_light_radius=p["disk_hlr"], gsparams=gsp)
    bf = p["bulge_fraction"]
    return galsim.Add(
        [bulge.withFlux(bf).shear(q=p["q_bulge"], beta=beta), disk.withFlux(1 - bf).shear(q=p["q"], beta=beta)],
        gsparams=gsp,
    )


def ring_galaxy(rng, gsp):
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

    GalSim's ``calculateHLR`` is far too slow for a sum of many components; sampling the profile (analytic in
    real space) and sorting radii is quick.
    """
    scale, npix = PIXEL_SCALE / 2, 256
    arr = profile.drawImage(nx=npix, ny=npix, scale=scale, method="no_pixel").array
    yy, xx = np.mgrid[0:npix, 0:npix]
    r = np.hypot(xx - (npix - 1) / 2, yy - (npix - 1) / 2).ravel() * scale
    order = np.argsort(r, kind="stable")
    cum = np.cumsum(arr.ravel()[order])
    return float(r[order][np.searchsorted(cum, 0.5 * cum[-1])])


def merger_companion(rng, primary: dict, gsp):
    """A second, tidally stretched galaxy overlapping the first, plus a faint bridge (fluxes relative to the first).

    The primary is left as catalogued; the bridge lying across it stands in for its own tidal distortion.
    """
    import galsim

    comp_p = draw_galaxy_params(rng)
    scale = float(rng.uniform(0.5, 1.1)) * primary["hlr"] / comp_p["hlr"]
    for key in ("hlr", "bulge_hlr", "disk_hlr"):
        comp_p[key] *= scale
    flux_ratio = float(rng.uniform(0.4, 1.0))  # a major merger: a minor companion would pass for a normal galaxy
    # Close enough that the light overlaps, far enough that two nuclei show (at least ~2 PSF widths apart).
    sep = max(float(rng.uniform(0.8, 1.4)) * (primary["hlr"] + comp_p["hlr"]), 0.6)  # arcsec
    phi = float(rng.uniform(0, 180))
    ux, uy = math.cos(math.radians(phi)), math.sin(math.radians(phi))
    tide = float(rng.uniform(0.1, 0.3))  # both galaxies are stretched along the line joining them
    companion = (bulge_disk(comp_p, gsp).withFlux(flux_ratio)
                 .shear(g=tide, beta=phi * galsim.degrees).shift(sep * ux, sep * uy))
    bridge = (galsim.Exponential(half_light_radius=0.3 * sep, flux=0.1 * (1 + flux_ratio), gsparams=gsp)
              .shear(q=0.3, beta=phi * galsim.degrees).shift(sep / 2 * ux, sep / 2 * uy))
    extra = galsim.Add([companion, bridge], gsparams=gsp)
    return extra, f"separation={sep:.3g}arcsec flux_ratio={flux_ratio:.3g} angle={phi:.3g}deg"
