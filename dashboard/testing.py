"""Driving the real app from outside: a small demo cache, ``streamlit run`` on a free port, and the page-side
JavaScript that the browser tests (tests/test_browser.py) and the slider benchmark (benchmarks/slider_latency.py)
share. No Streamlit import: this runs in the test or benchmark process, the app in its own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .paths import MODELS_DIR, REPO_ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'

# A cheap, exact fingerprint of what an <img> shows: its pixels drawn on a canvas (same-origin media, so readable).
IMAGE_CHECKSUM_JS = """sel => {
    const img = document.querySelector(sel);
    if (!img || !img.complete || !img.naturalWidth) return null;
    const c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const g = c.getContext('2d');
    g.drawImage(img, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    let s = 0;
    for (let i = 0; i < d.length; i++) s = (s * 31 + d[i]) % 2147483647;
    return s + ':' + c.width + 'x' + c.height;
}"""


def build_demo_cache(root, *, n: int = 40, seed: int = 3, checkpoint=None) -> dict:
    """Generate ``n`` demo stamps (GalSim) in ``root/data/demo`` and encode them into ``root/cache`` with
    ``models/demo.pt`` (or ``checkpoint``). Returns the paths: ``data_root``, ``data``, ``cache``, ``checkpoint``."""
    from astroae_core.cache import encode_folder
    from astroae_core.demo import generate_demo_data

    root = Path(root)
    ckpt = Path(checkpoint) if checkpoint is not None else MODELS_DIR / "demo.pt"
    data = root / "data" / "demo"
    generate_demo_data(data, n=n, seed=seed, progress=None)
    cache = encode_folder(ckpt, data, root / "cache", progress=None)
    return {"data_root": root / "data", "data": data, "cache": Path(cache), "checkpoint": ckpt}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
            return r.read().decode().strip()
    except OSError:
        return None


def stop(proc: subprocess.Popen) -> None:
    """Stop the server's process group (SIGTERM, then SIGKILL)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)
    except ProcessLookupError:
        pass


def start(cache, data_root, logs, *, start_timeout: float = 120.0, python: str | None = None):
    """``streamlit run dashboard/app.py`` on a free localhost port with ``ASTROAE_CACHE`` and
    ``ASTROAE_DATA_ROOT`` set, once it answers its health check; returns ``(process, base URL)``.
    Stop it with :func:`stop`.

    Raises
    ------
    RuntimeError
        If the server exits or does not answer its health check within ``start_timeout`` seconds (with the end of
        its logs, written to ``logs/stdout.txt`` and ``logs/stderr.txt``).
    """
    logs = Path(logs)
    logs.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = dict(os.environ, ASTROAE_CACHE=str(cache), ASTROAE_DATA_ROOT=str(data_root),
               STREAMLIT_BROWSER_GATHER_USAGE_STATS="false", PYTHONUNBUFFERED="1")
    cmd = [python or sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "dashboard" / "app.py"),
           "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
           "--server.fileWatcherType", "none"]
    with open(logs / "stdout.txt", "wb") as out, open(logs / "stderr.txt", "wb") as err:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=out, stderr=err, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while health(url) != "ok":
            if proc.poll() is not None or time.monotonic() > deadline:
                why = f"exited with {proc.returncode}" if proc.poll() is not None else \
                    f"did not answer /_stcore/health within {start_timeout:.0f} s"
                raise RuntimeError(f"the Streamlit server {why}.\nstderr:\n"
                                   f"{(logs / 'stderr.txt').read_text(errors='replace')[-4000:]}")
            time.sleep(0.25)
    except BaseException:
        stop(proc)
        raise
    return proc, url


@contextlib.contextmanager
def serve(cache, data_root, logs, *, start_timeout: float = 120.0, python: str | None = None):
    """:func:`start` as a context manager: yields the base URL and stops the server's process group at the end."""
    proc, url = start(cache, data_root, logs, start_timeout=start_timeout, python=python)
    try:
        yield url
    finally:
        stop(proc)
