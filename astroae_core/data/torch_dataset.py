"""The torch view of preprocessed images in memory: a :class:`torch.utils.data.Dataset` over an index subset."""

from __future__ import annotations

import numpy as np
import torch

from astroae_core.data.folder import LoadedImages

__all__ = ["ImageTensorDataset"]


class ImageTensorDataset(torch.utils.data.Dataset):
    """Torch dataset over preprocessed images, optionally restricted to a subset of indices.

    Parameters
    ----------
    images : LoadedImages or numpy.ndarray
        The images, ``(N, 1, S, S)`` float32.
    indices : array_like of int, optional
        Subset (e.g. the ``train_idx`` of :func:`split_by_group`); default all images.

    Notes
    -----
    Items are ``(1, S, S)`` float32 tensors that share memory with the array (no copy until collation).
    Augmentation is applied per batch with :func:`augment`, which is much cheaper than per item.
    """

    def __init__(self, images: LoadedImages | np.ndarray, indices=None):
        x = images.x if isinstance(images, LoadedImages) else np.asarray(images)
        if x.ndim != 4:
            raise ValueError(f"ImageTensorDataset needs an (N, C, S, S) array, got shape {x.shape}")
        self.x = np.ascontiguousarray(x, dtype=np.float32)
        if indices is None:
            self.indices = np.arange(len(self.x), dtype=np.int64)
        else:
            self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)
            if self.indices.size and (self.indices.min() < -len(self.x) or self.indices.max() >= len(self.x)):
                raise IndexError(f"indices out of range for {len(self.x)} images")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i) -> torch.Tensor:
        return torch.from_numpy(self.x[self.indices[i]])
