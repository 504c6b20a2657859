"""The checkpoints in models/ are what a fresh user gets: each must load safely, decode, and be documented."""

import re

import pytest
import torch

from astroae_core.model import load_model, read_checkpoint
from train.config import TrainConfig, load_recipe

from .conftest import ROOT

SHIPPED = sorted((ROOT / "models").glob("*.pt"))


def test_the_default_and_the_seed_checkpoints_ship():
    names = {p.name for p in SHIPPED}
    assert {"demo.pt", "demo-unet.pt"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_checkpoint_loads_decodes_and_is_documented(path):
    model = load_model(path)  # weights_only=True inside
    assert not model.training
    z = torch.zeros(2, model.config.latent_dim)
    with torch.inference_mode():
        x = model.decode(z)
    s = model.config.in_size
    assert x.shape == (2, 1, s, s) and float(x.min()) >= 0 and float(x.max()) <= 1
    # Small enough to ship, and no optimizer state riding along.
    assert path.stat().st_size < 8_000_000
    ckpt = read_checkpoint(path)
    assert "optimizer" not in ckpt
    # The checkpoint carries the recipe it was trained with, and models/README.md names the file and a command
    # whose recipe exists in train/configs/.
    readme = (ROOT / "models" / "README.md").read_text()
    assert f"## models/{path.name}" in readme
    section = readme.split(f"## models/{path.name}", 1)[1].split("\n## ", 1)[0]
    recipe = re.search(r"--config (train/configs/\S+\.toml)", section)
    assert recipe and (ROOT / recipe.group(1)).is_file()
    # ... and that recipe, today, is still the one the checkpoint was trained with.
    assert TrainConfig.from_dict(ckpt["train_config"]) == load_recipe(ROOT / recipe.group(1))
