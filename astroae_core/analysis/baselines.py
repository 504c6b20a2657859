"""Baselines every model is compared against, fitted on the same training images: PCA-k and the mean image."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA

__all__ = ["PCABaseline", "MeanImageBaseline"]


def _flat(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x.reshape(x.shape[0], -1)


class PCABaseline:
    """Linear reconstruction from the first ``n_components`` principal components of the training images.

    Parameters
    ----------
    n_components : int
        Components kept (compare with a latent of the same size).
    seed : int
        Seed for the randomized solver used on large training sets.
    """

    def __init__(self, n_components: int = 8, *, seed: int = 0):
        self.n_components = n_components
        self.seed = seed

    def fit(self, x_train) -> "PCABaseline":
        flat = _flat(x_train)
        if flat.shape[0] <= self.n_components:
            raise ValueError(f"PCA-{self.n_components} needs more than {self.n_components} training images, got {flat.shape[0]}")
        self._shape = np.asarray(x_train).shape[1:]
        self._pca = PCA(self.n_components, svd_solver="randomized", random_state=self.seed).fit(flat)
        return self

    def reconstruct(self, x) -> np.ndarray:
        flat = _flat(x)
        rec = self._pca.inverse_transform(self._pca.transform(flat))
        return np.clip(rec, 0.0, 1.0).astype(np.float32).reshape((flat.shape[0], *self._shape))


class MeanImageBaseline:
    """Reconstruct every image as the mean training image: the floor any model must clear."""

    def fit(self, x_train) -> "MeanImageBaseline":
        self._mean = np.asarray(x_train, dtype=np.float32).mean(axis=0)
        return self

    def reconstruct(self, x) -> np.ndarray:
        return np.broadcast_to(self._mean, np.asarray(x).shape).copy()
