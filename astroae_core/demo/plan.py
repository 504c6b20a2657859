"""What each demo stamp is, decided before anything is drawn (cheap, no GalSim): its kind, file name and seed.

:func:`assign_kinds` deals the oddities out over the stamps; :func:`plan_stamps` checks the arguments of a run
and returns one :class:`StampSpec` per stamp, which is all a worker needs to draw and write it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["ANOMALY_KINDS", "FILE_PREFIX", "KINDS", "StampSpec", "assign_kinds", "plan_stamps"]

ANOMALY_KINDS = ("merger", "star", "satellite_trail", "cosmic_rays", "ring", "detector_edge")
KINDS = ("galaxy", *ANOMALY_KINDS)
FILE_PREFIX = "galaxy_"


@dataclass(frozen=True)
class StampSpec:
    """Everything a worker needs to draw and write one stamp (plain fields: sent to workers as JSON)."""

    index: int
    name: str
    path: str
    kind: str
    seed: int  # master seed (header card)
    size: int


def assign_kinds(n: int, *, seed: int = 0, anomaly_fraction: float = 0.04) -> list[str]:
    """Decide which stamps get which oddity.

    ``round(n * anomaly_fraction)`` stamps (chosen at random) are anomalies; the kinds are dealt out as evenly as
    possible in a random order, so every kind appears at least once as soon as there are six or more anomalies
    (for example ``n >= 138`` at the default fraction of 0.04).

    Parameters
    ----------
    n : int
        Number of stamps, at least 1.
    seed : int, optional
        Master seed.
    anomaly_fraction : float, optional
        Fraction of anomalous stamps, in [0, 1).

    Returns
    -------
    list of str
        ``n`` kinds, ``"galaxy"`` for normal stamps.
    """
    n = _check_n(n)
    anomaly_fraction = _check_fraction(anomaly_fraction)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xA40]))
    n_anom = int(round(n * anomaly_fraction))
    kinds = ["galaxy"] * n
    if n_anom:
        where = rng.choice(n, size=n_anom, replace=False)
        dealt = np.resize(rng.permutation(len(ANOMALY_KINDS)), n_anom)  # even deal: each kind before any repeats
        for i, k in zip(sorted(where.tolist()), rng.permutation(dealt).tolist()):
            kinds[i] = ANOMALY_KINDS[k]
    return kinds


def plan_stamps(out, *, n, seed, anomaly_fraction, size, kinds: Sequence[str] | None) -> list[StampSpec]:
    """One :class:`StampSpec` per stamp of a run writing to ``out``; ValueError naming a bad argument.

    ``kinds`` (one per stamp) overrides the random assignment of :func:`assign_kinds`; ``anomaly_fraction`` is
    then only checked.
    """
    n = _check_n(n)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 32:
        raise ValueError(f"size must be an integer >= 32 pixels, got {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if kinds is None:
        kinds = assign_kinds(n, seed=seed, anomaly_fraction=anomaly_fraction)
    else:
        _check_fraction(anomaly_fraction)
        kinds = list(kinds)
        if len(kinds) != n:
            raise ValueError(f"kinds must have one entry per stamp (n={n}), got {len(kinds)}")
        bad = sorted({k for k in kinds if k not in KINDS})
        if bad:
            raise ValueError(f"unknown kind(s) {bad}; choose from {list(KINDS)}")
    width = max(5, len(str(n - 1)))
    out = Path(out)
    specs = []
    for i, kind in enumerate(kinds):
        name = f"{FILE_PREFIX}{i:0{width}d}.fits"
        specs.append(StampSpec(index=i, name=name, path=str(out / name), kind=kind, seed=int(seed), size=int(size)))
    return specs


def _check_n(n) -> int:
    """``n`` as an int >= 1; ValueError naming it otherwise."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    return int(n)


def _check_fraction(f) -> float:
    """``f`` as a float in [0, 1); ValueError naming it otherwise."""
    try:
        ok = 0.0 <= float(f) < 1.0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"anomaly_fraction must be in [0, 1), got {f!r}")
    return float(f)
