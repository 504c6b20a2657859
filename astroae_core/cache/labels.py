"""The user's labels on a cache's images, kept in a JSON file *beside* the cache folder.

A rebuild replaces the cache folder whole (:func:`~astroae_core.io.replace_folder`); the labels file
``<parent>/<cache name>.labels.json`` is outside it, so the labels survive the rebuild and writing them never
touches the cache.

Each label is stored with the image's pixel-content hash (the table's ``hash`` column, see
:func:`~astroae_core.io.content_hash.pixel_hash`) and its path relative to the data folder. An image is matched by
its hash when both the table and the entry have one, so a label follows its image through a rebuild and a move
within the folder; an entry without a hash, or a table without a ``hash`` column (older caches), matches by path.
An entry whose hash differs from the hash of the image now at its path is not applied: that file's pixels changed.

The file is strict JSON::

    {"format": "astroae-labels/1",
     "labels": [{"hash": "3f2a...", "path": "stamps/00017.fits", "label": "interesting", "tags": ["ring", "blue"]}]}

Writes are atomic (:func:`~astroae_core.io.atomic_write_text`) and serialized across processes by an exclusive
lock on ``.<cache name>.labels.json.lock`` beside it, so two sessions labelling at once both keep their labels.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from astroae_core.io.atomic import atomic_write_text

__all__ = ["LABELS_FORMAT", "LABEL_CHOICES", "LabelsError", "labels_path", "labels_stamp", "load_labels",
           "normalize_tags", "set_label"]

#: The labels a user may give an image ("" means none).
LABEL_CHOICES = ("interesting", "artefact", "normal")

#: Version of the labels file's layout.
LABELS_FORMAT = "astroae-labels/1"


class LabelsError(ValueError):
    """A labels file that cannot be read, or a label or image that does not exist."""


def labels_path(cache_dir) -> Path:
    """Where the labels of the cache folder ``cache_dir`` live: ``<parent>/<cache name>.labels.json``.

    Parameters
    ----------
    cache_dir : str or Path or LatentCache
        The cache folder (or the loaded cache).

    Returns
    -------
    Path
        Beside the cache folder, never inside it.
    """
    folder = Path(getattr(cache_dir, "path", cache_dir))
    if folder.name in ("", ".", ".."):
        folder = folder.absolute().resolve()
    return folder.parent / f"{folder.name}.labels.json"


def labels_stamp(cache) -> int:
    """A number that changes whenever the labels file does (its mtime in ns; 0 without one): a cache key."""
    try:
        return labels_path(cache).stat().st_mtime_ns
    except OSError:
        return 0


def normalize_tags(tags) -> list[str]:
    """Tags as a list of distinct, stripped, non-empty strings in their first order.

    Parameters
    ----------
    tags : str or iterable of str or None
        A comma-separated string or a list; each element may itself hold commas.
    """
    if tags is None:
        return []
    parts = tags.split(",") if isinstance(tags, str) else [p for t in tags for p in str(t).split(",")]
    out: list[str] = []
    for p in (" ".join(p.split()) for p in parts):
        if p and p not in out:
            out.append(p)
    return out


def _read_entries(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    try:
        doc = json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise LabelsError(f"labels file {str(path)!r} cannot be read: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != LABELS_FORMAT:
        fmt = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise LabelsError(f"labels file {str(path)!r} is of format {fmt!r}, not {LABELS_FORMAT!r}")
    entries = doc.get("labels")
    if not isinstance(entries, list) or not all(_valid_entry(e) for e in entries):
        raise LabelsError(f"labels file {str(path)!r} is damaged: 'labels' must be a list of "
                          "{hash, path, label, tags} objects")
    return entries


def _refuse_constant(name):
    raise ValueError(f"{name} is not strict JSON")


def _valid_entry(e) -> bool:
    return (isinstance(e, dict) and isinstance(e.get("path"), str) and isinstance(e.get("hash", ""), str)
            and e.get("label", "") in ("", *LABEL_CHOICES)
            and isinstance(e.get("tags", []), list) and all(isinstance(t, str) for t in e.get("tags", [])))


def _match(table: pd.DataFrame, entries: list[dict]) -> np.ndarray:
    """For each table row, the index of its entry in ``entries`` (-1 for none)."""
    if not entries:
        return np.full(len(table), -1, dtype=np.int64)
    paths = table["path"].astype(str)
    hashes = table["hash"].astype(str) if "hash" in table.columns else pd.Series("", index=table.index)
    entry_hash = np.array([e.get("hash", "") for e in entries] + [""], dtype=object)
    by_hash = {e["hash"]: i for i, e in enumerate(entries) if e.get("hash")}
    by_path = {e["path"]: i for i, e in enumerate(entries)}
    h = hashes.map(by_hash).fillna(-1).to_numpy(dtype=np.int64)
    p = paths.map(by_path).fillna(-1).to_numpy(dtype=np.int64)
    # by path only where the row or the entry has no hash: a different hash at this path means the pixels changed
    p_ok = (p >= 0) & ((hashes.to_numpy() == "") | (entry_hash[p] == ""))
    return np.where(h >= 0, h, np.where(p_ok, p, -1))


def load_labels(cache) -> pd.DataFrame:
    """The labels of every image of ``cache``, row for row with ``cache.table``.

    Parameters
    ----------
    cache : LatentCache
        The loaded cache.

    Returns
    -------
    pandas.DataFrame
        Index of ``cache.table``; columns ``label`` (one of :data:`LABEL_CHOICES`, ``""`` where none) and ``tags``
        (comma-separated, ``""`` where none).

    Raises
    ------
    LabelsError
        Naming the labels file, if it is not a labels file of this format.
    """
    table = cache.table
    entries = _read_entries(labels_path(cache))
    idx = _match(table, entries)
    label = [entries[i].get("label", "") if i >= 0 else "" for i in idx]
    tags = [", ".join(entries[i].get("tags", [])) if i >= 0 else "" for i in idx]
    return pd.DataFrame({"label": pd.Series(label, dtype="str").to_numpy(),
                         "tags": pd.Series(tags, dtype="str").to_numpy()}, index=table.index)


def _dumps(entries: list[dict]) -> str:
    """The file's text: one entry a line, so that a diff of two versions reads label by label."""
    lines = [json.dumps(e, allow_nan=False, ensure_ascii=False) for e in entries]
    body = ",\n  ".join(lines)
    return f'{{"format": {json.dumps(LABELS_FORMAT)},\n "labels": [\n  {body}\n ]}}\n' if lines else \
        f'{{"format": {json.dumps(LABELS_FORMAT)}, "labels": []}}\n'


