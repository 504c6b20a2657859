"""Training presets (train/presets.py), the recipe written back as TOML (train/recipe_toml.py), the folder check
before a run (train/folder_check.py) and the speed measurement (train/speed.py)."""

from __future__ import annotations

import json

import pytest
from astropy.io import fits

from train.config import TrainConfig, load_recipe
from train.folder_check import check_folder, plan_split, problem
from train.presets import SYNTHETIC_STAMPS_PER_S, estimate_seconds, load_presets, scaled_config, steps_per_epoch
from train.recipe_toml import dumps_recipe

from .conftest import ROOT, write_blob_folder

DEMO = load_recipe(ROOT / "train/configs/demo.toml")


def test_the_shipped_presets_load_in_order_and_start_from_the_demo_recipe():
    presets = load_presets(env={})
    assert list(presets) == ["quick", "standard", "thorough"]
    assert [p.steps for p in presets.values()] == sorted(p.steps for p in presets.values())
    assert all(p.base() == DEMO and p.about for p in presets.values())


def test_standard_on_the_demo_folder_is_demo_toml_exactly():
    # 2,000 demo stamps, 1,600 after the split: 100 steps an epoch, 48 epochs, the last 40 frozen, 2 warming up
    assert load_presets(env={})["standard"].config(1600) == DEMO


def test_presets_scale_epochs_with_the_folder_and_keep_the_frozen_share():
    small = scaled_config(DEMO, steps=4800, n_train=560)  # the CEERS training cutouts
    assert small.epochs == 138 and steps_per_epoch(560, 16) == 35
    assert small.frozen_norm.epochs == round(40 / 48 * 138) and small.frozen_norm.warmup_epochs == 6
    assert small.frozen_norm.lr_scale == DEMO.frozen_norm.lr_scale
    big = scaled_config(DEMO, steps=4800, n_train=16_000)
    assert big.epochs == 5 and big.frozen_norm.epochs == 4 and big.frozen_norm.warmup_epochs == 1
    assert big.checkpoint_every == 1
    # fewer images than a batch: one step an epoch, and one epoch of batch statistics is kept
    tiny = scaled_config(DEMO, steps=10, n_train=5)
    assert tiny.epochs == 10 and tiny.frozen_norm.epochs == 8
    one = scaled_config(DEMO, steps=1, n_train=100)
    assert one.epochs == 1 and one.frozen_norm.epochs == 0 and one.frozen_norm.warmup_epochs == 0


def test_a_recipe_without_frozen_statistics_stays_without():
    cfg = scaled_config(TrainConfig(), steps=500, n_train=160)
    assert cfg.epochs == 50 and cfg.frozen_norm.epochs == 0
    with pytest.raises(ValueError, match="steps"):
        scaled_config(TrainConfig(), steps=0, n_train=160)
    with pytest.raises(ValueError, match="n_train"):
        steps_per_epoch(0, 16)


def test_the_estimate_counts_steps_and_validation():
    cfg = scaled_config(DEMO, steps=4800, n_train=1600)
    assert estimate_seconds(cfg, n_train=1600, n_val=0, images_per_s=48.0) == pytest.approx(4800 * 16 / 48)
    with_val = estimate_seconds(cfg, n_train=1600, n_val=400, images_per_s=48.0)
    assert with_val == pytest.approx((4800 * 16 + 48 * 400 / 3) / 48)
    # a folder smaller than a batch trains on all of it each step
    assert estimate_seconds(cfg.replace(epochs=10, frozen_norm_epochs=0, frozen_norm_warmup_epochs=0),
                            n_train=4, n_val=0, images_per_s=2.0) == pytest.approx(20.0)
    # each epoch's checkpoints: what a folder of a few images spends most of its time on
    assert estimate_seconds(cfg, n_train=1600, n_val=0, images_per_s=48.0, epoch_seconds=0.5) == \
        pytest.approx(4800 * 16 / 48 + 48 * 0.5)
    with pytest.raises(ValueError, match="images_per_s"):
        estimate_seconds(cfg, n_train=10, n_val=0, images_per_s=0.0)
    # pretraining: 4 epochs of 4,000 synthetic galaxies in whole batches of 16, and drawing them
    pre = cfg.replace(synthetic=4000, synthetic_epochs=4)
    assert estimate_seconds(pre, n_train=1600, n_val=0, images_per_s=48.0) == \
        pytest.approx((4800 + 4 * 250) * 16 / 48 + 4000 / SYNTHETIC_STAMPS_PER_S)


