"""Latent sliders: decode any point of the latent space live, traverse each dimension, interpolate two images."""

import numpy as np
import streamlit as st

from astroae_core.analysis import interpolate_latents, top_outliers, tracked_columns, traversal_latents
from dashboard import display, formatting as fmt, picker, plots, sentences, slider_ranges, state, subset
from dashboard.decoding import decode, decoded_png_uri, influence, object_window

ctx = state.context()
st.title("Latent sliders")
state.require_cache(ctx)
t, cache, model = ctx.table, ctx.cache, ctx.cache_model
zcols = cache.latent_columns
Z = cache.latents()
stats = cache.latent_stats()
ranges = slider_ranges.slider_ranges(stats, zcols)
tracked = tracked_columns(cache.correlations, zcols)
key = f"{cache.path}:{model.checkpoint_info['sha256'][:16]}"


measured = influence(f"{key}:{cache.meta.created_utc}", cache, model)
inf = measured["vs_data"]
if model.config.has_skips:
    st.warning(f"This model (skip_mode **{model.config.skip_mode}**) has skip connections. The sliders decode from "
               f"the {len(zcols)} latent numbers alone, with the skips zeroed, so they show only what the latent "
               f"carries: decoded that way, images vary {measured['decoded_vs_data']:.0%} as much as the real ones. "
               "See each slider's influence below.", icon=":material/warning:")
if ctx.model is not None and not ctx.model_is_cache_model:
    st.caption("Sliders use the cache's own model (the cached latents live in its space), not the one chosen in "
               "the sidebar.")

# -- where the sliders start ----------------------------------------------------------------------------------------
c1, c2 = st.columns([1, 2])
mode = c1.radio("Start from", ["dataset mean", "chosen image"], key="slider_start", horizontal=True)
row = state.selected_row(ctx)
if mode == "chosen image":
    row = picker.image_picker(ctx, key="sl", container=c2)
    start = Z[t.index.get_loc(row.name)]
else:
    start = np.array([r.mean for r in ranges], dtype=np.float32)
origin = (mode, str(row["id"]) if mode == "chosen image" else None, key)
# the ranges hold the chosen image's own latent, however odd: the sliders start exactly there
ranges = slider_ranges.slider_ranges(stats, zcols, include=start if mode == "chosen image" else None)


def reset():
    for col, v in zip(zcols, slider_ranges.as_slider_values(start)):
        st.session_state[f"sl_{col}"] = v
    st.session_state["slider_origin"] = origin


if st.session_state.get("slider_origin") != origin:
    reset()
elif any(f"sl_{c}" not in st.session_state for c in zcols):  # back on the page: where the sliders were left
    last = st.session_state.get("slider_z") or start
    for col, v in zip(zcols, slider_ranges.clamp_to_ranges(last, ranges)):
        st.session_state[f"sl_{col}"] = v


