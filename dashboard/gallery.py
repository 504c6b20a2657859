"""Galleries of cache images: their stored previews under the current stretch, a caption each, and an Open button;
a paged gallery that goes through a whole subset in a chosen order."""

from __future__ import annotations

import math

import numpy as np
import streamlit as st

from astroae_core.analysis.subset import sort_rows

from .display import preview_rgb
from .formatting import column_label, format_value, short_name
from .state import Context, open_in_reconstructions

PAGE_SIZE = 48
FIRST_SORTS = ("anomaly_rank", "anomaly_score", "mse", "ssim", "label", "catalog.kind", "path", "id")


def show_previews(ctx: Context, rows, *, ncols: int = 6, caption_col: str | None = None, key: str = "gal",
                  button: bool = True) -> None:
    """Thumbnails of cache rows (all of them: page long lists with :func:`paged_gallery`), each with its file name,
    ``caption_col``'s value and an Open button that shows it on the Reconstructions page."""
    if len(rows) == 0:
        return
    pos = ctx.table.index.get_indexer(rows.index)
    imgs = preview_rgb(np.asarray(ctx.cache.previews[pos]), ctx.stretch, ctx.cmap)
    if caption_col:
        st.caption(f"Under each image: its file and {column_label(caption_col)}.")
    cols = st.columns(ncols)
    for i, (img, (_, r)) in enumerate(zip(imgs, rows.iterrows())):
        with cols[i % ncols]:
            cap = short_name(r["path"])
            if caption_col and caption_col in r and caption_col not in ("path", "id"):
                cap += f" · {format_value(caption_col, r[caption_col], short=True) or '—'}"
            st.image(img, caption=cap, width="stretch")
            if button:
                st.button("Open", key=f"{key}-{r['id']}", on_click=open_in_reconstructions, args=(r["id"],),
                          width="stretch")


def sort_columns(rows) -> list[str]:
    """Columns a gallery can be sorted by: the usual ones first, then every other number."""
    first = [c for c in FIRST_SORTS if c in rows.columns]
    return first + [c for c in rows.columns if c not in first and rows[c].dtype.kind in "biuf"]


def paged_gallery(ctx: Context, rows, *, key: str, ncols: int = 8, page_size: int = PAGE_SIZE,
                  default_sort: str = "anomaly_rank") -> None:
    """Every row of ``rows``, ``page_size`` a page, in the order the user picks (the caption shows the sorted
    value). Keys: ``<key>_sort``, ``<key>_desc``, ``<key>_page``."""
    ss = st.session_state
    if len(rows) == 0:
        st.caption("No images to show.")
        return
    sorts = sort_columns(rows)
    if ss.get(f"{key}_sort") not in sorts:
        ss[f"{key}_sort"] = default_sort if default_sort in sorts else sorts[0]
    n_pages = max(1, math.ceil(len(rows) / page_size))
    if not 1 <= int(ss.get(f"{key}_page", 1)) <= n_pages:  # the rows changed under the page number
        ss[f"{key}_page"] = 1
    c1, c2, c3 = st.columns([2, 1, 1])
    by = c1.selectbox("Sort by", sorts, key=f"{key}_sort", format_func=column_label)
    desc = c2.toggle("Descending", key=f"{key}_desc")
    page = int(c3.number_input(f"Page (of {n_pages:,})", 1, n_pages, key=f"{key}_page", step=1))
    ordered = sort_rows(rows, by, ascending=not desc)
    a = (page - 1) * page_size
    chunk = ordered.iloc[a:a + page_size]
    st.caption(f"Images {a + 1:,}–{a + len(chunk):,} of {len(rows):,}, by {column_label(by)} "
               f"({'descending' if desc else 'ascending'}).")
    show_previews(ctx, chunk, ncols=ncols, caption_col=by, key=f"{key}{page}")
