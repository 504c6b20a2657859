"""The oddities injected into demo stamps, besides the galaxy scenes (see :mod:`~astroae_core.demo.galaxies` for
the ring and the merger): a saturated star with diffraction spikes, a satellite trail, cosmic rays, saturation
with bleed trails, and the zeroed strip beyond a detector (mosaic) edge.

Each draws from the stamp's NumPy generator; the scene oddities return an image (electrons, before noise) to add,
the detector ones work in place on the observed image. Every one returns the ``detail`` text of the catalog.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from astroae_core.demo.instrument import PIXEL_SCALE, SATURATION

__all__ = ["add_cosmic_rays", "bright_star", "satellite_trail", "saturate_and_bleed", "zero_detector_edge"]


def bright_star(rng, psf, psf_fwhm: float, size: int):
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


def satellite_trail(rng, psf_fwhm: float, noise_sigma: float, size: int):
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


def add_cosmic_rays(rng, data, noise_sigma: float) -> str:
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


def saturate_and_bleed(data):
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


def zero_detector_edge(rng, data) -> str:
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
