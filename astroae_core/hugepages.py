"""numpy's transparent-huge-page advice, switched for a block of work.

numpy advises the kernel to back every array of 4 MB or more with 2 MB pages (``madvise(MADV_HUGEPAGE)``). Where
free huge pages are at hand, that saves page faults: about 30 ms per 100 MB touched, measured here. Where the
kernel (or the virtual machine's host) must first find and back them, the advice makes fresh large arrays slow to
touch: 0.8-1.5 s for 140-256 MB against 0.05-0.1 s without it, on the project's machines, which of the two a
machine is changing from one minute to the next (benchmarks/RESULTS.md, 6.1d). No probe short enough to run
before an encode tells them apart, and the loss in the second case is twenty times the gain in the first, so an
encode runs without the advice (:func:`numpy_hugepages`) and records that it did.
"""

from __future__ import annotations

import contextlib
import threading

from numpy._core import multiarray

__all__ = ["numpy_hugepages"]

# numpy's setting is the process's: blocks that overlap (two encodes on two threads) share one count, the last
# to start sets it, and the setting from before the first is put back when the last ends.
_LOCK = threading.Lock()
_held = {"depth": 0, "before": None}


@contextlib.contextmanager
def numpy_hugepages(enabled: bool):
    """numpy's huge-page advice on or off inside the block, put back as it was when no such block is left.

    Yields
    ------
    bool
        The setting in force inside the block.
    """
    with _LOCK:
        before = multiarray._set_madvise_hugepage(bool(enabled))
        if _held["depth"] == 0:
            _held["before"] = before
        _held["depth"] += 1
    try:
        yield bool(enabled)
    finally:
        with _LOCK:
            _held["depth"] -= 1
            if _held["depth"] == 0:
                multiarray._set_madvise_hugepage(_held["before"])
