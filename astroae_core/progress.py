"""Progress reporting without patching anything global.

Long functions (encode, folder loading, demo generation, training) take ``progress``: a callable
``progress(done, total, stage)`` called as work completes (``total`` may be 0 where unknown; ``stage`` is a short
label such as ``"encode"`` or ``"umap"``). ``None`` reports nothing. The command line adapts it to tqdm
(:class:`TqdmProgress`), the app to a Streamlit progress bar.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int, str], None]


def report(progress: Progress | None, done: int, total: int, stage: str) -> None:
    """Call ``progress`` if there is one (so callers need no ``if``)."""
    if progress is not None:
        progress(done, total, stage)


class TqdmProgress:
    """A :data:`Progress` that draws one tqdm bar per stage on stderr (the command line's adapter)."""

    def __init__(self, *, disable: bool = False):
        self.disable = disable
        self._bar = None
        self._stage = None

    def __call__(self, done: int, total: int, stage: str) -> None:
        if self.disable:
            return
        if stage != self._stage:
            self.close()
            from tqdm import tqdm

            self._bar = tqdm(total=total or None, desc=stage, unit="img", leave=False)
            self._stage = stage
        self._bar.total = total or None
        self._bar.n = done
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            self._stage = None
