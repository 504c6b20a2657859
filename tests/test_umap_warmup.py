"""UMAP's compile moved into another process during the encode: started only where it can help, once per machine."""

import os
import subprocess
import sys

import pytest

from astroae_core.analysis import umap_warmup


def test_small_sets_start_nothing_and_a_marker_means_done(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    assert umap_warmup.start(umap_warmup.MIN_POINTS - 1, 8, max_fit=50_000) is None
    marker = umap_warmup._marker(2000, 8, 50_000)
    assert marker.parent == tmp_path / "numba"
    marker.write_text("{}")
    assert umap_warmup.start(2000, 8, max_fit=50_000) is None
    # another code path (more points than a fit takes: a transform too) or another latent size is another marker
    assert umap_warmup._marker(60_000, 8, 50_000) != marker
    assert umap_warmup._marker(2000, 16, 50_000) != marker
    assert umap_warmup._marker(3000, 8, 50_000) == marker


@pytest.mark.slow
def test_the_warm_up_process_compiles_into_the_disk_cache_and_leaves_its_marker(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    proc = umap_warmup.start(1000, 8, max_fit=50_000)
    assert isinstance(proc, subprocess.Popen)
    umap_warmup.finish(proc)
    assert proc.returncode == 0
    assert umap_warmup._marker(1000, 8, 50_000).is_file()
    assert umap_warmup.start(1000, 8, max_fit=50_000) is None  # once per machine
    # a later process fitting other latents of the same kind loads the code: numba compiles nothing
    r = subprocess.run([sys.executable, "-c", _COUNT_COMPILES], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")})
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[-1] == "compiled:0"


_COUNT_COMPILES = """
import numpy as np
from numba.core import event
from astroae_core.analysis.projections import _import_umap, fit_umap
_import_umap()
started = []
class Count(event.Listener):
    def on_start(self, ev): started.append(ev)
    def on_end(self, ev): pass
event.register("numba:compile", Count())
fit_umap(np.random.default_rng(5).normal(size=(1500, 8)).astype(np.float32), seed=0)
print(f"compiled:{len(started)}")
"""


def test_a_hung_warm_up_is_stopped():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    umap_warmup.finish(proc, timeout=0.1)
    assert proc.returncode is not None and proc.returncode != 0
