import pytest
import torch

from astroae_core.model import AutoEncoder, ModelConfig, count_parameters


def test_default_config_is_the_shipped_architecture():
    c = ModelConfig()
    assert (c.in_size, c.latent_dim, c.channels) == (187, 8, (8, 16, 32, 64))
    assert (c.skip_mode, c.standardize_latent) == ("none", True)
    assert c.sizes == (187, 93, 46, 23)


@pytest.mark.parametrize("mode", ["unet", "none", "dropout"])
def test_forward_returns_named_outputs_of_the_right_shape(mode):
    torch.manual_seed(0)
    m = AutoEncoder(ModelConfig(skip_mode=mode)).eval()
    x = torch.rand(2, 1, 187, 187)
    with torch.no_grad():
        out = m(x)
        assert set(out) == {"x_hat", "x_hat_latent", "logits", "logits_latent", "z"}
        assert out["x_hat"].shape == (2, 1, 187, 187) and out["z"].shape == (2, 8)
        assert float(out["x_hat"].min()) >= 0 and float(out["x_hat"].max()) <= 1
        assert torch.equal(m.encode(x), out["z"])
        assert m.decode(out["z"]).shape == (2, 1, 187, 187)
        torch.testing.assert_close(out["x_hat_latent"], m.decode(out["z"]), rtol=0, atol=0)
        torch.testing.assert_close(out["x_hat_latent"], torch.sigmoid(out["logits_latent"]), rtol=0, atol=0)
        # without skips the latent-only reconstruction is the full one, the same tensor, not a second decode
        assert (out["x_hat_latent"] is out["x_hat"]) == (mode == "none")


@pytest.mark.parametrize("mode", ["unet", "dropout"])
def test_training_forward_of_a_skip_model_leaves_out_the_latent_only_pass(mode):
    m = AutoEncoder(ModelConfig(in_size=32, channels=(4, 8), skip_mode=mode)).train()
    before = m.bottom[1].num_batches_tracked.clone()
    out = m(torch.rand(4, 1, 32, 32))
    assert set(out) == {"x_hat", "logits", "z"}
    assert int(m.bottom[1].num_batches_tracked - before) == 1  # one decoder pass updated the statistics


def test_skip_models_have_more_parameters_and_decode_without_skips_differs():
    n = {mode: count_parameters(AutoEncoder(ModelConfig(skip_mode=mode))) for mode in ("unet", "none", "dropout")}
    assert n["unet"] == n["dropout"] > n["none"]
    torch.manual_seed(0)
    m = AutoEncoder(ModelConfig(in_size=32, channels=(4, 8), skip_mode="unet")).eval()
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        full = m(x)["x_hat"]
        alone = m.decode(m.encode(x))
        with_ref = m.decode(m.encode(x), skips=m.skip_features(x))
    assert not torch.allclose(full, alone)
    assert torch.allclose(full, with_ref)


def test_none_mode_forward_is_decode_of_encode():
    torch.manual_seed(0)
    m = AutoEncoder(ModelConfig(in_size=32, channels=(4, 8), skip_mode="none")).eval()
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(m(x)["x_hat"], m.decode(m.encode(x)))


