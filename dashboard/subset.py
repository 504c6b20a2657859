"""The subset every page shares: the cache's table with the user's labels (the view table), the filters the user set
(session key ``subset_filters``), the rows that pass them, and the sidebar's chips and "Add a filter" form.

The map, the galleries, the image pickers and the exports draw from :func:`subset_table`; the filters themselves
are plain dicts (see :mod:`astroae_core.analysis.subset`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from astroae_core.analysis import subset as core

from .formatting import column_label
from .state import Context

FILTERS = "subset_filters"
#: Columns never offered as filters (the file's HDU number, the pixels' content hash).
NOT_FILTERABLE = ("hdu", "hash")
TEXT_COLUMNS = ("tags", "path", "id")  # filtered by a text they contain, whatever their number of values


@st.cache_resource(max_entries=8, show_spinner=False)
def _labels_at(cache_path: str, stamp: int, created: str, _cache) -> pd.DataFrame:
    """The cache's labels as of the labels file's ``stamp`` (shared, never mutated: read-only columns)."""
    from astroae_core.cache.labels import load_labels

    return load_labels(_cache)


def _labels(cache) -> pd.DataFrame | None:
    try:
        from astroae_core.cache.labels import labels_stamp
    except ImportError:
        return None
    try:
        return _labels_at(str(cache.path), labels_stamp(cache), str(cache.meta.created_utc), cache)
    except Exception:  # noqa: BLE001 - an unreadable labels file is reported on the labels page; here: no labels
        return None


def view_table(ctx: Context) -> pd.DataFrame | None:
    """``ctx.table`` with the user's ``label`` and ``tags`` columns (empty strings where an image has none), index
    and row order unchanged; computed once per run."""
    if ctx.table is None:
        return None
    if ctx.view is None:
        lab = _labels(ctx.cache)
        t = ctx.table.copy(deep=False)
        n = len(t)
        for c in ("label", "tags"):
            t[c] = lab[c].to_numpy() if lab is not None and c in lab else np.full(n, "", dtype=object)
        ctx.view = t
    return ctx.view


def filters() -> list[dict]:
    """The filters the user set, in the order they were added."""
    return list(st.session_state.get(FILTERS) or [])


def active_filters(ctx: Context) -> tuple[list[dict], list[str]]:
    """The filters that apply to this cache, and a reason for each that does not (a column another cache had)."""
    view, ok, bad = view_table(ctx), [], []
    for f in filters():
        try:
            core.check_filter(view, f)
            ok.append(f)
        except ValueError as exc:
            bad.append(f"{chip_text(f)} is ignored: {exc}")
    return ok, bad


def subset_table(ctx: Context) -> pd.DataFrame | None:
    """The rows of the view table that pass every filter (the whole table without filters), index kept."""
    if ctx.table is None:
        return None
    if ctx.subset is None:
        ctx.subset = core.apply_filters(view_table(ctx), active_filters(ctx)[0])
    return ctx.subset


def is_filtered(ctx: Context) -> bool:
    return ctx.table is not None and len(subset_table(ctx)) < len(ctx.table)


def _num(v) -> str:
    return f"{float(v):.6g}"


def chip_text(f: dict) -> str:
    """A filter in a few words: ``snr (catalog) ≥ 50``, ``kind (catalog): ring, merger``, ``path ∋ "f277"``."""
    name = column_label(f.get("column"))
    if f.get("op") == "range":
        lo, hi = f.get("lo"), f.get("hi")
        if lo is not None and hi is not None:
            return f"{_num(lo)} ≤ {name} ≤ {_num(hi)}"
        return f"{name} ≥ {_num(lo)}" if lo is not None else f"{name} ≤ {_num(hi)}"
    if f.get("op") == "in":
        vals = [str(v) or "(none)" for v in f.get("values") or ()]
        return f"{name}: {', '.join(vals[:3])}" + (f" +{len(vals) - 3}" if len(vals) > 3 else "")
    return f'{name} contains "{f.get("text", "")}"'


def add_filter(flt: dict) -> None:
    """Add a filter (one per column: a new one on the same column replaces the old)."""
    kept = [f for f in filters() if f.get("column") != flt["column"]]
    st.session_state[FILTERS] = [*kept, flt]
    _forget_map_selection()


def remove_filter(i: int) -> None:
    fs = filters()
    if 0 <= i < len(fs):
        del fs[i]
    st.session_state[FILTERS] = fs
    _forget_map_selection()


def clear_filters() -> None:
    st.session_state[FILTERS] = []
    _forget_map_selection()


def _forget_map_selection() -> None:
    # a box drawn on the old subset's map selects points that may no longer be drawn
    st.session_state["map_selection_ids"] = []
    st.session_state.pop("mapgal_page", None)


def filterable_columns(view: pd.DataFrame) -> list[str]:
    skip = set(NOT_FILTERABLE)
    first = [c for c in ("label", "tags", "catalog.kind", "split", "anomaly_score", "mse") if c in view.columns]
    rest = [c for c in view.columns if c not in skip and c not in first]
    return first + rest


def range_filter(col: str, lo, hi, lo0: float, hi0: float) -> dict:
    """A range filter; a bound left at the column's own minimum or maximum is no bound (the chip reads ``≥ lo``)."""
    lo, hi = float(lo), float(hi)
    if lo > hi:
        lo, hi = hi, lo
    return {"column": col, "op": "range", "lo": None if lo <= lo0 else lo, "hi": None if hi >= hi0 else hi}


