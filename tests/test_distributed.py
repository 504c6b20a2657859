"""torchrun with 2 processes on this machine (gloo, CPU): distributed encode writes the same cache as one process,
distributed training keeps the ranks' weights identical, its loss falls, and a resumed run ends where an
uninterrupted one does. Plus the helpers of astroae_core.distributed in a world of one.

Every launch goes through ``sys.executable -m torch.distributed.run --standalone`` (a free port each time) with
one thread per process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from astroae_core import distributed
from astroae_core.cache import encode_folder, load_cache
from astroae_core.model import read_checkpoint

from .conftest import ROOT, write_blob_folder

LAUNCH_TIMEOUT_S = 600  # generous: CI runs these on 2 loaded cores


def torchrun(*args, nproc: int = 2, ok: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                               "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           *map(str, args)]
    # A session of its own, so that a timeout kills the workers too, not only the launcher.
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=LAUNCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(cmd)}\nstill running after {LAUNCH_TIMEOUT_S} s\n{out[-3000:]}\n{err[-6000:]}")
    res = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    assert (res.returncode == 0) == ok, f"{' '.join(cmd)}\nexit {res.returncode}\n{out[-3000:]}\n{err[-6000:]}"
    return res


# ---------------------------------------------------------------------------------------------------------------
# helpers in a world of one (no process group): what the single-process paths rely on


def test_shard_blocks_concatenate_back_to_the_sequence():
    for n in (0, 1, 5, 7, 24):
        for world in (1, 2, 3, 4):
            blocks = [distributed.shard(list(range(n)), rank=r, world=world) for r in range(world)]
            assert [x for b in blocks for x in b] == list(range(n))
            assert max(map(len, blocks)) - min(map(len, blocks)) <= 1
    with pytest.raises(ValueError, match="rank=2, world=2"):
        distributed.shard([1, 2, 3], rank=2, world=2)


def test_world_of_one_helpers_are_plain_calls():
    assert distributed.rank_world() == (0, 1) and distributed.is_main_process()
    assert distributed.agree(lambda a, *, b: a + b, 2, b=3) == 5
    with pytest.raises(FileExistsError, match="taken"):
        distributed.agree(lambda: (_ for _ in ()).throw(FileExistsError("taken")))
    values = {"loss": 0.25, "ms_ssim": None, "nan": float("nan")}
    out = distributed.reduce_means(values, weight=3)
    assert list(out) == list(values) and out["loss"] == 0.25 and out["ms_ssim"] is None and np.isnan(out["nan"])
    assert distributed.gather_to_root({"a": [1, 2]}) == [{"a": [1, 2]}]
    assert distributed.local_device("cpu") == torch.device("cpu")


def test_no_launcher_means_no_process_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed.launched()
    with distributed.process_group() as (rank, world):
        assert (rank, world) == (0, 1)
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE='two'"):
        distributed.launched()


# ---------------------------------------------------------------------------------------------------------------
# 2 processes


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny checkpoint, trained in this process for one epoch."""
    from train.config import load_recipe
    from train.loop import train

    from .conftest import TINY_RECIPE

    root = tmp_path_factory.mktemp("dist_ckpt")
    data = write_blob_folder(root / "train", 12, groups=3)
    recipe = root / "tiny.toml"
    recipe.write_text(TINY_RECIPE.format(skip_mode="unet", epochs=1))
    train(load_recipe(recipe), data, root / "run", device="cpu")
    return root / "run" / "best.pt"


