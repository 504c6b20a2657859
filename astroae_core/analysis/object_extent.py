"""Where the objects lie in a set of stamps: the box a viewer crops to so that the object fills the view."""

from __future__ import annotations

import numpy as np

__all__ = ["object_box"]


def object_box(images, *, level: float = 0.1, coverage: float = 0.05, pad: float = 0.25,
               min_side: int = 16) -> tuple[int, int, int, int]:
    """The square box, centred on the objects, that holds the pixels where objects of ``images`` usually are.

    Parameters
    ----------
    images : array_like, shape (N, H, W) or (H, W)
        Stamps (any units; each is measured against its own background and peak).
    level : float
        A pixel belongs to an image's object where it exceeds the image's median by this fraction of the
        distance from the median to the peak.
    coverage : float
        A pixel is in the box when it belongs to the object in at least this fraction of the images.
    pad : float
        Margin added around those pixels, as a fraction of the box's side.
    min_side : int
        The box is never smaller than this (or the stamp, if smaller).

    Returns
    -------
    (y0, y1, x0, x1) : tuple of int
        Slice bounds (``image[y0:y1, x0:x1]``); the whole stamp when no object pixel is found.
    """
    a = np.asarray(images, dtype=np.float64)
    a = a[None] if a.ndim == 2 else a
    if a.ndim != 3 or not a.size:
        raise ValueError(f"images must be (N, H, W) or (H, W) with pixels, got shape {a.shape}")
    _, h, w = a.shape
    med = np.median(a, axis=(1, 2), keepdims=True)
    peak = a.max(axis=(1, 2), keepdims=True)
    with np.errstate(invalid="ignore"):
        mask = (a > med + level * (peak - med)) & (peak > med)
    often = mask.mean(axis=0) >= coverage
    if not often.any():
        return 0, h, 0, w
    ys, xs = np.nonzero(often)
    cy, cx = (ys.min() + ys.max() + 1) / 2, (xs.min() + xs.max() + 1) / 2
    side = max(ys.max() + 1 - ys.min(), xs.max() + 1 - xs.min())
    side = int(min(max(h, w), max(min_side, np.ceil(side * (1 + 2 * pad)))))
    y0 = int(np.clip(round(cy - side / 2), 0, max(0, h - side)))
    x0 = int(np.clip(round(cx - side / 2), 0, max(0, w - side)))
    return y0, min(h, y0 + side), x0, min(w, x0 + side)
