"""Shared fixtures: tiny synthetic FITS folders, the real CEERS cutouts (beside the checkout), small recipes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

ROOT = Path(__file__).resolve().parents[1]
CEERS = ROOT.parent / "shared" / "data" / "ceers_jwst"


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
