"""Grouped k-fold cross-validation: folds disjoint by group, resumable fold results, the JSON's fields."""

from __future__ import annotations

import json

import numpy as np
import pytest

from astroae_core.data import group_keys, kfold_by_group
from train.config import load_recipe, with_epochs
from train.crossval import crossval

from .conftest import write_blob_folder


def test_folds_are_disjoint_by_group_and_cover_everything():
    rng = np.random.default_rng(3)
    groups = [f"g{g}" for g in rng.integers(0, 23, size=150)]
    folds = kfold_by_group(groups, n_folds=5, seed=7)
    assert len(folds) == 5
    vals = np.concatenate([v for _, v in folds])
    assert sorted(vals.tolist()) == list(range(150))  # every file scored exactly once
    for train_idx, val_idx in folds:
        assert set(train_idx).isdisjoint(val_idx) and len(train_idx) + len(val_idx) == 150
        assert {groups[i] for i in train_idx}.isdisjoint({groups[i] for i in val_idx})


def test_equal_groups_give_equal_folds_and_the_seed_matters_not_the_order():
    groups = [i // 7 for i in range(700)]  # 100 galaxies x 7 filters
    folds = kfold_by_group(groups, n_folds=5, seed=0)
    assert [len(v) for _, v in folds] == [140] * 5
    order = np.random.default_rng(1).permutation(700)
    shuffled = kfold_by_group([groups[i] for i in order], n_folds=5, seed=0)
    for (_, v), (_, vs) in zip(folds, shuffled):
        assert {groups[i] for i in v} == {groups[order[i]] for i in vs}
    other = kfold_by_group(groups, n_folds=5, seed=1)
    assert any(not np.array_equal(a[1], b[1]) for a, b in zip(folds, other))


@pytest.mark.parametrize("n_folds", [1, 0, 4])
def test_bad_fold_counts_are_refused(n_folds):
    with pytest.raises(ValueError, match="n_folds"):
        kfold_by_group(["a", "a", "b", "c"], n_folds=n_folds)


def test_with_epochs_keeps_the_batch_statistics_phase():
    cfg = load_recipe("train/configs/ceers.toml")
    short = with_epochs(cfg, 15)
    assert (short.epochs, short.frozen_norm.epochs) == (15, 5)  # the 10 batch-statistics epochs are kept
    assert with_epochs(cfg, 6).frozen_norm.epochs == 0
    assert with_epochs(cfg, None) is cfg


def test_crossval_trains_each_fold_on_its_own_split_and_reuses_results(tmp_path, tiny_recipe, monkeypatch):
    data = write_blob_folder(tmp_path / "blobs", 24, groups=3)
    cfg = load_recipe(tiny_recipe(epochs=2))
    res = crossval(cfg, data, tmp_path / "cv", folds=3, robustness=False)
    assert [r["fold"] for r in res["per_fold"]] == [0, 1, 2]
    for key in ("latent_vs_pca_mse", "latent_ssim", "pca_ssim", "effective_dim"):
        s = res["summary"][key]
        assert set(s) >= {"mean", "std", "min", "max", "values"} and len(s["values"]) == 3
        assert s["min"] <= s["mean"] <= s["max"]
    assert set(res["targets"]) >= {"mean_latent_vs_pca", "worst_fold_latent_vs_pca", "effective_dim"}
    json.dumps(res)  # plain data

    # Each fold validated on its own galaxies: together, every group once.
    from astroae_core.model import read_checkpoint

    val_groups = []
    for k in range(3):
        info = read_checkpoint(tmp_path / "cv" / f"fold_{k}" / "last.pt")["data"]
        tg = set(group_keys(info["train_paths"], group_regex=cfg.group_regex))
        vg = set(group_keys(info["val_paths"], group_regex=cfg.group_regex))
        assert tg.isdisjoint(vg)
        val_groups += sorted(vg)
    assert sorted(val_groups) == sorted(set(val_groups)) and len(val_groups) == 8

    # A second call trains nothing: the stored fold results are reused.
    import train.loop

    def refuse(*a, **k):
        raise AssertionError("a finished fold was trained again")

    monkeypatch.setattr(train.loop, "train", refuse)
    again = crossval(cfg, data, tmp_path / "cv", folds=3, robustness=False)
    assert again["summary"]["latent_vs_pca_mse"] == res["summary"]["latent_vs_pca_mse"]


def test_crossval_resumes_an_unfinished_fold_and_refuses_another_recipe(tmp_path, tiny_recipe):
    from train.loop import train

    data = write_blob_folder(tmp_path / "blobs", 18, groups=3)
    cfg = load_recipe(tiny_recipe(epochs=3))
    train(cfg.replace(folds=2, fold=0), data, tmp_path / "cv" / "fold_0", stop_after_epochs=1)  # "killed"
    res = crossval(cfg, data, tmp_path / "cv", folds=2, robustness=False)
    hist = json.loads((tmp_path / "cv" / "fold_0" / "history.json").read_text())
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    assert len(res["per_fold"]) == 2
    other = with_epochs(cfg, 4)
    (tmp_path / "cv" / "fold_0" / "eval.json").unlink()
    with pytest.raises(ValueError, match="another recipe"):
        crossval(other, data, tmp_path / "cv", folds=2, robustness=False)


def test_two_processes_can_share_the_folds(tmp_path, tiny_recipe):
    data = write_blob_folder(tmp_path / "blobs", 18, groups=3)
    cfg = load_recipe(tiny_recipe(epochs=1))
    part = crossval(cfg, data, tmp_path / "cv", folds=3, robustness=False, only_folds=[1])
    assert [r["fold"] for r in part["per_fold"]] == [1] and part["complete"] is False
    assert not (tmp_path / "cv" / "fold_0").exists()  # another process's fold is not started
    rest = crossval(cfg, data, tmp_path / "cv", folds=3, robustness=False, only_folds=[0, 2])
    assert [r["fold"] for r in rest["per_fold"]] == [0, 1, 2] and rest["complete"] is True
    assert rest["per_fold"][1] == part["per_fold"][0]  # fold 1 read back, not trained again
    with pytest.raises(ValueError, match="only_folds"):
        crossval(cfg, data, tmp_path / "cv", folds=3, robustness=False, only_folds=[3])


def test_a_recipe_trained_on_every_image_carries_its_crossvalidation(tmp_path, tiny_recipe, capsys):
    """val_fraction = 0 trains on every file with no best.pt; --crossval stores the folds' figures in each
    checkpoint, and only for the recipe they were measured on."""
    from astroae_core.cli import main
    from astroae_core.model import load_model, read_checkpoint

    data = write_blob_folder(tmp_path / "blobs", 18, groups=3)
    recipe = tiny_recipe(epochs=2)
    res = crossval(load_recipe(recipe), data, tmp_path / "cv", folds=3, robustness=False)
    (tmp_path / "cv.json").write_text(json.dumps({"data": str(data), "results": [res]}))
    final = tmp_path / "final.toml"
    final.write_text(recipe.read_text().replace("[train]", "[train]\nval_fraction = 0"))

    assert main(["train", "--config", str(final), "--data", str(data), "--out", str(tmp_path / "run"), "--quiet",
                 "--crossval", str(tmp_path / "cv.json")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["train_images"], out["val_images"], out["best_val_loss"]) == (18, 0, None)
    run = tmp_path / "run"
    assert (run / "last.pt").exists() and not (run / "best.pt").exists()
    ckpt = read_checkpoint(run / "last.pt")
    assert len(ckpt["data"]["train_hashes"]) == 18 and ckpt["data"]["val_hashes"] == []
    assert all("val_loss" not in row for row in ckpt["history"])
    stored = load_model(run / "last.pt").checkpoint_info["crossval"]
    assert stored["folds"] == 3 and stored["n_images"] == 6
    assert stored["latent_vs_pca_mse"] == res["summary"]["latent_vs_pca_mse"]

    assert stored["n_images_total"] == 18

    # a killed run resumed without --crossval still stores it; another data set is refused
    from train.loop import train

    cfg = load_recipe(final)
    train(cfg, data, tmp_path / "killed", crossval=stored, stop_after_epochs=1)
    train(cfg, data, tmp_path / "killed", resume=True)
    assert read_checkpoint(tmp_path / "killed" / "last.pt")["crossval"] == stored
    fewer = write_blob_folder(tmp_path / "fewer", 12, groups=3)
    with pytest.raises(ValueError, match="scored 18 images, .* holds 12 usable ones: it was of another data set"):
        train(cfg, fewer, tmp_path / "fewer_run", crossval=stored)

    other = tmp_path / "other.toml"
    other.write_text(final.read_text().replace("epochs = 2", "epochs = 3"))
    assert main(["train", "--config", str(other), "--data", str(data), "--out", str(tmp_path / "run2"), "--quiet",
                 "--crossval", str(tmp_path / "cv.json")]) == 2
    assert "another recipe: epochs 2 there, 3 here" in capsys.readouterr().err
    assert not (tmp_path / "run2").exists()