def test_dropout_mode_with_certain_drop_trains_the_latent_only_path():
    torch.manual_seed(0)
    cfg = ModelConfig(in_size=32, channels=(4, 8), skip_mode="dropout", skip_dropout=1.0)
    m = AutoEncoder(cfg).train()
    x = torch.rand(4, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(m(x)["x_hat"], m.decode(m.encode(x)), atol=1e-6)
        m.eval()  # at inference the skips are used
        assert not torch.allclose(m(x)["x_hat"], m.decode(m.encode(x)))


def test_odd_sizes_round_trip_through_the_decoder():
    m = AutoEncoder(ModelConfig(in_size=45, channels=(2, 4, 8), latent_dim=3, skip_mode="unet")).eval()
    with torch.no_grad():
        assert m(torch.rand(1, 1, 45, 45))["x_hat"].shape == (1, 1, 45, 45)


def test_bad_inputs_name_the_problem():
    m = AutoEncoder(ModelConfig(in_size=32, channels=(4, 8)))
    with pytest.raises(ValueError, match=r"\(N, 1, 32, 32\).*\(1, 1, 31, 32\)"):
        m(torch.rand(1, 1, 31, 32))
    with pytest.raises(ValueError, match=r"z must have shape \(N, 8\)"):
        m.decode(torch.rand(2, 3))
    with pytest.raises(ValueError, match="skip_mode.*'bogus'"):
        ModelConfig(skip_mode="bogus")
    with pytest.raises(ValueError, match="unknown model config keys: \\['depth'\\]"):
        ModelConfig.from_dict({"depth": 3})


def test_config_round_trips_through_plain_dict():
    c = ModelConfig(latent_dim=5, channels=(8, 16), skip_mode="dropout", skip_dropout=0.3, in_size=40)
    d = c.to_dict()
    assert d["channels"] == [8, 16] and isinstance(d["channels"], list)
    assert ModelConfig.from_dict(d) == c


def test_standardized_latent_has_zero_mean_unit_variance_in_training_and_round_trips(tmp_path):
    from astroae_core.model import load_model, save_checkpoint

    torch.manual_seed(0)
    cfg = ModelConfig(in_size=32, channels=(4, 8), standardize_latent=True)
    model = AutoEncoder(cfg).train()
    x = torch.rand(64, 1, 32, 32)
    z = model(x)["z"]
    assert torch.allclose(z.mean(0), torch.zeros(8), atol=1e-5)
    assert torch.allclose(z.var(0, unbiased=False), torch.ones(8), atol=1e-3)
    # The running statistics are part of the model: a reloaded checkpoint encodes exactly alike.
    model.eval()
    save_checkpoint(tmp_path / "m.pt", model)
    again = load_model(tmp_path / "m.pt")
    assert again.config.standardize_latent
    assert torch.equal(again.encode(x[:3]), model.encode(x[:3]))


def test_checkpoints_without_standardize_latent_rebuild_with_it_off():
    d = ModelConfig().to_dict()
    del d["standardize_latent"]
    assert ModelConfig.from_stored(d).standardize_latent is False
    # a stored config lacking a key means what it meant when it was written, not today's default
    assert ModelConfig.from_stored({"skip_mode": "unet"}).channels == (16, 32, 64, 128)
    assert ModelConfig.from_stored(ModelConfig().to_dict()) == ModelConfig()


def test_retired_options_are_accepted_at_their_remaining_value_only():
    from astroae_core.model import RETIRED_IN

    old = {**ModelConfig().to_dict(), "conv_norm": "batch", "upsample": "transposed", "bottleneck_hidden": 0,
           "latent_broadcast": False}
    assert ModelConfig.from_stored(old) == ModelConfig.from_dict(old) == ModelConfig()
    for name, value in (("conv_norm", "group"), ("upsample", "bilinear"), ("bottleneck_hidden", 256),
                        ("latent_broadcast", True)):
        with pytest.raises(ValueError, match=f"{name} = {value!r} was retired.*commit {RETIRED_IN}"):
            ModelConfig.from_stored({**old, name: value})


def test_fused_for_inference_matches_and_keeps_the_checkpoint_info(tmp_path):
    from astroae_core.model import load_model, save_checkpoint
    from astroae_core.model import fused_for_inference

    torch.manual_seed(0)
    m = AutoEncoder(ModelConfig(in_size=32, channels=(4, 8), latent_dim=3, skip_mode="none",
                                standardize_latent=True))
    m.train()
    with torch.no_grad():  # running statistics away from 0 and 1, so that folding them in matters
        for _ in range(3):
            m(torch.rand(8, 1, 32, 32) * 0.5 + 0.2)
    back = load_model(save_checkpoint(tmp_path / "m.pt", m))
    fused = fused_for_inference(back)
    assert not any(isinstance(mod, torch.nn.BatchNorm2d) for mod in fused.modules())
    assert fused.checkpoint_info["sha256"] == back.checkpoint_info["sha256"]
    x = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(fused.encode(x), back.encode(x), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(fused(x)["x_hat"], back(x)["x_hat"], rtol=1e-4, atol=1e-5)