def test_a_presets_file_of_ones_own_and_bad_ones(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text("[train]\nepochs = 3\n")
    good = tmp_path / "p.toml"
    good.write_text('[tiny]\nrecipe = "r.toml"\nsteps = 6\n')
    presets = load_presets(env={"ASTROAE_PRESETS": str(good)})
    assert list(presets) == ["tiny"] and presets["tiny"].recipe == recipe and presets["tiny"].config(32).epochs == 3
    for text, match in [('[a]\nsteps = 3\n', "needs a recipe"), ('[a]\nrecipe = "r.toml"\nsteps = 0\n', "steps"),
                        ('[a]\nrecipe = "r.toml"\nsteps = 2\nepochs = 3\n', "unknown keys"), ("", "no preset"),
                        ("[a\n", "p.toml")]:
        good.write_text(text)
        with pytest.raises(ValueError, match=match):
            load_presets(good)


@pytest.mark.parametrize("name", ["demo", "ceers", "seed", "demo-unet"])
def test_a_resolved_recipe_reads_back_equal(tmp_path, name):
    cfg = scaled_config(load_recipe(ROOT / f"train/configs/{name}.toml"), steps=777, n_train=90)
    path = tmp_path / "recipe.toml"
    path.write_text(dumps_recipe(cfg, header="made by a test\nsecond line"))
    assert load_recipe(path) == cfg
    assert path.read_text().startswith("# made by a test\n# second line\n")
    odd = cfg.replace(group_regex='a"b\\(\\d+)', preprocess_asinh_max_sigma=50.0)
    path.write_text(dumps_recipe(odd))
    assert load_recipe(path) == odd


# -- the folder check ---------------------------------------------------------------------------------------------


def _bad_file(path):
    path.write_bytes(b"SIMPLE  =                    T" + b" " * 50 + b"this is not a FITS file")


def test_a_good_folder_with_unreadable_files_among_them(tmp_path):
    folder = write_blob_folder(tmp_path / "data" / "blobs", 12, groups=3)
    _bad_file(folder / "broken_999.fits")
    contents = check_folder(folder, config=DEMO.preprocess, confine_to=tmp_path / "data")
    assert len(contents.paths) == 12 and [p for p, _ in contents.skipped] == ["broken_999.fits"]
    assert contents.skipped[0][1] and contents.n_found == 13 and not contents.outside
    plan = plan_split(contents.paths, group_regex=r"obj_(\d+)_", val_fraction=0.25, seed=0)
    assert (plan.n_groups, plan.largest, plan.n_train + plan.n_val) == (4, 3, 12)
    assert plan.val_groups == 1 and plan.n_val == 3 and plan.examples[0] == ("obj_000_000.fits", "000")
    assert problem(contents, plan) is None


def test_folders_training_cannot_use_say_why(tmp_path):
    data = tmp_path / "data"
    empty_of_good = data / "bad"
    empty_of_good.mkdir(parents=True)
    _bad_file(empty_of_good / "a.fits")
    c = check_folder(empty_of_good, config=DEMO.preprocess)
    assert "None of the 1 FITS files" in problem(c, plan_split(c.paths, group_regex="", val_fraction=0.2, seed=0))
    one = write_blob_folder(data / "one", 1)
    c = check_folder(one, config=DEMO.preprocess)
    assert "only 1 usable image:" in problem(c, plan_split(c.paths, group_regex="", val_fraction=0.2, seed=0))
    grouped = write_blob_folder(data / "grouped", 6, groups=6)  # all six files share obj_000
    c = check_folder(grouped, config=DEMO.preprocess)
    plan = plan_split(c.paths, group_regex=r"obj_(\d+)_", val_fraction=0.2, seed=0)
    assert plan.n_groups == 1 and "fall into one group" in problem(c, plan)
    assert problem(c, plan_split(c.paths, group_regex="", val_fraction=0.2, seed=0)) is None
    plan = plan_split(c.paths, group_regex=r"nomatch(\d)", val_fraction=0.2, seed=0)
    assert "does not match" in plan.error and "cannot be applied" in problem(c, plan)
    # two groups, but the bigger one goes to validation: one training image is left
    pair = data / "pair"
    pair.mkdir()
    for name in ("a_1.fits", "b_2.fits", "c_2.fits"):
        (pair / name).write_bytes((grouped / "obj_000_000.fits").read_bytes())
    c = check_folder(pair, config=DEMO.preprocess)
    plan = plan_split(c.paths, group_regex="auto", val_fraction=0.6, seed=3)
    assert plan.n_train == 1 and "leaves 1 training image" in problem(c, plan)


def test_links_out_of_the_data_root_are_never_read(tmp_path):
    outside = write_blob_folder(tmp_path / "elsewhere", 2)
    folder = write_blob_folder(tmp_path / "data" / "blobs", 4)
    (folder / "linked_7.fits").symlink_to(outside / "obj_000_000.fits")
    c = check_folder(folder, config=DEMO.preprocess, confine_to=tmp_path / "data")
    assert c.outside == ["linked_7.fits"] and len(c.paths) == 4
    assert "links to files outside the data root" in problem(c, plan_split(c.paths, group_regex="", val_fraction=0.2,
                                                                            seed=0))


# -- the speed ------------------------------------------------------------------------------------------------------


def test_the_speed_is_measured_once_and_remembered(tmp_path, monkeypatch):
    from train import speed

    cfg = TrainConfig.from_dict({"model": {"in_size": 32, "channels": [4, 8]}, "train": {"batch_size": 4}})
    here = speed.measure_speed(cfg, device="cpu", steps=1)
    assert here.images_per_s > 0 and here.epoch_seconds > 0
    cache = tmp_path / "speed.json"
    first = speed.training_speed(cfg, cache_file=cache)  # in a process of its own
    assert first.images_per_s > 0 and first.epoch_seconds > 0
    assert json.loads(cache.read_text())[speed.speed_key(cfg)]["source"] == "measured"
    monkeypatch.setattr(speed.subprocess, "run", lambda *a, **k: pytest.fail("measured again"))
    assert speed.training_speed(cfg, cache_file=cache) == first
    speed.record_speed(cfg, 12.5, cache_file=cache)  # a run's own figure; the checkpoints' time is kept
    assert speed.training_speed(cfg, cache_file=cache) == speed.Speed(12.5, first.epoch_seconds)
    assert speed.speed_key(cfg) != speed.speed_key(cfg.replace(batch_size=8))
