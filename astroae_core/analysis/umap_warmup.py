"""UMAP's numba code compiled in another process while the encode is busy, once per machine.

The first UMAP fit on a machine spends about 36 CPU seconds compiling umap's numba code on one core, after the
encode's loop has finished with both (benchmarks/RESULTS.md, 6.2b). :func:`start` compiles the same code in a
second process during the loop, by fitting a small random set shaped like the real latents; numba keeps what it
compiles on disk (:func:`~astroae_core.analysis.projections.numba_cache_dir`), so the real fit loads it instead of
compiling. A marker file beside numba's cache says the work was done for these library versions and this code
path, so later encodes start nothing.

    python -m astroae_core.analysis.umap_warmup N_POINTS DIM MAX_FIT
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

log = logging.getLogger("astroae.analysis")

__all__ = ["start", "finish", "warm_up", "MIN_POINTS"]

# Below this many images the encode's loop is too short for the compile to hide behind it.
MIN_POINTS = 500
# umap computes every pairwise distance below this many points, and runs NN-descent (pynndescent) above it.
_SMALL_DATA = 4096


def _path_kind(n_points: int, max_fit: int) -> tuple[str, int]:
    """Which of UMAP's code paths a fit of ``n_points`` takes, and how many random points take it too."""
    n_fit = min(n_points, max_fit)
    kind = "exact" if n_fit < _SMALL_DATA else "nndescent"
    if n_points > max_fit:
        kind += "+transform"
    return kind, (300 if n_fit < _SMALL_DATA else _SMALL_DATA + 200)


def _marker(n_points: int, dim: int, max_fit: int) -> Path | None:
    from importlib.metadata import version
    from importlib.util import find_spec

    from .projections import numba_cache_dir

    folder = numba_cache_dir()
    if folder is None:
        return None
    key = [_path_kind(n_points, max_fit)[0], int(dim), platform.python_version()]
    key += [version(p) for p in ("umap-learn", "numba", "pynndescent")]
    # numba's cache is keyed by the source files' timestamps too: a reinstall of the same version compiles again
    spec = find_spec("umap")
    key.append(Path(spec.origin).stat().st_mtime_ns if spec and spec.origin else None)
    return folder / f"warm-{hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]}.json"


def start(n_points: int, dim: int, *, max_fit: int) -> subprocess.Popen | None:
    """Start compiling UMAP's code for ``n_points`` latents of ``dim`` numbers in another process.

    Returns
    -------
    subprocess.Popen or None
        The process (wait for it before fitting), or None where there is nothing to gain: too few points, already
        done on this machine for these versions, or no disk cache for numba.
    """
    if n_points < MIN_POINTS:
        return None
    marker = _marker(n_points, dim, max_fit)
    if marker is None or marker.exists():
        return None
    cmd = [sys.executable, "-m", "astroae_core.analysis.umap_warmup", str(n_points), str(dim), str(max_fit)]
    try:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError as exc:  # the real fit compiles for itself
        log.info("UMAP warm-up not started: %s", exc)
        return None


def finish(proc: subprocess.Popen | None, *, timeout: float = 600.0) -> None:
    """Wait for :func:`start`'s process; past ``timeout`` seconds it is stopped (the real fit compiles for itself)."""
    if proc is None:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def warm_up(n_points: int, dim: int, *, max_fit: int, seed: int = 0) -> Path | None:
    """Fit UMAP on random float32 points that take the same code path as ``n_points`` real latents, then write the
    marker; the marker's path, or None where numba has no disk cache."""
    from .projections import fit_umap

    marker = _marker(n_points, dim, max_fit)
    if marker is None:
        return None
    kind, n = _path_kind(n_points, max_fit)
    z = np.random.default_rng(seed).normal(size=(n + (n if "transform" in kind else 0), dim)).astype(np.float32)
    fit_umap(z, seed=seed, max_fit=n)
    from astroae_core.io import atomic_write_text

    atomic_write_text(marker, json.dumps({"path": kind, "dim": int(dim)}))
    return marker


if __name__ == "__main__":
    warm_up(int(sys.argv[1]), int(sys.argv[2]), max_fit=int(sys.argv[3]))
