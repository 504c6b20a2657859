"""The images the encode's report needs, kept as the encode streams past them instead of read again after it: a
bounded sample of each split (validation, unseen, training), chosen by content.

Each image's place in the sample is decided by a seeded hash of its pixels (a bottom-k sample: the k smallest
keys of a split), so the sample is uniform, needs one pass and bounded memory, and is the same whatever the order
the files are read in, the number of reader threads, or where the folder lives.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ReportSample"]


@dataclass(frozen=True)
class _Kept:
    """One kept image and, where the encode offered them, the model's reconstructions of it (``x_hat_latent`` is
    None when the model has no second path: it is ``x_hat``)."""

    x: np.ndarray
    x_hat: np.ndarray | None = None
    x_hat_latent: np.ndarray | None = None


class ReportSample:
    """Up to ``max_report`` validation and unseen images and ``max_train`` training images of an encode, with
    their table rows, and for the validation and unseen images the model's reconstructions, when offered.

    Parameters
    ----------
    model : AutoEncoder or InferenceModel
        The encode's model (its checkpoint tells which images it trained and validated on).
    seed : int
        Seed of the keys.
    max_report, max_train : int
        Most images kept of the validation and of the unseen images (each), and of the training images.
    """

    def __init__(self, model, *, seed: int, max_report: int, max_train: int):
        from astroae_core.analysis import TrainingSet

        self._training_set = TrainingSet.of(model)
        self._seed = int(seed)
        self._caps = {"val": int(max_report), "unseen": int(max_report), "train": int(max_train)}
        self._heaps = {k: [] for k in self._caps}
        self._next_row = 0

    def _key(self, content_hash: str) -> int:
        digest = hashlib.blake2b(f"{self._seed}:{content_hash}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big")

    def offer(self, hashes: Sequence[str], x: np.ndarray, out: dict | None = None) -> None:
        """The next usable images of the encode, in table order, and the model's outputs for them (``x_hat`` and
        ``x_hat_latent``, kept for the validation and unseen images, which the report scores, so that it need not
        run the model on them again): keep those whose key is among their split's smallest."""
        for i, (h, label) in enumerate(zip(hashes, self._training_set.labels(hashes))):
            row, self._next_row = self._next_row, self._next_row + 1
            heap, item = self._heaps[label], (-self._key(h), -row)
            if not self._caps[label] or (len(heap) == self._caps[label] and item <= heap[0][:2]):
                continue
            kept = _Kept(x[i].copy())
            if out is not None and label != "train":
                latent = out["x_hat_latent"]
                kept = _Kept(kept.x, out["x_hat"][i].copy(), None if latent is out["x_hat"] else latent[i].copy())
            # rows are unique, so the heap never compares two _Kept
            (heapq.heappush if len(heap) < self._caps[label] else heapq.heapreplace)(heap, (*item, kept))

    def _kept(self, label: str, limit: int | None) -> list:
        kept = sorted(self._heaps[label], key=lambda t: (-t[0], -t[1]))[:limit]
        kept.sort(key=lambda t: -t[1])
        return kept

    def images(self, label: str, *, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The kept images of a split (the ``limit`` smallest keys), as (rows sorted, images (n, 1, S, S))."""
        kept = self._kept(label, limit)
        rows = np.array([-t[1] for t in kept], dtype=np.int64)
        return rows, (np.stack([t[2].x for t in kept]) if kept else np.zeros((0, 1, 1, 1), np.float32))

    def outputs(self, label: str, *, limit: int | None = None) -> dict | None:
        """The model's ``x_hat`` and ``x_hat_latent`` for :meth:`images` (the same rows), or None when the encode
        did not offer them."""
        kept = [t[2] for t in self._kept(label, limit)]
        if not kept or kept[0].x_hat is None:
            return None
        x_hat = np.stack([k.x_hat for k in kept])
        return {"x_hat": x_hat,
                "x_hat_latent": x_hat if kept[0].x_hat_latent is None else np.stack([k.x_hat_latent for k in kept])}
