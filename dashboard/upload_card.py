"""One uploaded file's card on the Datasets & upload page: what was read, its metrics, the images with WCS axes and
colour bars, the photometry, the reconstruction as FITS, its place on the map and its nearest neighbours."""

from __future__ import annotations

import numpy as np
import streamlit as st

from astroae_core.io import reconstruction_fits_bytes

from . import formatting as fmt, gallery, image_view, sentences
from .state import Context


def read_line(info) -> str:
    """What was read from the file, in one line (:class:`~astroae_core.analysis.upload.ReadInfo`)."""
    hdu = f"HDU {info.hdu_index}" + (f" ({info.hdu_name})" if info.hdu_name else "")
    size = " x ".join(str(n) for n in info.file_shape)
    plane = ""
    if info.plane is not None:
        plane = f", plane {', '.join(str(i) for i in info.plane)} of the cube (the middle one)"
    bad = ("no NaN or infinite pixels" if not info.nonfinite else
           f"{info.nonfinite:,} NaN or infinite pixels, filled with the median of the others ({info.fill_value:.4g})")
    ry, rx = info.resample
    if abs(ry - 1) < 1e-9 and abs(rx - 1) < 1e-9:
        scale = f"already the model's {info.model_size} x {info.model_size}"
    else:
        shrunk = max(ry, rx) > 1
        fy, fx = (ry, rx) if shrunk else (1 / ry, 1 / rx)
        factor = f"{fy:.3g}x" if abs(fy - fx) < 1e-9 else f"{fy:.3g}x (height), {fx:.3g}x (width)"
        scale = f"{'shrunk' if shrunk else 'enlarged'} by {factor} to the model's {info.model_size} x {info.model_size}"
    return f"**Read**: {hdu}, {size} pixels{plane}; {bad}; {scale}."


def show(ctx: Context, r, *, key: str) -> None:
    """The card of an upload that could be read (``r``: :class:`~astroae_core.analysis.UploadResult`)."""
    with st.container(border=True, key=f"upload_card_{key}"):
        st.markdown(f"#### {fmt.md_escape(r.name)}")
        if r.also_named:
            st.caption("The same file was also uploaded as " + ", ".join(f"`{n}`" for n in r.also_named)
                       + ": one card, one star on the map.")
        if r.read is not None:
            st.markdown(read_line(r.read))
        cols = st.columns(5)
        for col, k in zip(cols, ("mse", "psnr", "ssim", "ms_ssim")):
            col.metric(fmt.METRIC_LABELS[k], fmt.format_metric(k, r.rec.metrics[k]))
        if r.mse_percentile is not None:
            cols[4].metric("MSE percentile", f"{r.mse_percentile:.0f}%",
                           help="Share of the dataset reconstructed better than this upload: high means unusual.")
        far = sentences.far_from_training(r.training_distance, k=ctx.cache.latent_dim, subject="This image is")
        if far:
            st.warning(far, icon=":material/warning:")
        clip = "zscale" if ctx.stretch == "zscale" else "min/max"
        image_view.show_images(r.rec, r.header, ctx.stretch, ctx.cmap, image_view.ViewSettings(clip, None, True, False),
                               key=f"up_fig_{key}", height=330)
        unit = image_view.header_unit(r.header)
        st.markdown(image_view.photometry_sentence(r.rec.photometry, unit))
        sha = ctx.cache_model.checkpoint_info.get("sha256", "")
        st.download_button("Download the reconstruction (FITS, original flux units and header)",
                           reconstruction_fits_bytes(r.rec.flux_hat, r.header, model_sha=sha, source=r.name,
                                                     photometry=r.rec.photometry.as_dict()),
                           file_name=f"{r.name.split('.')[0] or 'upload'}_recon.fits", mime="application/fits",
                           icon=":material/download:", key=f"up_dl_{key}")
        if r.place:
            st.markdown(f"Placed on the map at UMAP ({r.place.get('umap_x', np.nan):.2f}, "
                        f"{r.place.get('umap_y', np.nan):.2f}), PCA ({r.place['pca_x']:.2f}, {r.place['pca_y']:.2f}) "
                        "— shown as a star on the Latent map page.")
        elif r.place_error:
            st.warning(f"Could not place it on the map: {r.place_error}")
        st.markdown("**Nearest neighbours in the dataset (latent space)**")
        t = ctx.table
        nbr = t.iloc[[i for i, _ in r.neighbors]].assign(latent_distance=[d for _, d in r.neighbors])
        gallery.show_previews(ctx, nbr, ncols=8, caption_col="latent_distance", key=f"upn_{key}")
