"""Fainter views of training images: the same galaxy under more noise, as a farther or fainter one is seen.

Each view is made in flux units at the file's own resolution by :func:`~astroae_core.data.degrade.fainter` and then
preprocessed like any image, so its noise is what a real fainter galaxy's would be after resizing (correlated
between the upsampled pixels), the same degradation the robustness suite scores.
"""

from __future__ import annotations

import numpy as np

from astroae_core.data.config import PreprocessConfig
from astroae_core.data.degrade import fainter
from astroae_core.data.pixels import replace_nonfinite
from astroae_core.data.preprocessing import preprocess

__all__ = ["fainter_views", "MAX_FACTOR"]

#: The faintest view is this many times fainter than the image (the robustness suite's "fainter" case).
MAX_FACTOR = 10.0


def fainter_views(images, *, config: PreprocessConfig, n_views: int = 3, seed: int = 0) -> np.ndarray:
    """``n_views`` fainter copies of each image, preprocessed: factors log-uniform in ``[1, MAX_FACTOR]``.

    Parameters
    ----------
    images : sequence of 2-D arrays
        The images as read, in flux units; non-finite pixels are replaced as :func:`preprocess` replaces them.
    config : PreprocessConfig
        The preprocessing of the training images.
    n_views : int
        Views per image.
    seed : int
        Seeds the factors and the noise; the same seed gives the same views.

    Returns
    -------
    numpy.ndarray
        float32, shape ``(len(images), n_views, 1, S, S)``.
    """
    if n_views < 1:
        raise ValueError(f"n_views must be >= 1, got {n_views!r}")
    rng = np.random.default_rng(seed)
    out = np.empty((len(images), n_views, 1, config.size, config.size), dtype=np.float32)
    for i, image in enumerate(images):
        image = replace_nonfinite(image)[0]
        for k in range(n_views):
            factor = float(np.exp(rng.uniform(0.0, np.log(MAX_FACTOR))))
            out[i, k, 0] = preprocess(fainter(image, factor=factor, seed=int(rng.integers(2**31))), config=config)[0]
    return out
