"""The astroae Streamlit app: ``streamlit run dashboard/app.py``.

``core`` and ``plots`` hold the logic and the figure builders (no Streamlit import, unit-tested); ``ui`` is the thin
Streamlit glue the pages share; ``app_pages/`` holds one short script per page.
"""
