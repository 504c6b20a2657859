"""Streamlit glue shared by app.py and the pages: the sidebar, cached loaders, the context every page reads.

Session state keys (set here or by pages; survive page switches because they are not widget keys):

``ctx``                 the :class:`Context` of this run (cache, models, stretch, colour map)
``selected_id``         the image the user is looking at (reconstructions, sliders, map all follow it)
``map_selection_ids``   ids chosen on the map with a box or lasso
``uploads``             {file id: core.UploadResult} for the uploaded files
``slider_z``            the latent the sliders page shows
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import streamlit as st

from . import core

PAGES = {}  # title -> st.Page, filled by app.py (pages link to each other through it)


@dataclass
class Context:
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

    @property
    def table(self):
        return self.cache.table if self.cache is not None else None

    @property
    def model_is_cache_model(self) -> bool:
        return self.model is not None and self.model is self.cache_model


# ----------------------------------------------------------------------------------------------------------------
# cached loaders (resources are shared between sessions and never mutated)


def _stamp(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


@st.cache_resource(max_entries=4, show_spinner="Loading the latent cache…")
def _load_cache(path: str, stamp: float):
    from astroae_core.cache import load_cache
    from astroae_core.analysis.projections import warm_umap_in_background

    cache = load_cache(path)
    # numba compiles UMAP's transform on first use (10-30 s on 2 cores): pay it on a background thread, once per
    # process, rather than at the first upload placed on the map (benchmarks/projections.py, umap_cold_start)
    warm_umap_in_background(cache.umap_model)
    return cache


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def _load_model(path: str, stamp: float):
    import torch

    from astroae_core.model import load_model
    from astroae_core.model import fused_for_inference

    # One intra-op thread: a slider's decode is a small job, and with two OpenMP threads on 2 cores it waits for
    # the core that the browser or another session holds (measured in the server: 30-190 ms a decode instead of
    # 16-24 ms). Encodes started from the app get every core back (build_cache).
    torch.set_num_threads(1)
    # BatchNorm folded: a slider's decode costs about a third less (benchmarks/inference.py, decode_one)
    return fused_for_inference(load_model(path))


@st.cache_data(ttl=120, max_entries=8, show_spinner=False)
def _cache_status(cache: str, checkpoint: str, data_dir: str, stamp: float) -> tuple[bool, str]:
    from astroae_core.cache import cache_status

    return cache_status(cache, checkpoint, data_dir)


@st.cache_data(max_entries=8, show_spinner=False)
def _configured_trust(cache: str, stamp: float) -> list[Path]:
    import json

    try:
        meta = json.loads((Path(cache) / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    out = []
    ck = core.cache_checkpoint(meta)
    if ck is not None:
        out.append(ck if ck.is_absolute() else Path(cache) / ck)
    if meta.get("data_dir"):
        out.append(Path(meta["data_dir"]))
    return [p.resolve() for p in out]


@st.cache_data(ttl=30, max_entries=4, show_spinner=False)
def find_caches(root: str) -> list[Path]:
    return core.find_caches([Path(root)])


@st.cache_data(ttl=30, max_entries=4, show_spinner=False)
def find_data_folders(root: str) -> list[tuple[str, int]]:
    return core.find_data_folders(Path(root))


def load_model_checked(path: Path) -> tuple[object, str | None]:
    from astroae_core.model import CheckpointError

    try:
        return _load_model(str(path), _stamp(path)), None
    except (CheckpointError, OSError, ValueError) as exc:
        return None, str(exc)


# ----------------------------------------------------------------------------------------------------------------
# the sidebar


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
    if not core.is_cache_dir(p):
        tag += " · not built yet"
    return where + tag


def sidebar() -> Context:
    """Draw the shared sidebar and return (and store) this run's context."""
    conf, source = core.configured_cache(sys.argv[1:])
    root = core.data_root()
    ctx = Context(data_root=root, configured_cache=conf, configured_source=source)
    # Readable: the data root, the shipped models, and what the operator configured (the cache given by
    # ASTROAE_CACHE / --cache, with the checkpoint and data folder its meta.json names).
    trusted = _configured_trust(str(conf), _stamp(conf / "meta.json"))
    ctx.allowed_roots = [root, core.MODELS_DIR.resolve(), conf, *trusted]
    ss = st.session_state
    ss.setdefault("stretch", "asinh")
    ss.setdefault("cmap", "gray")

    with st.sidebar:
        st.markdown("### :material/blur_on: astroae")
        caches = [str(conf)] + [str(p) for p in find_caches(str(root)) if p != conf]
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

        models = core.find_models()
        choices = ["cache"] + [str(p) for p in models]
        if ss.get("model_choice") not in choices:
            ss["model_choice"] = "cache"
        st.selectbox("Model", choices, key="model_choice",
                     format_func=lambda c: "the cache's own checkpoint" if c == "cache" else f"models/{Path(c).name}",
                     help="Reconstructions and metrics use this model. Sliders, the map and uploads always use "
                          "the cache's own model, since the cached latents live in its space.")
        _open_model(ctx, ss["model_choice"])

        # a select box, not a segmented control: four buttons wrap onto two lines in a narrow sidebar
        st.selectbox("Display stretch", core.STRETCHES, key="stretch",
                     help="How flux maps to brightness on every page (astropy.visualization): linear and "
                          "log/asinh between the image's min and max, zscale as IRAF's.")
        st.selectbox("Colour map", core.COLORMAPS, key="cmap")
        ctx.stretch = ss.get("stretch") or "asinh"
        ctx.cmap = ss.get("cmap") or "gray"
        _sidebar_summary(ctx)
    ss["ctx"] = ctx
    return ctx


