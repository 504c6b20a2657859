"""The README's Python example runs exactly as written, on the shipped demo checkpoint and a generated image."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_the_readme_has_a_python_example():
    blocks = _python_blocks()
    assert blocks and "from astroae_core import read_fits, preprocess, load_model, FitsReadError" in blocks[0]


def test_the_public_names_are_the_functions_not_modules():
    import astroae_core.data  # importing every subpackage first must not shadow the exported names
    import astroae_core.io
    import astroae_core.model
    from astroae_core import FitsReadError, load_model, preprocess, read_fits

    assert all(callable(f) and not isinstance(f, type(os)) for f in (read_fits, preprocess, load_model))
    assert issubclass(FitsReadError, ValueError)


def test_the_readme_example_runs_as_written(tmp_path, monkeypatch):
    from astroae_core.demo import generate_demo_data

    generate_demo_data(tmp_path / "data" / "demo", n=1, seed=0, workers=1)
    (tmp_path / "models").symlink_to(ROOT / "models")
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    for block in _python_blocks():
        exec(compile(block, "README.md", "exec"), ns)  # noqa: S102 - the README is this repository's own text

    assert ns["image"].ndim == 2 and ns["image"].dtype == np.float32
    assert ns["x"].shape == (1, 187, 187) and 0.0 <= ns["x"].min() and ns["x"].max() <= 1.0
    assert np.allclose(ns["norm"].invert(ns["x"]), ns["image"], rtol=1e-4, atol=1e-3 * np.ptp(ns["image"]))
    out = ns["out"]
    assert set(out) >= {"x_hat", "x_hat_latent", "z"}
    assert out["x_hat"].shape == (1, 1, 187, 187) and out["z"].shape == (1, 8)
    torch.testing.assert_close(ns["z"], out["z"])
    torch.testing.assert_close(ns["x_hat"], out["x_hat_latent"])
    with pytest.raises(ns["FitsReadError"], match="not-a-fits"):
        (tmp_path / "not-a-fits.fits").write_bytes(b"PNG\x89 no FITS here")
        ns["read_fits"](tmp_path / "not-a-fits.fits")
