"""The Train page's panels for a run: one going (live progress and curves, cancel), the last one once it has
ended (its cache, or why it stopped and a way to resume), and switching the app to a finished run's cache."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from astroae_core.cache import is_cache_dir
from train import jobs

from . import loaders, plots, state
from .state import Context
from .training import progress_line


def open_cache(s: jobs.RunStatus) -> None:
    """Switch the sidebar to the run's cache and rerun the app."""
    ss = st.session_state
    ss["_next_cache"] = str(s.cache_dir)
    ss["_flash"] = f"Trained `{s.name}` and encoded its folder: the app now shows its cache `{s.cache_dir.name}`."
    loaders.forget_caches()
    st.rerun()


@st.fragment(run_every=2)
def live(run: Path, root: Path) -> None:
    """A running job, redrawn every 2 s: its progress, its curves, a Cancel button; the whole page reruns when it
    ends."""
    s = jobs.run_status(run, root=root)
    if not s.alive:
        st.rerun(scope="app")  # it ended: the whole page shows how
    if s.state == "missing":
        st.error(f"The run folder `{run}` was deleted while the run was going, with what it had trained; the "
                 "training process stops at its next step.", icon=":material/delete_forever:")
    else:
        fraction, line = progress_line(s)
        st.progress(fraction, text=f"**{s.state.capitalize()}** `{s.name}` · {line}")
        st.plotly_chart(plots.training_curves(s.history), key="train_curves")
    if st.button("Cancel the run", icon=":material/cancel:", key="train_cancel"):
        jobs.cancel_run(run, root=root)
        st.session_state["_flash"] = (f"Cancelled `{run.name}`; its folder keeps the last finished epoch (last.pt): "
                                      "resume it below.")
        st.rerun(scope="app")


def ended(s: jobs.RunStatus, ctx: Context, root: Path) -> None:
    """The latest run, once it has ended: its cache (or the sliders on it), or why it stopped and a way on."""
    where = f"`{s.name}`"
    if s.job:
        where += f" ({s.epochs_done:,} of {s.epochs:,} epochs on `{Path(s.job.data_dir).name}`)"
    if s.state == "done" and not is_cache_dir(s.cache_dir):
        st.warning(f"The last run {where} is done, but its cache `{s.cache_dir}` is gone.")
        _restart_button(s, root, "Encode the folder again")
    elif s.state == "done":
        st.success(f"The last run {where} is done; its cache is `{s.cache_dir}`.", icon=":material/check_circle:")
        if str(s.cache_dir) != str(ctx.cache_path):
            if st.button("Open its cache", type="primary", icon=":material/folder_open:", key="train_open"):
                open_cache(s)
        elif "Latent sliders" in state.PAGES:
            st.page_link(state.PAGES["Latent sliders"], label="Open the latent sliders on it", icon=":material/tune:")
    else:
        why = {"cancelled": "was cancelled", "interrupted": "stopped: its process ended (killed, or the machine "
               "stopped)", "failed": f"failed: {s.error}"}.get(s.state, s.state)
        (st.warning if s.resumable else st.error)(f"The last run {where} {why}.")
        if s.resumable:
            _restart_button(s, root, "Resume it" if s.has_last else "Start it again")
    if s.history:
        with st.expander("Its training curves"):
            st.plotly_chart(plots.training_curves(s.history), key="train_last_curves")


def _restart_button(s: jobs.RunStatus, root: Path, label: str) -> None:
    """Start the run's process again: it continues from ``last.pt``, or only encodes when training was done."""
    if st.button(label, type="primary", icon=":material/play_arrow:", key="train_resume"):
        try:
            jobs.resume_run(s.run_dir, root=root)
            st.session_state["train_watching"] = s.name
            st.rerun()
        except (jobs.RunInProgress, RuntimeError, ValueError, OSError) as exc:
            st.error(str(exc))
