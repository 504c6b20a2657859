"""Killed processes: SIGKILL a child in the middle of ``python -m astroae_core encode`` and of the app's cache
rebuild, then check that the previous cache is intact and loads, that the half-built folder is never read as a
cache, and that encoding again builds the new cache. (SIGKILL during training, then ``--resume``:
tests/test_train.py.)

Each kill lands at a chosen moment of the real code path: the child installs a pause at that moment (after a few
images are read; inside the anomaly scoring; right after ``latents.parquet`` is written, before ``meta.json``), says
so on its output, and is killed there. Timing therefore does not depend on the machine's speed or load, and the
folders stay small (fewer images than UMAP needs, so no process pays numba's compilation).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from astroae_core.cache import cache_status, encode_folder, load_cache

from .conftest import ROOT, blob_image

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # generous: the machine may be loaded

WAIT_S = 600  # for the child to reach the point where it is killed


def _env(**extra) -> dict:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **extra}


class Child:
    """A child process whose stdout and stderr are collected as they come (progress bars included)."""

    def __init__(self, cmd, *, env=None):
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env or _env(), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.out = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        fd = self.proc.stdout.fileno()
        while chunk := os.read(fd, 65536):
            self.out += chunk

    @property
    def text(self) -> str:
        return self.out.decode("utf-8", "replace")

    def wait_for(self, what: str, condition, *, timeout: float = WAIT_S) -> None:
        """Poll ``condition()`` until true; fail (with the child's output) if the child exits or time runs out."""
        deadline = time.monotonic() + timeout
        while not condition():
            if self.proc.poll() is not None:
                pytest.fail(f"the child exited ({self.proc.returncode}) before {what}:\n{self.text[-3000:]}")
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"no {what} within {timeout} s:\n{self.text[-3000:]}")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL the child (its whole process group) and reap it."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)
        self._reader.join(timeout=10)


def _checkpoint(path: Path) -> Path:
    """A tiny untrained model (32x32 inputs): encoding needs a model, not a good one."""
    import torch

    from astroae_core.model import save_checkpoint
    from astroae_core.model import AutoEncoder, ModelConfig
    from astroae_core.data import PreprocessConfig

    torch.manual_seed(0)
    model = AutoEncoder(ModelConfig(in_size=32, channels=(4, 8), latent_dim=3, skip_mode="none"),
                        preprocess_config=PreprocessConfig(size=32, method="minmax"))
    return save_checkpoint(path, model)


def _images(folder: Path, n: int, *, start: int = 0, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed + start)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        fits.PrimaryHDU(blob_image(rng, 32)).writeto(folder / f"obj_{i:04d}.fits")
    return folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A folder for the module's cases and a tiny checkpoint."""
    root = tmp_path_factory.mktemp("kill")
    ckpt = _checkpoint(root / "tiny.pt")
    return {"root": root, "ckpt": ckpt}


def _previous_cache(setup, name: str, *, n_old: int = 3, n_new: int = 1) -> dict:
    """A fresh data folder with a complete cache of its ``n_old`` images, then ``n_new`` more: the cache is stale."""
    root = setup["root"] / name
    data = _images(root / "data", n_old)
    out = encode_folder(setup["ckpt"], data, root / "cache")
    before = {"table": load_cache(out).table.copy(),
              "files": {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.iterdir()}}
    _images(data, n_new, start=n_old)
    added = f"{n_new} file{'s' if n_new != 1 else ''} added"
    assert cache_status(out, setup["ckpt"], data) == (False, added)
    return {"root": root, "data": data, "out": out, "before": before, "n": n_old + n_new, "added": added}


def _temporaries(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.tmp-*"))


def _assert_previous_cache_intact(case: dict) -> None:
    out, before = case["out"], case["before"]
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.iterdir()} == before["files"]
    cache = load_cache(out)
    pd.testing.assert_frame_equal(cache.table, before["table"])
    assert len(cache.previews) == len(before["table"]) and np.isfinite(cache.latents()).all()


def _assert_half_built_folder_is_never_read(case: dict) -> None:
    """What the killed build left is hidden, incomplete, refused by load_cache and not offered by the app."""
    from dashboard import paths

    out = case["out"]
    for tmp in _temporaries(out):
        assert tmp.name.startswith(".")
        assert not (tmp / "meta.json").exists()  # meta.json is written last: the folder is not a cache
        with pytest.raises(ValueError, match="not a latent cache"):
            load_cache(tmp)
    assert paths.find_caches([out.parent]) == ([out.resolve()] if out.exists() else [])


