"""Shared fixtures: tiny synthetic FITS folders, the real CEERS cutouts (beside the checkout), small recipes."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

ROOT = Path(__file__).resolve().parents[1]
CEERS = ROOT.parent / "shared" / "data" / "ceers_jwst"


@pytest.fixture(scope="session", autouse=True)
def _kept_synthetic_sets_in_a_temporary_folder(tmp_path_factory):
    """Pretraining keeps the synthetic galaxies it draws (train.synthetic.kept_synthetic_galaxies): not in the
    checkout's cache/ during tests, which must run as on a new machine."""
    import os

    before = os.environ.get("ASTROAE_SYNTHETIC_CACHE")
    os.environ["ASTROAE_SYNTHETIC_CACHE"] = str(tmp_path_factory.mktemp("synthetic"))
    yield
    if before is None:
        os.environ.pop("ASTROAE_SYNTHETIC_CACHE", None)
    else:
        os.environ["ASTROAE_SYNTHETIC_CACHE"] = before


@pytest.fixture(scope="session")
def ceers_dir() -> Path:
    """The 700 real JWST/NIRCam cutouts; skipped where ../shared is not beside the checkout."""
    if not CEERS.is_dir():
        pytest.skip(f"real CEERS data not found at {CEERS} (it lives in ../shared beside the checkout)")
    return CEERS


def blob_image(rng, size: int) -> np.ndarray:
    """A noisy elliptical Gaussian galaxy with random size, axis ratio, angle and flux."""
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    a = rng.uniform(0.06, 0.2) * size
    q = rng.uniform(0.4, 1.0)
    t = rng.uniform(0, np.pi)
    u = xx * np.cos(t) + yy * np.sin(t)
    v = -xx * np.sin(t) + yy * np.cos(t)
    img = rng.uniform(50, 200) * np.exp(-0.5 * ((u / a) ** 2 + (v / (a * q)) ** 2))
    return (img + rng.normal(0, 1.0, img.shape)).astype(np.float32)


def write_blob_folder(folder: Path, n: int, *, size: int = 32, seed: int = 0, groups: int | None = None) -> Path:
    """``n`` FITS files ``obj_<group>_<k>.fits``; ``groups`` files share a group id (like CEERS filters)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        g = i // groups if groups else i
        fits.PrimaryHDU(blob_image(rng, size)).writeto(folder / f"obj_{g:03d}_{i:03d}.fits")
    return folder


@pytest.fixture
def blob_folder(tmp_path) -> Path:
    return write_blob_folder(tmp_path / "blobs", 24, groups=3)


TINY_RECIPE = """
[model]
in_size = 32
latent_dim = 4
channels = [4, 8]
skip_mode = "{skip_mode}"
standardize_latent = false

[preprocess]
size = 32
method = "minmax"

[train]
loss = "mse"
lr = 3e-3
lr_schedule = "constant"
decorrelation = 0.0
batch_size = 4
epochs = {epochs}
checkpoint_every = 2
group_regex = "obj_(\\\\d+)_"
threads = 1
"""


@pytest.fixture
def tiny_recipe(tmp_path):
    """Factory: write a tiny recipe (32x32 images, 2 scales) and return its path."""

    def make(*, skip_mode: str = "none", epochs: int = 3, name: str = "tiny.toml") -> Path:
        path = tmp_path / name
        path.write_text(TINY_RECIPE.format(skip_mode=skip_mode, epochs=epochs))
        return path

    return make


# A tiny model on the shipped defaults, for the Train page's tests (presets scale its epochs).
TINY_PRESET_RECIPE = """[model]
in_size = 32
channels = [4, 8]

[preprocess]
method = "minmax"

[train]
batch_size = 4
epochs = 3
checkpoint_every = 100
"""


def wcs_header():
    """A celestial TAN header for a 16x16 image centred on RA 150, Dec 2 (with OBJECT and BUNIT)."""
    h = fits.Header()
    h.update(CTYPE1="RA---TAN", CTYPE2="DEC--TAN", CRVAL1=150.0, CRVAL2=2.0, CRPIX1=8.5, CRPIX2=8.5,
             CDELT1=-1e-4, CDELT2=1e-4, OBJECT="blob", BUNIT="e-/s")
    return h


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    """Debian's chromium for the real-browser tests (CI installs it; elsewhere the tests skip without it)."""
    import os

    from dashboard.testing import CHROMIUM

    if not CHROMIUM.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"Debian chromium is missing at {CHROMIUM}: CI must install it (apt-get install chromium)")
        pytest.skip("Debian chromium not installed at /usr/bin/chromium: apt-get install chromium")
    pytest.importorskip("playwright.sync_api")
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium_path):
    """One chromium for the session: Playwright's sync API allows one running instance per process."""
    from playwright.sync_api import sync_playwright

    from dashboard.testing import CHROMIUM_ARGS

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        yield b
        b.close()


@contextmanager
def open_page(browser, url: str, *, timeout_ms: int = 60_000, **context_options):
    """A page in a fresh browser context (so a fresh Streamlit session) on ``url``, 1440 x 1000."""
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000}, base_url=url, **context_options)
    page = ctx.new_page()
    page.set_default_timeout(timeout_ms)
    try:
        yield page
    finally:
        ctx.close()


@contextmanager
def local_samp_hub(folder: Path, mp, *, client_name: str | None = None):
    """A SAMP hub of the test's own (its lock file in ``folder``, no web profile, ``SAMP_HUB`` set through the
    monkeypatch ``mp`` so that a server started after inherits it) and, with ``client_name``, a client standing in
    for TOPCAT or DS9 that records every table and image it is sent. Yields ``(got, event)``: the ``(mtype,
    params)`` received, and an event set at each."""
    import threading

    from astroae_core.io import samp

    asamp = samp._astropy_samp()
    lock = folder / "hub.lock"
    mp.setenv("SAMP_HUB", f"std-lockurl:{lock.as_uri()}")
    hub = asamp.SAMPHubServer(web_profile=False, lockfile=str(lock), mode="single", pool_size=2)
    hub.start(wait=False)
    got, event, client = [], threading.Event(), None
    try:
        if client_name:
            client = asamp.SAMPIntegratedClient(name=client_name)
            client.connect()

            def record(private_key, sender_id, mtype, params, extra):
                got.append((mtype, params))
                event.set()

            def answer(private_key, sender_id, msg_id, mtype, params, extra):
                record(private_key, sender_id, mtype, params, extra)
                client.reply(msg_id, {"samp.status": "samp.ok", "samp.result": {}})

            for mtype in (samp.TABLE_MTYPE, samp.IMAGE_MTYPE):
                client.bind_receive_notification(mtype, record)
                client.bind_receive_call(mtype, answer)
        yield got, event
    finally:
        if client is not None:
            client.disconnect()
        hub.stop()
