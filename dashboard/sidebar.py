"""The sidebar every page shares: the latent cache, the model, the display stretch and colour map; it builds this
run's :class:`~dashboard.state.Context`."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

from astroae_core.cache import is_cache_dir
from train.jobs import runs_root

from . import loaders, sentences, subset
from .display import COLORMAPS, STRETCHES
from .formatting import model_label
from .paths import MODELS_DIR, PathNotAllowed, configured_cache, data_root, find_models, resolve_within
from .state import Context


def sidebar() -> Context:
    """Draw the shared sidebar and return (and store) this run's context."""
    conf, source = configured_cache(sys.argv[1:])
    root = data_root()
    ctx = Context(data_root=root, configured_cache=conf, configured_source=source)
    # Readable: the data root, the shipped models, the models trained from the app (the runs root), and what the
    # operator configured (the cache given by ASTROAE_CACHE / --cache, with the checkpoint and data folder its
    # meta.json names).
    trusted = loaders.configured_trust(str(conf), loaders.mtime(conf / "meta.json"))
    ctx.allowed_roots = [root, MODELS_DIR.resolve(), runs_root(), conf, *trusted]
    ss = st.session_state
    ss.setdefault("stretch", "asinh")
    ss.setdefault("cmap", "gray")
    with st.sidebar:
        st.markdown("### :material/blur_on: astroae")
        _choose_cache(ctx)
        _choose_model(ctx)
        # a select box, not a segmented control: four buttons wrap onto two lines in a narrow sidebar
        st.selectbox("Display stretch", STRETCHES, key="stretch",
                     help="How flux maps to brightness on every page (astropy.visualization): linear and "
                          "log/asinh between the image's min and max, zscale as IRAF's.")
        st.selectbox("Colour map", COLORMAPS, key="cmap")
        ctx.stretch = ss.get("stretch") or "asinh"
        ctx.cmap = ss.get("cmap") or "gray"
        _summary(ctx)
        subset.sidebar_panel(ctx)
    ss["ctx"] = ctx
    return ctx


def _cache_label(path: str, ctx: Context) -> str:
    p = Path(path)
    where = p.name
    try:
        where = str(p.relative_to(ctx.data_root))
    except ValueError:
        pass
    tag = ""
    if p == ctx.configured_cache:
        tag = f" · {ctx.configured_source}"
    if not is_cache_dir(p):
        tag += " · not built yet"
    return where + tag


def _choose_cache(ctx: Context) -> None:
    ss = st.session_state
    caches = [str(ctx.configured_cache)] + [str(p) for p in loaders.find_caches(str(ctx.data_root))
                                            if p != ctx.configured_cache]
    nxt = ss.pop("_next_cache", None)
    if nxt in caches:  # a cache just built on the Datasets page
        ss["cache_path"] = nxt
    if ss.get("cache_path") not in caches:
        ss["cache_path"] = caches[0]
    st.selectbox("Latent cache", caches, key="cache_path", format_func=lambda p: _cache_label(p, ctx),
                 help="The configured cache (ASTROAE_CACHE or `-- --cache PATH`, else cache/demo) and the "
                      "caches found under the data root. Build new ones on the Datasets page.")
    ctx.cache_path = Path(ss["cache_path"])
    _open_cache(ctx)


def _choose_model(ctx: Context) -> None:
    ss = st.session_state
    choices = ["cache"] + [str(p) for p in find_models()]
    if ss.get("model_choice") not in choices:
        ss["model_choice"] = "cache"
    st.selectbox("Model", choices, key="model_choice",
                 format_func=lambda c: "the cache's own checkpoint" if c == "cache" else f"models/{Path(c).name}",
                 help="Reconstructions and metrics use this model. Sliders, the map and uploads always use "
                      "the cache's own model, since the cached latents live in its space.")
    _open_model(ctx, ss["model_choice"])


def _open_cache(ctx: Context) -> None:
    p = ctx.cache_path
    if not is_cache_dir(p):
        ctx.cache_error = f"there is no cache at {p}"
        return
    if p != ctx.configured_cache:
        try:  # a cache found under the data root must stay there
            resolve_within(p, [ctx.data_root])
        except PathNotAllowed as exc:
            ctx.cache_error = str(exc)
            return
    try:
        ctx.cache = loaders.load_cache(str(p), loaders.mtime(p / "meta.json"))
    except Exception as exc:  # noqa: BLE001 - a broken cache is a message, not a traceback
        ctx.cache_error = f"cannot open the cache at {p}: {exc}"
        return
    ck = _cache_checkpoint(ctx)
    if ck is None:
        return
    ctx.cache_model, err = loaders.load_model_checked(ck)
    if err:
        ctx.model_error = err
        return
    _check_fresh(ctx, ck)


def _cache_checkpoint(ctx: Context) -> Path | None:
    """The open cache's checkpoint, if the app may read it (else the reason goes to ``model_error``)."""
    try:
        return resolve_within(ctx.cache.checkpoint, ctx.allowed_roots)
    except PathNotAllowed as exc:
        ctx.model_error = f"the cache's checkpoint is not readable here: {exc}"
        return None


def _check_fresh(ctx: Context, ck: Path) -> None:
    p = ctx.cache_path
    try:
        fresh, reason = loaders.cache_status(str(p), str(ck), str(ctx.cache.data_dir), loaders.mtime(p / "meta.json"))
        if not fresh:
            ctx.cache_stale = reason
    except Exception as exc:  # noqa: BLE001
        ctx.cache_stale = f"could not check whether the cache is current ({exc})"


def _open_model(ctx: Context, choice: str) -> None:
    if choice == "cache":
        ctx.model = ctx.cache_model
        ctx.model_path = Path(ctx.cache_model.checkpoint_info["path"]) if ctx.cache_model is not None else None
        return
    path = Path(choice)
    ctx.model, err = loaders.load_model_checked(path)
    ctx.model_path = path
    if err:
        ctx.model_error = err
        ctx.model = None


def _summary(ctx: Context) -> None:
    if ctx.cache is not None:
        n, data_dir = len(ctx.cache.table), ctx.cache.data_dir
        st.caption(f"{n:,} images from `{data_dir.name}`", help=f"Data folder: {data_dir}")
        if ctx.cache_stale:
            st.warning(f"This cache is out of date: {ctx.cache_stale}. Rebuild it on the Datasets page.",
                       icon=":material/warning:")
        far = sentences.far_from_training(ctx.cache.meta.training_distance, k=ctx.cache.latent_dim)
        if far:
            st.warning(far, icon=":material/warning:")
    if ctx.model is not None:
        cfg = ctx.model.config
        st.caption(f"model `{model_label(ctx.model_path)}` · skips: **{cfg.skip_mode}**  \n"
                   f"latent {cfg.latent_dim} · input {cfg.in_size}²")
    if ctx.model_error:
        st.error(ctx.model_error)
