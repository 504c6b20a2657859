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

__all__ = ["numpy_hugepages"]


def _switch():
    """numpy's switch of the advice (``switch(bool) -> previous``), or None in a numpy without it."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray
    return getattr(multiarray, "_set_madvise_hugepage", None)


@contextlib.contextmanager
def numpy_hugepages(enabled: bool):
    """numpy's huge-page advice on or off inside the block, put back as it was after.

    Yields
    ------
    bool or None
        The setting in force inside the block; None where this numpy cannot switch it (it is left alone).
    """
    switch = _switch()
    if switch is None:
        yield None
        return
    before = switch(bool(enabled))
    try:
        yield bool(enabled)
    finally:
        switch(before)
