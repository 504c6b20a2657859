"""FitsReadError, the one exception the FITS reader lets out, and how its messages are worded."""

from __future__ import annotations

import os

__all__ = ["FitsReadError", "describe", "fits_error"]


class FitsReadError(ValueError):
    """A FITS file cannot be used as an image; the message names the file and the reason.

    Parameters
    ----------
    message : str
        Full message, ``"cannot read '<path>': <reason>"``.
    path : str, optional
        The file concerned.
    reason : str, optional
        Why it cannot be used (the part of the message after the file name).
    """

    def __init__(self, message, path=None, reason=None):
        super().__init__(message)
        self.path = path
        self.reason = reason

    def __reduce__(self):  # keep path/reason across pickling (DataLoader workers, multiprocessing)
        return (self.__class__, (str(self), self.path, self.reason))


def fits_error(path, reason) -> FitsReadError:
    """The :class:`FitsReadError` for ``path``: ``"cannot read '<path>': <reason>"``."""
    name = os.fspath(path)
    return FitsReadError(f"cannot read {name!r}: {reason}", path=name, reason=reason)


def describe(exc) -> str:
    """An exception as ``"Type: message"`` (just ``"Type"`` when it has no message), for a reason."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