def _open_cache(ctx: Context) -> None:
    p = ctx.cache_path
    if not core.is_cache_dir(p):
        ctx.cache_error = f"there is no cache at {p}"
        return
    if p != ctx.configured_cache:
        try:  # a cache found under the data root must stay there
            core.resolve_within(p, [ctx.data_root])
        except core.PathNotAllowed as exc:
            ctx.cache_error = str(exc)
            return
    try:
        ctx.cache = _load_cache(str(p), _stamp(p / "meta.json"))
    except Exception as exc:  # noqa: BLE001 - a broken cache is a message, not a traceback
        ctx.cache_error = f"cannot open the cache at {p}: {exc}"
        return
    meta = ctx.cache.meta
    ck = core.cache_checkpoint(meta)
    if ck is not None and not ck.is_absolute():
        ck = (p / ck) if (p / ck).exists() else (core.REPO_ROOT / ck)
    if ck is None:
        ctx.model_error = "the cache does not name its checkpoint"
        return
    try:
        ck = core.resolve_within(ck, ctx.allowed_roots)
    except core.PathNotAllowed as exc:
        ctx.model_error = f"the cache's checkpoint is not readable here: {exc}"
        return
    ctx.cache_model, err = load_model_checked(ck)
    if err:
        ctx.model_error = err
        return
    try:
        fresh, reason = _cache_status(str(p), str(ck), str(meta.get("data_dir", "")), _stamp(p / "meta.json"))
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
    ctx.model, err = load_model_checked(path)
    ctx.model_path = path
    if err:
        ctx.model_error = err
        ctx.model = None


def _sidebar_summary(ctx: Context) -> None:
    if ctx.cache is not None:
        meta = ctx.cache.meta
        n = len(ctx.cache.table)
        data_dir = str(meta.get("data_dir", "?"))
        st.caption(f"{n:,} images from `{Path(data_dir).name}`", help=f"Data folder: {data_dir}")
        if ctx.cache_stale:
            st.warning(f"This cache is out of date: {ctx.cache_stale}. Rebuild it on the Datasets page.", icon=":material/warning:")
    if ctx.model is not None:
        cfg = ctx.model.config
        st.caption(f"model `{core.model_label(ctx.model_path)}` · skips: **{cfg.skip_mode}**  \n"
                   f"latent {cfg.latent_dim} · input {cfg.in_size}²")
    if ctx.model_error:
        st.error(ctx.model_error)


# ----------------------------------------------------------------------------------------------------------------
# helpers for pages


def context() -> Context:
    ctx = st.session_state.get("ctx")
    if ctx is None:  # a page run on its own (should not happen under st.navigation)
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
    """The FITS file of a cache row, refused if it lies outside the folders the app may read."""
    base = Path(ctx.cache.meta.get("data_dir", ctx.data_root))
    p = core.resolve_within(Path(row["path"]), [base], base=base)  # no escape from the cache's data folder
    return core.resolve_within(p, ctx.allowed_roots)


def select_image(image_id) -> None:
    st.session_state["selected_id"] = image_id


def selected_row(ctx: Context):
    """The chosen image's row (the first image when none was chosen)."""
    t = ctx.table
    sid = st.session_state.get("selected_id")
    if sid is not None:
        rows = core.rows_for_ids(t, [sid])
        if len(rows):
            return rows.iloc[0]
    return t.iloc[0]


