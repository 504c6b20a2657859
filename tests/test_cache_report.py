"""What the latent cache stores for the app at encode time: each dimension's influence and the evaluation beside
PCA and the mean image (meta.json ``influence`` / ``evaluation``), the same numbers ``evaluate`` gives."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from astroae_core.cache import encode_folder, load_cache
from astroae_core.analysis import evaluate
from train.config import load_recipe
from train.loop import train

from .conftest import TINY_RECIPE, write_blob_folder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    data = write_blob_folder(root / "data", 30, groups=2)
    recipe = root / "r.toml"
    recipe.write_text(TINY_RECIPE.format(skip_mode="unet", epochs=3))
    train(load_recipe(recipe), data, root / "run", device="cpu")
    return root, data, root / "run" / "best.pt"


def test_the_cache_stores_the_evaluation_of_its_validation_split(run):
    root, data, ckpt = run
    # float32 on both sides (an automatic choice may take bf16, which agrees to 2%, not to 0.1%)
    cache = load_cache(encode_folder(ckpt, data, root / "cache", runtime="torch-fp32"))
    ev = cache.meta.evaluation
    ref = evaluate(ckpt, data)  # the CLI's evaluation of the same checkpoint on the same validation images
    assert ev["n_images"] == ref["n_images"] == int((cache.table["split"] == "val").sum())
    assert ev["images"] == "validation" and ref["images"] == "validation"
    assert ev["n_train_images_for_baselines"] == ref["n_train_images_for_baselines"]
    for row in ("full", "latent_only", "pca", "mean_image"):
        for m in ("mse", "ssim"):
            assert ev["rows"][row][m] == pytest.approx(ref["rows"][row][m], rel=1e-3), (row, m)
    assert ev["effective_dim"] == pytest.approx(ref["effective_dim"], rel=1e-3)
    # the stored full / latent-only rows are the cache's own per-image metrics on those rows
    val = cache.table[cache.table["split"] == "val"]
    assert ev["rows"]["full"]["mse"] == pytest.approx(val["mse"].mean(), rel=1e-4)
    assert ev["rows"]["latent_only"]["mse"] == pytest.approx(val["latent_mse"].mean(), rel=1e-4)


def test_the_cache_stores_each_dimensions_influence(run):
    root, data, ckpt = run
    cache = load_cache(encode_folder(ckpt, data, root / "cache", runtime="torch-fp32"))
    inf = cache.meta.influence
    d = cache.latent_dim
    assert len(inf["change"]) == len(inf["relative"]) == len(inf["vs_data"]) == d
    assert inf["data_spread"] > 0 and inf["decoded_spread"] >= 0
    np.testing.assert_allclose(inf["vs_data"], np.array(inf["change"]) / inf["data_spread"], rtol=1e-6)
    np.testing.assert_allclose(inf["relative"], np.array(inf["change"]) / inf["decoded_spread"], rtol=1e-6)
    assert inf["decoded_vs_data"] == pytest.approx(inf["decoded_spread"] / inf["data_spread"], rel=1e-6)
    # how it was measured, as numbers: moves of +/-2 dataset standard deviations, on the validation images
    assert inf["n_sigma"] == 2.0 and inf["n_images"] == int((cache.table["split"] == "val").sum())


def test_without_the_training_images_the_evaluation_says_why(run, tmp_path):
    root, data, ckpt = run
    other = write_blob_folder(tmp_path / "new", 8, seed=9)
    moved = shutil.move(str(data), str(tmp_path / "elsewhere"))  # the checkpoint's training folder is gone
    try:
        cache = load_cache(encode_folder(ckpt, other, tmp_path / "cache"))
    finally:
        shutil.move(moved, str(data))
    ev = cache.meta.evaluation
    # what is missing and how to supply it, without a path of this machine
    assert "rows" not in ev and "none of the checkpoint's 24 training images" in ev["error"]
    assert "'new'" in ev["error"] and "--train-data" in ev["error"] and str(tmp_path) not in ev["error"]
    assert ev["images"] == "unseen" and set(cache.table["split"]) == {"unseen"}
    assert len(cache.meta.influence["vs_data"]) == cache.latent_dim  # the influence needs only the model


def test_a_named_training_folder_gives_the_comparison_on_a_new_folder(run, tmp_path):
    root, data, ckpt = run
    other = write_blob_folder(tmp_path / "new", 8, seed=9)
    ev = load_cache(encode_folder(ckpt, other, tmp_path / "cache", train_data=data)).meta.evaluation
    ref = evaluate(ckpt, other, train_data=data)
    assert ev["images"] == ref["images"] == "unseen" and ev["n_images"] == ref["n_images"] == 8
    assert ev["n_train_images_for_baselines"] == ref["n_train_images_for_baselines"] == 24
    assert ev["rows"]["pca"]["mse"] == pytest.approx(ref["rows"]["pca"]["mse"], rel=1e-3)


def test_the_report_sample_is_chosen_by_content_whatever_the_order():
    from astroae_core.cache.report_sample import ReportSample

    class Model:  # a checkpoint that trained on h0..h9 and validated on h10..h14
        checkpoint_info = {"data": {"train_hashes": [f"h{i}" for i in range(10)],
                                    "val_hashes": [f"h{i}" for i in range(10, 15)]}}

    hashes = [f"h{i}" for i in range(20)]
    x = np.arange(20, dtype=np.float32).reshape(20, 1, 1, 1)

    def kept(order, seed=0):
        s = ReportSample(Model(), seed=seed, max_report=3, max_train=4)
        for i in range(0, 20, 6):  # offered in batches
            s.offer([hashes[j] for j in order[i:i + 6]], x[order[i:i + 6]])
        return {k: sorted(s.images(k)[1].ravel().tolist()) for k in ("train", "val", "unseen")}

    a, b = kept(list(range(20))), kept(list(range(19, -1, -1)))
    assert a == b  # the same images, whichever order they came in
    assert [len(a[k]) for k in ("train", "val", "unseen")] == [4, 3, 3]
    assert set(a["train"]) <= set(range(10)) and set(a["val"]) <= set(range(10, 15))
    assert set(a["unseen"]) <= set(range(15, 20))
    assert kept(list(range(20)), seed=1) != a  # another seed, another sample
    s = ReportSample(Model(), seed=0, max_report=3, max_train=4)
    s.offer(hashes, x)
    none = ReportSample(Model(), seed=0, max_report=3, max_train=0)  # baselines from another folder
    none.offer(hashes, x)
    assert len(none.images("train")[0]) == 0 and len(none.images("val")[0]) == 3
    rows, imgs = s.images("train", limit=2)
    assert list(rows) == sorted(rows) and imgs[:, 0, 0, 0].tolist() == rows.tolist() and len(rows) == 2


def test_the_report_sample_keeps_the_models_outputs_for_the_images_it_scores():
    from astroae_core.cache.report_sample import ReportSample

    class Model:
        checkpoint_info = {"data": {"train_hashes": [f"h{i}" for i in range(10)],
                                    "val_hashes": [f"h{i}" for i in range(10, 15)]}}

    hashes = [f"h{i}" for i in range(20)]
    x = np.arange(20, dtype=np.float32).reshape(20, 1, 1, 1)
    for skips in (False, True):
        s = ReportSample(Model(), seed=0, max_report=3, max_train=4)
        for i in range(0, 20, 6):
            out = {"x_hat": x[i:i + 6] * 10}
            out["x_hat_latent"] = x[i:i + 6] * 100 if skips else out["x_hat"]
            s.offer(hashes[i:i + 6], x[i:i + 6], out)
        for label in ("val", "unseen"):
            rows, imgs = s.images(label, limit=2)
            got = s.outputs(label, limit=2)
            np.testing.assert_array_equal(got["x_hat"], imgs * 10)
            np.testing.assert_array_equal(got["x_hat_latent"], imgs * (100 if skips else 10))
        assert s.outputs("train") is None  # the baselines need the training images only
    plain = ReportSample(Model(), seed=0, max_report=3, max_train=4)
    plain.offer(hashes, x)
    assert plain.outputs("val") is None


def test_the_influence_sample_grows_with_the_encode_from_16_to_64_latents():
    from astroae_core.cache.report import influence_images

    assert [influence_images(n) for n in (0, 700, 1_000, 1_024, 2_000, 4_096, 100_000)] == [16, 16, 16, 16, 31, 64, 64]
