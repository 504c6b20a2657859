"""Metrics: how much the latent carries (beside PCA and the mean image), distributions, training curves, worst cases."""

import pandas as pd
import streamlit as st

from astroae_core.analysis import beats_pca, verdict, worst_images
from astroae_core.model import CheckpointError
from dashboard import formatting as fmt, gallery, loaders, paths, plots, sentences, state, subset

ctx = state.context()
st.title("Metrics")
state.require_cache(ctx)
t = ctx.table
model = ctx.model if ctx.model is not None else ctx.cache_model
k = model.config.latent_dim


@st.cache_data(max_entries=4, show_spinner=False)
def run_evaluation(checkpoint: str, data_dir: str, train_data: str | None, stamp: str, allowed: tuple) -> dict:
    from astroae_core.analysis import evaluate

    return evaluate(checkpoint, data_dir, train_data=train_data, confine_to=allowed)  # no link out of them


# -- how much the latent carries -------------------------------------------------------------------------------------
st.header(f"How much do the {k} numbers carry?")
if model.checkpoint_info.get("crossval"):
    st.info(sentences.crossval_text(model.checkpoint_info["crossval"], k), icon=":material/fact_check:")
stored = ctx.cache.meta.evaluation if ctx.model_is_cache_model else None  # measured at encode time
evaluation = stored if stored and "rows" in stored else None
evaluation = evaluation or model.checkpoint_info.get("evaluation") or st.session_state.get(f"eval:{ctx.model_path}")
trained_on_all = stored is not None and stored.get("images") == "training" and "rows" not in stored
if evaluation is None and trained_on_all:
    # nothing to compare on: a PCA fitted on these very images, beside a model trained on them, says nothing
    st.info(f"Every image in this cache is one `{fmt.model_label(ctx.model_path)}` trained on, so they cannot show "
            "how it compares with PCA on new objects"
            + (": the cross-validation above does." if model.checkpoint_info.get("crossval") else
               ". Encode a folder of other objects of the same kind to measure it."))
elif evaluation is None:
    why = (f"The cache could not measure it when it was built: {stored['error']}" if stored and stored.get("error")
           else f"No evaluation is stored for `{fmt.model_label(ctx.model_path)}`"
           + (" (the cache was built before caches stored one)." if ctx.model_is_cache_model else
              " (the cache stores one for its own model only)."))
    st.info(f"{why.rstrip('.')}. Computing it reconstructs the cache's images from the full model and from the "
            f"latent alone, and fits PCA-{k} and the mean image on the checkpoint's training images (a few seconds "
            "to minutes).")
    # the checkpoint knows its training images by their pixels: they may lie in another folder than the cache's
    train_folder = st.selectbox("Training images for the baselines",
                                ["", *(f for f, _ in loaders.find_data_folders(str(ctx.data_root)))], key="eval_train",
                                format_func=lambda f: f or "those among the cache's own images",
                                help="A folder under the data root holding the images the model was trained on.")
    if st.button("Compute the comparison with PCA and the mean image", type="primary", key="eval_btn"):
        with st.spinner("Evaluating the model and fitting the baselines…"):
            try:
                data_dir = paths.resolve_within(ctx.cache.data_dir, ctx.allowed_roots)
                train_data = paths.resolve_within(train_folder, [ctx.data_root]) if train_folder else None
                evaluation = run_evaluation(str(ctx.model_path), str(data_dir), train_data and str(train_data),
                                            model.checkpoint_info["sha256"], tuple(str(r) for r in ctx.allowed_roots))
                st.session_state[f"eval:{ctx.model_path}"] = evaluation
                st.rerun()
            except (ValueError, CheckpointError, OSError) as exc:
                st.error(f"Cannot evaluate: {exc}")
