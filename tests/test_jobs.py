"""Training runs as processes of their own (train/jobs.py, train/job_runner.py): start, progress, one at a time,
cancel, resume after a SIGKILL, a run folder deleted under a running job."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time

import pytest

from train import jobs
from train.config import TrainConfig

from .conftest import write_blob_folder

TINY = {"model": {"in_size": 32, "channels": [4, 8]}, "preprocess": {"method": "minmax"},
        "train": {"batch_size": 4, "checkpoint_every": 5, "group_regex": r"obj_(\d+)_"}}


def tiny(epochs: int) -> TrainConfig:
    return TrainConfig.from_dict({**TINY, "train": {**TINY["train"], "epochs": epochs}})


@pytest.fixture
def env(tmp_path):
    data_root = tmp_path / "data"
    folder = write_blob_folder(data_root / "blobs", 4, groups=3)  # 4 images: the cache's map is PCA, no UMAP
    return {"root": tmp_path / "runs", "data_root": data_root, "folder": folder, "cache": data_root / "caches" / "c"}


def start(env, epochs: int, name: str = "blobs"):
    return jobs.start_run(tiny(epochs), env["folder"], root=env["root"], name=name, cache_dir=env["cache"],
                          preset="tiny", confine_to=env["data_root"])


def wait_for(pred, timeout: float = 180.0, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s")


def status(env, run):
    return jobs.run_status(run, root=env["root"])


def epochs_done(env, run) -> int:
    return status(env, run).epochs_done


# -- without a process -----------------------------------------------------------------------------------------


def fake_run(root, name, state, **files):
    run = root / name
    run.mkdir(parents=True)
    job = jobs.Job(str(root.parent), str(root / "cache"), 10, "quick")
    (run / "job.json").write_text(json.dumps(job.__dict__))
    (run / "state.json").write_text(json.dumps({"state": state}))
    for fname, text in files.items():
        (run / fname).write_text(text)
    return run


def test_a_run_whose_process_is_gone_reads_as_interrupted_cancelled_or_what_it_said(tmp_path):
    root = tmp_path / "runs"
    a = fake_run(root, "a", "training", **{"last.pt": "x", "history.json": json.dumps([{"epoch": 1}, {"epoch": 2}])})
    b = fake_run(root, "b", "encoding", cancelled="")
    c = fake_run(root, "c", "failed")
    d = fake_run(root, "d", "done")
    (c / "state.json").write_text(json.dumps({"state": "failed", "error": "the folder is empty"}))
    sa, sb, sc, sd = (jobs.run_status(r, root=root) for r in (a, b, c, d))
    assert (sa.state, sa.alive, sa.epochs_done, sa.epochs, sa.has_last, sa.resumable) == \
        ("interrupted", False, 2, 10, True, True)
    assert (sb.state, sb.resumable, sc.state, sc.error, sd.state, sd.resumable) == \
        ("cancelled", True, "failed", "the folder is empty", "done", False)
    shutil.rmtree(a)
    assert jobs.run_status(a, root=root).state == "missing" and "deleted" in jobs.run_status(a, root=root).error
    assert set(jobs.list_runs(root)) == {b, c, d} and jobs.active_run(root) is None
    assert jobs.list_runs(tmp_path / "nowhere") == []


def test_the_lock_names_its_holder_and_refuses_a_start_meanwhile(env):
    run = env["root"] / "held"
    with jobs.hold_lock(env["root"], run):
        assert jobs.lock_owner(env["root"]) == {"pid": os.getpid(), "run": str(run.resolve())}
        assert jobs.active_run(env["root"]) == run.resolve()
        with pytest.raises(jobs.RunInProgress, match="already going \\(held\\)"):
            start(env, 3)
        with pytest.raises(jobs.RunInProgress, match="another training run"):
            with jobs.hold_lock(env["root"], env["root"] / "other", wait=0.2):
                pass
        with pytest.raises(jobs.RunInProgress):
            jobs.resume_run(run, root=env["root"])
    assert not any(p.name != "held" for p in env["root"].iterdir() if not p.name.startswith("."))
    assert jobs.lock_owner(env["root"]) is None


def test_runs_root_and_names(tmp_path):
    assert jobs.runs_root({"ASTROAE_RUNS_ROOT": str(tmp_path)}) == tmp_path.resolve()
    assert jobs.runs_root({}) == jobs.REPO_ROOT / "runs"
    assert jobs.new_run_name("sub/my folder", now=0).startswith("sub-my-folder-19")


# -- with the real process --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_run_refuses_a_second_survives_sigkill_resumes_and_ends_with_its_cache(env):
    run = start(env, 60)
    assert (run / "recipe.toml").is_file() and json.loads((run / "job.json").read_text())["epochs"] == 60
    with pytest.raises(jobs.RunInProgress, match="already going"):
        start(env, 3, name="second")
    assert not (env["root"] / "second").exists()
    wait_for(lambda: epochs_done(env, run) >= 2)
    s = status(env, run)
    assert s.alive and s.state == "training" and s.epochs == 60 and s.progress.get("stage")
    os.killpg(jobs.lock_owner(env["root"])["pid"], signal.SIGKILL)
    wait_for(lambda: jobs.lock_owner(env["root"]) is None, timeout=30)
    s = status(env, run)
    assert s.state == "interrupted" and s.has_last and s.resumable and s.epochs_done < 60
    jobs.resume_run(run, root=env["root"])
    s = wait_for(lambda: (st := status(env, run)).state in ("done", "failed") and st, timeout=300, every=0.5)
    assert s.state == "done", s.error
    assert [h["epoch"] for h in s.history] == list(range(1, 61))
    assert (env["cache"] / "meta.json").is_file() and (run / "epoch_060.pt").is_file()
    assert json.loads((env["cache"] / "meta.json").read_text())["n_images"] == 4
    assert "resuming" in (run / "log.txt").read_text()


@pytest.mark.slow
def test_cancel_keeps_what_was_trained_and_the_run_can_resume(env):
    run = start(env, 400)
    # history.json is written before last.pt (so an older last.pt always matches its own history): wait for both
    wait_for(lambda: epochs_done(env, run) >= 1 and (run / "last.pt").is_file())
    assert jobs.cancel_run(run, root=env["root"])
    s = status(env, run)
    assert (s.state, s.alive, s.has_last, s.resumable) == ("cancelled", False, True, True)
    assert jobs.lock_owner(env["root"]) is None and not jobs.cancel_run(run, root=env["root"])


@pytest.mark.slow
def test_a_run_folder_deleted_under_a_running_job(env):
    run = start(env, 400)
    wait_for(lambda: epochs_done(env, run) >= 1)
    gone = env["root"].parent / "gone"
    run.rename(gone)  # at once: rm -r could race with the job writing its next files
    shutil.rmtree(gone)
    s = status(env, run)
    assert s.state == "missing" and "deleted" in s.error
    wait_for(lambda: jobs.lock_owner(env["root"]) is None, timeout=60)  # the next checkpoint fails; it ends
    assert status(env, run).state == "missing" and not env["cache"].exists()


@pytest.mark.slow
def test_a_run_on_a_folder_with_links_out_fails_and_says_why(env, tmp_path):
    outside = write_blob_folder(tmp_path / "elsewhere", 1)
    (env["folder"] / "linked_1.fits").symlink_to(outside / "obj_000_000.fits")
    run = start(env, 2)
    s = wait_for(lambda: (st := status(env, run)).state == "failed" and st, timeout=120, every=0.2)
    assert "links to files outside the data root" in s.error and "linked_1.fits" in s.error
    assert not (run / "last.pt").exists()


@pytest.mark.slow
def test_a_folder_that_changed_since_the_page_checked_it_fails_in_words(env):
    for f in list(env["folder"].glob("*.fits"))[1:]:
        f.unlink()
    run = start(env, 2)
    s = wait_for(lambda: (st := status(env, run)).state == "failed" and st, timeout=120, every=0.2)
    assert "only 1 usable image" in s.error and not (run / "last.pt").exists()
