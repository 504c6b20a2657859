"""The Outlier review page's pieces: a card per outlier (thumbnail, rank and score, the score that flagged it and
why, label buttons and tags, a link to Reconstructions), the two rankings side by side, and the full table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from .display import preview_rgb
from .formatting import column_label, md_escape, short_name
from .labels import label_widgets
from .state import open_in_reconstructions

KIND = "catalog.kind"


def _thumbs(ctx, rows: pd.DataFrame) -> np.ndarray:
    pos = ctx.table.index.get_indexer(rows.index)
    return preview_rgb(np.asarray(ctx.cache.previews[pos]), ctx.stretch, ctx.cmap)


def card(ctx, row: pd.Series, img: np.ndarray, why: pd.Series, labels: pd.Series, *, user_rank=None) -> None:
    """One outlier: its thumbnail, rank, score, the score that flagged it and the reason, and its label widgets."""
    with st.container(border=True, key=f"card_{row['id']}"):
        st.image(img, width="stretch")
        head = f"**#{int(row['anomaly_rank'])}** · {md_escape(short_name(row['path']))}"
        if user_rank is not None and np.isfinite(user_rank):
            head += f" · yours #{int(user_rank)}"
        st.markdown(head)
        st.markdown(f":orange-badge[{why['flagged']}] score {row['anomaly_score']:.1f}")
        st.caption(why["reason"])
        label_widgets(ctx, row["id"], labels)
        st.button("Open in Reconstructions", key=f"open_{row['id']}", on_click=open_in_reconstructions,
                  args=(row["id"],), icon=":material/compare:", width="stretch")


def gallery(ctx, rows: pd.DataFrame, reasons: pd.DataFrame, labels: pd.DataFrame, *, ncols: int = 4,
            user_ranks: pd.Series | None = None) -> None:
    """Cards of ``rows`` in a grid of ``ncols``, in their order."""
    imgs = _thumbs(ctx, rows)
    for start in range(0, len(rows), ncols):
        cols = st.columns(ncols)
        for j, (idx, row) in enumerate(rows.iloc[start:start + ncols].iterrows()):
            with cols[j]:
                ur = user_ranks.get(idx) if user_ranks is not None else None
                card(ctx, row, imgs[start + j], reasons.loc[idx], labels.loc[idx], user_rank=ur)


def side_by_side(ctx, table: pd.DataFrame, user: pd.DataFrame, labels: pd.DataFrame, *, n: int = 8) -> None:
    """The top ``n`` unlabelled images by the anomaly score and by the user's ranking, in two strips."""
    free = table[labels["label"].reindex(table.index).fillna("") == ""]
    left, right = st.columns(2)
    for col, title, rows in (
            (left, "Anomaly ranking", free.sort_values("anomaly_rank").head(n)),
            (right, "Your ranking", free.loc[user["user_rank"].reindex(free.index).dropna()
                                             .sort_values().index[:n]])):
        with col, st.container(border=True):
            st.markdown(f"**{title}** (unlabelled images)")
            cells = st.columns(4)
            for k, (img, (_, r)) in enumerate(zip(_thumbs(ctx, rows), rows.iterrows())):
                cap = f"#{int(r['anomaly_rank'])}" if title.startswith("Anomaly") else \
                    f"#{int(user.at[r.name, 'user_rank'])} · p={user.at[r.name, 'user_score']:.2f}"
                cells[k % 4].image(img, caption=f"{short_name(r['path'])} {cap}", width="stretch")


def review_table(table: pd.DataFrame, reasons: pd.DataFrame, labels: pd.DataFrame,
                 user: pd.DataFrame | None) -> pd.DataFrame:
    """The rows of ``reasons`` (in its order) as the table the page shows: rank, image, score, what flagged it
    and why, label, tags, the user's rank, the metrics and the catalog's kind."""
    t = table.loc[reasons.index]
    out = pd.DataFrame({"rank": t["anomaly_rank"].astype("int64"), "image": [short_name(p) for p in t["path"]],
                        "score": t["anomaly_score"], "flagged by": reasons["flagged"], "why": reasons["short"],
                        "label": labels["label"].reindex(t.index), "tags": labels["tags"].reindex(t.index)},
                       index=t.index)
    if user is not None:
        out.insert(1, "your rank", user["user_rank"].reindex(t.index))
    for c in ("mse", KIND):  # few enough columns to read at once on a laptop
        if c in t.columns:
            out[column_label(c)] = t[c]
    return out


TABLE_COLUMNS = {
    "rank": st.column_config.NumberColumn("rank", format="%d", width="small"),
    "your rank": st.column_config.NumberColumn("your rank", format="%d", width="small",
                                               help="Among the unlabelled images, by what your labels taught "
                                                    "(none for the images you labelled)"),
    "score": st.column_config.NumberColumn("score", format="%.1f", width="small"),
    "image": st.column_config.TextColumn("image", width=120),
    "flagged by": st.column_config.TextColumn("flagged by", width=130),
    "why": st.column_config.TextColumn("why", width=240, help="The card above says it in full"),
    "label": st.column_config.TextColumn("label", width=90),
    "tags": st.column_config.TextColumn("tags", width=110),
    "mse": st.column_config.NumberColumn("MSE", format="%.2e", width="small"),
}