def show_previews(ctx: Context, rows, *, ncols: int = 6, caption_col: str | None = None, key: str = "gal",
                  button: bool = True) -> None:
    """Thumbnails of cache rows (from the cached previews) under the current stretch, each with an Open button."""
    rows = rows.head(60)
    if len(rows) == 0:
        return
    pos = ctx.table.index.get_indexer(rows.index)
    imgs = core.preview_rgb(np.asarray(ctx.cache.previews[pos]), ctx.stretch, ctx.cmap)
    if caption_col:
        st.caption(f"Under each image: its file and {caption_col}.")
    cols = st.columns(ncols)
    for i, (img, (_, r)) in enumerate(zip(imgs, rows.iterrows())):
        with cols[i % ncols]:
            cap = core.short_name(r["path"])
            if caption_col and caption_col in r:
                cap += f" · {core.format_value(caption_col, r[caption_col], short=True)}"
            st.image(img, caption=cap, width="stretch")
            if button:
                st.button("Open", key=f"{key}-{r['id']}", on_click=open_in_reconstructions, args=(r["id"],),
                          width="stretch")


def open_in_reconstructions(image_id) -> None:
    select_image(image_id)
    st.session_state["_goto"] = "Reconstructions"


def follow_goto() -> None:
    """Called by app.py: switch page when a callback asked for it (callbacks cannot switch pages themselves)."""
    target = st.session_state.pop("_goto", None)
    if target and target in PAGES:
        st.switch_page(PAGES[target])


# ----------------------------------------------------------------------------------------------------------------
# long jobs with a progress bar: building caches


_BUILD_LOCK = threading.Lock()  # one encode at a time in this server (they are CPU-bound anyway)


@contextlib.contextmanager
def tqdm_to_streamlit(bar, label: str):
    """Route the tqdm bars the library draws (``from tqdm.auto import tqdm`` at call time) to ``bar``, a
    ``st.progress`` element, for the duration of the block."""
    import tqdm.auto as tqdm_auto

    base = tqdm_auto.tqdm

    class StreamlitTqdm(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._show()

        def update(self, n=1):
            out = super().update(n)
            self._show()
            return out

        def _show(self):
            total = getattr(self, "total", None)
            if total:
                desc = (getattr(self, "desc", "") or "").strip(": ")
                what = label if not desc or desc.lower() in label.lower() else f"{label} — {desc}"
                bar.progress(min(1.0, self.n / total), text=f"{what}: {self.n:,} / {total:,}")

    tqdm_auto.tqdm = StreamlitTqdm
    try:
        yield
    finally:
        tqdm_auto.tqdm = base


@contextlib.contextmanager
def _torch_threads(n: int):
    """torch's intra-op threads set to ``n`` for the block (process-wide), then back."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def build_cache(checkpoint, data_dir, out, *, allowed_roots, force: bool = False) -> bool:
    """Encode ``data_dir`` with ``checkpoint`` into ``out`` with a progress bar; on success switch the sidebar to
    the new cache and rerun. Nothing outside ``allowed_roots`` is read. Errors are shown with their reason."""
    from astroae_core.cache import encode_folder

    bar = st.progress(0.0, text="Waiting for another encode to finish…")
    try:
        with _BUILD_LOCK, tqdm_to_streamlit(bar, "Encoding"), _torch_threads(os.cpu_count() or 1), \
                st.spinner("Encoding the images, then fitting the maps and anomaly scores…"):
            # a symbolic link inside the folder must not let the app read a file outside the folders it may read
            encode_folder(checkpoint, data_dir, out, force=force, progress=True, confine_to=allowed_roots)
    except (ValueError, OSError) as exc:
        bar.empty()
        st.error(f"Could not build the cache: {exc}")
        return False
    bar.progress(1.0, text="Done")
    _load_cache.clear()
    _cache_status.clear()
    find_caches.clear()
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
            with _BUILD_LOCK, tqdm_to_streamlit(bar, "Generating demo stamps"):
                generate_demo_data(demo_dir, n=2000, seed=0, progress=True)
        except (ValueError, OSError) as exc:
            st.error(f"Could not generate the demo data: {exc}")
            return
    build_cache(core.MODELS_DIR / "demo.pt", demo_dir, ctx.configured_cache, allowed_roots=ctx.allowed_roots)


def flash() -> None:
    """Show (once) the message a finished job left before its rerun."""
    msg = st.session_state.pop("_flash", None)
    if msg:
        st.success(msg)
