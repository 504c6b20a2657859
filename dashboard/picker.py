"""The one image picker every page uses: a search over all the subset's images (any number of them) that chooses
the image as soon as the text names one, and a list of the matches, sorted.

Keys, for a picker with ``key="rec"``: ``rec_query`` (the search), ``rec_pick`` (the list), ``rec_sort`` and
``rec_desc`` (the order, when offered).
"""

from __future__ import annotations

import numbers
from pathlib import Path

import streamlit as st

from astroae_core.analysis import subset as core

from . import state, subset

#: The list under the search holds at most this many matches (the search itself looks through every image).
LIST_MAX = 1000
SORTABLE = ("anomaly_rank", "mse", "ssim", "ms_ssim", "anomaly_score", "path", "label")


def _tables(ctx: state.Context):
    return subset.subset_table(ctx), subset.view_table(ctx)


def _on_query(key: str, on_pick) -> None:
    """Typing a name or id that matches one image chooses it at once (in the subset first, else in all images)."""
    ctx = st.session_state.get("ctx")
    if ctx is None or ctx.table is None:
        return
    q = st.session_state.get(f"{key}_query", "")
    sub, view = _tables(ctx)
    hit = core.exact_image(sub, q)
    if hit is None and core.search_images(sub, q).empty:
        hit = core.exact_image(view, q)
    if hit is not None:
        on_pick(hit)
        st.session_state[f"{key}_pick"] = hit


def image_picker(ctx: state.Context, *, key: str, label: str = "Image", sort: bool = False, current=None,
                 on_pick=None, container=None):
    """Draw the picker and return the chosen row of the view table.

    Parameters
    ----------
    ctx : Context
        This run's context (its subset is searched; the whole table when nothing in the subset matches).
    key : str
        Prefix of the widgets' keys.
    label : str
        The list's label.
    sort : bool
        Offer a sort order for the list.
    current, on_pick : optional
        The chosen image's id and the function called with a newly chosen id; by default the image every page
        follows (``selected_id``) and :func:`dashboard.state.select_image`.
    container : optional
        Where to draw (a column); the page by default.
    """
    ss = st.session_state
    on_pick = on_pick or state.select_image
    box = container if container is not None else st.container()
    sub, view = _tables(ctx)
    if sort:
        c1, c2, c3 = box.columns([3, 2, 1])
    else:
        c1 = c2 = c3 = box
    c1.text_input("Search by file name or id", key=f"{key}_query", placeholder="part of a file name or id",
                  on_change=_on_query, args=(key, on_pick),
                  help="Looks through every image of the subset; a name or id that matches one image shows it.")
    sort_by, desc = None, False
    if sort:
        sortable = [c for c in SORTABLE if c in view.columns]
        sort_by = c2.selectbox("Sort by", sortable, key=f"{key}_sort")
        desc = c3.toggle("Descending", key=f"{key}_desc", value=sort_by == "mse")
    q = ss.get(f"{key}_query", "")
    rows, where = core.search_images(sub, q), "in the subset" if subset.is_filtered(ctx) else ""
    if rows.empty and q:
        rows, where = core.search_images(view, q), "outside the subset"
    rows = core.sort_rows(rows, sort_by, ascending=not desc)
    if q and rows.empty:
        box.warning(f"No image name or id contains {q!r}. Clear the search to see all {len(sub):,} images.")
    cur = current if current is not None else ss.get("selected_id")
    at = (view["id"] == cur).to_numpy() if cur is not None else None
    if at is None or not at.any():  # nothing chosen yet (or an id of another cache): the top of the list
        cur = (rows if len(rows) else sub if len(sub) else view)["id"].iloc[0]
        on_pick(cur)
        at = (view["id"] == cur).to_numpy()
    options = list(dict.fromkeys([cur, *rows["id"].iloc[:LIST_MAX].tolist()]))
    ss[f"{key}_pick"] = cur
    names = dict(zip(view["id"], view["path"].astype(str)))
    values = dict(zip(rows["id"], rows[sort_by])) if sort_by and sort_by != "path" else {}
    count = f"{len(rows):,} match{'es' if len(rows) != 1 else ''}" + (f" {where}" if where else "")
    shown = f"; the first {LIST_MAX:,} listed" if len(rows) > LIST_MAX else ""
    box.selectbox(f"{label} ({count}{shown})", options, key=f"{key}_pick",
                  on_change=lambda: on_pick(ss[f"{key}_pick"]),
                  format_func=lambda i: Path(names.get(i, str(i))).name + (
                      f"  ·  {sort_by} {values[i]:.4g}" if isinstance(values.get(i), numbers.Real) else ""))
    return view.iloc[int(at.argmax())]
