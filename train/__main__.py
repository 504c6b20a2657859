"""``python -m train``: the same as ``astroae train`` (:mod:`astroae_core.cli`)."""

from __future__ import annotations

import sys

from astroae_core.cli import main as _cli

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """``astroae train ARGS``; returns the exit code (2 for bad arguments or data, with the reason on stderr)."""
    return _cli(["train", *(sys.argv[1:] if argv is None else argv)], prog="python -m")


if __name__ == "__main__":
    sys.exit(main())
