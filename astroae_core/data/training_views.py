"""Views of training images that a survey would also show: the same galaxy fainter (more noise), or at another
apparent size.

Each view is made in flux units at the file's own resolution by the robustness suite's own degradation
(:func:`~astroae_core.data.degrade.fainter`, :func:`~astroae_core.data.degrade.rescaled`) and then preprocessed
like any image, so its noise is what a real one's would be after resizing (correlated between the upsampled
pixels).
"""

from __future__ import annotations

import numpy as np

from astroae_core.data import degrade
from astroae_core.data.config import PreprocessConfig
from astroae_core.data.pixels import replace_nonfinite
from astroae_core.data.preprocessing import preprocess

__all__ = ["VIEW_RANGES", "training_views"]

#: Each kind of view: its factor's range, drawn log-uniform. "fainter": 1-10x fainter (the suite's faintest case);
#: "zoom": 0.6-1.6x the apparent size (the suite's smaller and larger cases).
VIEW_RANGES = {"fainter": (1.0, 10.0), "zoom": (0.6, 1.6)}
_DEGRADE = {"fainter": degrade.fainter, "zoom": degrade.rescaled}


def training_views(images, *, kind: str, config: PreprocessConfig, n_views: int = 3, seed: int = 0) -> np.ndarray:
    """``n_views`` views of each image of one ``kind``, preprocessed, their factors log-uniform in
    ``VIEW_RANGES[kind]``.

    Parameters
    ----------
    images : sequence of 2-D arrays
        The images as read, in flux units; non-finite pixels are replaced as :func:`preprocess` replaces them.
    kind : {"fainter", "zoom"}
        Which view.
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
    if kind not in VIEW_RANGES:
        raise ValueError(f"kind must be one of {sorted(VIEW_RANGES)}, got {kind!r}")
    if n_views < 1:
        raise ValueError(f"n_views must be >= 1, got {n_views!r}")
    lo, hi = np.log(VIEW_RANGES[kind])
    rng = np.random.default_rng(seed)
    out = np.empty((len(images), n_views, 1, config.size, config.size), dtype=np.float32)
    for i, image in enumerate(images):
        image = replace_nonfinite(image)[0]
        for k in range(n_views):
            factor = float(np.exp(rng.uniform(lo, hi)))
            view = _DEGRADE[kind](image, factor=factor, seed=int(rng.integers(2**31)))
            out[i, k, 0] = preprocess(view, config=config)[0]
    return out
