#!/usr/bin/env bash
# The README's test command: set-up (idempotent), then the whole suite. Extra arguments go to pytest,
# e.g. `bash scripts/test.sh -m "not slow and not browser"` for the quick unit tests only.
set -euo pipefail
cd "$(dirname "$0")/.."
# setup.sh installs without byte-compiling: each module is compiled on its first import and kept. With
# PYTHONDONTWRITEBYTECODE set, nothing is kept and every process compiles its imports again (30 s, not 6 s).
unset PYTHONDONTWRITEBYTECODE
bash scripts/setup.sh --dev
exec .venv/bin/python -m pytest "$@"