@pytest.mark.slow
@pytest.mark.distributed
def test_distributed_encode_writes_the_single_process_cache(checkpoint, tmp_path):
    # 4 readable images (below UMAP's minimum: no numba compile) and 3 unreadable files spread over both
    # ranks' blocks (7 files: blocks of 3 and 4), one image in a subfolder; batches of 1 stream several per rank.
    data = write_blob_folder(tmp_path / "data", 3, seed=5)
    write_blob_folder(tmp_path / "data" / "sub", 1, seed=6)
    for name in ("aaa_bad.fits", "obj_001_bad.fits", "zzz_bad.fits"):
        (data / name).write_bytes(b"SIMPLE  = T" + b"\0" * 100)
    one, two = tmp_path / "out" / "one", tmp_path / "out" / "two"
    encode_folder(checkpoint, data, one, batch_size=1)
    res = torchrun("-m", "astroae_core", "encode", "--checkpoint", checkpoint, "--data", data, "--out", two,
                   "--batch-size", "1", "--quiet")
    assert res.stdout.count("wrote ") == 1  # rank 0 reports, once

    a, b = load_cache(one), load_cache(two)
    assert len(a.table) == 4
    assert list(b.table["id"]) == list(a.table["id"]) and list(b.table["path"]) == list(a.table["path"])
    assert "sub/obj_000_000.fits" in list(b.table["path"])
    np.testing.assert_allclose(b.latents(), a.latents(), rtol=0, atol=1e-6)
    assert list(b.table.columns) == list(a.table.columns)
    for col in a.table.columns:
        if a.table[col].dtype.kind == "f":
            np.testing.assert_allclose(b.table[col], a.table[col], rtol=1e-6, atol=1e-7, err_msg=col)
        else:
            assert list(b.table[col]) == list(a.table[col]), col
    np.testing.assert_array_equal(b.previews, a.previews)
    assert b.meta.skipped == a.meta.skipped and len(a.meta.skipped) == 3
    assert [s.path for s in b.meta.skipped] == ["aaa_bad.fits", "obj_001_bad.fits", "zzz_bad.fits"]
    for key in ("n_images", "n_files", "dataset_fingerprint", "columns", "pca", "split"):
        assert getattr(b.meta, key) == getattr(a.meta, key), key
    # the report on the latent uses the same sample, gathered from both ranks
    assert b.meta.influence["n_images"] == a.meta.influence["n_images"] == 4
    np.testing.assert_allclose(b.meta.influence["change"], a.meta.influence["change"], rtol=1e-4)
    # one cache, swapped in atomically: nothing else left beside it but the lock file
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".one.lock", ".two.lock", "one", "two"]

    # a second launch finds the cache fresh and leaves it alone
    before = (two / "meta.json").stat().st_mtime_ns
    res = torchrun("-m", "astroae_core", "encode", "--checkpoint", checkpoint, "--data", data, "--out", two,
                   "--quiet")
    assert "up to date" in res.stdout and (two / "meta.json").stat().st_mtime_ns == before


@pytest.mark.slow
@pytest.mark.distributed
def test_rank_0_refusing_to_encode_stops_every_rank_with_one_message(checkpoint, tmp_path):
    data = write_blob_folder(tmp_path / "data", 4)
    other = tmp_path / "not_a_cache"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    res = torchrun("-m", "astroae_core", "encode", "--checkpoint", checkpoint, "--data", data, "--out", other,
                   "--quiet", ok=False)  # returns: no rank waits for rank 0 in vain
    assert (res.stdout + res.stderr).count("is not a latent cache; refusing to replace it") == 1
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """An uninterrupted 4-epoch run on 2 processes, each rank's final state written by the worker script."""
    from .conftest import TINY_RECIPE

    root = tmp_path_factory.mktemp("ddp")
    data = write_blob_folder(root / "data", 24, groups=3)
    recipe = root / "tiny.toml"
    recipe.write_text(TINY_RECIPE.format(skip_mode="dropout", epochs=4))
    torchrun(ROOT / "tests" / "distributed_train_worker.py", recipe, data, root / "run", root / "states")
    return {"root": root, "data": data, "recipe": recipe, "run": root / "run", "states": root / "states"}


def _states(folder: Path) -> list[dict]:
    return [torch.load(folder / f"rank{r}.pt", weights_only=True) for r in (0, 1)]


def _assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.slow
@pytest.mark.distributed
def test_distributed_training_keeps_the_ranks_identical_and_the_loss_falls(ddp_run):
    r0, r1 = _states(ddp_run["states"])
    _assert_same_state(r0["state"], r1["state"])  # parameters and BatchNorm statistics
    # each rank trained on its own half of every epoch's permutation
    assert len(r0["shards"]) == len(r1["shards"]) == 4
    for a, b in zip(r0["shards"], r1["shards"]):
        assert not set(a) & set(b) and sorted(a + b) == list(range(18))  # 24 images, 6 held out
    assert r0["shards"][0] != r0["shards"][1]  # reshuffled every epoch

    run = ddp_run["run"]
    _assert_same_state(read_checkpoint(run / "last.pt")["state_dict"], r0["state"])
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "config.json", "epoch_002.pt", "epoch_004.pt",
                                                     "history.json", "last.pt"]
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert all(np.isfinite(h["val_loss"]) for h in history)


@pytest.mark.slow
@pytest.mark.distributed
def test_distributed_resume_ends_where_the_uninterrupted_run_does(ddp_run):
    root, worker = ddp_run["root"], ROOT / "tests" / "distributed_train_worker.py"
    common = [ddp_run["recipe"], ddp_run["data"], root / "resumed"]
    torchrun(worker, *common, root / "first", "--epochs", "2")
    torchrun(worker, *common, root / "second", "--resume")
    _assert_same_state(_states(root / "second")[0]["state"], _states(ddp_run["states"])[0]["state"])
    _assert_same_state(*(s["state"] for s in _states(root / "second")))
    resumed = json.loads((root / "resumed" / "history.json").read_text())
    straight = json.loads((ddp_run["run"] / "history.json").read_text())
    assert [h["val_loss"] for h in resumed] == [h["val_loss"] for h in straight]
