"""The simulated instrument and field every demo stamp is observed with: pixel scale, noise, full well, sky field."""

__all__ = ["FIELD_CENTER", "FIELD_RADIUS", "GAIN", "PIXEL_SCALE", "READ_NOISE", "SATURATION"]

PIXEL_SCALE = 0.1  # arcsec / pixel: ground-based-to-HST-like sampling; a 187-pixel stamp is 18.7 arcsec
FIELD_CENTER = (150.1, 2.2)  # deg (RA, Dec): one fixed field (COSMOS-like), so all stamps share a sky region
FIELD_RADIUS = 0.5  # deg: stamps are spread over a 1-degree field
READ_NOISE = 5.0  # electrons rms per pixel
GAIN = 1.0  # electrons / ADU; images are in electrons
SATURATION = 90_000.0  # electrons: full well, so bright stars saturate and bleed like on a real CCD
