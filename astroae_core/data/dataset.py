"""Datasets: a folder of FITS files in memory, grouped train/validation splits, and augmentation.

A training set of this tool is small enough to live in memory once preprocessed (10 000 images of 187x187
float32 are 1.4 GB; the 700 CEERS cutouts are 98 MB), so :func:`load_folder` reads and preprocesses every
file once and training then only indexes an array.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np
import torch

from astroae_core.io import FitsReadError, find_fits_files, read_fits
from astroae_core.data.preprocessing import Norm, PreprocessConfig, preprocess

if TYPE_CHECKING:  # pandas is only needed by callers that pass a catalog
    import pandas

__all__ = ["LoadedImages", "load_folder", "group_keys", "split_by_group", "augment", "ImageTensorDataset"]

log = logging.getLogger(__name__)


@dataclass
class LoadedImages:
    """An in-memory dataset of preprocessed images.

    Attributes
    ----------
    x : numpy.ndarray
        float32, shape ``(N, 1, S, S)``, values in ``[0, 1]``.
    paths : list of str
        Path of each image relative to ``root``, POSIX style, in the sorted order of ``find_fits_files``.
    norms : list of Norm
        Per-image normalization, to map reconstructions back to flux units.
    skipped : list of (str, str)
        ``(relative path, reason)`` for each file that could not be used.
    root : str
        The folder that was read.
    config : PreprocessConfig or None
        The preprocessing settings used.
    """

    x: np.ndarray
    paths: list[str]
    norms: list[Norm]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    root: str = ""
    config: PreprocessConfig | None = None

    def __len__(self) -> int:
        return len(self.paths)


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:  # one is absolute/resolved and the other not
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            return path.as_posix()


def load_folder(
    root,
    *,
    config: PreprocessConfig | None = None,
    hdu=None,
    plane=None,
    progress: bool = True,
    max_files: int | None = None,
    workers: int | None = None,
    only: Iterable[str] | None = None,
    confine_to=None,
) -> LoadedImages:
    """Read and preprocess every FITS file under ``root`` (recursively) into memory.

    Files that cannot be used (:class:`~astroae_core.io.FitsReadError`, or a ``ValueError`` from
    :func:`~astroae_core.data.preprocessing.preprocess`, or an ``OSError``) are skipped: each is logged once with
    ``logging.warning`` (routed through ``tqdm.write`` while the progress bar is shown, so the bar stays
    intact) and listed in :attr:`LoadedImages.skipped` with the reason.

    Parameters
    ----------
    root : str or path-like
        Folder to search with :func:`~astroae_core.io.find_fits_files` (or a single FITS file).
    config : PreprocessConfig, optional
        Preprocessing settings (default ``PreprocessConfig()``).
    hdu, plane : optional
        Passed to :func:`~astroae_core.io.read_fits` for every file.
    progress : bool
        Show a tqdm progress bar.
    max_files : int, optional
        Use only the first ``max_files`` files in sorted order (quick experiments).
    only : iterable of str, optional
        Read only these files, given as paths relative to ``root`` (POSIX style, as in
        :attr:`LoadedImages.paths`), e.g. the validation images a checkpoint records. Names not found are
        ignored; ``max_files`` applies after this filter.
    workers : int, optional
        Reader threads; default ``min(4, cpu count)``. FITS decompression and the torch resize release the
        GIL, so a few threads overlap I/O and compute; more mostly add contention.
    confine_to : path or sequence of paths, optional
        Never read a file whose real path lies outside these folders (a symbolic link pointing out).

    Returns
    -------
    LoadedImages
        Possibly empty (``len() == 0``) if the folder holds no usable FITS file; a warning is logged then.

    Raises
    ------
    FileNotFoundError
        If ``root`` does not exist.
    ValueError
        If ``max_files`` is not a positive integer.
    """
    from tqdm.auto import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"data folder not found: {root}")
    if max_files is not None and (
        isinstance(max_files, bool) or not isinstance(max_files, (int, np.integer)) or max_files < 1
    ):
        raise ValueError(f"max_files must be a positive integer or None, got {max_files!r}")
    config = config if config is not None else PreprocessConfig()

    files = [Path(f) for f in find_fits_files(root, confine_to=confine_to)]
    # A single file is a one-image dataset; its path is then relative to its folder.
    base = root if root.is_dir() else root.parent
    rel = [_relative(f, base) for f in files]
    if only is not None:
        wanted = {Path(p).as_posix() for p in ([only] if isinstance(only, str) else only)}
        pairs = [(f, r) for f, r in zip(files, rel) if r in wanted]
        files, rel = [f for f, _ in pairs], [r for _, r in pairs]
    if max_files is not None:
        files, rel = files[: int(max_files)], rel[: int(max_files)]
    size = config.size

    def work(f):
        try:
            image, _header = read_fits(f, hdu=hdu, plane=plane)
            return preprocess(image, config=config)
        except (ValueError, OSError) as exc:  # FitsReadError is a ValueError
            return exc

    # Fill a preallocated array so peak memory is the dataset plus a few images in flight.
    x = np.empty((len(files), 1, size, size), dtype=np.float32)
    keep = np.zeros(len(files), dtype=bool)
    norms: list[Norm | None] = [None] * len(files)
    skipped: list[tuple[str, str]] = []
    n_workers = workers if workers is not None else min(4, os.cpu_count() or 1)

    bar = tqdm(total=len(files), desc="reading FITS", unit="file", disable=not progress or not files)
    # Warnings are emitted from this (main) thread only, so each bad file is reported exactly once and
    # the logging redirection (which swaps console handlers) never races with the workers.
    with bar, logging_redirect_tqdm() if progress else contextlib.nullcontext():
        with ThreadPoolExecutor(max_workers=max(1, n_workers)) as pool:
            for i, result in enumerate(pool.map(work, files)):
                if isinstance(result, Exception):
                    if isinstance(result, FitsReadError) and getattr(result, "reason", None):
                        reason = str(result.reason)  # the message minus the path, which is listed beside it
                    elif isinstance(result, FitsReadError):
                        reason = str(result)
                    else:
                        reason = f"{type(result).__name__}: {result}"
                    skipped.append((rel[i], reason))
                    log.warning("skipping %s: %s", rel[i], reason)
                else:
                    x[i], norms[i] = result
                    keep[i] = True
                bar.update(1)

    if not keep.all():
        x = np.ascontiguousarray(x[keep])
    paths = [p for p, k in zip(rel, keep) if k]
    norms = [n for n, k in zip(norms, keep) if k]
    if not paths:
        log.warning("no usable FITS files under %s (%d found, %d skipped)", root, len(files), len(skipped))
    return LoadedImages(x=x, paths=paths, norms=norms, skipped=skipped, root=str(root), config=config)


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

    if catalog is not None:
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

    return list(paths)


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
        Target fraction of *files* in validation, strictly between 0 and 1.
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
        If ``val_fraction`` is not strictly between 0 and 1, or ``groups`` is empty.
    """
    try:
        frac = float(val_fraction)
    except (TypeError, ValueError):
        raise ValueError(f"val_fraction must be a number in (0, 1), got {val_fraction!r}") from None
    if not (0.0 < frac < 1.0):
        raise ValueError(f"val_fraction must be strictly between 0 and 1, got {val_fraction!r}")
    groups = list(groups)
    n = len(groups)
    if n == 0:
        raise ValueError("cannot split an empty dataset (no groups given)")

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


