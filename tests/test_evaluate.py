import json

import pytest

from astroae_core.cli import main as cli
from astroae_core.analysis import evaluate
from train.config import load_recipe
from train.loop import train

from .conftest import write_blob_folder


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    data = write_blob_folder(root / "data", 30, groups=2)
    recipe = root / "r.toml"
    from .conftest import TINY_RECIPE

    recipe.write_text(TINY_RECIPE.format(skip_mode="unet", epochs=10))
    train(load_recipe(recipe), data, root / "run")
    return root, data


def test_evaluate_reports_four_rows_on_the_validation_split(tiny_run):
    root, data = tiny_run
    res = evaluate(root / "run/best.pt", data)
    assert set(res["rows"]) == {"full", "latent_only", "pca", "mean_image"}
    for row in res["rows"].values():
        assert set(row) == {"mse", "psnr", "ssim", "ms_ssim"} and row["mse"] > 0
    assert res["images"] == "validation" and res["n_images"] == 6  # 3 of 15 groups, 2 files each
    assert res["n_train_images_for_baselines"] == 24
    assert res["latent_vs_pca_mse"] == pytest.approx(res["rows"]["latent_only"]["mse"] / res["rows"]["pca"]["mse"])
    assert len(res["influence"]) == 4 and 0 < res["effective_dim"] <= 4
    # a U-Net's skips carry the image: its full reconstruction beats its latent-only one
    assert res["rows"]["full"]["mse"] < res["rows"]["latent_only"]["mse"]
    # the 6 validation images are 3 objects of 2 files each, grouped as the training split grouped them
    assert res["by_group"]["n_groups"] == 3
    assert res["by_group"]["ratio"] == pytest.approx(res["latent_vs_pca_mse"], rel=1e-5)


