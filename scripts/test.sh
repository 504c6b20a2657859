#!/usr/bin/env bash
# The README's test command: set-up (idempotent), then the whole suite. Extra arguments go to pytest,
# e.g. `bash scripts/test.sh -m "not slow and not browser"` for the quick unit tests only.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
exec .venv/bin/python -m pytest "$@"