def augment(batch: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
    """Apply one of the 8 dihedral transforms (flips, 90-degree rotations), chosen per sample.

    Sky images have no preferred orientation, so all 8 symmetries of the square are equally valid views.

    Parameters
    ----------
    batch : torch.Tensor
        Shape ``(N, C, S, S)`` (any leading axes; the last two must be equal).
    generator : torch.Generator
        Source of randomness; the same generator state gives the same transforms.

    Returns
    -------
    torch.Tensor
        A new tensor of the same shape, dtype and device.

    Raises
    ------
    ValueError
        If the images are not square or the batch has fewer than 3 dimensions.
    """
    if batch.dim() < 3 or batch.shape[-1] != batch.shape[-2]:
        raise ValueError(f"augment needs a batch of square images (N, ..., S, S), got shape {tuple(batch.shape)}")
    n = batch.shape[0]
    # Draw on the generator's device (a CPU generator cannot fill a CUDA tensor), then move.
    codes = torch.randint(0, 8, (n,), generator=generator, device=generator.device).to(batch.device)
    out = torch.empty_like(batch)
    for code in range(8):
        idx = (codes == code).nonzero(as_tuple=True)[0]
        if idx.numel() == 0:
            continue
        sub = batch[idx]
        if code >= 4:
            sub = sub.flip(-1)
        out[idx] = torch.rot90(sub, k=code % 4, dims=(-2, -1))
    return out


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
