"""A fresh clone's first ``bash scripts/app.sh``: seconds from the command to the app answering on its port, with
each stage's share (set-up, the demo data, the demo cache), and a second start. Prints JSON.

    python -m benchmarks.first_start [--port 8599] [--out FILE]

The clone is ``git clone`` of this checkout's HEAD into a temporary folder (nothing of this checkout's ``.venv``,
``data/`` or ``cache/`` goes with it); its set-up builds its own ``.venv`` from the package index (pip's cache of
this machine helps, as it would a user's second project). The target (issue 18): under 2 minutes.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import emit, machine  # noqa: E402

def serve(clone: Path, port: int, *, timeout: float = 900) -> dict:
    """Run ``scripts/app.sh`` in ``clone`` until its health endpoint answers; the seconds to each stage's first
    line and to serving."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("VIRTUAL_ENV", None)
    t0 = time.perf_counter()
    proc = subprocess.Popen(["bash", "scripts/app.sh", "--server.port", str(port), "--server.headless", "true"],
                            cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    marks, lines = {}, []
    os.set_blocking(proc.stdout.fileno(), False)
    try:
        while time.perf_counter() - t0 < timeout:
            for line in iter(proc.stdout.readline, ""):
                lines.append(line)
                if "[app] generating" in line:
                    marks.setdefault("demo_data_start_s", time.perf_counter() - t0)
                if re.search(r"building cache|encode:", line):
                    marks.setdefault("cache_start_s", time.perf_counter() - t0)
                if "wrote cache" in line or "up to date" in line:
                    marks.setdefault("cache_done_s", time.perf_counter() - t0)
            if proc.poll() is not None:
                raise RuntimeError("scripts/app.sh exited: " + "".join(lines[-30:]))
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as r:
                    if r.status == 200:
                        marks["serving_s"] = time.perf_counter() - t0
                        return {k: round(v, 1) for k, v in marks.items()}
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"not serving after {timeout} s: " + "".join(lines[-30:]))
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:  # it exited on its own (the error above says why)
            pass
        proc.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=8599)
    p.add_argument("--out", help="also write the JSON here")
    args = p.parse_args(argv)
    info = machine()
    with tempfile.TemporaryDirectory(prefix="astroae-first-start-") as tmp:
        clone = Path(tmp) / "astroae"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        first = serve(clone, args.port)
        second = serve(clone, args.port)
    emit({"benchmark": "first_start", "machine": info, "first": first, "second": second,
          "first_serving_vs_target": round(first["serving_s"] / 120, 2), "target_s": 120}, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
