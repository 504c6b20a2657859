"""Helpers shared by the benchmarks: the machine's float32 matmul rate, peak RSS, machine facts, JSON output.

Peak memory is read from ``/proc/self/status`` (``VmHWM``, the high-water mark of the resident set) or, for a
child process, from ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``: no extra dependency.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# ../shared beside the checkout, as in tests/conftest.py
CEERS = ROOT.parent / "shared" / "data" / "ceers_jwst"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _status_mb(pid, field: str) -> float | None:
    # /proc/<pid>/status gives sizes in KiB.
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def peak_rss_mb(pid: int | str = "self") -> float | None:
    """Peak resident set size (``VmHWM``) of a process in MiB; None where ``/proc`` does not say."""
    peak = _status_mb(pid, "VmHWM")
    if peak is None and pid == "self":
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    return peak


class StagePeaks:
    """An encode's ``progress`` callback that records the peak RSS of each stage (``"before"`` the first call:
    imports, the model and its runtimes; ``"encode"``, ``"maps"``, ``"report"``) apart: at each new stage it reads ``VmHWM`` and resets it (``/proc/self/clear_refs``), so a
    stage's peak is its own, not the process's so far. Call :meth:`finish` after the encode; ``peaks_mb`` is None
    where the kernel does not let the peak be reset."""

    def __init__(self):
        self.stage, self.peaks_mb = None, {}

    def _reset(self) -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False

    def __call__(self, done, total, stage) -> None:
        if stage == self.stage or self.peaks_mb is None:
            return
        self.peaks_mb[self.stage or "before"] = round(peak_rss_mb(), 1)  # "before": imports, model, runtimes
        self.stage = stage
        if not self._reset():
            self.peaks_mb = None

    def finish(self) -> dict | None:
        if self.peaks_mb is not None and self.stage is not None:
            self.peaks_mb[self.stage] = round(peak_rss_mb(), 1)
        return self.peaks_mb


def rss_mb(pid: int | str = "self") -> float | None:
    """Current resident set size (``VmRSS``) in MiB."""
    return _status_mb(pid, "VmRSS")


def training_running() -> bool:
    """Whether the lead's training or latent-quality runs are on the machine (their figures would be skewed)."""
    r = subprocess.run(["pgrep", "-f", "train --config|latent_quality"], capture_output=True, text=True, check=False)
    return bool(r.stdout.strip())


def machine() -> dict:
    """Facts that make a figure comparable: CPU, cores, torch threads, load average, versions."""
    import numpy as np
    import torch

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version(),
            "load_avg_1min": round(os.getloadavg()[0], 2), "training_running": training_running(),
            "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def matmul_gflops(*, n: int = 2048, seconds: float = 1.0, threads: int | None = None) -> float:
    """The float32 matrix-multiply rate this machine reaches (GFLOP/s): the best of timed ``torch.mm`` of two
    ``n x n`` matrices (2 n^3 FLOPs each), repeated for about ``seconds``.

    This is the roofline the model benchmarks are compared with: a convolution can at best run as fast as a matrix
    multiply of the same FLOPs.
    """
    import torch

    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        g = torch.Generator().manual_seed(0)
        a = torch.randn(n, n, generator=g)
        b = torch.randn(n, n, generator=g)
        torch.mm(a, b)  # warm-up: thread pool, caches
        best = float("inf")
        t_end = time.perf_counter() + seconds
        reps = 0
        while reps < 3 or time.perf_counter() < t_end:
            t0 = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - t0)
            reps += 1
        return 2.0 * n**3 / best / 1e9
    finally:
        torch.set_num_threads(old)


def percentiles_ms(times_s) -> dict:
    """p50 / p95 / min of durations in seconds, in milliseconds."""
    import numpy as np

    t = np.asarray(times_s, dtype=np.float64) * 1e3
    return {"p50_ms": round(float(np.percentile(t, 50)), 3), "p95_ms": round(float(np.percentile(t, 95)), 3),
            "min_ms": round(float(t.min()), 3), "n": int(t.size)}


def emit(result: dict, out: str | None) -> None:
    """Print ``result`` as JSON on stdout and, with ``out``, write it to that file too. A result carrying the
    ``machine`` record gets the load average at its end there (the one at its start is already in it)."""
    if isinstance(result.get("machine"), dict):
        result["machine"]["load_avg_1min_end"] = round(os.getloadavg()[0], 2)
    text = json.dumps(result, indent=1, default=_plain)
    print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n", encoding="utf-8")


def _plain(v):
    try:
        import numpy as np

        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, np.ndarray):
            return v.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"not JSON serializable: {type(v).__name__}")


def run_json(argv: list[str], *, env: dict | None = None, timeout: float | None = None) -> dict:
    """Run ``python -m ...`` (``argv`` after the interpreter) in a fresh process and parse the JSON it prints last.

    A fresh process gives honest cold-start and peak-memory figures (its own ``VmHWM``).
    """
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=ROOT, env=e, timeout=timeout,
                       check=False)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    start = r.stdout.find("{")
    if start < 0:
        raise RuntimeError(f"{' '.join(argv)} printed no JSON: {r.stdout[-500:]}")
    return json.loads(r.stdout[start:])
