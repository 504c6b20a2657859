"""``python -m astroae_core``: the same command line as ``astroae`` (:mod:`astroae_core.cli`)."""

import sys

from astroae_core.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m astroae_core"))
