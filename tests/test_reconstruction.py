"""One image through a model (astroae_core.analysis.reconstruction): one forward pass gives the full and the
latent-only reconstruction, in flux units, measured; latents decoded from the latent alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from astroae_core.analysis import Reconstruction, decode_latents, reconstruct
from astroae_core.data import PreprocessConfig
from astroae_core.model import AutoEncoder, ModelConfig

from .conftest import blob_image


def _model(skip_mode: str) -> AutoEncoder:
    torch.manual_seed(0)
    cfg = ModelConfig(in_size=32, latent_dim=4, channels=(4, 8), skip_mode=skip_mode)
    return AutoEncoder(cfg, preprocess_config=PreprocessConfig(size=32, method="minmax")).eval()


@pytest.mark.parametrize("skip_mode", ["unet", "none"])
def test_reconstruct_one_forward_gives_both_reconstructions_in_flux_units(skip_mode, monkeypatch):
    model = _model(skip_mode)
    image = blob_image(np.random.default_rng(0), 40)  # not the model's size: mapped back to 40x40
    image[3, 5] = np.nan
    calls = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda x: calls.append(1) or forward(x))
    monkeypatch.setattr(model, "decode", lambda *a, **k: pytest.fail("reconstruct decodes in its one forward"))
    rec = reconstruct(model, image)
    assert len(calls) == 1
    assert isinstance(rec, Reconstruction) and rec.skip_mode == skip_mode
    assert rec.x.shape == rec.x_hat.shape == (32, 32) and rec.z.shape == (4,)
    assert rec.flux.shape == rec.flux_hat.shape == (40, 40) and np.isfinite(rec.flux).all()
    # the reconstruction in flux units is the model-unit one mapped back by the image's own normalization
    np.testing.assert_allclose(rec.flux_hat, rec.norm.invert(rec.x_hat, to_original_shape=True))
    assert rec.metrics["mse"] == pytest.approx(float(np.mean((rec.x - rec.x_hat) ** 2)), rel=1e-5)
    assert set(rec.metrics) == {"mse", "psnr", "ssim", "ms_ssim"}
    with torch.inference_mode():
        out = forward(torch.from_numpy(rec.x[None, None]))
    if skip_mode == "none":  # the latent-only reconstruction is the full one: not shown twice
        assert rec.x_latent is None and rec.flux_latent is None and rec.metrics_latent is None
    else:
        np.testing.assert_allclose(rec.x_latent, out["x_hat_latent"][0, 0].numpy(), rtol=0, atol=1e-6)
        assert rec.flux_latent.shape == (40, 40) and set(rec.metrics_latent) == set(rec.metrics)
        assert not np.allclose(rec.x_latent, rec.x_hat)


def test_reconstruct_refuses_a_model_in_training_mode():
    model = _model("unet").train()
    with pytest.raises(ValueError, match="evaluation mode"):
        reconstruct(model, np.ones((32, 32), np.float32))


def test_decode_latents_is_the_latent_only_decoder():
    model = _model("unet")
    z = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    out = decode_latents(model, z)
    assert out.shape == (3, 32, 32) and out.dtype == np.float32
    with torch.inference_mode():
        np.testing.assert_allclose(out, model.decode(torch.from_numpy(z))[:, 0].numpy())
    assert decode_latents(model, z[0]).shape == (1, 32, 32)  # one latent (D,) is a batch of one
    np.testing.assert_allclose(decode_latents(model, z[0])[0], out[0], rtol=1e-4, atol=1e-5)
