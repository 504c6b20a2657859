"""Latent map: UMAP / PCA of the dataset, outliers, click a point for its image and neighbours, select a group."""

from pathlib import Path

import numpy as np
import streamlit as st

from astroae_core.analysis import top_outliers
from astroae_core.analysis.reasons import explain
from dashboard import display, formatting as fmt, gallery, map_colors, plots, selection, sentences, state
from dashboard import exports, subset
from dashboard import labels as label_ui

ctx = state.context()
st.title("Latent map")
state.require_cache(ctx)
full, cache = ctx.table, ctx.cache
t = subset.subset_table(ctx)  # the map, its outliers, gallery and exports follow the subset (sidebar filters)
ss = st.session_state
if t.empty:
    st.info(f"No image passes the filters in the sidebar (0 of {len(full):,}). Remove a filter to see the map.",
            icon=":material/filter_alt_off:")
    st.stop()

c1, c2, c2s, c3 = st.columns([1, 2, 1.3, 1])
kind = c1.segmented_control("Map", ["UMAP", "PCA"], default="UMAP", key="map_kind", required=True)
x, y = selection.map_axes(t, kind if cache.meta.umap.method == "umap" else "PCA")
if kind == "UMAP" and x == "pca_x":
    c1.caption(sentences.map_fallback(cache.meta.umap))
labels = label_ui.read_labels(ctx)["label"].reindex(t.index)  # row for row with the subset drawn
options = selection.color_options(t)
if "label" not in options:
    options.insert(min(len(options), 4), "label")
color = c2.selectbox("Colour by", options, key="map_color", format_func=fmt.column_label)
scale = "linear"
if color in t.columns and t[color].dtype.kind in "biuf":  # a key per column: each starts on its own default
    scale = c2s.segmented_control("Colour scale", map_colors.SCALES, key=f"map_scale_{color}", required=True,
                                  default=map_colors.default_scale(color, t[color]),
                                  help="rank: colours spread evenly over the images; log: decades of a skewed "
                                       "column; the colour bar reads in the column's values")
n_out = c3.number_input("Outliers to highlight", 0, 500, selection.default_outlier_count(len(t)), key="map_nout")
outliers = top_outliers(t, int(n_out))

sel_row = state.selected_row(ctx) if ss.get("selected_id") is not None else None
nbr_rows = None
if sel_row is not None:
    idx, dist = cache.neighbors(cache.latents()[full.index.get_loc(sel_row.name)], k=9)
    nbr = [(int(i), float(d)) for i, d in zip(np.ravel(idx), np.ravel(dist))
           if full.iloc[int(i)]["id"] != sel_row["id"]]
    nbr_rows = full.iloc[[i for i, _ in nbr[:8]]].assign(latent_distance=[d for _, d in nbr[:8]])
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
                       neighbor_ids=nbr_rows["id"].tolist() if nbr_rows is not None else (), uploads=uploads,
                       color_scale=scale, labels=labels)
st.plotly_chart(fig, key="map_chart", on_select=on_select, selection_mode=("points", "box", "lasso"),
                config={"displaylogo": False, "scrollZoom": True})
drawn_max = selection.MAP_POINTS_DRAWN_MAX
sampled = (f" The shading shows all of them; a fixed random {drawn_max:,} are drawn as points, and a box or lasso "
           "selects every image inside it, drawn or not." if len(t) > drawn_max else "")
shown = f"{len(t):,} of {len(full):,} images (the subset: filters in the sidebar)" if len(t) < len(full) else \
    f"{len(t):,} images"
st.caption(f"{shown}.{sampled} Click a point to see it and its nearest neighbours in latent space; drag a "
           "box or lasso (toolbar) to select a group. Red circles: the strangest images by the combined anomaly "
           "score; gold stars, red crosses and green squares: the images you labelled interesting, artefact and "
           "normal (on the Outlier review page).")

left, right = st.columns([3, 2])
with left:
    if sel_row is None:
        st.info("Click a point on the map (or an outlier in the list) to see its image here.")
    else:
        st.subheader(f"Chosen: {Path(str(sel_row['path'])).name}")
        a, b = st.columns([1, 2])
        a.image(display.preview_rgb(np.asarray(cache.previews[full.index.get_loc(sel_row.name)]), ctx.stretch,
                                    ctx.cmap),
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
    shown.insert(3, "flagged by", explain(full, outliers.index)["flagged"].to_numpy() if len(outliers) else [])

    def on_outlier():
        rows = ss["outlier_table"]["selection"]["rows"]
        if rows:
            state.select_image(outliers.iloc[rows[0]]["id"])

    st.dataframe(shown, hide_index=True, height=min(740, 35 * (len(outliers) + 1) + 3), key="outlier_table",
                 on_select=on_outlier, selection_mode="single-row", width="stretch",
                 column_config={"anomaly_rank": st.column_config.NumberColumn("rank", format="%d", width="small"),
                                "anomaly_score": st.column_config.NumberColumn("score", format="%.2f",
                                                                               width="small"),
                                "mse": st.column_config.NumberColumn("MSE", format="%.2e", width="small")})
    if "Outlier review" in state.PAGES:
        st.page_link(state.PAGES["Outlier review"], label="Why each is strange, and label them: Outlier review",
                     icon=":material/travel_explore:")

# -- below the map: the box / lasso selection, else the whole subset; its exports and a paged gallery --------------
sel_ids = ss.get("map_selection_ids") or []
if sel_ids:
    group, what = selection.rows_for_ids(t, sel_ids), "selection"
    st.subheader(f"Selection ({len(group):,} images)")
    st.button("Clear the selection", on_click=lambda: ss.update(map_selection_ids=[]), icon=":material/deselect:")
else:
    what = "subset"
    group = t
    st.subheader(f"{'The subset' if subset.is_filtered(ctx) else 'All images'} ({len(t):,} images)")
    st.caption("Drag a box or lasso on the map to select a group: the exports and the gallery below then hold it. "
               "Without one they hold every image that passes the filters in the sidebar.")
exports.export_panel(ctx, group, what=what, key="mapx")
gallery.paged_gallery(ctx, group, key="mapgal")
