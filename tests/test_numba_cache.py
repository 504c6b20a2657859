"""numba's disk cache for UMAP's compiled code (astroae_core.analysis.projections): the folder it uses, and that a
second process loads from it what the first compiled, for a umap function its authors did not mark ``cache=True``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from astroae_core.analysis.projections import numba_cache_dir

from .conftest import ROOT

# umap.distances.euclidean is plain @numba.njit() (no cache=True): quick to compile, cached only by our switch.
_CALL_ONE = """
import json, numpy as np
from astroae_core.analysis.projections import _import_umap
f = _import_umap().distances.euclidean
assert f._cache.__class__.__name__ == "FunctionCache", f._cache
f(np.zeros(3), np.ones(3))
print(json.dumps({"hits": sum(f.stats.cache_hits.values()), "misses": sum(f.stats.cache_misses.values())}))
"""


def _run(env_dir) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(env_dir), OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    r = subprocess.run([sys.executable, "-c", _CALL_ONE], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_second_process_loads_umap_code_the_first_compiled_into_the_cache_folder(tmp_path):
    # Start from the project's cache when there is one (else importing umap compiles pynndescent for minutes),
    # without the one function under test.
    if (ROOT / "cache" / "numba").is_dir():
        shutil.copytree(ROOT / "cache" / "numba", tmp_path, dirs_exist_ok=True)
    for p in tmp_path.rglob("distances.euclidean-*"):
        p.unlink()
    first = _run(tmp_path)
    assert first == {"hits": 0, "misses": 1}
    index = [p.name for p in tmp_path.rglob("*.nbi")]
    assert any(name.startswith("distances.euclidean-") for name in index), index
    assert _run(tmp_path) == {"hits": 1, "misses": 0}


def test_cache_folder_is_numba_cache_dir_when_set_else_the_projects_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert numba_cache_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    assert numba_cache_dir() == ROOT / "cache" / "numba"
    assert (ROOT / "cache" / "numba").is_dir()
