"""Which files are FITS images, and where reading may go: listing a folder's FITS files, and path confinement.

:func:`is_within` is the confinement check every reader of user-configured folders uses: a path counts as inside
a folder only if its real location (symbolic links and ``..`` resolved) is, so a link inside a data folder
cannot make the tool read a file elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["FITS_SUFFIXES", "find_fits_files", "is_within", "project_cache_dir"]

#: Suffixes (lower case) that `find_fits_files` recognises, each also with ``.gz`` or ``.bz2`` appended.
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fz")
_ALL_SUFFIXES = tuple(s + c for s in FITS_SUFFIXES for c in ("", ".gz", ".bz2"))


def find_fits_files(root, *, confine_to=None):
    """List the FITS files under a folder, recursively.

    Parameters
    ----------
    root : str or os.PathLike
        Folder to search. A single file is returned as a one-element list if its name has a FITS suffix.
    confine_to : path or sequence of paths, optional
        Leave out files whose real path (symbolic links followed) lies outside all of these folders.

    Returns
    -------
    list of pathlib.Path
        Sorted paths (starting with ``root``) of the files whose names end, case-insensitively, in ``.fits``,
        ``.fit``, ``.fts`` or ``.fz``, each optionally followed by ``.gz`` or ``.bz2``. Hidden files and
        folders (names starting with ``.``) below ``root`` are skipped, and symbolic links to folders are not
        followed. Files are not opened: `read_fits` decides whether they are usable.

    Raises
    ------
    FileNotFoundError
        If ``root`` does not exist.
    """
    root = Path(root)
    if root.is_file():
        return [root] if _has_fits_suffix(root.name) else []
    if not root.is_dir():
        raise FileNotFoundError(f"no such folder: {os.fspath(root)!r}")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found.extend(Path(dirpath) / f for f in filenames if not f.startswith(".") and _has_fits_suffix(f))
    if confine_to is not None:
        found = [f for f in found if is_within(f, confine_to)]
    return sorted(found)


def is_within(path, roots) -> bool:
    """Whether ``path``'s real location (symbolic links and ``..`` resolved) lies inside one of ``roots`` (a path
    or a sequence of paths); False for a path that cannot be resolved (a symlink loop)."""
    roots = [roots] if isinstance(roots, (str, os.PathLike)) else list(roots)
    try:
        real = Path(path).resolve()
        return any(real == r or real.is_relative_to(r) for r in (Path(r).resolve() for r in roots))
    except (OSError, RuntimeError):
        return False


def _has_fits_suffix(name):
    return name.lower().endswith(_ALL_SUFFIXES)


def project_cache_dir(name: str, *, env: str | None = None) -> Path | None:
    """A folder of the project's machine-local cache: ``$env`` when that variable is set, else ``cache/<name>``
    beside ``astroae_core`` (created here). None where it cannot be made or written: callers then do without.

    What lives there depends on this machine (compiled code, measured speeds) and is never part of a result.
    """
    import os

    folder = Path(os.environ[env]) if env and os.environ.get(env) else Path(__file__).resolve().parents[2] / "cache" / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None

