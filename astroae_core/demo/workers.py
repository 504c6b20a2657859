"""The demo's worker processes: stamps drawn in fresh Python interpreters, catalog rows streamed back as JSON lines.

Plain subprocesses rather than :mod:`multiprocessing`: GalSim links OpenMP (libgomp), and a process forked after
OpenMP ran in its parent hangs, while spawn/forkserver re-import the caller's ``__main__`` and so fail from an
unguarded script. A fresh interpreter has neither problem.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from astroae_core.demo.plan import StampSpec
from astroae_core.demo.stamp import make_stamp

__all__ = ["available_cpus", "run_workers", "worker_main"]


def available_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def run_workers(specs: list[StampSpec], workers: int):
    """Draw ``specs`` in ``workers`` fresh Python processes; yield catalog rows as stamps finish.

    Each worker reads its share of the specs as JSON on stdin and writes one JSON catalog row per finished stamp
    on stdout. RuntimeError, with the end of its stderr, when a worker fails.
    """
    import selectors

    procs = []
    sel = selectors.DefaultSelector()
    try:
        for k in range(workers):
            proc, err = _start_worker()
            procs.append((proc, err))
            share = [s.__dict__ for s in specs[k::workers]]  # interleaved, so slow kinds spread evenly
            try:
                proc.stdin.write(json.dumps(share).encode())
                proc.stdin.close()
            except BrokenPipeError:  # the worker died at start-up; its exit status and stderr are reported below
                pass
            sel.register(proc.stdout, selectors.EVENT_READ, proc)
        open_pipes = len(procs)
        while open_pipes:
            for key, _ in sel.select():
                line = key.fileobj.readline()
                if not line:
                    sel.unregister(key.fileobj)
                    open_pipes -= 1
                    continue
                yield json.loads(line)
        for proc, err in procs:
            if proc.wait() != 0:
                err.seek(0)
                tail = err.read().decode(errors="replace")[-3000:]
                raise RuntimeError(f"demo-data worker failed with exit status {proc.returncode}:\n{tail}")
    finally:
        sel.close()
        for proc, err in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            err.close()


def _start_worker():
    """Start one worker; returns the process and the temporary file that holds its stderr."""
    env = dict(os.environ)
    # The package may be used from a checkout without being installed: make it importable in the workers.
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    # One OpenMP thread per worker: the workers already use the cores.
    env.setdefault("OMP_NUM_THREADS", "1")
    cmd = [sys.executable, "-c", "from astroae_core.demo.workers import worker_main; worker_main()"]
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env)
    return proc, err


def worker_main() -> None:
    """Entry point of a worker process (see :func:`run_workers`)."""
    specs = [StampSpec(**d) for d in json.loads(sys.stdin.buffer.read())]
    for spec in specs:
        # NaN is written as the bare token NaN, which json.loads reads back.
        sys.stdout.write(json.dumps(make_stamp(spec)) + "\n")
        sys.stdout.flush()
