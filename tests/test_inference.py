"""Latent influence (astroae_core.analysis.inference.measure_influence) checked against decoders whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from astroae_core.analysis import image_spread, measure_influence, run_model


class LinearDecoder(torch.nn.Module):
    """``decode(z) = W z + b`` reshaped to (N, 1, S, S): moving dimension d by t changes pixel p by t * W[p, d]."""

    def __init__(self, weight: np.ndarray, size: int):
        super().__init__()
        self.w = torch.nn.Parameter(torch.as_tensor(weight, dtype=torch.float32), requires_grad=False)
        self.size = size

    def decode(self, z):
        return (z @ self.w.T + 0.5).reshape(len(z), 1, self.size, self.size)


def _linear(seed: int = 0, size: int = 5, dims: int = 3):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(size * size, dims))
    return LinearDecoder(w, size), w


def test_image_spread_by_hand():
    assert image_spread(np.zeros((4, 3, 3))) == 0.0
    assert image_spread(np.array([[0.0], [1.0]])) == pytest.approx(0.5)
    assert image_spread(np.array([[0.0, 2.0], [2.0, 2.0]])) == pytest.approx(0.5)


def test_linear_decoder_gives_the_analytic_change():
    model, w = _linear()
    z = np.random.default_rng(1).normal(size=(40, 3)).astype(np.float32) * [1.0, 2.0, 0.5]
    out = measure_influence(model, z, max_images=40)
    sd = z.std(0)
    # +-2 sd along d changes every pixel by 2 sd |W[p, d]|, whatever the starting latent
    np.testing.assert_allclose(out["change"], 2 * sd * np.abs(w).mean(0), rtol=1e-4)
    decoded = (z.astype(np.float64) @ w.T)
    np.testing.assert_allclose(out["decoded_spread"], image_spread(decoded), rtol=1e-4)
    np.testing.assert_allclose(out["relative"], out["change"] / out["decoded_spread"], rtol=1e-6)
    assert out["vs_data"] is None and out["n_images"] == 40 and out["n_sigma"] == 2.0


def test_a_dimension_the_decoder_ignores_has_no_influence():
    model, w = _linear(dims=4)
    model.w.data[:, 2] = 0.0
    z = np.random.default_rng(2).normal(size=(30, 4)).astype(np.float32)
    out = measure_influence(model, z)
    assert out["change"][2] == 0.0 and out["relative"][2] == 0.0
    assert (np.delete(out["change"], 2) > 0.1).all()


def test_given_std_and_images_normalize_by_the_data():
    model, w = _linear()
    z = np.random.default_rng(3).normal(size=(50, 3)).astype(np.float32)
    images = np.random.default_rng(4).uniform(size=(50, 1, 5, 5)).astype(np.float32)
    std = np.array([1.0, 0.0, 3.0], dtype=np.float32)
    out = measure_influence(model, z, images=images, std=std, n_sigma=1.0, max_images=20, seed=5)
    np.testing.assert_allclose(out["change"], std * np.abs(w).mean(0), rtol=1e-4, atol=1e-7)
    rows = np.random.default_rng(5).choice(50, size=20, replace=False)  # the documented seeded sample
    assert out["data_spread"] == pytest.approx(image_spread(images[rows]), rel=1e-6)
    np.testing.assert_allclose(out["vs_data"], out["change"] / out["data_spread"], rtol=1e-6)
    assert out["decoded_vs_data"] == pytest.approx(out["decoded_spread"] / out["data_spread"], rel=1e-6)


@pytest.mark.parametrize("mode", ["none", "unet"])
def test_run_model_batches_full_and_latent_only_reconstructions(mode):
    import torch

    from astroae_core.model import AutoEncoder, ModelConfig

    torch.manual_seed(0)
    model = AutoEncoder(ModelConfig(in_size=32, channels=(4, 8), latent_dim=3, skip_mode=mode)).eval()
    x = np.random.default_rng(7).uniform(size=(5, 1, 32, 32)).astype(np.float32)
    calls = []
    out = run_model(model, x, batch_size=2, progress=lambda *c: calls.append(c))
    assert calls == [(2, 5, "inference"), (4, 5, "inference"), (5, 5, "inference")]
    assert out["z"].shape == (5, 3) and out["x_hat"].shape == out["x_hat_latent"].shape == (5, 1, 32, 32)
    with torch.no_grad():
        alone = model.decode(model.encode(torch.from_numpy(x))).numpy()
    np.testing.assert_allclose(out["x_hat_latent"], alone, rtol=1e-5, atol=1e-6)
    assert (out["x_hat_latent"] is out["x_hat"]) == (mode == "none")


def test_bad_shapes_are_named():
    model, _ = _linear()
    z = np.zeros((4, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="row for row"):
        measure_influence(model, z, images=np.zeros((3, 1, 5, 5)))
    with pytest.raises(ValueError, match="std must have shape"):
        measure_influence(model, z, std=[1.0, 2.0])
    with pytest.raises(ValueError, match="z must have shape"):
        measure_influence(model, np.zeros(3))
