#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with the CPU build of torch first, then the pinned
# requirements and the project itself. `--dev` adds what the tests need (pytest, playwright, ...); the app does
# without. `--demo` installs only what `astroae demo-data` needs (no torch), so that scripts/app.sh can draw the
# demo stamps while the rest installs. Re-runs are instant unless a requirements file changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $($PY --version)"
    "$PY" -m venv .venv
fi
app_stamp=app-$(cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)
dev_stamp=dev-$(cat requirements.txt requirements-dev.txt pyproject.toml | sha256sum | cut -c1-16)
want=$app_stamp reqs=requirements.txt
if [ "${1:-}" = "--dev" ]; then want=$dev_stamp reqs=requirements-dev.txt; fi
have=$(cat .venv/.setup-stamp 2>/dev/null || true)
# --no-compile: pip would byte-compile every module of every package (most of torch's install time); Python
# compiles what is imported, once, on first use (benchmarks/RESULTS.md, 6.2b).
pip="$PWD/.venv/bin/python -m pip install -q --no-compile"
if [ "${1:-}" = "--demo" ]; then
    if [ "$have" != "$app_stamp" ] && [ "$have" != "$dev_stamp" ]; then
        $pip $(grep -E '^(numpy|scipy|GalSim|astropy|pandas|tqdm)==' requirements.txt)
        $pip --no-deps -e .
    fi
    exit 0
fi
if [ "$have" != "$want" ] && [ "$have" != "$dev_stamp" ]; then  # an up-to-date dev set-up serves the app too
    echo "[setup] installing dependencies from $reqs (CPU torch first; a minute or two on a fresh machine)"
    $pip --upgrade pip
    # The CPU wheel must come first: with no torch present, a plain requirement resolves to a CUDA build.
    $pip "torch==2.13.0" || $pip "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
    $pip -r "$reqs"
    $pip --no-deps -e .
    echo "$want" > .venv/.setup-stamp
fi