def _rerun_builds_the_new_cache(case: dict, setup) -> None:
    """Encoding again builds the new cache, with every image."""
    out = encode_folder(setup["ckpt"], case["data"], case["out"])
    cache = load_cache(out)
    assert len(cache.table) == case["n"] and len(cache.previews) == case["n"] and cache.meta.skipped == ()
    assert cache_status(out, setup["ckpt"], case["data"])[0]
    assert _temporaries(out) == []  # the killed build's hidden folder went with the rerun (it held the lock)
    # the previous images' rows are unchanged in the new cache (same model, same files)
    old = case["before"]["table"].set_index("path")[["z0", "z1", "z2"]]
    new = cache.table.set_index("path").loc[old.index, ["z0", "z1", "z2"]]
    np.testing.assert_allclose(new.to_numpy(), old.to_numpy(), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------------------------------
# python -m astroae_core encode, paused and killed at a chosen moment


_CLI_CHILD = textwrap.dedent("""
    import sys, threading, time
    import pandas as pd
    import astroae_core.analysis as analysis
    import astroae_core.cache as cache
    import astroae_core.cache.shard as shard

    def pause(what):
        print("PAUSED " + what, flush=True)
        time.sleep(900)

    moment = sys.argv[1]
    if moment == "reading":  # after the second image is read and preprocessed (the others are in flight)
        read, lock, count = shard.read_image, threading.Lock(), [0]
        def read_one(*args, **kwargs):
            out = read(*args, **kwargs)
            with lock:
                count[0] += 1
                n = count[0]
            if n == 2:
                pause(moment)
            return out
        shard.read_image = read_one
    elif moment == "scoring":  # latents computed, maps fitted, anomaly scores being computed
        score = analysis.anomaly_scores
        def anomaly_scores(*args, **kwargs):
            pause(moment)
            return score(*args, **kwargs)
        analysis.anomaly_scores = anomaly_scores
    elif moment == "writing":  # latents.parquet complete in the temporary folder, meta.json not yet written
        to_parquet = pd.DataFrame.to_parquet
        def write(self, path, *args, **kwargs):
            out = to_parquet(self, path, *args, **kwargs)
            if str(path).endswith("latents.parquet"):
                pause(moment)
            return out
        pd.DataFrame.to_parquet = write
    from astroae_core.cli import main
    sys.exit(main(["encode", *sys.argv[2:]]))  # python -m astroae_core encode ARGS
""")


def _kill_encode_at(moment: str, setup, data: Path, out: Path) -> Child:
    child = Child([sys.executable, "-c", _CLI_CHILD, moment, "--checkpoint", str(setup["ckpt"]), "--data", str(data),
                   "--out", str(out)])
    try:
        child.wait_for(f"the encode to reach '{moment}'", lambda: f"PAUSED {moment}" in child.text)
        assert child.proc.poll() is None
        tmps = _temporaries(out)
        assert len(tmps) == 1, tmps  # the build in progress
        assert (tmps[0] / "latents.parquet").is_file() == (moment == "writing")
        assert not (tmps[0] / "meta.json").exists()
    finally:
        child.kill()
    assert child.proc.returncode == -signal.SIGKILL
    return child


@pytest.mark.parametrize("moment", ["reading", "scoring", "writing"])
def test_sigkill_during_encode_keeps_the_previous_cache_and_a_rerun_rebuilds(setup, moment):
    case = _previous_cache(setup, f"encode-{moment}")
    _kill_encode_at(moment, setup, case["data"], case["out"])
    _assert_previous_cache_intact(case)
    _assert_half_built_folder_is_never_read(case)
    assert cache_status(case["out"], setup["ckpt"], case["data"]) == (False, case["added"])
    _rerun_builds_the_new_cache(case, setup)


def test_sigkill_during_a_first_encode_leaves_no_cache_then_a_rerun_builds_it(setup):
    root = setup["root"] / "first"
    data = _images(root / "data", 4)
    out = root / "cache"
    _kill_encode_at("writing", setup, data, out)
    assert not out.exists()  # nothing at the cache's path: no half cache to open
    with pytest.raises(ValueError, match="no such folder"):
        load_cache(out)
    _assert_half_built_folder_is_never_read({"out": out})
    case = {"data": data, "out": out, "n": 4,
            "before": {"table": pd.DataFrame({"path": [], "z0": [], "z1": [], "z2": []})}}
    _rerun_builds_the_new_cache(case, setup)


# ----------------------------------------------------------------------------------------------------------------
# the app's "Rebuild it now" button (dashboard/jobs.build_cache -> encode_folder(force=True)), killed while the new
# cache's files are being written


_APP_CHILD = textwrap.dedent("""
    import sys, time
    import pandas as pd

    to_parquet = pd.DataFrame.to_parquet
    def write(self, path, *args, **kwargs):  # pause with latents.parquet complete and no meta.json yet
        out = to_parquet(self, path, *args, **kwargs)
        if str(path).endswith("latents.parquet"):
            print("PAUSED writing", flush=True)
            time.sleep(900)
        return out
    pd.DataFrame.to_parquet = write

    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(sys.argv[1], default_timeout=1200).run()
    assert not at.exception, [e.value for e in at.exception]
    print("BUTTONS", [b.label for b in at.button], flush=True)
    [b for b in at.button if b.label == "Rebuild it now"][0].click().run()
""")


def test_sigkill_during_a_rebuild_from_the_app_keeps_the_previous_cache(setup):
    case = _previous_cache(setup, "app")
    env = _env(ASTROAE_CACHE=str(case["out"]), ASTROAE_DATA_ROOT=str(case["root"]))
    child = Child([sys.executable, "-c", _APP_CHILD, str(ROOT / "dashboard" / "app.py")], env=env)
    try:
        child.wait_for("the rebuild writing its table", lambda: "PAUSED writing" in child.text)
        assert child.proc.poll() is None
        assert "Rebuild it now" in child.text  # the app offered the rebuild, and it is what runs
        tmps = _temporaries(case["out"])
        assert len(tmps) == 1 and (tmps[0] / "latents.parquet").is_file() and not (tmps[0] / "meta.json").exists()
    finally:
        child.kill()
    _assert_previous_cache_intact(case)
    _assert_half_built_folder_is_never_read(case)
    _rerun_builds_the_new_cache(case, setup)
