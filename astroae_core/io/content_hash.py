"""Identity of an image by its content, so that a checkpoint's training and validation images are recognised
wherever their folder lives, whatever the files are called, and whether or not the file was recompressed or its
header edited."""

from __future__ import annotations

import hashlib

import numpy as np

HASH_CHARS = 20  # 80 bits: no collision among billions of images


def pixel_hash(image) -> str:
    """Hash of an image's pixels as read (shape and little-endian float32 values).

    Parameters
    ----------
    image : array_like
        The 2-D image :func:`astroae_core.io.read_fits` returns.

    Returns
    -------
    str
        ``HASH_CHARS`` hexadecimal characters of the SHA-256 of the shape and the pixel bytes. Two reads of the
        same pixels, from a ``.fits`` or a ``.fits.gz``, with any header, give the same hash; NaNs hash by their
        bit pattern.
    """
    a = np.ascontiguousarray(image, dtype="<f4")
    h = hashlib.sha256(np.asarray(a.shape, dtype="<i8").tobytes())
    h.update(a.tobytes())
    return h.hexdigest()[:HASH_CHARS]
