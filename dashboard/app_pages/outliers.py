"""Outlier review: the strangest images with the score that flagged each and why, labels (interesting, artefact,
normal, free tags) kept beside the cache, and the ranking those labels teach beside the anomaly ranking."""

import hashlib

import numpy as np
import streamlit as st

from astroae_core.analysis.reasons import explain
from dashboard import labels as label_ui
from dashboard import outlier_cards as cards
from dashboard import state, subset
from dashboard.loaders import mtime

TABLE_MAX = 5000  # rows of the full table (each with its reason in words); the export holds every image
ORDERS = ("Anomaly ranking", "Your ranking")


@st.cache_data(max_entries=4, show_spinner=False)
def table_reasons(cache_path: str, stamp: float, rows_key: str, _table, _rows):
    """Reasons for the rows ``_rows`` (identified by ``rows_key``), against the whole cache's statistics."""
    return explain(_table, _rows)


ctx = state.context()
st.title("Outlier review")
state.require_cache(ctx)
t, ss = ctx.table, st.session_state
label_ui.show_save_error()
labels = label_ui.read_labels(ctx)
user = label_ui.user_ranking(ctx, labels)
st.caption("An image's anomaly score is the largest of its separate scores (reconstruction error, isolation in "
           "latent space, one pixel off, flat region), each on a robust sigma scale: every card names the score "
           "that set it and says why in numbers. Label what you see; your labels live beside the cache "
           f"(`{ctx.cache.path.name}.labels.json`), survive a rebuild and teach your own ranking.")

c1, c2, c3 = st.columns([1, 2, 1])
n_cards = int(c1.number_input("Cards", 4, 200, 24, step=4, key="out_ncards"))
order = c2.segmented_control("Order by", ORDERS if user.ready else ORDERS[:1], default=ORDERS[0], required=True,
                             key="out_order")
hide = c3.toggle("Hide labelled images", key="out_hide")

n_int = user.n_positive
st.markdown(f"**Labelled:** {n_int} interesting, {user.n_negative} normal or artefact.")
if not user.ready:
    st.info(f"Your ranking appears once at least {user.needed} images are labelled interesting and {user.needed} "
            f"normal or artefact: {user.missing()} to go. It is a random forest on the latents and the separate "
            "scores, learning what you find interesting (as Astronomaly does).", icon=":material/school:")
else:
    st.subheader("Your ranking beside the anomaly ranking")
    st.caption("A random forest on the latents and the separate scores, trained on your labels (interesting against "
               "normal and artefact), ranks the images you have not labelled.")
    cards.side_by_side(ctx, t, user.scores, labels)

sub = subset.subset_table(ctx)  # the gallery and the table follow the sidebar's filters
if subset.is_filtered(ctx):
    st.caption(f"Following the filters in the sidebar: {len(sub):,} of {len(t):,} images (ranks are over all).")
rows = sub
if hide:
    rows = rows[labels["label"].loc[rows.index] == ""]
if order == ORDERS[1] and user.ready:
    rows = rows.loc[user.scores["user_rank"].loc[rows.index].dropna().sort_values().index]
else:
    rows = rows.sort_values("anomaly_rank")
rows = rows.head(n_cards)
st.subheader(f"The top {len(rows)} by {'your' if order == ORDERS[1] else 'the anomaly'} ranking")
cards.gallery(ctx, rows, explain(t, rows.index), labels,
              user_ranks=user.scores["user_rank"] if user.ready else None)

st.subheader("Every image, strangest first")
listed = sub.sort_values("anomaly_rank").index[:TABLE_MAX]
reasons = table_reasons(str(ctx.cache.path), mtime(ctx.cache.path / "meta.json"),
                        hashlib.sha1(np.asarray(listed).tobytes()).hexdigest(), t, listed)
shown = cards.review_table(t, reasons, labels, user.scores)
if len(sub) > TABLE_MAX:
    st.caption(f"The {TABLE_MAX:,} strangest of {len(sub):,} images.")


def on_row():
    picked = ss["out_table"]["selection"]["rows"]
    if picked:
        state.select_image(t.at[shown.index[picked[0]], "id"])


st.dataframe(shown, hide_index=True, height=800, width="stretch", key="out_table", on_select=on_row,
             selection_mode="single-row", column_config=cards.TABLE_COLUMNS)
if ss.get("selected_id") is not None:
    st.button(f"Open {ss['selected_id']} in Reconstructions", on_click=state.open_in_reconstructions,
              args=(ss["selected_id"],), icon=":material/compare:")
