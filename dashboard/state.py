"""What one session of the app knows: the :class:`Context` the sidebar builds on every run, the chosen image, the
pages (for links and switching), and messages left for the next run.

Session state keys (set here or by pages; they survive page switches because they are not widget keys):

``ctx``                 the :class:`Context` of this run (cache, models, stretch, colour map)
``selected_id``         the image the user is looking at (reconstructions, sliders, map all follow it)
``map_selection_ids``   ids chosen on the map with a box or lasso
``subset_filters``      the filters of the subset every page shows (dashboard/subset.py)
``interp_a_id``, ``interp_b_id``  the two images the sliders page interpolates between
``samp_dir``            this session's temporary folder of files offered over SAMP (dashboard/exports.py)
``uploads``             {content hash: astroae_core.analysis.UploadResult} for the uploaded files
``slider_z``            the latent the sliders page shows
``_goto``               a page a callback asked to switch to (callbacks cannot switch pages themselves)
``_flash``              a message a finished job left for the next run
``_next_cache``         a cache just built, for the sidebar to switch to
``train_watching``      the training run this session started or saw going (its cache opens when it is done)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

from .paths import resolve_within
from .selection import rows_for_ids

PAGES = {}  # title -> st.Page, filled by app.py (pages link to each other through it)


@dataclass
class Context:
    """This run's cache, models and display settings, as the sidebar chose them."""

    data_root: Path
    configured_cache: Path
    configured_source: str
    allowed_roots: list = field(default_factory=list)
    cache_path: Path | None = None
    cache: object = None
    cache_error: str | None = None
    cache_stale: str | None = None
    cache_model: object = None  # the model the cache was encoded with (its latents live in its space)
    model: object = None  # the model chosen in the sidebar (reconstructions, metrics)
    model_path: Path | None = None
    model_error: str | None = None
    stretch: str = "asinh"
    cmap: str = "gray"
    view: object = None  # the table with the user's labels (dashboard.subset.view_table), made once per run
    subset: object = None  # its rows that pass the filters (dashboard.subset.subset_table), made once per run

    @property
    def table(self):
        return self.cache.table if self.cache is not None else None

    @property
    def model_is_cache_model(self) -> bool:
        return self.model is not None and self.model is self.cache_model


def context() -> Context:
    """This run's context (drawing the sidebar if app.py has not: a page run on its own)."""
    ctx = st.session_state.get("ctx")
    if ctx is None:
        from .sidebar import sidebar

        ctx = sidebar()
    return ctx


def require_cache(ctx: Context) -> None:
    """Stop the page with directions when there is no usable cache (or its model cannot be loaded)."""
    if ctx.cache is not None and ctx.cache_model is not None:
        return
    if ctx.cache is None:
        st.info(f"No latent cache is loaded ({ctx.cache_error}). Build one from a folder of FITS files, or the demo "
                "cache, on the **Datasets & upload** page; or start the app with `ASTROAE_CACHE=PATH` or "
                "`streamlit run dashboard/app.py -- --cache PATH`.", icon=":material/folder_open:")
    else:
        st.error(f"The cache's model cannot be loaded: {ctx.model_error}")
    if "Datasets & upload" in PAGES:
        st.page_link(PAGES["Datasets & upload"], label="Go to Datasets & upload", icon=":material/arrow_forward:")
    st.stop()


def source_path(ctx: Context, row) -> Path:
    """The FITS file of a cache row, refused (``PathNotAllowed``) if it lies outside the folders the app may read."""
    base = ctx.cache.data_dir
    p = resolve_within(Path(row["path"]), [base], base=base)  # no escape from the cache's data folder
    return resolve_within(p, ctx.allowed_roots)


def select_image(image_id) -> None:
    """Make ``image_id`` the image every page follows."""
    st.session_state["selected_id"] = image_id


def selected_row(ctx: Context):
    """The chosen image's row (the first image when none was chosen)."""
    t = ctx.table
    sid = st.session_state.get("selected_id")
    if sid is not None:
        rows = rows_for_ids(t, [sid])
        if len(rows):
            return rows.iloc[0]
    return t.iloc[0]


def open_in_reconstructions(image_id) -> None:
    """A button callback: choose the image and go to the Reconstructions page."""
    select_image(image_id)
    st.session_state["_goto"] = "Reconstructions"


def follow_goto() -> None:
    """Called by app.py: switch page when a callback asked for it."""
    target = st.session_state.pop("_goto", None)
    if target and target in PAGES:
        st.switch_page(PAGES[target])


def flash() -> None:
    """Show (once) the message a finished job left before its rerun."""
    msg = st.session_state.pop("_flash", None)
    if msg:
        st.success(msg)
