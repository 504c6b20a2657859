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
    assert TrainConfig.from_stored(ckpt["train_config"]) == load_recipe(ROOT / recipe.group(1))


# What each shipped checkpoint computed when it shipped (demo.pt and demo-unet.pt: before the retired model options
# were deleted, commit 0ed22ef; ceers.pt: the cross-validated recipe trained on all 100 galaxies, session 13): the
# sums of decode(z) for 3 seeded latents, of the full and the latent-only reconstructions of 2 seeded images, and
# the first image's latent.
REFERENCE = {
    "ceers.pt": (4980.742573, 35061.558989, 35061.558989,
                 [10.268521, -5.258629, 0.324209, 0.776446, 1.769039, -0.210178, 0.016182, -0.161845]),
    "demo.pt": (2506.901785, 61851.007028, 61851.007028,
                [-11.147554, -12.8902, 15.175589, -5.623177, 2.311524, 14.219865, 16.869381, 4.934109]),
    "demo-unet.pt": (1935.649154, 31956.565094, 1284.693678,
                     [299.136261, -181.532364, -190.999344, 206.911758, -182.608841, 215.097885, -151.133789,
                      19.408401]),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_shipped_checkpoint_computes_what_it_always_did(name):
    model = load_model(ROOT / "models" / name)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(3, model.config.latent_dim, generator=g)
    x = torch.rand(2, 1, 187, 187, generator=g)
    with torch.inference_mode():
        decoded, out = model.decode(z), model(x)
    got = (float(decoded.double().sum()), float(out["x_hat"].double().sum()),
           float(out["x_hat_latent"].double().sum()), out["z"][0].tolist())
    want = REFERENCE[name]
    assert got[:3] == pytest.approx(want[:3], rel=1e-5)
    assert got[3] == pytest.approx(want[3], rel=1e-4, abs=1e-4)
