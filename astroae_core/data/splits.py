"""Train/validation splits that keep related images together: group keys from file names or a catalog, and a
seeded split in which no group straddles the two sides (the 7 filters of one CEERS galaxy stay on one side)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:  # pandas is only needed by callers that pass a catalog
    import pandas

__all__ = ["group_keys", "split_by_group"]

log = logging.getLogger(__name__)


def group_keys(
    paths: Sequence[str],
    *,
    group_regex: str | None = None,
    catalog: pandas.DataFrame | None = None,
    catalog_column: str | None = None,
) -> list[str]:
    """Group key of each file, for splits that keep related images together.

    Parameters
    ----------
    paths : sequence of str
        File paths (as in :attr:`LoadedImages.paths`).
    group_regex : str, optional
        ``"auto"``: the run of digits that ends the file's stem (``ceers_f115w_10983.fits`` -> ``10983``), the
        object id of a multi-band cutout folder; a file whose stem does not end in digits is its own group.
        Otherwise a regular expression searched (``re.search``) in each file *name*; the key is its first capture group,
        or the whole match if it has none. ``r"_(\\d+)\\.fits"`` groups the 7 filters of a CEERS galaxy
        (``ceers_<filter>_<id>.fits``).
    catalog : pandas.DataFrame, optional
        Table with one row per file, matched on its ``path`` column (relative path, as in ``paths``) or, if it
        has none, its ``file`` or ``filename`` column (compared with the relative path, then the file name).
    catalog_column : str, optional
        Column of ``catalog`` holding the group key (required with ``catalog``).

    Returns
    -------
    list of str
        One key per path. Default (no regex, no catalog): each file is its own group (its path).

    Raises
    ------
    ValueError
        If a file name does not match ``group_regex``, the regex is invalid, both a regex and a catalog are
        given, the catalog lacks a needed column, or a file is missing from the catalog.
    """
    paths = [str(p) for p in paths]
    if group_regex is not None and catalog is not None:
        raise ValueError("give either group_regex or catalog, not both")
    if catalog is None and catalog_column is not None:
        raise ValueError(f"catalog_column={catalog_column!r} given without a catalog")

    if group_regex == "auto":
        # The object id is what survey cutouts share across bands; anything without one stands alone.
        ids = [re.search(r"(\d+)$", Path(p).name.split(".")[0]) for p in paths]
        return [f"id:{m.group(1)}" if m else f"file:{p}" for m, p in zip(ids, paths)]

    if group_regex is not None:
        return _regex_keys(paths, group_regex)
    if catalog is not None:
        return _catalog_keys(paths, catalog, catalog_column)
    return list(paths)


def _regex_keys(paths: list[str], group_regex: str) -> list[str]:
    """Each file name's first capture group of ``group_regex`` (or its whole match)."""
    try:
        pattern = re.compile(group_regex)
    except re.error as exc:
        raise ValueError(f"invalid group_regex {group_regex!r}: {exc}") from None
    keys = []
    for p in paths:
        name = Path(p).name
        m = pattern.search(name)
        if m is None:
            raise ValueError(f"file name {name!r} ({p}) does not match group_regex {group_regex!r}")
        key = m.group(1) if pattern.groups else m.group(0)
        if key is None:  # optional group that did not take part in the match
            raise ValueError(f"group_regex {group_regex!r} matched {name!r} but its first group is empty")
        keys.append(key)
    return keys


def _catalog_keys(paths: list[str], catalog: pandas.DataFrame, catalog_column: str | None) -> list[str]:
    """Each file's ``catalog_column`` value, matched on the catalog's path (then file name)."""
    if catalog_column is None:
        raise ValueError("catalog given without catalog_column (the column that holds the group key)")
    if catalog_column not in catalog.columns:
        raise ValueError(f"catalog has no column {catalog_column!r}; columns: {list(catalog.columns)}")
    match_col = next((c for c in ("path", "file", "filename") if c in catalog.columns), None)
    if match_col is None:
        raise ValueError(
            f"catalog needs a 'path', 'file' or 'filename' column to match files; columns: {list(catalog.columns)}"
        )
    lookup: dict[str, str] = {}
    for ref, key in zip(catalog[match_col].astype(str), catalog[catalog_column]):
        lookup.setdefault(Path(ref).as_posix(), str(key))
    by_name = {Path(ref).name: key for ref, key in lookup.items()}
    keys = []
    for p in paths:
        key = lookup.get(Path(p).as_posix(), by_name.get(Path(p).name))
        if key is None:
            raise ValueError(f"file {p} is not in the catalog (matched on column {match_col!r})")
        keys.append(key)
    return keys


def split_by_group(groups: Sequence, *, val_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/validation split in which a group never straddles the two sides.

    The unique groups are sorted, then shuffled with ``np.random.default_rng(seed)``, so the split depends
    only on the set of groups, their sizes and the seed (not on file order). Walking the shuffled groups, a
    group goes to validation when that brings the validation file count closer to ``val_fraction`` of all
    files (equal-size groups give exactly ``round(val_fraction * n_groups)`` groups).

    Parameters
    ----------
    groups : sequence of hashable
        Group key of each file (see :func:`group_keys`).
    val_fraction : float
        Target fraction of *files* in validation, in [0, 1); 0 puts every file in training (a recipe already
        chosen by cross-validation, trained on everything).
    seed : int
        Seed of the shuffle.

    Returns
    -------
    train_idx, val_idx : numpy.ndarray
        Sorted int64 indices into ``groups``. Both are non-empty when there are at least 2 groups; with a
        single group everything is training data (and a warning is logged).

    Raises
    ------
    ValueError
        If ``val_fraction`` is not in [0, 1), or ``groups`` is empty.
    """
    try:
        frac = float(val_fraction)
    except (TypeError, ValueError):
        raise ValueError(f"val_fraction must be a number in [0, 1), got {val_fraction!r}") from None
    if not (0.0 <= frac < 1.0):
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    groups = list(groups)
    n = len(groups)
    if n == 0:
        raise ValueError("cannot split an empty dataset (no groups given)")
    if frac == 0.0:
        return np.arange(n, dtype=np.int64), np.zeros(0, dtype=np.int64)

    members: dict = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    try:
        unique = sorted(members)
    except TypeError:  # mixed, unorderable key types: order by their repr instead
        unique = sorted(members, key=repr)
    if len(unique) == 1:
        log.warning("only one group: no validation split possible, all %d files go to training", n)
        return np.arange(n, dtype=np.int64), np.zeros(0, dtype=np.int64)

    order = np.random.default_rng(seed).permutation(len(unique))
    target = frac * n
    val_groups, count, remaining = [], 0, len(unique)
    for j in order:
        g = unique[j]
        size = len(members[g])
        if remaining > 1 and abs(count + size - target) < abs(count - target):
            val_groups.append(g)
            count += size
            remaining -= 1
    if not val_groups:  # tiny fraction: still validate on something
        val_groups.append(unique[order[0]])

    val_idx = np.sort(np.fromiter((i for g in val_groups for i in members[g]), dtype=np.int64))
    in_val = np.zeros(n, dtype=bool)
    in_val[val_idx] = True
    return np.flatnonzero(~in_val).astype(np.int64), val_idx
