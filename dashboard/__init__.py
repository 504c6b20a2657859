"""The astroae Streamlit app: ``streamlit run dashboard/app.py``.

``app.py`` owns the navigation and the shared sidebar; ``app_pages/`` holds one short script per page. The modules
here are the app's own glue and display; the science (reconstructions, uploads, summaries) lives in astroae_core.

No Streamlit import (unit-tested without a server): ``paths`` (where files are, and the guard on every read),
``display`` (stretches, colour maps, PNG), ``formatting`` (values as text), ``sentences`` (summaries in plain words),
``selection`` (map sampling, selections, search, export), ``slider_ranges``, ``plots`` (plotly figures) and
``testing`` (driving the real app from tests and benchmarks). A cache is read through astroae_core.cache alone.

Streamlit glue: ``state`` (the session's context and navigation), ``sidebar``, ``loaders`` (what is loaded once
and shared), ``gallery`` (preview galleries) and ``jobs`` (cache builds with a progress bar).
"""
