"""Latents along paths (astroae_core.analysis.traversal): traversal grids and interpolations."""

from __future__ import annotations

import numpy as np

from astroae_core.analysis import interpolate_latents, traversal_latents


def test_traversal_and_interpolation_latents():
    z = traversal_latents(np.zeros(3), np.array([1.0, 2.0, 3.0]), steps=(-2, 0, 2))
    assert z.shape == (9, 3)
    np.testing.assert_allclose(z[0], [-2, 0, 0])
    np.testing.assert_allclose(z[5], [0, 4, 0])
    np.testing.assert_allclose(z[6], [0, 0, -6])
    zi = interpolate_latents([0, 0], [1, 2], 5)
    assert zi.shape == (5, 2)
    np.testing.assert_allclose(zi[0], [0, 0])
    np.testing.assert_allclose(zi[-1], [1, 2])
    np.testing.assert_allclose(zi[2], [0.5, 1])
    assert len(interpolate_latents([0], [1], 1)) == 2  # both ends, always
