import pytest
import torch

from astroae_core.model import AutoEncoder, ModelConfig, count_parameters


def test_default_config_is_the_seed_architecture():
    c = ModelConfig()
    assert (c.in_size, c.latent_dim, c.channels) == (187, 8, (16, 32, 64, 128))
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
    assert ModelConfig.from_dict(d).standardize_latent is False


def test_bottleneck_hidden_layer_adds_exactly_its_weights_and_round_trips(tmp_path):
    from astroae_core.model import load_model, save_checkpoint

    base = ModelConfig(in_size=32, channels=(4, 8, 8), latent_dim=3, skip_mode="none")
    deep = ModelConfig(in_size=32, channels=(4, 8, 8), latent_dim=3, skip_mode="none", bottleneck_hidden=5)
    flat = 8 * 8 * 8  # 8 channels at 32 >> 2 = 8 pixels a side
    # One linear map each way: flat*3 + 3 and 3*flat + flat. With a hidden layer of 5: flat*5 + 5 + 5*3 + 3 and
    # 3*5 + 5 + 5*flat + flat.
    extra = (flat * 5 + 5 + 5 * 3 + 3 + 3 * 5 + 5 + 5 * flat + flat) - (flat * 3 + 3 + 3 * flat + flat)
    assert count_parameters(AutoEncoder(deep)) - count_parameters(AutoEncoder(base)) == extra
    torch.manual_seed(0)
    m = AutoEncoder(deep).eval()
    x = torch.rand(2, 1, 32, 32)
    save_checkpoint(tmp_path / "deep.pt", m)
    back = load_model(tmp_path / "deep.pt").eval()
    assert back.config.bottleneck_hidden == 5
    with torch.no_grad():
        assert torch.equal(m(x)["x_hat"], back(x)["x_hat"])
    with pytest.raises(ValueError, match="bottleneck_hidden must be >= 0, got -1"):
        ModelConfig(bottleneck_hidden=-1)


@pytest.mark.parametrize("mode", ["none", "unet", "dropout"])
def test_latent_broadcast_feeds_the_decoder_z_and_coordinates(mode):
    cfg = ModelConfig(in_size=32, channels=(4, 8), latent_dim=3, skip_mode=mode, latent_broadcast=True)
    m = AutoEncoder(cfg).eval()
    # the deepest block takes 8 decoded channels (+ 8 skip channels) + 3 latent copies + 2 coordinates
    assert m.bottom[0].in_channels == 8 * (1 if mode == "none" else 2) + 3 + 2
    torch.manual_seed(0)
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        out = m(x)
        assert out["x_hat"].shape == (2, 1, 32, 32)
        z = out["z"].clone()
        z[:, 0] += 1.0
        assert not torch.allclose(m.decode(z), m.decode(out["z"]))


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


@pytest.mark.parametrize("norm", ["batch", "group", "none"])
def test_conv_norm_picks_the_normalization_and_round_trips(norm, tmp_path):
    from astroae_core.model import load_model, save_checkpoint

    cfg = ModelConfig(in_size=32, channels=(4, 8), latent_dim=3, skip_mode="none", conv_norm=norm)
    m = AutoEncoder(cfg)
    kinds = {type(mod) for mod in m.modules()}
    assert (torch.nn.BatchNorm2d in kinds) == (norm == "batch")
    assert (torch.nn.GroupNorm in kinds) == (norm == "group")
    # A convolution has a bias only where no normalization follows it to supply the shift.
    assert all((conv.bias is not None) == (norm == "none") for conv in m.enc[0] if isinstance(conv, torch.nn.Conv2d))
    torch.manual_seed(0)
    x = torch.rand(2, 1, 32, 32)
    m.eval()
    back = load_model(save_checkpoint(tmp_path / "m.pt", m))
    assert back.config.conv_norm == norm
    with torch.no_grad():
        out = m(x)
        assert out["x_hat"].shape == (2, 1, 32, 32)
        torch.testing.assert_close(back(x)["x_hat"], out["x_hat"], rtol=0, atol=0)
    if norm != "batch":  # each image on its own: its reconstruction does not depend on its batch, even in training
        m.train()
        with torch.no_grad():
            torch.testing.assert_close(m(x[:1])["x_hat"], m(x)["x_hat"][:1], rtol=1e-5, atol=1e-6)


def test_conv_norm_default_is_batchnorm_for_old_checkpoints_and_bad_values_are_named():
    d = ModelConfig().to_dict()
    del d["conv_norm"]
    assert ModelConfig.from_dict(d).conv_norm == "batch"
    with pytest.raises(ValueError, match="conv_norm must be one of .* got 'layer'"):
        ModelConfig(conv_norm="layer")


def test_bilinear_upsampling_replaces_the_transposed_convolutions_and_round_trips(tmp_path):
    from astroae_core.model import load_model, save_checkpoint
    from astroae_core.model.network import BilinearUp, TransposedUp

    base = dict(in_size=37, channels=(4, 8, 8), latent_dim=3, skip_mode="none")  # odd sizes: 37 -> 18 -> 9
    t, b = AutoEncoder(ModelConfig(**base)), AutoEncoder(ModelConfig(**base, upsample="bilinear"))
    assert all(isinstance(u, TransposedUp) for u in t.up) and all(isinstance(u, BilinearUp) for u in b.up)
    # per upsampling: a 2x2 kernel (c_in*c_out*4 + c_out) against a 1x1 one (c_in*c_out + c_out)
    assert count_parameters(t) - count_parameters(b) == (8 * 8 * 3) + (8 * 4 * 3)
    # a constant map stays constant through bilinear interpolation (no 2x2 pattern): the 1x1 projection's value
    up = b.up[0]
    h = torch.ones(1, 8, 9, 9)
    out = up(h, output_size=(18, 18))
    assert out.shape == (1, 8, 18, 18)
    expected = up.proj.weight.sum(dim=(1, 2, 3)) + up.proj.bias
    torch.testing.assert_close(out, expected.view(1, 8, 1, 1).expand(1, 8, 18, 18))
    torch.manual_seed(0)
    x = torch.rand(2, 1, 37, 37)
    b.eval()
    back = load_model(save_checkpoint(tmp_path / "b.pt", b))
    assert back.config.upsample == "bilinear"
    with torch.no_grad():
        assert b(x)["x_hat"].shape == (2, 1, 37, 37)
        torch.testing.assert_close(back(x)["x_hat"], b(x)["x_hat"], rtol=0, atol=0)
    with pytest.raises(ValueError, match="upsample must be one of .* got 'nearest'"):
        ModelConfig(upsample="nearest")
