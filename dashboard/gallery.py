"""Galleries of cache images: their stored previews under the current stretch, a caption each, and an Open button."""

from __future__ import annotations

import numpy as np
import streamlit as st

from .display import preview_rgb
from .formatting import format_value, short_name
from .state import Context, open_in_reconstructions


def show_previews(ctx: Context, rows, *, ncols: int = 6, caption_col: str | None = None, key: str = "gal",
                  button: bool = True) -> None:
    """Thumbnails of cache rows (the first 60), each with its file name, ``caption_col``'s value and an Open button
    that shows it on the Reconstructions page."""
    rows = rows.head(60)
    if len(rows) == 0:
        return
    pos = ctx.table.index.get_indexer(rows.index)
    imgs = preview_rgb(np.asarray(ctx.cache.previews[pos]), ctx.stretch, ctx.cmap)
    if caption_col:
        st.caption(f"Under each image: its file and {caption_col}.")
    cols = st.columns(ncols)
    for i, (img, (_, r)) in enumerate(zip(imgs, rows.iterrows())):
        with cols[i % ncols]:
            cap = short_name(r["path"])
            if caption_col and caption_col in r:
                cap += f" · {format_value(caption_col, r[caption_col], short=True)}"
            st.image(img, caption=cap, width="stretch")
            if button:
                st.button("Open", key=f"{key}-{r['id']}", on_click=open_in_reconstructions, args=(r["id"],),
                          width="stretch")