@st.fragment
def live():
    left, right = st.columns([1, 1.2])
    # the image first: its message leaves before the sliders are redrawn
    z = tuple(slider_ranges.as_slider_values([st.session_state[f"sl_{c}"] for c in zcols]))  # float32, exactly
    st.session_state["slider_z"] = list(z)
    t1, t2 = right.columns(2)
    whole = t1.toggle("Whole stamp", key="sl_whole", help="Off: the image is cropped to where the dataset's decoded "
                      "objects lie, so the object fills it. On: the whole decoded stamp.")
    zoom = t2.toggle("Zoom and pan", key="sl_zoom", help="Draw the image as a plotly figure you can zoom and pan, "
                     "with each pixel's value on hover (each slider move then sends a larger message).")
    box = None if whole else object_window(key, Z, model)
    where = "" if box is None else (f"; pixels {box[2]}..{box[3] - 1} x {box[0]}..{box[1] - 1} of the "
                                    f"{model.config.in_size}-pixel stamp")
    caption = f"Decoded from the {len(zcols)} latent numbers alone ({ctx.stretch} stretch, fixed limits){where}"
    if zoom:
        img = decode(z, key, model)[0]
        img = img if box is None else img[box[0]:box[1], box[2]:box[3]]
        right.plotly_chart(plots.decoded_image(img, ctx.stretch, ctx.cmap, height=520), key="slider_fig",
                           config={"displaylogo": False, "scrollZoom": True})
        right.caption(caption)
    else:
        with right, st.container(key="slider_img"):
            st.image(decoded_png_uri(z, key, ctx.stretch, ctx.cmap, box, model), width="stretch", caption=caption)
    with left:
        for d, (col, r) in enumerate(zip(zcols, ranges)):
            what = (f" · tracks **{fmt.column_label(tracked[col][0])}** (ρ={tracked[col][1]:+.2f})"
                    if col in tracked else "")
            st.slider(f"{col} · influence {inf[d]:.2f}{what}", r.lo, r.hi, step=r.step, key=f"sl_{col}",
                      format="%.3f", help=f"dataset mean {r.mean:.3g}, std {r.std:.3g}; range: the 1st..99th "
                      "percentile, widened to hold the chosen image's latent; one step is a fifth of a std")
        st.button("Reset", on_click=reset, icon=":material/restart_alt:", key="sl_reset")
    with right:
        if mode == "chosen image" and np.array_equal(np.asarray(z, dtype=np.float32), start):
            st.caption("At the chosen image's own latent: " + ", ".join(
                f"{c} = {str(np.float32(v))}" for c, v in zip(zcols, start)), help="Exactly its cached float32 values.")
        d, _ = cache.neighbors(np.array(z, dtype=np.float32), k=1)
        st.caption(f"Nearest dataset image in latent space: `{t.iloc[int(np.ravel(d)[0])]['path']}`")


live()

tab_trav, tab_interp, tab_inf = st.tabs(["Traversal grid", "Interpolation", "Slider influence"])
with tab_trav:
    steps = (-2, -1, 0, 1, 2)
    std = np.array([r.std for r in ranges], dtype=np.float32)
    tiles = decode(tuple(map(tuple, traversal_latents(start, std, steps).round(6).tolist())), key, model)
    st.plotly_chart(plots.image_grid(display.decoded_rgb(tiles, ctx.stretch, ctx.cmap), len(steps),
                                     row_labels=zcols, col_labels=[f"{s:+d} σ" for s in steps]), key="trav_fig")
    st.caption(f"Each row moves one dimension from −2 to +2 standard deviations around the start ({mode}).")
with tab_interp:
    ss = st.session_state
    ss.setdefault("interp_a_id", row["id"])
    ss.setdefault("interp_b_id", top_outliers(subset.subset_table(ctx), 1)["id"].iloc[0])  # the strangest
    a_col, b_col, n_col = st.columns([2, 2, 1])
    a = picker.image_picker(ctx, key="interp_a", label="From image", current=ss["interp_a_id"],
                            on_pick=lambda i: ss.update(interp_a_id=i), container=a_col)
    b = picker.image_picker(ctx, key="interp_b", label="To image (default: the strangest)",
                            current=ss["interp_b_id"], on_pick=lambda i: ss.update(interp_b_id=i), container=b_col)
    n = n_col.number_input("Steps", 3, 12, 7, key="interp_n")
    za, zb = Z[t.index.get_loc(a.name)], Z[t.index.get_loc(b.name)]
    tiles = decode(tuple(map(tuple, interpolate_latents(za, zb, n).round(6).tolist())), key, model)
    labels = ["A"] + [f"{x:.2f}" for x in np.linspace(0, 1, n)[1:-1]] + ["B"]
    st.plotly_chart(plots.image_grid(display.decoded_rgb(tiles, ctx.stretch, ctx.cmap), n, col_labels=labels),
                    key="interp_fig")
    st.caption("Straight line in latent space from A to B, decoded from the latent alone.")
with tab_inf:
    st.plotly_chart(plots.influence_bars(inf, zcols, tracked), key="inf_fig")
    st.markdown(sentences.influence_verdict(inf, model.config.has_skips, measured["decoded_vs_data"]))
    st.caption("Influence: mean absolute change of the decoded image when the dimension moves by ±2 standard "
               "deviations, divided by the spread of the dataset's images (their mean absolute deviation from the "
               "mean image). Tracked column: the catalog column with the largest |Spearman ρ| with that dimension.")
