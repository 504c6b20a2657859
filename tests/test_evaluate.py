import json

import pytest

from astroae_core.__main__ import main as cli
from astroae_core.evaluate import evaluate
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
    train(load_recipe(recipe), data, root / "run", progress=False)
    return root, data


def test_evaluate_reports_four_rows_on_the_validation_split(tiny_run):
    root, data = tiny_run
    res = evaluate(root / "run/best.pt", data)
    assert set(res["rows"]) == {"full", "latent_only", "pca", "mean_image"}
    for row in res["rows"].values():
        assert set(row) == {"mse", "psnr", "ssim", "ms_ssim"} and row["mse"] > 0
    assert res["images"].startswith("validation") and res["n_images"] == 6  # 3 of 15 groups, 2 files each
    assert res["n_train_images_for_baselines"] == 24
    assert res["latent_vs_pca_mse"] == pytest.approx(res["rows"]["latent_only"]["mse"] / res["rows"]["pca"]["mse"])
    assert len(res["influence"]) == 4 and 0 < res["effective_dim"] <= 4
    # a U-Net's skips carry the image: its full reconstruction beats its latent-only one
    assert res["rows"]["full"]["mse"] < res["rows"]["latent_only"]["mse"]


def test_evaluate_cli_prints_the_table_and_writes_json(tiny_run, tmp_path, capsys):
    root, data = tiny_run
    other = write_blob_folder(tmp_path / "fresh", 8, seed=5)
    out = tmp_path / "res.json"
    assert cli(["evaluate", "--checkpoint", str(root / "run/best.pt"), "--data", str(other),
                "--json", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    for label in ("full", "latent only", "PCA-4", "mean image", "MS-SSIM"):
        assert label in text
    res = json.loads(out.read_text())
    assert res["n_images"] == 8 and res["images"].startswith("all images")


def test_evaluate_cli_errors_name_the_problem(tmp_path, capsys):
    assert cli(["evaluate", "--checkpoint", str(tmp_path / "missing.pt"), "--data", str(tmp_path)]) == 2
    assert "missing.pt" in capsys.readouterr().err
