import json

import pytest

from benchmarks.results_table import main, row


def _entry(**over):
    e = {"recipe": "benchmarks/variants/none-mse.toml", "epochs": 6, "train_seconds": 612.4, "train_images_per_s": 9.04,
         "rows": {k: {"mse": m, "ssim": s, "ms_ssim": s} for k, m, s in
                  [("full", 2e-4, 0.9), ("latent_only", 2e-4, 0.9), ("pca", 4e-4, 0.8), ("mean_image", 1e-3, 0.5)]},
         "latent_vs_pca_mse": 0.5, "effective_dim": 4.25, "influence_min_over_max": 0.125}
    e.update(over)
    return e


def test_row_names_the_variant_and_formats_the_figures():
    cells = row(_entry())
    assert cells[0] == "none-mse" and cells[1] == "6" and cells[2] == "612" and cells[3] == "9.0"
    assert cells[4:8] == ["0.0002", "0.0002", "0.0004", "**0.50**"]
    assert cells[-2:] == ["4.25", "0.12"]


def test_a_checkpoint_entry_is_named_by_its_run_folder():
    e = _entry(checkpoint="runs/ceers70/last.pt")
    del e["recipe"], e["train_seconds"], e["train_images_per_s"]
    assert row(e)[0] == "ceers70" and row(e)[2] == ""


def test_main_prints_one_row_per_entry_and_refuses_other_json(tmp_path, capsys):
    good = tmp_path / "a.json"
    good.write_text(json.dumps({"results": [_entry(), _entry(recipe="x/none-l1.toml")]}))
    assert main([str(good)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4 and out[3].startswith("| none-l1 |")
    bad = tmp_path / "b.json"
    bad.write_text("{}")
    with pytest.raises(SystemExit):
        main([str(bad)])
    assert "b.json" in capsys.readouterr().err
