import os
import pickle

import pytest
import torch

from astroae_core import load_model
from astroae_core.model import CheckpointError, read_checkpoint, save_checkpoint
from astroae_core.model import AutoEncoder, ModelConfig
from astroae_core.data import PreprocessConfig

SMALL = ModelConfig(in_size=32, channels=(4, 8), latent_dim=3, skip_mode="dropout")


def _model():
    torch.manual_seed(0)
    return AutoEncoder(SMALL, preprocess_config=PreprocessConfig(size=32, method="minmax"))


def test_round_trip_rebuilds_the_same_model_from_plain_data(tmp_path):
    m = _model().eval()
    path = save_checkpoint(tmp_path / "m.pt", m.to(memory_format=torch.channels_last), history=[{"epoch": 1}])
    raw = torch.load(path, weights_only=True)  # plain data only: the safe loader accepts it
    assert raw["model_config"]["skip_mode"] == "dropout" and raw["history"] == [{"epoch": 1}]
    loaded = load_model(path)
    assert not loaded.training
    assert loaded.config == SMALL and loaded.preprocess_config == PreprocessConfig(size=32, method="minmax")
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        # (channels_last vs NCHW kernels may differ in the last bits)
        torch.testing.assert_close(loaded(x)["x_hat"], m(x)["x_hat"], atol=1e-6, rtol=1e-5)
    assert len(loaded.checkpoint_info["sha256"]) == 64
    assert loaded.checkpoint_info["path"] == str(path) and loaded.checkpoint_info["history"] == [{"epoch": 1}]


def test_a_model_built_in_memory_has_an_empty_checkpoint_info():
    assert _model().checkpoint_info == {}


def test_a_checkpoint_with_a_retired_option_in_use_is_refused_naming_it(tmp_path):
    from astroae_core.model import RETIRED_IN

    path = save_checkpoint(tmp_path / "m.pt", _model())
    ckpt = torch.load(path, weights_only=True)
    ckpt["model_config"]["upsample"] = "bilinear"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=f"m.pt.*upsample = 'bilinear' was retired.*{RETIRED_IN}"):
        load_model(path)


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = _Exploit()
    _Exploit.marker = marker
    payload = {"format": "astroae-checkpoint/1", "model_config": {}, "preprocess_config": {}, "state_dict": {},
               "x": evil}
    path = tmp_path / "evil.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="evil.pt.*could run code"):
        load_model(path)
    assert not marker.exists()


def test_wrong_shapes_missing_config_and_garbage_give_clear_errors(tmp_path):
    good = save_checkpoint(tmp_path / "good.pt", _model())
    ckpt = read_checkpoint(good)

    ckpt["model_config"] = {**ckpt["model_config"], "latent_dim": 5}
    torch.save(ckpt, tmp_path / "shapes.pt")
    with pytest.raises(CheckpointError, match="shapes.pt.*do not match"):
        load_model(tmp_path / "shapes.pt")

    del ckpt["model_config"]
    torch.save(ckpt, tmp_path / "noconfig.pt")
    with pytest.raises(CheckpointError, match=r"noconfig.pt.*missing \['model_config'\]"):
        load_model(tmp_path / "noconfig.pt")

    data = good.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pt"):
        load_model(tmp_path / "cut.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(CheckpointError, match="text.pt"):
        load_model(tmp_path / "text.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nope.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an astroae checkpoint"):
        load_model(tmp_path / "other.pt")


def test_a_failed_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "m.pt", _model(), epoch=1)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, _model(), epoch=2)
    monkeypatch.undo()
    assert read_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temp file left behind


def test_atomic_files_get_ordinary_permissions(tmp_path):
    import os

    from astroae_core.io import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