def test_evaluate_cli_prints_the_table_and_writes_json(tiny_run, tmp_path, capsys):
    root, data = tiny_run
    other = write_blob_folder(tmp_path / "fresh", 8, seed=5)
    out = tmp_path / "res.json"
    assert cli(["evaluate", "--checkpoint", str(root / "run/best.pt"), "--data", str(other),
                "--train-data", str(data), "--json", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    for label in ("full", "latent only", "PCA-4", "mean image", "MS-SSIM", "images the model did not train on"):
        assert label in text
    assert "the 4 numbers" in text and "PCA-4" in text  # the verdict, in words
    res = json.loads(out.read_text())
    assert res["n_images"] == 8 and res["images"] == "unseen" and res["n_train_images_for_baselines"] == 24


def test_without_its_training_images_evaluate_says_what_is_missing(tiny_run, tmp_path, capsys):
    root, _ = tiny_run
    other = write_blob_folder(tmp_path / "fresh", 8, seed=5)
    assert cli(["evaluate", "--checkpoint", str(root / "run/best.pt"), "--data", str(other), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "none of the checkpoint's 24 training images" in err and "'fresh'" in err and "--train-data" in err


def test_training_images_are_found_by_content_wherever_the_folder_lives(tiny_run, tmp_path):
    import shutil

    root, data = tiny_run
    moved = tmp_path / "elsewhere" / "renamed"
    moved.mkdir(parents=True)
    for i, f in enumerate(sorted(data.glob("*.fits"))):  # other folder, other names, same pixels
        shutil.copy(f, moved / f"copy_{i:03d}{f.name}")
    here, there = evaluate(root / "run/best.pt", data), evaluate(root / "run/best.pt", moved)
    assert there["images"] == "validation" and there["n_images"] == here["n_images"] == 6
    assert there["n_train_images_for_baselines"] == 24
    for row in here["rows"]:
        for m in ("mse", "ssim"):
            assert there["rows"][row][m] == pytest.approx(here["rows"][row][m], rel=1e-6), (row, m)


def test_evaluate_cli_errors_name_the_problem(tmp_path, capsys):
    assert cli(["evaluate", "--checkpoint", str(tmp_path / "missing.pt"), "--data", str(tmp_path)]) == 2
    assert "missing.pt" in capsys.readouterr().err


def test_ratio_by_group_worked_by_hand():
    from astroae_core.analysis import ratio_by_group

    # objects a (2 images), b, c; the baseline's error is 10 + 10 on a, 5 on b, 5 on c: a holds 20/30 of it
    mse = [4.0, 2.0, 3.0, 3.0]
    ref = [10.0, 10.0, 5.0, 5.0]
    r = ratio_by_group(mse, ref, ["a", "a", "b", "c"], n_boot=500, seed=1)
    assert r["ratio"] == pytest.approx(12 / 30)
    assert r["worst_group"] == "a" and r["worst_share"] == pytest.approx(20 / 30)
    assert r["ratio_without_worst"] == pytest.approx(6 / 10)
    assert r["median_image_ratio"] == pytest.approx(0.5)  # per image: 0.4, 0.2, 0.6, 0.6
    assert r["n_groups"] == 3
    # resampled objects: the ratio lies between the best object's (a: 0.3) and the worst's (b, c: 0.6)
    assert 0.3 <= r["boot_p05"] <= r["ratio"] <= r["boot_p95"] <= 0.6
    with pytest.raises(ValueError, match="one length"):
        ratio_by_group([1.0, 2.0], [1.0], ["a", "b"])


def test_error_by_kind_worked_by_hand():
    from astroae_core.analysis import error_by_kind

    # three galaxies and one star; the star holds 8 of the model's 11 and 10 of the baseline's 16
    mse = [1.0, 1.0, 1.0, 8.0]
    ref = [2.0, 2.0, 2.0, 10.0]
    r = error_by_kind(mse, ref, ["galaxy", "galaxy", "galaxy", "star"])
    assert list(r) == ["galaxy", "star"]  # most images first
    assert r["galaxy"]["n"] == 3 and r["galaxy"]["ratio"] == pytest.approx(0.5)
    assert r["star"]["ratio"] == pytest.approx(0.8)
    assert r["star"]["share"] == pytest.approx(8 / 11) and r["star"]["ref_share"] == pytest.approx(10 / 16)
    assert r["galaxy"]["mse"] == pytest.approx(1.0) and r["galaxy"]["ref_mse"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="one length"):
        error_by_kind([1.0], [1.0, 2.0], ["a"])


def test_evaluate_splits_the_error_by_the_catalogs_kind(tiny_run, tmp_path, capsys):
    root, data = tiny_run
    other = write_blob_folder(tmp_path / "fresh", 8, seed=5)
    names = sorted(p.name for p in other.glob("*.fits"))
    # a catalog for 7 of the 8 files: two kinds, and one file with no row
    rows = [f"{n},{'odd' if i < 2 else 'galaxy'}" for i, n in enumerate(names[:7])]
    (other / "catalog.csv").write_text("file,kind\n" + "\n".join(rows) + "\n")
    res = evaluate(root / "run/best.pt", other, train_data=data)
    by_kind = res["by_kind"]
    assert {k: v["n"] for k, v in by_kind.items()} == {"galaxy": 5, "odd": 2, "(no catalog row)": 1}
    # the kinds split the overall means exactly
    n = res["n_images"]
    assert sum(v["n"] * v["mse"] for v in by_kind.values()) / n == pytest.approx(res["rows"]["latent_only"]["mse"])
    assert sum(v["n"] * v["ref_mse"] for v in by_kind.values()) / n == pytest.approx(res["rows"]["pca"]["mse"])
    assert sum(v["share"] for v in by_kind.values()) == pytest.approx(1.0)
    assert cli(["evaluate", "--checkpoint", str(root / "run/best.pt"), "--data", str(other),
                "--train-data", str(data), "--quiet"]) == 0
    assert "by kind (catalog)" in capsys.readouterr().out
    (other / "catalog.csv").unlink()
    assert evaluate(root / "run/best.pt", other, train_data=data)["by_kind"] is None
