"""Reconstructions: one image, its reconstruction and the residual under one stretch; metrics, header, download."""

from pathlib import Path

import streamlit as st

from astroae_core.analysis import reconstruct
from astroae_core.io import FitsReadError, read_fits, reconstruction_fits_bytes, sky_position
from dashboard import formatting as fmt, image_view, paths, picker, state

ctx = state.context()
st.title("Reconstructions")
state.require_cache(ctx)
t = ctx.table
model = ctx.model if ctx.model is not None else ctx.cache_model


@st.cache_data(max_entries=16, show_spinner="Reconstructing…")
def reconstructed(path: str, hdu, model_key: str, _model):
    image, header = read_fits(path, hdu=hdu)
    return reconstruct(_model, image), header


# -- choose an image: search (a name that matches one image shows it), sort, or arrive with selected_id ----------
row = picker.image_picker(ctx, key="rec", sort=True)

# -- read and reconstruct --------------------------------------------------------------------------------------------
hdu = row.get("hdu")
hdu = None if hdu is None or (isinstance(hdu, float) and hdu != hdu) else (int(hdu) if str(hdu).isdigit() else hdu)
try:
    src = state.source_path(ctx, row)
    rec, header = reconstructed(str(src), hdu, str(ctx.model_path), model)
except paths.PathNotAllowed as exc:
    st.error(f"Cannot show this image: {exc}. Set ASTROAE_DATA_ROOT to a folder that holds the cache's data.")
    st.stop()
except FitsReadError as exc:
    st.error(f"Cannot read this image: {exc.reason or exc}")
    st.stop()
except ValueError as exc:
    st.error(f"The model cannot use this image: {exc}")
    st.stop()

if not ctx.model_is_cache_model:
    st.caption(f"Reconstructed with `{fmt.model_label(ctx.model_path)}`, not the cache's own model; the cached "
               "scores in the table below come from the cache's model.")

# -- metrics and the side-by-side images -----------------------------------------------------------------------------
cols = st.columns(4)
for col, key in zip(cols, ("mse", "psnr", "ssim", "ms_ssim")):
    delta = None
    if rec.metrics_latent is not None:
        delta = f"latent only: {fmt.format_metric(key, rec.metrics_latent[key])}"
    col.metric(fmt.METRIC_LABELS[key], fmt.format_metric(key, rec.metrics[key]), delta=delta, delta_color="off",
               delta_arrow="off", help="Measured in the model's normalized [0, 1] space, as in training."
               + (" MS-SSIM needs images larger than 160 pixels a side." if key == "ms_ssim" else ""))

head = "Full reconstruction (with skip connections)" if rec.skip_mode != "none" else "Reconstruction from the latent"
st.subheader(head)
view = image_view.view_controls("rec", ctx.stretch, rec.flux)
unit = image_view.header_unit(header)
image_view.show_images(rec, header, ctx.stretch, ctx.cmap, view, key="rec_fig")
st.markdown(image_view.photometry_sentence(rec.photometry, unit))
if rec.x_latent is not None:
    st.subheader(f"Latent-only reconstruction (decoded from the {model.config.latent_dim} numbers alone)")
    st.caption("This model's skips let the decoder copy the input around the bottleneck; this is what the "
               "latent itself carries.")
    image_view.show_images(rec, header, ctx.stretch, ctx.cmap, view, key="rec_fig_latent", latent_only=True)
    st.markdown(image_view.photometry_sentence(rec.photometry_latent, unit))
st.caption(f"Original and reconstruction under one **{ctx.stretch}** stretch and one set of **{view.clip}** limits "
           "from the original, their colour bars in the file's units; residual on a symmetric diverging scale (red: "
           "flux the model missed). Drag to zoom (the panels move together), double-click to reset; hover for pixel "
           "values and RA/Dec.")

# -- sky position, catalog values, header, downloads -------------------------------------------------------------
left, right = st.columns([1, 1])
with left:
    sky = sky_position(header, rec.flux.shape)
    st.markdown("**Sky position** (image centre): " + (
        fmt.format_sky(sky["ra"], sky["dec"]) if sky else fmt.format_sky(row.get("ra"), row.get("dec"))))
    st.markdown(f"**File**: `{row['path']}`" + (f" (HDU {hdu})" if hdu is not None else ""))
    shown = row.drop(labels=[*ctx.cache.latent_columns, "path"])
    st.dataframe({"value": {fmt.column_label(k): fmt.format_value(k, v) for k, v in shown.items()}}, height=260,
                 width="stretch")
with right:
    name = Path(str(row["path"])).name.split(".")[0]
    sha = model.checkpoint_info.get("sha256", "")
    st.download_button("Download the reconstruction (FITS, original flux units and header)",
                       reconstruction_fits_bytes(rec.flux_hat, header, model_sha=sha, source=str(row["path"]),
                                                 photometry=rec.photometry.as_dict()),
                       file_name=f"{name}_recon.fits", mime="application/fits", icon=":material/download:")
    if rec.flux_latent is not None:
        st.download_button("Download the latent-only reconstruction (FITS)",
                           reconstruction_fits_bytes(rec.flux_latent, header, model_sha=sha,
                                                     source=str(row["path"]), latent_only=True,
                                                     photometry=rec.photometry_latent.as_dict()),
                           file_name=f"{name}_latent_recon.fits", mime="application/fits")
    b1, b2 = st.columns(2)
    b1.button("Start the sliders here", on_click=lambda: st.session_state.update(
        _goto="Latent sliders", slider_start="chosen image"), icon=":material/tune:")
    b2.button("Show on the map", on_click=lambda: st.session_state.update(_goto="Latent map"),
              icon=":material/scatter_plot:")
    with st.expander("FITS header"):
        st.code(header.tostring(sep="\n").rstrip() if header is not None else "(no header)", language=None)