def kind_of(view: pd.DataFrame, col: str) -> str:
    return "contains" if col in TEXT_COLUMNS else core.column_kind(view[col])


def sidebar_panel(ctx: Context) -> None:
    """The subset in the sidebar: how many images pass, one removable chip per filter, and a form to add one."""
    view = view_table(ctx)
    if view is None:
        return
    with st.container(key="subset_panel"):
        _panel(ctx, view)


def _panel(ctx: Context, view: pd.DataFrame) -> None:
    ok, bad = active_filters(ctx)
    n, total = len(subset_table(ctx)), len(view)
    st.markdown("**Subset**")
    st.caption(f"{n:,} of {total:,} images" + (" pass the filters" if ok else " (no filters)"),
               help="The map, the galleries, the image pickers and the exports show only these images.")
    all_filters = filters()
    with st.container(key="subset_chips"):
        for i, f in enumerate(all_filters):
            if f in ok:
                st.button(f"{chip_text(f)}  ✕", key=f"chip_{i}", on_click=remove_filter, args=(i,),
                          help="Remove this filter", width="stretch")
        if len(ok) > 1:
            st.button("Clear all filters", key="chip_clear", on_click=clear_filters, type="tertiary",
                      icon=":material/filter_alt_off:")
    for msg in bad:
        st.caption(msg)
    with st.expander("Add a filter", icon=":material/filter_alt:", expanded=False):
        _filter_form(view)


def _filter_form(view: pd.DataFrame) -> None:
    ss = st.session_state
    cols = filterable_columns(view)
    col = st.selectbox("Column", cols, key="flt_col", format_func=column_label)
    kind = kind_of(view, col)
    if kind == "range":
        v = view[col].to_numpy(dtype=np.float64, na_value=np.nan)
        v = v[np.isfinite(v)]
        lo0, hi0 = (float(v.min()), float(v.max())) if len(v) else (0.0, 0.0)
        a, b = st.columns(2)
        a.number_input("From", value=lo0, key=f"flt_lo:{col}", format="%.6g")
        b.number_input("To", value=hi0, key=f"flt_hi:{col}", format="%.6g")
        st.button("Add filter", key="flt_add", icon=":material/add:", on_click=lambda: add_filter(
            range_filter(col, ss[f"flt_lo:{col}"], ss[f"flt_hi:{col}"], lo0, hi0)))
    elif kind == "in":
        st.multiselect("Is one of", core.categories(view[col]), key=f"flt_in:{col}")
        st.button("Add filter", key="flt_add", icon=":material/add:", disabled=not ss.get(f"flt_in:{col}"),
                  on_click=lambda: add_filter({"column": col, "op": "in", "values": list(ss[f"flt_in:{col}"])}))
    else:
        st.text_input("Contains (any case)", key=f"flt_text:{col}")
        st.button("Add filter", key="flt_add", icon=":material/add:",
                  disabled=not (ss.get(f"flt_text:{col}") or "").strip(),
                  on_click=lambda: add_filter({"column": col, "op": "contains",
                                               "text": ss[f"flt_text:{col}"].strip()}))
