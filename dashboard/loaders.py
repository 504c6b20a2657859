"""What the app loads once and shares between sessions (Streamlit's caches): latent caches, models, freshness checks
and the folder listings. Shared objects are read, never modified."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from . import paths


def mtime(path: Path) -> float:
    """``path``'s modification time (0 when missing): part of a cache key, so a rebuilt file is loaded again."""
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


@st.cache_resource(max_entries=4, show_spinner="Loading the latent cache…")
def load_cache(path: str, stamp: float):
    """The latent cache at ``path``."""
    from astroae_core.cache import load_cache as load

    return load(path)


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def load_model(path: str, stamp: float):
    """The checkpoint at ``path`` for inference: a slider's decode and a single image's round trip each run on the
    fastest correct runtime of this machine, measured on first use at batch 1 (astroae_core.model.runtime)."""
    from astroae_core.model import load_model as load

    return load(path, runtime="auto", batch_sizes=(1,))


def load_model_checked(path: Path) -> tuple[object, str | None]:
    """:func:`load_model`, or None and the reason it cannot be loaded."""
    from astroae_core.model import CheckpointError

    try:
        return load_model(str(path), mtime(path)), None
    except (CheckpointError, OSError, ValueError) as exc:
        return None, str(exc)


@st.cache_data(ttl=120, max_entries=8, show_spinner=False)
def cache_status(cache: str, checkpoint: str, data_dir: str, stamp: float) -> tuple[bool, str]:
    """Whether the cache still matches its checkpoint and data folder, and if not why (checked every 2 minutes)."""
    from astroae_core.cache import cache_status as status

    return status(cache, checkpoint, data_dir)


@st.cache_data(max_entries=8, show_spinner=False)
def configured_trust(cache: str, stamp: float) -> list[Path]:
    """The files the operator's configured cache names (its checkpoint, its data folder): the app may read them.
    Nothing for a folder that holds no readable ``meta.json`` of this cache format."""
    from astroae_core.cache import read_meta

    try:
        meta = read_meta(cache)
    except ValueError:  # no cache there, or one to re-encode: it vouches for nothing
        return []
    return [meta.checkpoint_path(cache), meta.data_path(cache)]


@st.cache_data(ttl=30, max_entries=4, show_spinner=False)
def find_caches(root: str) -> list[Path]:
    """:func:`dashboard.paths.find_caches` under ``root``, listed again at most every 30 s."""
    return paths.find_caches([Path(root)])


@st.cache_data(ttl=30, max_entries=4, show_spinner=False)
def find_data_folders(root: str) -> list[tuple[str, int]]:
    """:func:`dashboard.paths.find_data_folders` under ``root``, listed again at most every 30 s."""
    return paths.find_data_folders(Path(root))


def forget_caches() -> None:
    """Drop what is known about caches after one was built, so the sidebar finds and loads it."""
    load_cache.clear()
    cache_status.clear()
    find_caches.clear()
