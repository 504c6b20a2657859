"""Long jobs started from the app (building a latent cache, generating the demo stamps), one at a time, with a
Streamlit progress bar fed through the core's progress callback."""

from __future__ import annotations

import threading
from pathlib import Path

import streamlit as st

from . import loaders
from .paths import MODELS_DIR
from .state import Context

_BUILD_LOCK = threading.Lock()  # one encode at a time in this server (they are CPU-bound anyway)


class StreamlitProgress:
    """A progress callback (:data:`astroae_core.progress.Progress`) that draws on one ``st.progress`` element.

    Parameters
    ----------
    bar : streamlit progress element
        What ``st.progress`` returned.
    label : str
        The job, shown before the stage and the count (``"Encoding — umap: 120 / 2,000"``).
    """

    def __init__(self, bar, label: str):
        self.bar = bar
        self.label = label
        self._fraction = 0.0

    def __call__(self, done: int, total: int, stage: str) -> None:
        stage = (stage or "").strip(": ")
        what = self.label if not stage or stage.lower() in self.label.lower() else f"{self.label} — {stage}"
        if total:
            self._fraction = min(1.0, done / total)
            self.bar.progress(self._fraction, text=f"{what}: {done:,} / {total:,}")
        else:  # a stage of unknown length (fitting the maps...): its name only, the bar where it was
            self.bar.progress(self._fraction, text=f"{what}…")


def build_cache(checkpoint, data_dir, out, *, allowed_roots, force: bool = False) -> bool:
    """Encode ``data_dir`` with ``checkpoint`` into ``out`` with a progress bar; on success switch the sidebar to
    the new cache and rerun. Nothing outside ``allowed_roots`` is read. Errors are shown with their reason."""
    from astroae_core.cache import encode_folder

    bar = st.progress(0.0, text="Waiting for another encode to finish…")
    try:
        with _BUILD_LOCK, st.spinner("Encoding the images, then fitting the maps and anomaly scores…"):
            # a symbolic link inside the folder must not let the app read a file outside the folders it may read
            encode_folder(checkpoint, data_dir, out, force=force, progress=StreamlitProgress(bar, "Encoding"),
                          confine_to=allowed_roots)
    except (ValueError, OSError) as exc:
        bar.empty()
        st.error(f"Could not build the cache: {exc}")
        return False
    bar.progress(1.0, text="Done")
    loaders.forget_caches()
    st.session_state["_next_cache"] = str(Path(out).resolve())
    st.session_state["_flash"] = f"Built the latent cache {out}."
    st.rerun()
    return True


def build_demo_cache(ctx: Context) -> None:
    """Generate the demo stamps under the data root (if missing) and encode them with models/demo.pt."""
    from astroae_core.demo import generate_demo_data

    demo_dir = ctx.data_root / "demo"
    if not (demo_dir / "catalog.csv").is_file():
        bar = st.progress(0.0, text="Generating the demo stamps…")
        try:
            with _BUILD_LOCK:
                generate_demo_data(demo_dir, n=2000, seed=0,
                                   progress=StreamlitProgress(bar, "Generating demo stamps"))
        except (ValueError, OSError) as exc:
            st.error(f"Could not generate the demo data: {exc}")
            return
    build_cache(MODELS_DIR / "demo.pt", demo_dir, ctx.configured_cache, allowed_roots=ctx.allowed_roots)
