"""Atomic file writes: write to a temporary file beside the target, fsync, then rename over it.

A reader therefore sees either the old complete file or the new complete file, never a half-written one,
even if the writing process is killed with SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "fsync_path"]


@contextlib.contextmanager
def atomic_path(target, *, suffix=""):
    """Yield a temporary path beside ``target``; on success fsync it and rename it onto ``target``.

    Parameters
    ----------
    target : str or Path
        Final file path. Its folder is created if missing.
    suffix : str, optional
        Suffix for the temporary file (some writers infer the format from it).

    Yields
    ------
    Path
        Where the caller writes. Removed if the block raises.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        # mkstemp makes a private (0600) file; the result should read like any other file its user makes.
        os.chmod(tmp, _new_file_mode())
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        fsync_path(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(target, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    atomic_write_bytes(target, text.encode("utf-8"))


def _new_file_mode() -> int:
    """0666 less the umask, as open() would give. Read from /proc: setting the umask to read it back is
    process-wide and would race with other threads creating files."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    return 0o644


def fsync_path(folder: Path) -> None:
    """fsync a file or folder, ignoring filesystems that refuse (a rename is durable once its folder is)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
