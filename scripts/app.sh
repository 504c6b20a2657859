#!/usr/bin/env bash
# The README's run command: set-up, the demo data and its latent cache if missing (or stale), then the app on
# http://localhost:8501. Extra arguments go to `streamlit run`.
set -euo pipefail
cd "$(dirname "$0")/.."
# setup.sh installs without byte-compiling: each module is compiled on its first import and kept. With
# PYTHONDONTWRITEBYTECODE set, nothing is kept and every process compiles its imports again (30 s, not 6 s).
unset PYTHONDONTWRITEBYTECODE
PY=.venv/bin/python
DATA=${ASTROAE_DEMO_DATA:-data/demo}
CACHE=${ASTROAE_CACHE:-cache/demo}
drawing=""
# a background job ignores Ctrl-C itself: it is stopped with the script, by Ctrl-C or an error
trap 'kill $drawing 2>/dev/null' EXIT
trap 'exit 130' INT TERM
if [ ! -f "$DATA/catalog.csv" ]; then
    # The stamps need no torch: they are drawn while the rest of the set-up installs.
    bash scripts/setup.sh --demo
    echo "[app] generating the demo dataset in $DATA (2000 GalSim stamps, about a minute)"
    "$PY" -m astroae_core demo-data --out "$DATA" --n 2000 --seed 0 &
    drawing=$!
fi
bash scripts/setup.sh
if [ -n "$drawing" ]; then
    wait "$drawing"  # its failure stops here (set -e)
fi
trap - EXIT INT TERM
# encode is a no-op when the cache matches the checkpoint and the data; it rebuilds a stale one.
"$PY" -m astroae_core encode --checkpoint models/demo.pt --data "$DATA" --out "$CACHE"
export ASTROAE_CACHE="$CACHE"
exec .venv/bin/streamlit run dashboard/app.py "$@"
