"""AppTest tests of the Train page (dashboard/app_pages/train.py): the folder check and the group rule, presets with
their times, bad folders, a second start refused, a run folder deleted under its job, an interrupted run offered for
resumption, and a finished run's cache opened in the app.

The module fixture makes a data root of small folders, tiny presets (32x32 images, 2 scales) and a runs root whose
training speed is already known, so no test measures it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from train import jobs
from train.config import TrainConfig

from .conftest import ROOT, TINY_PRESET_RECIPE, write_blob_folder

pytestmark = pytest.mark.slow

APP = ROOT / "dashboard" / "app.py"
TINY = TINY_PRESET_RECIPE


def _bad_file(path):
    path.write_bytes(b"SIMPLE  =                    T" + b" " * 50 + b"this is not a FITS file")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train_page")
    data = tmp / "data"
    write_blob_folder(data / "blobs", 12, groups=3)
    _bad_file(data / "blobs" / "broken_999.fits")
    write_blob_folder(data / "one", 1)
    write_blob_folder(data / "small", 4)
    (data / "bad").mkdir()
    _bad_file(data / "bad" / "a.fits")
    (tmp / "tiny.toml").write_text(TINY)
    (tmp / "presets.toml").write_text('[tiny]\nrecipe = "tiny.toml"\nsteps = 30\nabout = "for tests"\n\n'
                                      '[small]\nrecipe = "tiny.toml"\nsteps = 300\n')
    runs = tmp / "runs"
    from train.speed import record_speed

    cfg = TrainConfig.from_dict(__import__("tomllib").loads(TINY))
    record_speed(cfg, 60.0, epoch_seconds=0.1, cache_file=runs / "speed.json")
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {"ASTROAE_DATA_ROOT": data, "ASTROAE_CACHE": tmp / "no-cache", "ASTROAE_RUNS_ROOT": runs,
                     "ASTROAE_PRESETS": tmp / "presets.toml"}.items():
            mp.setenv(k, str(v))
        yield {"data": data, "runs": runs, "tmp": tmp}


def open_train(**session):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=300)
    for k, v in session.items():
        at.session_state[k] = v
    at.run()
    at.switch_page("app_pages/train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [x.value for x in at.error]
    parts += [x.value for x in at.info] + [x.value for x in at.warning] + [x.value for x in at.success]
    return "\n".join(str(p) for p in parts)


def choose(at, folder):
    at.selectbox(key="train_folder").set_value(folder).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at) -> dict:
    return {m.label: m.value for m in at.metric}


def holder(runs, run_name):
    """A process of its own session holding the runs root's lock for ``run_name`` (as a runner would)."""
    code = ("import sys, time; from train import jobs\n"
            "with jobs.hold_lock(sys.argv[1], sys.argv[2]):\n    print('held', flush=True); time.sleep(120)")
    p = subprocess.Popen([sys.executable, "-c", code, str(runs), str(runs / run_name)], cwd=ROOT,
                         stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_a_folder_is_checked_grouped_and_offered_with_timed_presets(env):
    at = choose(open_train(), "blobs")
    assert at.title[0].value == "Train" and not at.error
    assert metrics(at) == {"usable images": "12", "unreadable files": "1", "groups": "12",
                           "train / validation": "10 / 2"}  # "auto": the number ending each name, one per file
    assert "`obj_000_000.fits` → `000`" in texts(at)
    radio = at.radio(key="train_preset")
    assert radio.options[0] == "**tiny**: 30 steps, 15 epochs, about 5 s" and "300 steps" in radio.options[1]
    assert "60 training images a second, and 0.10 s an epoch" in texts(at)
    at.radio(key="train_rule").set_value("regex").run()
    at.text_input(key="train_regex").set_value(r"obj_(\d+)_").run()
    assert metrics(at)["groups"] == "4" and "first group of the regular expression" in texts(at)
    assert not at.button(key="train_start").disabled
    assert "1 file cannot be read" in " ".join(e.label for e in at.expander)


@pytest.mark.parametrize("folder, rule, says", [
    ("bad", "auto", "None of the 1 FITS files in `bad` can be read"),
    ("one", "auto", "only 1 usable image: training needs at least 3"),
    ("small", "regex", "fall into one group"),
])
def test_folders_that_cannot_be_trained_on_say_why_and_start_stays_off(env, folder, rule, says):
    at = choose(open_train(), folder)
    if rule == "regex":
        at.radio(key="train_rule").set_value("regex").run()
        at.text_input(key="train_regex").set_value(r"obj_(\d)").run()  # every file is obj_000_...: one group
    assert any(says in e.value for e in at.error), [e.value for e in at.error]
    assert at.button(key="train_start").disabled


def test_a_second_start_is_refused_and_the_running_one_shown_even_when_its_folder_is_gone(env):
    at = choose(open_train(), "blobs")
    other = holder(env["runs"], "someone-else")
    try:
        at.button(key="train_start").click().run()
        assert any("already going (someone-else)" in e.value for e in at.error), [e.value for e in at.error]
        assert [p.name for p in jobs.list_runs(env["runs"])] == []  # nothing was written
        at = open_train()  # the page now follows the run going; its folder does not exist
        assert any("was deleted while the run was going" in e.value for e in at.error)
        assert at.button(key="train_cancel")
        at.button(key="train_cancel").click().run()
        assert other.wait(timeout=20) != 0 and jobs.lock_owner(env["runs"]) is None
    finally:
        other.kill()


def _fake_run(runs, name, state, data_dir, **files):
    run = runs / name
    run.mkdir(parents=True)
    (run / "job.json").write_text(json.dumps(jobs.Job(str(data_dir), str(runs / "c"), 5, "tiny").__dict__))
    (run / "state.json").write_text(json.dumps({"state": state}))
    for fname, text in files.items():
        (run / fname).write_text(text)
    return run


def test_an_interrupted_run_is_offered_for_resumption(env):
    history = json.dumps([{"epoch": e, "train_loss": 0.1, "val_loss": 0.1, "val_mse": 0.1, "val_latent_mse": 0.1}
                          for e in (1, 2)])
    run = _fake_run(env["runs"], "blobs-interrupted", "training", env["data"] / "blobs",
                    **{"last.pt": "x", "history.json": history})
    try:
        at = open_train()
        assert any("stopped: its process ended" in w.value and "2 of 5 epochs" in w.value for w in at.warning)
        assert at.button(key="train_resume").label == "Resume it"
        assert "Its training curves" in [e.label for e in at.expander]
    finally:
        import shutil

        shutil.rmtree(run)


def test_a_finished_run_opens_its_cache_in_the_app(env):
    import tomllib

    cfg = TrainConfig.from_dict(tomllib.loads(TINY))
    cache = env["data"] / "caches" / "small-run"
    run = jobs.start_run(cfg, env["data"] / "small", root=env["runs"], name="small-run", cache_dir=cache,
                         confine_to=env["data"])
    deadline = time.monotonic() + 240
    while (s := jobs.run_status(run, root=env["runs"])).alive and time.monotonic() < deadline:
        time.sleep(0.5)
    assert s.state == "done", s.error
    at = open_train(train_watching="small-run")  # the session that started it comes back to the page
    assert at.sidebar.selectbox(key="cache_path").value == str(cache)
    assert any("the app now shows its cache `small-run`" in x.value for x in at.success)
    assert "4 images" in " ".join(c.value for c in at.sidebar.caption)
    at = open_train()  # another session: the page offers the cache
    assert any("The last run `small-run` (3 of 3 epochs on `small`) is done" in x.value for x in at.success)
    at.button(key="train_open").click().run()
    assert at.sidebar.selectbox(key="cache_path").value == str(cache)


def test_progress_in_words():
    from dashboard.training import duration, progress_line

    def status(state, **progress):
        return jobs.RunStatus(ROOT, state, True, progress=progress)

    assert progress_line(status("starting")) == (0.0, "Starting…")
    assert progress_line(status("training", stage="read", done=5, total=20)) == (0.0, "Reading the images: 5 / 20")
    frac, line = progress_line(status("training", stage="epoch 3/10", done=8, total=32))
    assert frac == pytest.approx(0.225) and line == "Epoch 3 of 10: 25% of its steps"
    assert progress_line(status("training", stage="epoch 3/10", done=32, total=32))[1] == \
        "Epoch 3 of 10: checking it on the validation images"
    assert progress_line(status("training", stage="synthetic galaxies", done=300, total=2000)) == \
        (0.0, "Drawing synthetic galaxies to pretrain on: 300 / 2,000")
    assert progress_line(status("training", stage="pretrain 2/4", done=500, total=2000)) == \
        (0.0, "Pretraining on synthetic galaxies, epoch 2 of 4: 25%")
    assert progress_line(status("encoding", stage="encode", done=1000, total=4000)) == \
        (0.25, "Encoding the folder with the new model: 1,000 / 4,000 images")
    assert progress_line(status("encoding", stage="maps", done=0, total=0)) == (1.0, "Fitting the maps (PCA, UMAP)…")
    assert [duration(s) for s in (3, 42, 600, 4000)] == ["about 5 s", "about 40 s", "about 10 min", "about 1 h 07 min"]


def test_a_finished_run_whose_cache_is_gone_offers_to_encode_again(env):
    run = _fake_run(env["runs"], "blobs-done", "done", env["data"] / "blobs")
    try:
        at = open_train()
        assert any("its cache" in w.value and "is gone" in w.value for w in at.warning)
        assert at.button(key="train_resume").label == "Encode the folder again"
    finally:
        import shutil

        shutil.rmtree(run)
