"""Accepting an input image: its 2-D view, and the fill of its non-finite pixels (step 1 of
:func:`~astroae_core.data.preprocess`)."""

from __future__ import annotations

import numpy as np

__all__ = ["as_2d", "replace_nonfinite"]

def as_2d(a: np.ndarray, what: str) -> np.ndarray:
    """``a`` as a 2-D image (leading length-1 axes dropped); ValueError naming ``what`` otherwise."""
    # Accept (1, H, W) and (1, 1, H, W): the network's own shapes for one image.
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise ValueError(f"{what} must be a 2-D image (or have leading length-1 axes), got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{what} is empty (shape {a.shape})")
    return a


def replace_nonfinite(image) -> tuple[np.ndarray, int]:
    """Return a float32 copy-if-needed of ``image`` with NaN/inf replaced by the median of the finite pixels.

    Parameters
    ----------
    image : array_like
        2-D image (leading length-1 axes are dropped).

    Returns
    -------
    image : numpy.ndarray
        float32, C-contiguous, native byte order, 2-D.
    n_replaced : int
        Number of pixels replaced.

    Raises
    ------
    ValueError
        If the image is not 2-D, is empty, or has no finite pixel.
    """
    a = as_2d(np.asarray(image), "image")
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool) or np.iscomplexobj(a):
        raise ValueError(f"image must hold real numbers, got dtype {a.dtype}")
    # One float32 copy at most (none for an already-native float32 array): big mosaics stay cheap.
    a = np.ascontiguousarray(a, dtype=np.float32)
    finite = np.isfinite(a)
    n_bad = int(a.size - np.count_nonzero(finite))
    if n_bad == 0:
        return a, 0
    if n_bad == a.size:
        raise ValueError(f"image has no finite pixels (all {a.size} are NaN or inf); nothing to normalize")
    fill = np.median(a[finite])
    a = a.copy() if not a.flags.writeable or np.may_share_memory(a, np.asarray(image)) else a
    a[~finite] = fill
    return a, n_bad