@contextlib.contextmanager
def _locked(path: Path):
    try:
        import fcntl
    except ImportError:  # no cross-process lock on this system: the atomic write still keeps the file whole
        yield
        return
    with open(path.parent / f".{path.name}.lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def set_label(cache, image_id: str, *, label: str | None = None, tags: str | Iterable[str] | None = None) -> dict:
    """Give the image ``image_id`` of ``cache`` a label and/or tags (``None`` keeps what it has).

    Parameters
    ----------
    cache : LatentCache
        The loaded cache.
    image_id : str
        The image's ``id`` in ``cache.table``.
    label : str, optional
        One of :data:`LABEL_CHOICES`, or ``""`` to clear the label.
    tags : str or iterable of str, optional
        The image's tags (replacing its old ones): a comma-separated string or a list; ``""`` or ``[]`` clears
        them.

    Returns
    -------
    dict
        The image's entry as stored, ``{"hash", "path", "label", "tags"}``; an image with neither a label nor tags
        is removed from the file.

    Raises
    ------
    LabelsError
        If ``label`` is not a choice, ``image_id`` is not in the cache, or the labels file is damaged.
    """
    if label is not None and label not in ("", *LABEL_CHOICES):
        raise LabelsError(f"label {label!r} is not one of {LABEL_CHOICES} (or '' to clear it)")
    table = cache.table
    rows = np.flatnonzero(table["id"].astype(str).to_numpy() == str(image_id))
    if len(rows) == 0:
        raise LabelsError(f"image {image_id!r} is not in the cache {str(cache.path)!r}")
    row = table.iloc[int(rows[0])]
    path = labels_path(cache)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        entries = _read_entries(path)
        i = int(_match(table.iloc[[int(rows[0])]], entries)[0])
        old = entries.pop(i) if i >= 0 else {}
        entry = {"hash": str(row["hash"]) if "hash" in table.columns else old.get("hash", ""),
                 "path": str(row["path"]),
                 "label": old.get("label", "") if label is None else label,
                 "tags": normalize_tags(old.get("tags", [])) if tags is None else normalize_tags(tags)}
        if entry["label"] or entry["tags"]:
            entries.append(entry)
        entries.sort(key=lambda e: (e["path"], e.get("hash", "")))
        atomic_write_text(path, _dumps(entries))
    return entry
