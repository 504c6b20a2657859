"""A dataset's ``catalog.csv``: one row per FITS file (matched on a ``path``, ``file`` or ``filename`` column), with
whatever is known about each image (the demo's true galaxy parameters and oddity ``kind``, a survey's redshifts).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from astroae_core.io.paths import is_within

__all__ = ["CATALOG_NAME", "CATALOG_KEYS", "read_catalog", "join_catalog", "catalog_column"]

log = logging.getLogger(__name__)

CATALOG_NAME = "catalog.csv"
#: Columns that name a catalog row's file, in the order they are looked for.
CATALOG_KEYS = ("path", "file", "filename")

#: Why a file inside the data folder that links to a file outside the readable folders was not read.
LINKED_FROM_OUTSIDE = "a symbolic link to a file outside the folders that may be read (not read)"


def read_catalog(data_dir: Path, *, confine_to=None) -> tuple[pd.DataFrame | None, dict | None]:
    """Read ``data_dir/catalog.csv`` if there is one.

    A catalog that cannot be used (unreadable, no column naming the files, a link out of ``confine_to``) is
    logged and ignored, never fatal: the images stand without it.

    Returns
    -------
    catalog : pandas.DataFrame or None
    info : dict or None
        ``{"file", "key"}`` (the column matched on) for a usable catalog, ``{"file", "error"}`` for an unusable
        one, None without a catalog.
    """
    path = Path(data_dir) / CATALOG_NAME
    if not path.is_file():
        return None, None
    if confine_to is not None and not is_within(path, confine_to):
        log.warning("ignoring %s: %s", path, LINKED_FROM_OUTSIDE)
        return None, {"file": CATALOG_NAME, "error": LINKED_FROM_OUTSIDE}
    try:
        cat = pd.read_csv(path)
    except Exception as exc:  # noqa: BLE001 - a broken catalog must not stop the encode
        log.warning("ignoring %s: %s", path, exc)
        return None, {"file": CATALOG_NAME, "error": f"{type(exc).__name__}: {exc}"}
    key = next((k for k in CATALOG_KEYS if k in cat.columns), None)
    if key is None:
        msg = f"no {'/'.join(CATALOG_KEYS)} column to match files on (columns: {list(cat.columns)})"
        log.warning("ignoring %s: %s", path, msg)
        return None, {"file": CATALOG_NAME, "error": msg}
    return cat, {"file": CATALOG_NAME, "key": key}


def join_catalog(table: pd.DataFrame, cat: pd.DataFrame, info: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Left-join catalog rows onto the table; returns (joined table, the catalog part aligned to the table)."""
    key = info["key"]
    refs = cat[key].astype(str).map(lambda s: Path(s.replace("\\", "/")).as_posix())
    by_path = {}
    for i, r in enumerate(refs):
        by_path.setdefault(r, i)
    names = refs.map(lambda r: r.rsplit("/", 1)[-1])
    counts = names.value_counts()
    by_name = {n: i for i, n in enumerate(names) if counts[n] == 1}
    rows = []
    for p in table["path"]:
        i = by_path.get(p)
        if i is None:
            i = by_name.get(p.rsplit("/", 1)[-1])
        rows.append(-1 if i is None else i)
    rows = np.asarray(rows, dtype=np.int64)
    matched = rows >= 0
    base = cat.reset_index(drop=True)
    if not matched.all():  # unmatched rows get missing values: booleans become nullable booleans
        base = base.astype({c: "boolean" for c in base.columns if pd.api.types.is_bool_dtype(base[c])})
    part = base.reindex(rows).reset_index(drop=True)
    renamed = {c: (f"catalog_{c}" if c in table.columns else c) for c in part.columns}
    part = part.rename(columns=renamed)
    info.update(n_matched=int(matched.sum()), n_unmatched=int((~matched).sum()), columns=list(part.columns),
                renamed={k: v for k, v in renamed.items() if k != v})
    return pd.concat([table.reset_index(drop=True), part], axis=1), part


def catalog_column(data_dir, paths, column: str, *, confine_to=None) -> list | None:
    """The value of ``column`` in ``data_dir``'s catalog for each of ``paths`` (None where a file has no row);
    None when there is no usable catalog or it lacks the column."""
    cat, info = read_catalog(Path(data_dir), confine_to=confine_to)
    if cat is None or column not in cat.columns:
        return None
    _, part = join_catalog(pd.DataFrame({"path": list(paths)}), cat, info)
    name = column if column in part.columns else f"catalog_{column}"
    return [None if pd.isna(v) else v for v in part[name]]
