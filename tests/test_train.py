import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from astroae_core.model import read_checkpoint
from train.__main__ import main as train_main
from train.config import FrozenNorm, TrainConfig, load_recipe
from train.loop import train

from .conftest import ROOT


def test_seed_recipe_is_the_seeds_recipe_exactly():
    cfg = load_recipe(ROOT / "train/configs/seed.toml")
    assert cfg.model.skip_mode == "unet" and cfg.model.channels == (16, 32, 64, 128) and cfg.model.latent_dim == 8
    assert (cfg.loss, cfg.lr, cfg.batch_size, cfg.epochs, cfg.checkpoint_every) == ("bce", 1e-3, 16, 150, 10)
    assert cfg.val_fraction == 0.2 and cfg.augment and cfg.preprocess.method == "minmax"


# What each recipe in train/configs/ resolved to before the defaults became the shipped recipes' and the
# frozen-statistics settings moved into [train.frozen_norm] (commit 0ed22ef): the recipes must train the same.
_RESOLVED_COMMON = {
    "model.in_size": 187, "model.latent_dim": 8, "model.skip_dropout": 0.5, "preprocess.size": 187,
    "preprocess.method": "minmax", "preprocess.asinh_softening": 3.0, "preprocess.asinh_min_sigma": 5.0,
    "preprocess.asinh_max_sigma": None, "preprocess.asinh_min_range_sigma": 10.0, "weight_decay": 0.0,
    "batch_size": 16, "val_fraction": 0.2, "seed": 0, "augment": True, "group_regex": "auto", "max_files": 0,
    "model.pca_anchor": False, "folds": 0, "fold": 0, "fainter": 0.0, "zoom": 0.0, "synthetic": 0,
    "synthetic_epochs": 0}
_SHIPPED = {"model.channels": [8, 16, 32, 64], "model.skip_mode": "none", "model.standardize_latent": True,
            "loss": "mse", "lr": 2e-3, "lr_schedule": "cosine", "decorrelation": 1.0, "threads": 1}
_SEED = {"model.skip_mode": "unet", "model.standardize_latent": False, "loss": "bce", "lr": 1e-3,
         "lr_schedule": "constant", "decorrelation": 0.0, "threads": 0, "frozen_norm.epochs": 0,
         "frozen_norm.warmup_epochs": 0, "frozen_norm.lr_scale": 1.0}
RESOLVED = {
    "ceers.toml": {**_SHIPPED, "epochs": 120, "checkpoint_every": 20, "frozen_norm.epochs": 110,
                   "frozen_norm.warmup_epochs": 0, "frozen_norm.lr_scale": 1.0},
    "ceers-pca.toml": {**_SHIPPED, "model.pca_anchor": True, "fainter": 0.5, "zoom": 0.3, "val_fraction": 0.0,
                       "synthetic": 8000, "synthetic_epochs": 4,
                       "epochs": 20, "checkpoint_every": 20, "frozen_norm.epochs": 10, "frozen_norm.warmup_epochs": 0,
                       "frozen_norm.lr_scale": 1.0},
    "demo.toml": {**_SHIPPED, "epochs": 48, "checkpoint_every": 8, "frozen_norm.epochs": 40,
                  "frozen_norm.warmup_epochs": 2, "frozen_norm.lr_scale": 0.35},
    "demo-unet.toml": {**_SEED, "model.channels": [8, 16, 32, 64], "epochs": 2, "checkpoint_every": 1},
    "seed.toml": {**_SEED, "model.channels": [16, 32, 64, 128], "epochs": 150, "checkpoint_every": 10},
}


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
    return out


@pytest.mark.parametrize("name", sorted(RESOLVED))
def test_each_recipe_resolves_to_the_values_it_always_had(name):
    assert _flat(load_recipe(ROOT / "train/configs" / name).to_dict()) == {**_RESOLVED_COMMON, **RESOLVED[name]}


def test_the_defaults_are_what_the_shipped_recipes_share():
    d = _flat(TrainConfig().to_dict())
    assert {k: d[k] for k in {**_RESOLVED_COMMON, **_SHIPPED}} == {**_RESOLVED_COMMON, **_SHIPPED}
    assert TrainConfig().frozen_norm.epochs == 0  # where ceers.toml and demo.toml differ, off


