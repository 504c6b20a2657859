"""The cache's thumbnails: preprocessed inputs shrunk to ``P x P`` uint8, spooled to disk as they are made."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

__all__ = ["PreviewSpool", "make_previews"]


def make_previews(x, size: int) -> np.ndarray:
    """uint8 thumbnails ``(N, size, size)`` of preprocessed images ``x`` ``(N, 1, S, S)`` in [0, 1] (bilinear with
    antialiasing when ``S != size``)."""
    import torch
    from torch.nn import functional as F

    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if t.shape[-1] != size:
        t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return (t.clamp(0, 1) * 255).round().to(torch.uint8)[:, 0].numpy()


class PreviewSpool:
    """Previews appended batch by batch to a raw file in the cache being built, then written as one ``.npy``.

    Held in memory, 100k 64x64 previews are 410 MB, and concatenating them at the end would double that; spooled,
    the encode's memory does not grow with them (``benchmarks/cache_scale.py``, encode peak RSS).

    Parameters
    ----------
    folder : Path
        Where the raw file ``previews.part`` is kept until :meth:`save`.
    size : int
        Side of every preview.
    """

    def __init__(self, folder: Path, size: int):
        self.raw, self.size, self.n = Path(folder) / "previews.part", int(size), 0
        self.raw.write_bytes(b"")

    def append(self, previews: np.ndarray) -> None:
        """Add ``(n, size, size)`` uint8 previews after the ones already spooled."""
        # opened per batch: no handle stays open if the encode fails before save (its folder is then removed)
        with open(self.raw, "ab") as fh:
            fh.write(np.ascontiguousarray(previews, dtype=np.uint8).tobytes())
        self.n += len(previews)

    def save(self, path: Path, *, chunk: int = 1 << 20) -> None:
        """Write every preview spooled as one ``.npy`` at ``path`` (``chunk`` bytes at a time) and remove the raw
        file."""
        # The raw file already holds the array's bytes in order: a header and a plain copy make the .npy. Memory
        # maps of the two files would put every page of both in this process's resident set (VmHWM), 8 KB a
        # preview, 800 MB at 100k images.
        expected = self.n * self.size * self.size
        if self.raw.stat().st_size != expected:
            raise ValueError(f"{self.raw}: {self.raw.stat().st_size} bytes spooled, {expected} expected")
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
                  "shape": (self.n, self.size, self.size)}
        with open(path, "wb") as out, open(self.raw, "rb") as raw:
            np.lib.format.write_array_header_1_0(out, header)
            shutil.copyfileobj(raw, out, chunk)
        self.raw.unlink()
