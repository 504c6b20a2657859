"""Grouped k-fold cross-validation: every group (the 7 filters of one CEERS galaxy) lies in exactly one validation
fold, so no model is ever scored on an object it trained on, and every object is scored once."""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["kfold_by_group"]


def kfold_by_group(groups: Sequence, *, n_folds: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded k-fold split in which a group never straddles training and validation.

    The unique groups are sorted, shuffled with ``np.random.default_rng(seed)`` and dealt, one at a time, to the
    fold holding the fewest files so far (the lowest-numbered on ties): equal-size groups give folds of
    ``n_groups // n_folds`` or one more groups, and the folds depend only on the set of groups, their sizes and
    the seed, not on the file order.

    Parameters
    ----------
    groups : sequence of hashable
        Group key of each file (see :func:`~astroae_core.data.group_keys`).
    n_folds : int
        Number of folds, at least 2 and at most the number of groups.
    seed : int
        Seed of the shuffle.

    Returns
    -------
    list of (train_idx, val_idx)
        One pair per fold, sorted int64 indices into ``groups``; the validation sides are disjoint and together
        cover every file.

    Raises
    ------
    ValueError
        If ``n_folds`` is below 2 or above the number of groups.
    """
    groups = list(groups)
    members: dict = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    try:
        unique = sorted(members)
    except TypeError:  # mixed, unorderable key types
        unique = sorted(members, key=repr)
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise ValueError(f"n_folds must be an integer >= 2, got {n_folds!r}")
    if n_folds > len(unique):
        raise ValueError(f"n_folds={n_folds} is more than the {len(unique)} groups: a fold would have nothing to score")
    fold_of = np.empty(len(groups), dtype=np.int64)
    counts = np.zeros(n_folds, dtype=np.int64)
    for j in np.random.default_rng(seed).permutation(len(unique)):
        k = int(np.argmin(counts))
        fold_of[members[unique[j]]] = k
        counts[k] += len(members[unique[j]])
    return [(np.flatnonzero(fold_of != k), np.flatnonzero(fold_of == k)) for k in range(n_folds)]
