"""A decoder anchored on PCA: it starts exactly at PCA-k, stores its basis with the weights, and fits that basis on
the training images only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from astroae_core.model import AutoEncoder, ModelConfig, fused_for_inference, load_model, save_checkpoint
from train.config import TrainConfig, load_recipe

CFG = ModelConfig(in_size=32, latent_dim=4, channels=(4, 8), pca_anchor=True)


def anchored(x: torch.Tensor) -> tuple[AutoEncoder, PCA]:
    torch.manual_seed(0)
    model = AutoEncoder(CFG)
    pca = PCA(4, svd_solver="randomized", random_state=0).fit(x.reshape(len(x), -1).numpy())
    model.set_pca_basis(pca.mean_, pca.components_, np.sqrt(pca.explained_variance_))
    return model.eval(), pca


def test_a_new_anchored_model_is_exactly_pca():
    x = torch.rand(40, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    model, pca = anchored(x)
    with torch.no_grad():
        out = model(x)
    rec = np.clip(pca.inverse_transform(pca.transform(x.reshape(40, -1).numpy())), 0, 1).reshape(x.shape)
    np.testing.assert_allclose(out["x_hat_latent"].numpy(), rec, atol=1e-5)
    np.testing.assert_allclose(out["z"].std(0).numpy(), 1.0, rtol=1e-3)  # standardized by the PCA scales
    assert out["x_hat"] is out["x_hat_latent"] and set(out) >= {"x_hat", "x_hat_latent", "z", "logits"}
    np.testing.assert_allclose(model.decode(model.encode(x)).detach().numpy(), rec, atol=1e-5)


def test_the_basis_travels_in_the_checkpoint_and_survives_fusing(tmp_path):
    x = torch.rand(20, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    model, _ = anchored(x)
    with torch.no_grad():
        model.encoder_gate.fill_(0.3)
        model.decoder_gate.fill_(0.3)
        ref = model(x)["x_hat"]
    assert {"pca_mean", "pca_components", "pca_scale"} <= set(model.state_dict())
    save_checkpoint(tmp_path / "m.pt", model)
    loaded = load_model(tmp_path / "m.pt")
    with torch.no_grad():
        np.testing.assert_allclose(loaded(x)["x_hat"].numpy(), ref.numpy(), atol=1e-6)
        np.testing.assert_allclose(fused_for_inference(loaded)(x)["x_hat"].numpy(), ref.numpy(), atol=1e-5)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="skip_mode"):
        ModelConfig(pca_anchor=True, skip_mode="unet")
    with pytest.raises(ValueError, match="bce"):
        TrainConfig(model=ModelConfig(in_size=187, pca_anchor=True), loss="bce")
    with pytest.raises(ValueError, match="pca_anchor"):
        AutoEncoder(ModelConfig(in_size=32, channels=(4, 8))).set_pca_basis(0, 0, 0)


def test_training_fits_the_basis_on_the_training_images_only(tmp_path, tiny_recipe):
    from astroae_core.analysis import training_images
    from train.loop import train

    from .conftest import write_blob_folder

    data = write_blob_folder(tmp_path / "blobs", 24, groups=3)
    cfg = load_recipe(tiny_recipe(epochs=1)).replace(model_pca_anchor=True)
    train(cfg, data, tmp_path / "run")
    model = load_model(tmp_path / "run" / "last.pt")
    x_train = training_images(model, data).x
    assert len(x_train) < 24
    pca = PCA(4, svd_solver="randomized", random_state=cfg.seed).fit(x_train.reshape(len(x_train), -1))
    np.testing.assert_allclose(model.pca_mean.numpy(), pca.mean_, atol=1e-6)
    np.testing.assert_allclose(np.abs(model.pca_components.numpy()), np.abs(pca.components_), atol=1e-5)