def test_every_shipped_recipe_loads():
    recipes = sorted((ROOT / "train/configs").glob("*.toml"))
    assert recipes
    for path in recipes:
        assert isinstance(load_recipe(path), TrainConfig)


def test_every_benchmark_variant_loads():
    variants = sorted((ROOT / "benchmarks/variants").glob("*.toml"))
    assert variants
    for path in variants:
        assert isinstance(load_recipe(path), TrainConfig)


def test_bad_recipes_name_the_file_and_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nlerning_rate = 1\n")
    with pytest.raises(ValueError, match=r"bad.toml.*lerning_rate"):
        load_recipe(bad)
    bad.write_text("[train]\nloss = 'hinge'\n")
    with pytest.raises(ValueError, match=r"bad.toml.*'hinge'"):
        load_recipe(bad)


def test_dry_run_prints_the_plan_and_writes_nothing(blob_folder, tiny_recipe, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main(["--config", str(tiny_recipe()), "--data", str(blob_folder), "--out", str(out),
                       "--epochs", "7", "--skip-mode", "unet", "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["fits_files"] == 24 and plan["config"]["epochs"] == 7
    assert plan["config"]["model"]["skip_mode"] == "unet"
    assert not out.exists()


def test_cli_errors_are_messages_not_tracebacks(tmp_path, tiny_recipe, capsys):
    assert train_main(["--config", str(tiny_recipe()), "--data", str(tmp_path / "none"), "--out", "x"]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_training_writes_the_run_folder_and_the_loss_falls(blob_folder, tiny_recipe, tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main(["--config", str(tiny_recipe(epochs=4)), "--data", str(blob_folder),
                       "--out", str(out), "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["epochs"] == 4 and summary["train_images"] + summary["val_images"] == 24
    names = sorted(p.name for p in out.iterdir())
    assert names == ["best.pt", "config.json", "epoch_002.pt", "epoch_004.pt", "history.json", "last.pt"]
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert {"train_loss", "val_loss", "val_mse", "val_ssim", "val_ms_ssim", "val_latent_mse"} <= set(history[0])
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["history"] == history and ckpt["epoch"] == 4
    data = ckpt["data"]
    # the 3 files of a group (obj_<group>_...) always land on the same side of the split
    side = {}
    for name in data["train_paths"] + data["val_paths"]:
        side.setdefault(name.split("_")[1], set()).add(name in data["val_paths"])
    assert all(len(s) == 1 for s in side.values()) and len(data["val_paths"]) == 6
    best = read_checkpoint(out / "best.pt")
    assert best["best_val_loss"] == min(h["val_loss"] for h in history)


@pytest.mark.parametrize("fainter, synthetic", [(0.0, 0), (0.5, 0), (0.0, 16)])
def test_resume_ends_where_an_uninterrupted_run_would(blob_folder, tiny_recipe, tmp_path, fainter, synthetic):
    # with synthetic galaxies: the pretraining runs once, before epoch 1, and a resumed run does not repeat it
    cfg = load_recipe(tiny_recipe(skip_mode="dropout", epochs=4)).replace(
        lr_schedule="cosine", fainter=fainter, synthetic=synthetic, synthetic_epochs=1 if synthetic else 0)
    straight = train(cfg, blob_folder, tmp_path / "a")
    train(cfg, blob_folder, tmp_path / "b", stop_after_epochs=2)
    assert read_checkpoint(tmp_path / "b/last.pt")["epoch"] == 2
    with pytest.raises(FileExistsError, match="already holds a run"):
        train(cfg, blob_folder, tmp_path / "b")
    resumed = train(cfg, blob_folder, tmp_path / "b", resume=True)
    assert resumed.epochs_done == 4
    a = read_checkpoint(tmp_path / "a/last.pt")
    b = read_checkpoint(tmp_path / "b/last.pt")
    for k, v in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][k], v, rtol=0, atol=0, msg=k)
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]


def test_pretraining_on_synthetic_galaxies_changes_the_start_and_not_the_run_s_own_draws(blob_folder, tiny_recipe,
                                                                                       tmp_path):
    cfg = load_recipe(tiny_recipe(skip_mode="dropout", epochs=1))  # skip dropout draws from the global generator
    plain = train(cfg, blob_folder, tmp_path / "plain")
    pre = train(cfg.replace(synthetic=16, synthetic_epochs=2), blob_folder, tmp_path / "pre")
    a, b = (read_checkpoint(r.run_dir / "last.pt") for r in (plain, pre))
    assert any(not torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    # the run's own generators are untouched by the pretraining: the same batches in the same order
    for gen in ("torch", "gen_shuffle", "gen_augment"):
        assert a["rng"][gen].equal(b["rng"][gen]), gen
    with pytest.raises(ValueError, match="synthetic and synthetic_epochs"):
        cfg.replace(synthetic=16)


def test_synthetic_galaxies_are_drawn_at_the_images_own_size_then_preprocessed(tiny_recipe, tmp_path, monkeypatch):
    import train.synthetic as synthetic  # "import train.synthetic" would rebind train, the function

    from .conftest import write_blob_folder

    folder = write_blob_folder(tmp_path / "big", 12, size=44, groups=3)  # the recipe's images are 32 a side
    asked, draw = {}, synthetic.synthetic_galaxies
    monkeypatch.setattr(synthetic, "synthetic_galaxies", lambda n, **kw: asked.update(kw) or draw(n, **kw))
    cfg = load_recipe(tiny_recipe(epochs=1)).replace(synthetic=16, synthetic_epochs=1)
    train(cfg, folder, tmp_path / "run")
    assert asked["size"] == 44 and cfg.preprocess.size == 32


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_finishes(blob_folder, tiny_recipe, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "train", "--config", str(tiny_recipe(epochs=40)), "--data", str(blob_folder),
           "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (out / "epoch_004.pt").exists():
            assert proc.poll() is None, "training ended before it could be killed"
            assert time.time() < deadline, "no checkpoint after 120 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        proc.kill()
    done = read_checkpoint(out / "last.pt")["epoch"]
    assert 3 <= done < 40  # epoch_004.pt is written just before last.pt, so the kill may land between them
    res = subprocess.run(cmd + ["--resume"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    final = read_checkpoint(out / "last.pt")
    assert final["epoch"] == 40
    assert [h["epoch"] for h in final["history"]] == list(range(1, 41))


def test_latent_correlation_penalty_by_hand():
    from train.loop import latent_correlation_penalty

    a = torch.tensor([1.0, -1.0, 1.0, -1.0])
    b = torch.tensor([1.0, 1.0, -1.0, -1.0])
    # Orthogonal centred columns: no correlation.
    assert float(latent_correlation_penalty(torch.stack([a, b], 1))) == pytest.approx(0.0, abs=1e-7)
    # A column and its negative and a scaled copy: every pair has |correlation| 1.
    assert float(latent_correlation_penalty(torch.stack([a, -a, 3 * a], 1))) == pytest.approx(1.0)
    # Two copies of a, one b: pairs (a, a) = 1, (a, b) = 0 twice -> mean over 6 ordered pairs = 2/6.
    assert float(latent_correlation_penalty(torch.stack([a, a, b], 1))) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="N >= 2"):
        latent_correlation_penalty(torch.zeros(1, 8))


def test_negative_decorrelation_weight_is_refused():
    with pytest.raises(ValueError, match="decorrelation"):
        TrainConfig(decorrelation=-1.0)


def test_freeze_batchnorm_makes_each_image_independent_of_its_batch():
    from astroae_core.model import AutoEncoder, ModelConfig
    from train.loop import freeze_batchnorm

    torch.manual_seed(0)
    model = AutoEncoder(ModelConfig(in_size=32, latent_dim=4, channels=(4, 8), standardize_latent=True)).train()
    x = torch.rand(6, 1, 32, 32)
    # Batch statistics: the first image's output depends on which other images share its batch.
    assert not torch.allclose(model(x[:3])["x_hat"][0], model(x[[0, 3, 4]])["x_hat"][0])
    n_bn = sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert freeze_batchnorm(model) == n_bn == 2 * 2 + 2 + 2 * 1 + 1  # encoder blocks, bottom, decoder, latent
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    a, b = model(x[:3]), model(x[[0, 3, 4]])
    torch.testing.assert_close(a["x_hat"][0], b["x_hat"][0])
    torch.testing.assert_close(a["z"][0], model.eval()(x[:1])["z"][0])  # exactly what evaluation computes
    for k, v in model.state_dict().items():
        if "running" in k:
            torch.testing.assert_close(v, stats[k], rtol=0, atol=0, msg=k)
    # Weights still get gradients: the scales and shifts keep training.
    model.train()
    freeze_batchnorm(model)
    model(x)["x_hat"].mean().backward()
    assert model.enc[0][1].weight.grad is not None and model.enc[0][0].weight.grad.abs().sum() > 0


def test_frozen_norm_epochs_freeze_the_statistics_of_the_last_epochs_only(blob_folder, tiny_recipe, tmp_path):
    cfg = load_recipe(tiny_recipe(epochs=3)).replace(frozen_norm_epochs=1)
    train(cfg, blob_folder, tmp_path / "run")
    e2 = read_checkpoint(tmp_path / "run/epoch_002.pt")["state_dict"]
    e3 = read_checkpoint(tmp_path / "run/epoch_003.pt")["state_dict"]
    running = [k for k in e3 if "running_" in k]
    assert running
    for k in running:  # epoch 3 is frozen: its statistics are epoch 2's
        torch.testing.assert_close(e3[k], e2[k], rtol=0, atol=0, msg=k)
    assert any(not torch.equal(e3[k], e2[k]) for k in e3 if k.endswith("weight"))  # while the weights trained
    # Adam starts afresh at the switch: its step count is one epoch's, where a run without freezing has three.
    plain = train(cfg.replace(frozen_norm_epochs=0), blob_folder, tmp_path / "plain")
    assert plain.epochs_done == 3
    steps = [read_checkpoint(tmp_path / f"{run}/last.pt")["optimizer"]["state"][0]["step"] for run in ("run", "plain")]
    assert 3 * float(steps[0]) == float(steps[1]) > 0


def test_frozen_norm_epochs_must_fit_in_the_run():
    with pytest.raises(ValueError, match="frozen_norm.epochs.*epochs=5.*6"):
        TrainConfig(epochs=5, frozen_norm=FrozenNorm(epochs=6))
    with pytest.raises(ValueError, match="frozen_norm.epochs"):
        TrainConfig(frozen_norm=FrozenNorm(epochs=-1))


def test_learning_rate_warms_up_and_scales_after_the_switch_to_frozen_statistics():
    from train.loop import _learning_rate

    cfg = TrainConfig(epochs=10, frozen_norm=FrozenNorm(epochs=4, warmup_epochs=2), lr=1.0, lr_schedule="constant")
    # epochs 7-10 are frozen; over epochs 7 and 8 (4 steps each) the rate climbs 1/8, 2/8, ... 8/8
    lrs = {(e, s): _learning_rate(cfg, e, s, 4) for e in range(1, 11) for s in range(4)}
    assert [lrs[(7, s)] for s in range(4)] + [lrs[(8, s)] for s in range(4)] == [k / 8 for k in range(1, 9)]
    assert all(lrs[(e, s)] == 1.0 for e in (1, 6, 9, 10) for s in range(4))
    cosine = cfg.replace(lr_schedule="cosine")
    assert _learning_rate(cosine, 1, 0, 4) == 1.0 and _learning_rate(cosine, 6, 0, 4) == pytest.approx(0.5)
    assert _learning_rate(cosine, 7, 0, 4) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.6)) / 8)
    assert _learning_rate(cfg.replace(frozen_norm_warmup_epochs=0), 7, 0, 4) == 1.0
    # frozen_norm.lr_scale lowers the frozen epochs' rate only, warm-up included
    scaled = cfg.replace(frozen_norm_lr_scale=0.25)
    assert _learning_rate(scaled, 6, 3, 4) == 1.0 and _learning_rate(scaled, 9, 0, 4) == 0.25
    assert _learning_rate(scaled, 7, 1, 4) == pytest.approx(0.25 * 2 / 8)
    with pytest.raises(ValueError, match="frozen_norm.lr_scale must be in \\(0, 1\\], got 0"):
        cfg.replace(frozen_norm_lr_scale=0)
    with pytest.raises(ValueError, match="frozen_norm.warmup_epochs must be in .*frozen_norm.epochs=4.*5"):
        cfg.replace(frozen_norm_warmup_epochs=5)


def test_training_reports_progress_and_each_epoch(blob_folder, tiny_recipe, tmp_path):
    calls, rows = [], []
    res = train(load_recipe(tiny_recipe(epochs=2)), blob_folder, tmp_path / "run",
                progress=lambda done, total, stage: calls.append((done, total, stage)), on_epoch=rows.append)
    assert rows == res.history and [r["epoch"] for r in rows] == [1, 2]
    epoch_calls = [c for c in calls if c[2].startswith("epoch ")]
    stages = sorted({c[2] for c in epoch_calls})
    assert stages == ["epoch 1/2", "epoch 2/2"]
    # counted in images: each epoch ends with done == total == the steps' images
    last = [c for c in epoch_calls if c[2] == "epoch 2/2"][-1]
    assert last[0] == last[1] == res.n_train // 4 * 4


def test_retired_training_options_are_accepted_at_their_remaining_value_only(tmp_path):
    from astroae_core.model import RETIRED_IN

    old = {"channels_last": True, "early_stopping_patience": 0, "freeze_latent_norm_after": 0}
    assert TrainConfig.from_dict({"train": old}) == TrainConfig()
    for name, value in (("channels_last", False), ("early_stopping_patience", 5), ("freeze_latent_norm_after", 3)):
        recipe = tmp_path / f"{name}.toml"
        recipe.write_text(f"[train]\n{name} = {str(value).lower()}\n")
        with pytest.raises(ValueError, match=f"{name}.toml.*{name} = {value!r} was retired.*commit {RETIRED_IN}"):
            load_recipe(recipe)


def test_stored_train_configs_of_older_versions_read_as_they_were_written():
    # flat freeze_* keys, retired keys at their remaining value, and keys missing that were not there yet
    old = {"loss": "mse", "epochs": 48, "freeze_norm_epochs": 40, "freeze_warmup_epochs": 2, "freeze_lr_scale": 0.35,
           "channels_last": True, "model": {"channels": [8, 16, 32, 64], "conv_norm": "batch"},
           "preprocess": {"method": "minmax", "size": 187}}
    cfg = TrainConfig.from_stored(old)
    assert cfg.frozen_norm == FrozenNorm(epochs=40, warmup_epochs=2, lr_scale=0.35)
    assert (cfg.lr, cfg.lr_schedule, cfg.decorrelation, cfg.threads) == (1e-3, "constant", 0.0, 0)
    assert cfg.model.standardize_latent is False and cfg.model.channels == (8, 16, 32, 64)
    assert TrainConfig.from_stored(cfg.to_dict()) == cfg == TrainConfig.from_dict(cfg.to_dict())


@pytest.mark.parametrize("kind", ["fainter", "zoom"])
def test_views_are_trained_on_and_their_share_is_checked(blob_folder, tiny_recipe, tmp_path, monkeypatch, kind):
    import train.loop as loop

    seen = {}
    step = loop.optimizer_step

    def recording(net, opt, cfg, xb):
        # sorted pixels: the same whatever flip or rotation the symmetry augmentation chose
        seen.setdefault(getattr(cfg, kind), set()).update(tuple(np.sort(x.ravel().numpy()).round(6)) for x in xb)
        return step(net, opt, cfg, xb)

    monkeypatch.setattr(loop, "optimizer_step", recording)
    cfg = load_recipe(tiny_recipe(epochs=2))
    train(cfg, blob_folder, tmp_path / "plain")
    train(cfg.replace(**{kind: 1.0}), blob_folder, tmp_path / "views")
    assert len(seen[0.0]) > 8 and len(seen[1.0]) > 8
    assert not seen[0.0] & seen[1.0]  # every image shown was a view
    with pytest.raises(ValueError, match=f"{kind} must be a share in \\[0, 1\\], got 1.5"):
        cfg.replace(**{kind: 1.5})
