"""UMAP's compile moved into another process during the encode: started only where it can help, once per machine."""

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
    assert list((tmp_path / "numba").rglob("*.nbi"))  # numba's index files: the compiled code is on disk
    assert umap_warmup.start(1000, 8, max_fit=50_000) is None  # once per machine


def test_a_hung_warm_up_is_stopped():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    umap_warmup.finish(proc, timeout=0.1)
    assert proc.returncode is not None and proc.returncode != 0
