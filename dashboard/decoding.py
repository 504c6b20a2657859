"""The sliders page's decodes, cached: a latent's image (and its PNG, so a slider moved back costs nothing), where
the decoded objects lie, and how much each dimension moves the image. ``model_key`` names the model (the cached
functions do not hash the model itself)."""

import numpy as np
import streamlit as st

from astroae_core.analysis import decode_latents, latent_influence
from astroae_core.analysis.object_extent import object_box
from dashboard import display


@st.cache_data(max_entries=512, show_spinner=False)
def decode(z: tuple, model_key: str, _model) -> np.ndarray:
    return decode_latents(_model, np.array(z, dtype=np.float32))


@st.cache_data(max_entries=2048, show_spinner=False)
def decoded_png_uri(z: tuple, model_key: str, stretch: str, cmap: str, box, _model) -> str:
    """The live image: a small PNG as a data URI, a function of the slider values (a slider moved back costs
    nothing). Inline, it arrives with the rerun's message: no second request to the server before it can be drawn
    (benchmarks/slider_latency.py; figures in benchmarks/RESULTS.md)."""
    img = decode(z, model_key, _model)[0]
    if box is not None:
        img = img[box[0]:box[1], box[2]:box[3]]
    return display.png_data_uri(display.decoded_rgb(img[None], stretch, cmap)[0])


@st.cache_data(max_entries=8, show_spinner=False)
def object_window(model_key: str, _Z, _model) -> tuple:
    """Where the decoded objects lie in the stamp: a box that the live image is cropped to, so the object fills it."""
    pick = np.linspace(0, len(_Z) - 1, min(len(_Z), 64)).astype(int)
    return object_box(decode_latents(_model, _Z[pick]))


@st.cache_data(max_entries=4, show_spinner="Measuring how much each slider moves the image (an older cache)…")
def influence(model_key: str, _cache, _model) -> dict:
    return latent_influence(_cache, _model)
