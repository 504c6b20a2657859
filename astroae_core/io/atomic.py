"""Atomic writes: a file written to a temporary file beside it, fsynced, then renamed over it; a folder built in a
hidden sibling, then swapped in, under a lock.

A reader therefore sees either the old complete file (folder) or the new complete one, never a half-written one,
even if the writing process is killed with SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "exchange_paths", "folder_lock", "fsync_path",
           "new_folder_beside", "replace_folder", "tidy_beside"]

log = logging.getLogger(__name__)


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


# ---------------------------------------------------------------------------------------------------------------
# whole folders: built in a hidden sibling, then swapped in


@contextlib.contextmanager
def folder_lock(target):
    """Hold an exclusive lock for writing the folder ``target``: a lock file ``.<name>.lock`` beside it.

    Serializes processes that replace the same folder (two encodes of one cache). The lock file is left in place:
    removing it would let a third process lock a new file while the second still holds the old one.

    Parameters
    ----------
    target : str or Path
        The folder to be written. Its parent must exist.

    Yields
    ------
    bool
        True while the lock is held; False where the system has no ``fcntl`` (no cross-process lock).
    """
    target = Path(target)
    try:
        import fcntl
    except ImportError:
        yield False
        return
    with open(target.parent / f".{target.name}.lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def new_folder_beside(target) -> Path:
    """Create and return an empty hidden folder ``.<name>.tmp-XXXX`` beside ``target`` to build its replacement in
    (same filesystem, so :func:`replace_folder` is a rename)."""
    target = Path(target)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))


def exchange_paths(a, b) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``, called through ctypes).

    Returns
    -------
    bool
        True once swapped; False where the system or filesystem cannot (then nothing changed).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def replace_folder(new, target) -> None:
    """Make the complete folder ``new`` (from :func:`new_folder_beside`) the folder ``target``; delete the old one.

    With :func:`exchange_paths` a reader sees the old folder or the new one, nothing else. Elsewhere the old folder
    is renamed to ``.<name>.old-XXXX`` and the new one into place: between the two renames ``target`` is briefly
    absent (never half-written), and a process killed there leaves the old folder for :func:`tidy_beside` to put
    back.
    """
    new, target = Path(new), Path(target)
    if not target.exists():
        os.rename(new, target)
    elif exchange_paths(new, target):
        shutil.rmtree(new, ignore_errors=True)  # now holds the old folder
    else:
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.rmdir(old)
        os.rename(target, old)
        os.rename(new, target)
        shutil.rmtree(old, ignore_errors=True)
    fsync_path(target.parent)


def tidy_beside(target, *, locked: bool, is_complete, stale_after_s: float = 3600.0) -> None:
    """Clean up after a process killed while replacing ``target`` (call it holding :func:`folder_lock`).

    Temporary builds ``.<name>.tmp-*`` are removed: all of them when ``locked`` (no other writer of ``target`` can
    be running), else those older than ``stale_after_s``. Where ``target`` is missing and an ``.<name>.old-*``
    folder passes ``is_complete``, the newest is renamed back into place; the other old folders are removed.

    Parameters
    ----------
    target : str or Path
        The folder.
    locked : bool
        Whether :func:`folder_lock` really holds a lock.
    is_complete : callable
        ``is_complete(path) -> bool``: whether an old folder is worth restoring.
    stale_after_s : float
        Age past which a temporary build is removed without a lock.
    """
    target = Path(target)
    now = time.time()
    for p in target.parent.glob(f".{target.name}.tmp-*"):
        with contextlib.suppress(OSError):
            if p.is_dir() and (locked or now - p.stat().st_mtime > stale_after_s):
                shutil.rmtree(p, ignore_errors=True)
    olds = sorted((p for p in target.parent.glob(f".{target.name}.old-*") if p.is_dir()),
                  key=lambda p: p.stat().st_mtime)
    if olds and not target.exists() and is_complete(olds[-1]):
        with contextlib.suppress(OSError):
            os.rename(olds.pop(), target)
            log.warning("restored the previous %s after an interrupted replacement", target)
    for p in olds:
        shutil.rmtree(p, ignore_errors=True)
