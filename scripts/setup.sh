#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with the CPU build of torch first, then the pinned
# requirements and the project itself. Re-runs are instant unless a requirements file changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $($PY --version)"
    "$PY" -m venv .venv
fi
stamp=$(cat requirements.txt requirements-dev.txt pyproject.toml | sha256sum | cut -c1-16)
if [ "$(cat .venv/.setup-stamp 2>/dev/null)" != "$stamp" ]; then
    echo "[setup] installing dependencies (CPU torch first; a few minutes on a fresh machine)"
    .venv/bin/python -m pip install -q --upgrade pip
    # The CPU wheel must come first: with no torch present, a plain requirement resolves to a CUDA build.
    .venv/bin/python -m pip install -q "torch==2.13.0" \
        || .venv/bin/python -m pip install -q "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
    .venv/bin/python -m pip install -q -r requirements-dev.txt
    .venv/bin/python -m pip install -q --no-deps -e .
    echo "$stamp" > .venv/.setup-stamp
fi
