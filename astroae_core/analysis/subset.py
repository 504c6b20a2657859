"""A subset of a cache's table: filters on any column (a numeric range, a set of categories, a text to contain) and
the search that finds one image by its file name or id. Plain pandas; the app keeps the filters as dicts.

A filter is a dict with ``column`` and ``op``:

- ``{"column": "catalog.snr", "op": "range", "lo": 50, "hi": None}``: lo <= value <= hi (``None``: unbounded);
- ``{"column": "catalog.kind", "op": "in", "values": ["ring", "merger"]}``: the value, as text, is one of them;
- ``{"column": "path", "op": "contains", "text": "f277w"}``: the value contains the text, ignoring case.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

OPS = ("range", "in", "contains")
#: A text column with at most this many distinct values is filtered by picking values, not by typing a text.
MAX_CATEGORIES = 60


def column_kind(series: pd.Series) -> str:
    """How a column is filtered: ``"range"`` (numbers, not booleans), ``"in"`` (booleans and text with at most
    :data:`MAX_CATEGORIES` distinct values) or ``"contains"`` (other text)."""
    if series.dtype.kind in "iuf":
        return "range"
    if series.dtype.kind == "b":
        return "in"
    return "in" if series.nunique(dropna=True) <= MAX_CATEGORIES else "contains"


def categories(series: pd.Series) -> list[str]:
    """The distinct values of a column as text, most frequent first (what an ``in`` filter offers)."""
    return [str(v) for v in series.astype(str).value_counts(dropna=False).index]


def check_filter(table: pd.DataFrame, flt: dict) -> None:
    """Raise ``ValueError`` naming the problem when ``flt`` cannot apply to ``table``."""
    col, op = flt.get("column"), flt.get("op")
    if col not in table.columns:
        raise ValueError(f"no column {col!r} in this table (it has {len(table.columns)} columns)")
    if op not in OPS:
        raise ValueError(f"unknown filter {op!r} on {col!r}: one of {', '.join(OPS)}")
    if op == "range" and table[col].dtype.kind not in "iufb":
        raise ValueError(f"column {col!r} holds text: a range needs numbers")


def filter_mask(table: pd.DataFrame, flt: dict) -> np.ndarray:
    """Boolean mask of the rows that pass one filter (missing values never pass)."""
    check_filter(table, flt)
    s = table[flt["column"]]
    if flt["op"] == "range":
        v = s.to_numpy(dtype=np.float64, na_value=np.nan)
        keep = np.isfinite(v)
        if flt.get("lo") is not None:
            keep &= v >= float(flt["lo"])
        if flt.get("hi") is not None:
            keep &= v <= float(flt["hi"])
        return keep
    if flt["op"] == "in":
        want = {str(v) for v in flt.get("values") or ()}
        return s.astype(str).isin(want).to_numpy() & s.notna().to_numpy()
    text = str(flt.get("text") or "").lower()
    return (s.notna() & s.astype(str).str.lower().str.contains(text, regex=False)).to_numpy()


def apply_filters(table: pd.DataFrame, filters) -> pd.DataFrame:
    """The rows of ``table`` that pass every filter (all of them: filters combine with AND), index kept."""
    keep = np.ones(len(table), dtype=bool)
    for flt in filters or ():
        keep &= filter_mask(table, flt)
    return table if keep.all() else table[keep]


def _lower(table: pd.DataFrame, col: str) -> pd.Series:
    return table[col].astype(str).str.lower()


def search_images(table: pd.DataFrame, query: str) -> pd.DataFrame:
    """Rows whose id or path contains ``query`` (case-insensitive; all rows for an empty query), index kept."""
    q = (query or "").strip().lower()
    if not q:
        return table
    hit = _lower(table, "id").str.contains(q, regex=False)
    if "path" in table.columns:
        hit |= _lower(table, "path").str.contains(q, regex=False)
    return table[hit.to_numpy()]


def exact_image(table: pd.DataFrame, query: str):
    """The one image ``query`` names, or ``None``: an id, path, file name or file name without its extensions equal
    to the query (case-insensitive), else the only row whose id or path contains it."""
    q = (query or "").strip().lower()
    if not q:
        return None
    hits = search_images(table, q)  # every exact match contains the query: look only among these
    if len(hits) == 1:
        return hits["id"].iloc[0]
    if len(hits) == 0:
        return None
    paths = _lower(hits, "path" if "path" in hits.columns else "id").str.replace("\\", "/", regex=False)
    files = paths.str.rsplit("/", n=1).str[-1]
    for key in (_lower(hits, "id"), paths, files, files.str.split(".", n=1).str[0]):
        at = np.flatnonzero((key == q).to_numpy())
        if len(at) == 1:
            return hits["id"].iloc[int(at[0])]
    return None


def sort_rows(table: pd.DataFrame, by: str | None, *, ascending: bool = True) -> pd.DataFrame:
    """``table`` sorted by a column (missing values last; ties keep the table's order)."""
    if not by or by not in table.columns:
        return table
    return table.sort_values(by, ascending=ascending, na_position="last", kind="stable")
