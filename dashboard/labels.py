"""The user's labels in the app: reading them (a damaged file is a message, not a traceback), the label and tag
widgets of one image, and the user's ranking learnt from them (:mod:`astroae_core.analysis.rerank`).

Labels live beside the cache (:mod:`astroae_core.cache.labels`); a widget's change writes them at once, so another
page, another session or a rebuilt cache sees them.
"""

from __future__ import annotations

import hashlib

import pandas as pd
import streamlit as st

from astroae_core.cache.labels import LABEL_CHOICES, LabelsError, labels_path, labels_stamp, load_labels, set_label

from .loaders import mtime

ERROR_KEY = "_labels_error"
LABEL_ICONS = {"interesting": ":material/star:", "artefact": ":material/block:", "normal": ":material/check:"}


def read_labels(ctx) -> pd.DataFrame:
    """The labels of ``ctx.cache`` row for row with its table; empty ones (and an error shown) if the file is
    damaged."""
    try:
        return load_labels(ctx.cache)
    except LabelsError as exc:
        st.error(f"{exc}. Labels are not shown; fix or move the file to start again.", icon=":material/error:")
        return pd.DataFrame({"label": "", "tags": ""}, index=ctx.table.index)


def _key(ctx, what: str, image_id) -> str:
    # widget keys per cache: the same id in another cache is another image
    tag = hashlib.sha1(str(labels_path(ctx.cache)).encode()).hexdigest()[:8]
    return f"{what}_{tag}_{image_id}"


def _save(cache, image_id, key: str, field: str) -> None:
    value = st.session_state.get(key)
    try:
        if field == "label":
            set_label(cache, image_id, label=value or "")
        else:
            set_label(cache, image_id, tags=value or "")
        st.session_state.pop(ERROR_KEY, None)
    except (LabelsError, OSError) as exc:
        st.session_state[ERROR_KEY] = f"The label of {image_id} was not saved: {exc}"


def show_save_error() -> None:
    """The last failed save, once."""
    msg = st.session_state.pop(ERROR_KEY, None)
    if msg:
        st.error(msg, icon=":material/error:")


def label_widgets(ctx, image_id, current: pd.Series) -> None:
    """A label choice (click again to clear) and a free-tag box for one image, saved as soon as they change.

    Parameters
    ----------
    current : pandas.Series
        The image's ``label`` and ``tags`` as stored (they set the widgets the first time they are drawn).
    """
    ss = st.session_state
    lk, tk = _key(ctx, "label", image_id), _key(ctx, "tags", image_id)
    if lk not in ss:
        ss[lk] = current["label"] or None
    if tk not in ss:
        ss[tk] = current["tags"]
    st.segmented_control("Label", LABEL_CHOICES, key=lk, label_visibility="collapsed",
                         format_func=lambda v: v, on_change=_save, args=(ctx.cache, image_id, lk, "label"))
    st.text_input("Tags", key=tk, placeholder="tags, comma-separated", label_visibility="collapsed",
                  on_change=_save, args=(ctx.cache, image_id, tk, "tags"))


@st.cache_data(max_entries=8, show_spinner="Learning your ranking from your labels…")
def _user_ranking(cache_path: str, cache_stamp: float, label_stamp: int, _table, _labels):
    from astroae_core.analysis.rerank import rerank

    return rerank(_table, _labels, seed=0)


def user_ranking(ctx, labels: pd.DataFrame):
    """:func:`astroae_core.analysis.rerank.rerank` on this cache and these labels, computed once per labels
    file version."""
    return _user_ranking(str(ctx.cache.path), mtime(ctx.cache.path / "meta.json"), labels_stamp(ctx.cache),
                         ctx.table, labels["label"].to_numpy())