if evaluation is not None:
    summary = sentences.carry_text(evaluation)
    # on images the model did not train on, with the interval over objects
    (st.success if beats_pca(evaluation) else st.warning)(f"**{verdict(evaluation)}** {summary['sentence']}")
    if evaluation.get("skip_mode", "none") != "none" and "Latent sliders" in state.PAGES:
        st.page_link(state.PAGES["Latent sliders"], label="See it on the Latent sliders page: each slider's influence",
                     icon=":material/tune:")
    c = st.columns(4)
    rows = evaluation["rows"]
    c[0].metric("latent-only MSE ÷ PCA MSE", f"{summary['latent_vs_pca']:.2f}" if summary["latent_vs_pca"] else "n/a",
                help="Below 1: the latent beats PCA with as many components.")
    c[1].metric("latent-only SSIM", fmt.format_metric("ssim", rows["latent_only"]["ssim"]),
                delta=f"PCA-{k}: {fmt.format_metric('ssim', rows['pca']['ssim'])}", delta_color="off",
                delta_arrow="off")
    if evaluation.get("skip_mode", "none") != "none":
        c[2].metric("full-model MSE (with skips)", fmt.format_metric("mse", rows["full"]["mse"]),
                    help="The skips bypass the latent: this is not what the 8 numbers carry.")
    elif summary["explained_vs_mean"] is not None:
        c[2].metric("error removed vs the mean image", f"{summary['explained_vs_mean']:.0%}")
    c[3].metric("effective dimensionality", f"{evaluation.get('effective_dim', float('nan')):.2f} / {k}")
    skip_mode = evaluation.get("skip_mode", "none")
    st.plotly_chart(plots.baseline_bars(rows, latent_dim=k, skip_mode=skip_mode), key="baseline_fig")
    table = pd.DataFrame(rows).T.dropna(axis=1, how="all").drop(index=["full"] if skip_mode == "none" else [])
    table.insert(0, "reconstruction", [plots.row_label(r, k, skip_mode) for r in table.index])
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "mse": st.column_config.NumberColumn("MSE", format="%.3e"),
        "psnr": st.column_config.NumberColumn("PSNR (dB)", format="%.2f"),
        "ssim": st.column_config.NumberColumn("SSIM", format="%.4f"),
        "ms_ssim": st.column_config.NumberColumn("MS-SSIM", format="%.4f")})
    st.caption(sentences.evaluation_caption(evaluation))
    if evaluation.get("by_kind"):
        st.subheader("Where the error lies, by the catalog's kind")
        st.caption("A mean over images is decided by the images with the largest errors: a few odd images (a "
                   "saturated star, a satellite trail) can outweigh all the ordinary ones.")
        st.dataframe(fmt.by_kind_table(evaluation["by_kind"], latent_dim=k), hide_index=True, width="stretch",
                     column_config={c: st.column_config.NumberColumn(format="%.3e") for c in
                                    ("latent-only MSE", f"PCA-{k} MSE")}
                     | {c: st.column_config.NumberColumn(format="percent") for c in
                        ("share of the latent's error", f"share of PCA-{k}'s error")}
                     | {f"latent ÷ PCA-{k}": st.column_config.NumberColumn(format="%.2f")})

# -- distributions over the dataset ---------------------------------------------------------------------------------
st.header("Per-image metrics over the dataset")
st.caption(f"From the cache ({len(t):,} images, encoded with the cache's own model), by train / validation split"
           + ("" if "ms_ssim" in t and t["ms_ssim"].notna().any()
              else "; no MS-SSIM: it needs images over 160 px a side")
           + ".")
st.plotly_chart(plots.metric_histograms(t), key="hist_fig")
cols = [c for c in ("mse", "latent_mse", "ssim", "latent_ssim", "ms_ssim") if c in t.columns and t[c].notna().any()]
if "split" in t.columns:
    by_split = t.groupby("split")[cols].agg(["mean", "median"])
    st.dataframe(by_split.style.format({c: "{:.2e}" if c[0] in fmt.SMALL_VALUE_COLUMNS else "{:.4f}"
                                        for c in by_split.columns}), width="stretch")

# -- training curves -----------------------------------------------------------------------------------------------
st.header("Training")
history = model.checkpoint_info.get("history") or []
if history:
    st.plotly_chart(plots.training_curves(history), key="train_fig")
    last = history[-1]
    tc = model.checkpoint_info.get("train_config") or {}
    e = tc.get("synthetic_epochs", 0)
    pretrained = (f" after {e} epoch{'s' * (e != 1)} on {tc['synthetic']:,} synthetic GalSim galaxies (not shown)"
                  if e else "")
    st.caption(f"{len(history)} epochs recorded in `{fmt.model_label(ctx.model_path)}`{pretrained}; "
               + (f"last validation MSE {last['val_mse']:.3g} (full) vs {last['val_latent_mse']:.3g} (latent only)."
                  if "val_mse" in last else
                  "trained on every image: no validation split, the last epoch is the model."))
else:
    st.info("This checkpoint records no training history.")

# -- worst reconstructions -----------------------------------------------------------------------------------------
st.header("Worst reconstructions")
metric = st.segmented_control("Worst by", [c for c in ("mse", "ssim", "latent_mse") if c in t.columns],
                              default="mse", key="worst_by", required=True)
worst = worst_images(subset.subset_table(ctx), metric, 12)  # among the images that pass the sidebar's filters
if subset.is_filtered(ctx):
    st.caption(f"Among the {len(subset.subset_table(ctx)):,} images of the subset (filters in the sidebar).")
gallery.show_previews(ctx, worst, caption_col=metric, key="worst")
