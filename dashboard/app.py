"""astroae: explore what an autoencoder learned about a folder of FITS images.

    streamlit run dashboard/app.py [-- --cache PATH]

The cache comes from ``--cache``, else ``ASTROAE_CACHE``, else ``cache/demo``; folders the app may read and encode
lie under ``ASTROAE_DATA_ROOT`` (default: ``data/`` in the repository). This file owns the navigation and the shared
sidebar (cache, model, display stretch, colour map); each page is a short script in ``app_pages/``.
"""

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import streamlit as st  # noqa: E402

from dashboard import state  # noqa: E402
from dashboard.sidebar import sidebar  # noqa: E402


@st.cache_resource(show_spinner=False)
def _one_torch_thread() -> None:
    """Once per server process, before any model runs: one intra-op thread for torch, never changed while serving.

    A slider's decode is a small job: with one OpenMP thread per core it waits for the core that the browser or
    another session holds (benchmarks/slider_latency.py; figures in benchmarks/RESULTS.md). Encodes started from
    the app run with it too, so that they never change a setting other sessions' decodes depend on.
    """
    import torch

    torch.set_num_threads(1)


st.set_page_config(page_title="astroae", page_icon=":material/blur_on:", layout="wide")
_one_torch_thread()

_HERE = Path(__file__).parent
state.PAGES.update({
    "Datasets & upload": st.Page(_HERE / "app_pages/datasets.py", title="Datasets & upload",
                                 icon=":material/folder_open:", default=True),
    "Reconstructions": st.Page(_HERE / "app_pages/reconstructions.py", title="Reconstructions",
                               icon=":material/compare:"),
    "Metrics": st.Page(_HERE / "app_pages/metrics.py", title="Metrics", icon=":material/monitoring:"),
    "Latent sliders": st.Page(_HERE / "app_pages/sliders.py", title="Latent sliders", icon=":material/tune:"),
    "Latent map": st.Page(_HERE / "app_pages/latent_map.py", title="Latent map", icon=":material/scatter_plot:"),
    "Outlier review": st.Page(_HERE / "app_pages/outliers.py", title="Outlier review",
                              icon=":material/travel_explore:"),
    "Train": st.Page(_HERE / "app_pages/train.py", title="Train", icon=":material/model_training:"),
})
page = st.navigation(list(state.PAGES.values()))
sidebar()
state.follow_goto()
page.run()
