"""Latent map: UMAP / PCA of the dataset, outliers, click a point for its image and neighbours, select a group."""

from pathlib import Path

import numpy as np
import streamlit as st

from astroae_core.analysis import top_outliers
from dashboard import display, formatting as fmt, gallery, plots, selection, sentences, state

ctx = state.context()
st.title("Latent map")
state.require_cache(ctx)
t, cache = ctx.table, ctx.cache
ss = st.session_state

c1, c2, c3 = st.columns([1, 2, 1])
kind = c1.segmented_control("Map", ["UMAP", "PCA"], default="UMAP", key="map_kind", required=True)
x, y = selection.map_axes(t, kind if cache.meta.umap.method == "umap" else "PCA")
if kind == "UMAP" and x == "pca_x":
    c1.caption(sentences.map_fallback(cache.meta.umap))
options = selection.color_options(t)
color = c2.selectbox("Colour by", options, key="map_color", format_func=fmt.column_label)
n_out = c3.number_input("Outliers to highlight", 0, 500, selection.default_outlier_count(len(t)), key="map_nout")
outliers = top_outliers(t, int(n_out))

sel_row = state.selected_row(ctx) if ss.get("selected_id") is not None else None
nbr_rows = None
if sel_row is not None:
    idx, dist = cache.neighbors(cache.latents()[t.index.get_loc(sel_row.name)], k=9)
    nbr = [(int(i), float(d)) for i, d in zip(np.ravel(idx), np.ravel(dist)) if t.iloc[int(i)]["id"] != sel_row["id"]]
    nbr_rows = t.iloc[[i for i, _ in nbr[:8]]].assign(latent_distance=[d for _, d in nbr[:8]])
uploads = [{"name": u.name, "x": u.place[x], "y": u.place[y]} for u in ss.get("uploads", {}).values()
           if u.ok and x in u.place and y in u.place]


def on_select():
    sel = ss["map_chart"]["selection"]
    ids = selection.selection_ids(sel, table=t, axes=(x, y))
    if len(ids) == 1 and not (sel.get("box") or sel.get("lasso")):
        state.select_image(ids[0])
    else:
        ss["map_selection_ids"] = ids


fig = plots.latent_map(t, x, y, color, outlier_ids=outliers["id"].tolist(),
                       highlight_id=sel_row["id"] if sel_row is not None else None,
                       neighbor_ids=nbr_rows["id"].tolist() if nbr_rows is not None else (), uploads=uploads)
st.plotly_chart(fig, key="map_chart", on_select=on_select, selection_mode=("points", "box", "lasso"),
                config={"displaylogo": False, "scrollZoom": True})
drawn_max = selection.MAP_POINTS_DRAWN_MAX
sampled = (f" The shading shows all of them; a fixed random {drawn_max:,} are drawn as points, and a box or lasso "
           "selects every image inside it, drawn or not." if len(t) > drawn_max else "")
st.caption(f"{len(t):,} images.{sampled} Click a point to see it and its nearest neighbours in latent space; drag a "
           "box or lasso (toolbar) to select a group. Red circles: the strangest images by the combined anomaly score.")

left, right = st.columns([3, 2])
with left:
    if sel_row is None:
        st.info("Click a point on the map (or an outlier in the list) to see its image here.")
    else:
        st.subheader(f"Chosen: {Path(str(sel_row['path'])).name}")
        a, b = st.columns([1, 2])
        a.image(display.preview_rgb(np.asarray(cache.previews[t.index.get_loc(sel_row.name)]), ctx.stretch, ctx.cmap),
                width="stretch")
        facts = {fmt.column_label(c): sel_row[c] for c in ("mse", "ssim", "anomaly_score", "anomaly_rank",
                                                             selection.KIND_COLUMN, "split") if c in sel_row.index}
        b.markdown("  \n".join(f"**{k}**: {v:.4g}" if isinstance(v, float) else f"**{k}**: {v}"
                               for k, v in facts.items()))
        b.markdown(fmt.format_sky(sel_row.get("ra"), sel_row.get("dec")))
        b.button("Open in Reconstructions", on_click=state.open_in_reconstructions, args=(sel_row["id"],),
                 icon=":material/compare:")
        st.markdown("**Nearest neighbours in latent space**")
        gallery.show_previews(ctx, nbr_rows, ncols=4, caption_col="latent_distance", key="nbr")
with right:
    st.subheader("Outliers")
    # a narrow column: the file name (not the path) and a few fixed-precision numbers, so nothing is cut off
    shown = outliers[[c for c in ("anomaly_rank", "anomaly_score", "mse", selection.KIND_COLUMN)
                      if c in outliers.columns]].rename(columns={selection.KIND_COLUMN: "kind"})
    shown.insert(0, "image", [Path(str(p)).stem for p in outliers["path"]])

    def on_outlier():
        rows = ss["outlier_table"]["selection"]["rows"]
        if rows:
            state.select_image(outliers.iloc[rows[0]]["id"])

    st.dataframe(shown, hide_index=True, height=min(420, 35 * (len(outliers) + 1) + 3), key="outlier_table",
                 on_select=on_outlier, selection_mode="single-row", width="stretch",
                 column_config={"anomaly_rank": st.column_config.NumberColumn("rank", format="%d", width="small"),
                                "anomaly_score": st.column_config.NumberColumn("score", format="%.2f",
                                                                               width="small"),
                                "mse": st.column_config.NumberColumn("MSE", format="%.2e", width="small")})

sel_ids = ss.get("map_selection_ids") or []
st.subheader(f"Selection ({len(sel_ids)} images)")
if not sel_ids:
    st.caption("Use the box or lasso tool on the map to select a group of images: they appear here, with a CSV "
               "export of their ids, paths, sky positions and scores.")
else:
    sel = selection.rows_for_ids(t, sel_ids)
    c_a, c_b = st.columns([1, 1])
    c_a.download_button("Download the selection as CSV", selection.selection_csv(t, sel_ids), file_name="selection.csv",
                        mime="text/csv", icon=":material/download:")
    c_b.button("Clear the selection", on_click=lambda: ss.update(map_selection_ids=[]))
    if len(sel) > 60:
        st.caption(f"Showing the first 60 of {len(sel)} (the CSV holds all).")
    gallery.show_previews(ctx, sel, ncols=8, caption_col="anomaly_score", key="selgal")
