"""Datasets & upload: the loaded cache, building a cache from a folder under the data root, uploading FITS files."""

from pathlib import Path

import streamlit as st

from astroae_core.analysis import UPLOAD_SUFFIXES, process_upload
from astroae_core.analysis.upload import content_key
from dashboard import formatting as fmt, gallery, jobs, loaders, paths, state, upload_card

ctx = state.context()
ss = st.session_state
st.title("Datasets & upload")
state.flash()

# -- the cache in use ----------------------------------------------------------------------------------------------
if ctx.cache is not None:
    cache, t = ctx.cache, ctx.table
    skipped = cache.meta.skipped
    c = st.columns(4)
    c[0].metric("images", f"{len(t):,}")
    c[1].metric("skipped files", len(skipped))
    c[2].metric("model", fmt.model_label(cache.checkpoint))
    c[3].metric("latent size", cache.latent_dim)
    st.markdown(f"Cache `{ctx.cache_path}` · data `{cache.data_dir}` · made {cache.meta.created_utc}")
    if ctx.cache_stale:
        st.warning(f"This cache no longer matches its checkpoint or data: {ctx.cache_stale}.")
        if st.button("Rebuild it now", type="primary"):
            jobs.build_cache(cache.checkpoint, cache.data_dir, ctx.cache_path, force=True,
                             allowed_roots=ctx.allowed_roots)
    with st.expander("A random sample of the images", expanded=True):
        gallery.show_previews(ctx, t.sample(min(8, len(t)), random_state=0), ncols=8, key="sample")
    with st.expander("Table of the cache (first 200 rows)"):
        st.dataframe(t.head(200).rename(columns=fmt.column_label), hide_index=True)
    if skipped:
        with st.expander(f"{len(skipped)} files could not be used"):
            st.dataframe([{"path": s.path, "reason": s.reason} for s in skipped], hide_index=True)
else:
    st.info(f"No latent cache is loaded: {ctx.cache_error}.", icon=":material/folder_open:")
    demo_model = paths.MODELS_DIR / "demo.pt"
    if ctx.configured_source == "demo cache" and demo_model.is_file():
        st.markdown("Build the demo cache: generate the GalSim demo stamps under the data root (if missing) and "
                    "encode them with `models/demo.pt` (a few minutes on a laptop).")
        if st.button("Build the demo cache", type="primary", icon=":material/rocket_launch:"):
            jobs.build_demo_cache(ctx)
    else:
        st.markdown("Build one below from a folder of FITS files under the data root, or start the app with "
                    "`ASTROAE_CACHE=PATH` / `streamlit run dashboard/app.py -- --cache PATH`.")

# -- build a cache from a folder -----------------------------------------------------------------------------------
st.header("Encode a folder")
folders = loaders.find_data_folders(str(ctx.data_root))
st.caption(f"Folders of FITS files under the data root `{ctx.data_root}` (set ASTROAE_DATA_ROOT to change it).")
models = [p for p in [ctx.model_path] + paths.find_models() if p is not None]
models = list(dict.fromkeys(models))
if not folders:
    st.info(f"No FITS files found under {ctx.data_root}. Copy a folder of FITS images there, then reload.")
elif not models:
    st.info("No model to encode with: train one (`python -m train`) and copy its best.pt (trained on every image: its "
            "last epoch_NNN.pt) into models/.")
else:
    a, b = st.columns(2)
    folder = a.selectbox("Folder", [f for f, _ in folders], key="enc_folder",
                         format_func=lambda f: f"{f}  ({dict(folders)[f]} FITS files)")
    model_path = b.selectbox("Model", models, key="enc_model", format_func=fmt.model_label)
    out = ctx.data_root / "caches" / paths.cache_slug(f"{folder}-{fmt.model_label(model_path).removesuffix('.pt')}")
    st.caption(f"The cache will be written to `{out}`.")
    if st.button("Encode", type="primary", icon=":material/memory:", key="enc_go"):
        try:
            src = paths.resolve_within(folder, [ctx.data_root])
            jobs.build_cache(Path(model_path), src, out, allowed_roots=ctx.allowed_roots)
        except paths.PathNotAllowed as exc:
            st.error(str(exc))

# -- uploads -------------------------------------------------------------------------------------------------------
st.header("Upload FITS files")
if ctx.cache is None or ctx.cache_model is None:
    st.info("Uploads are encoded with the cache's model and placed on its map: load or build a cache first.")
    st.stop()
files = st.file_uploader("FITS images (.fits, .fit, .fts, .fz, also .gz / .bz2)", accept_multiple_files=True,
                         type=list(UPLOAD_SUFFIXES), key="uploader")
results = ss.setdefault("uploads", {})  # by content: the same bytes uploaded twice are one card and one star
current: dict = {}
for f in files or []:
    data = f.getvalue()
    current.setdefault(content_key(data), []).append((f.name, data))
for k in [k for k in results if k not in current]:
    del results[k]
for k, named in current.items():
    if k not in results:
        with st.spinner(f"Encoding {named[0][0]}…"):
            results[k] = process_upload(named[0][0], named[0][1], ctx.cache_model, ctx.cache)
    results[k].also_named = [n for n, _ in named[1:]]
if not results:
    st.caption("Each uploaded file is read in memory, encoded, reconstructed, scored, and placed on the latent map "
               "with its nearest neighbours. Nothing is written to disk.")
t = ctx.table
for k, r in results.items():
    if not r.ok:
        st.error(f"**{fmt.md_escape(r.name)}**: {fmt.md_escape(r.error)}")
        continue
    upload_card.show(ctx, r, key=k[:16])
