"""Where the app's files are, and the guard on every path it reads: the data root, the configured cache, the shipped
models, and the caches, data folders and checkpoints found under them."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from astroae_core.cache import is_cache_dir
from astroae_core.io import FITS_SUFFIXES, is_within

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = REPO_ROOT / "cache" / "demo"
MODELS_DIR = REPO_ROOT / "models"


class PathNotAllowed(ValueError):
    """A path outside the folders the app may read (the data root and the operator's own cache and models)."""


def data_root(env=None) -> Path:
    """The folder the app may read images from and encode: ``ASTROAE_DATA_ROOT``, else ``<repo>/data``."""
    env = os.environ if env is None else env
    raw = env.get("ASTROAE_DATA_ROOT") or str(REPO_ROOT / "data")
    return Path(raw).expanduser().resolve()


def configured_cache(argv=None, env=None) -> tuple[Path, str]:
    """The cache the operator asked for: ``-- --cache PATH``, else ``ASTROAE_CACHE``, else the demo cache.

    Returns
    -------
    path : Path
        Resolved; it may not exist yet (the app then offers to build it).
    source : str
        Where it came from, for the sidebar.
    """
    env = os.environ if env is None else env
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--cache")
    args, _ = parser.parse_known_args(list(argv or []))
    if args.cache:
        return Path(args.cache).expanduser().resolve(), "--cache"
    if env.get("ASTROAE_CACHE"):
        return Path(env["ASTROAE_CACHE"]).expanduser().resolve(), "ASTROAE_CACHE"
    return DEFAULT_CACHE.resolve(), "demo cache"


def resolve_within(path, roots, *, base=None) -> Path:
    """Resolve ``path`` (symlinks and ``..`` included) and check that it lies inside one of ``roots``.

    Parameters
    ----------
    path : str or Path
        Absolute, or relative to ``base`` (default: the first root).
    roots : sequence of Path
        Allowed folders (or single files).
    base : Path, optional

    Raises
    ------
    PathNotAllowed
        Naming the path, when it resolves outside every root (a ``..`` escape, an absolute path elsewhere, a
        symlink pointing out).
    """
    roots = [Path(r).resolve() for r in roots]
    if not roots:
        raise PathNotAllowed(f"{str(path)!r}: no folder is allowed")
    p = Path(path).expanduser()
    if not p.is_absolute():
        p = Path(base if base is not None else roots[0]) / p
    try:
        resolved = p.resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise PathNotAllowed(f"{str(path)!r} cannot be resolved ({exc})") from None
    if is_within(resolved, roots):
        return resolved
    shown = ", ".join(str(r) for r in roots)
    raise PathNotAllowed(f"{str(path)!r} lies outside the folders the app may read ({shown})")


def _walk_folders(root: Path, max_depth: int):
    """Yield ``(folder, file names, is_cache)`` under ``root`` (resolved): sorted, hidden folders skipped, symlinks
    not followed, no deeper than ``max_depth``, and never inside a cache."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        d = Path(dirpath)
        depth = len(d.relative_to(root).parts)
        dirnames[:] = sorted(n for n in dirnames if not n.startswith(".")) if depth < max_depth else []
        cache = is_cache_dir(d)
        if cache:
            dirnames[:] = []
        yield d, filenames, cache


def find_caches(roots, *, max_depth: int = 3, limit: int = 100) -> list[Path]:
    """Latent caches (folders with ``meta.json`` and ``latents.parquet``) under ``roots``, without following
    symlinks out of them; hidden folders are skipped."""
    found: list[Path] = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        for d, _, cache in _walk_folders(root.resolve(), max_depth):
            if cache and d not in found:
                found.append(d)
            if len(found) >= limit:
                return found
    return found


def find_data_folders(root, *, max_depth: int = 3, limit: int = 200) -> list[tuple[str, int]]:
    """Folders under ``root`` that hold FITS files directly: ``[(relative path, number of files), ...]``."""
    suffixes = tuple(s + c for s in FITS_SUFFIXES for c in ("", ".gz", ".bz2"))
    root = Path(root)
    if not root.is_dir():
        return []
    root = root.resolve()
    out = []
    for d, filenames, cache in _walk_folders(root, max_depth):
        if cache:
            continue
        n = sum(1 for f in filenames if f.lower().endswith(suffixes))
        if n:
            out.append((str(d.relative_to(root)) if d != root else ".", n))
        if len(out) >= limit:
            break
    return out


def find_models(models_dir=MODELS_DIR) -> list[Path]:
    """The checkpoints (``*.pt``) in ``models_dir``, resolved and sorted."""
    d = Path(models_dir)
    return sorted(p.resolve() for p in d.glob("*.pt")) if d.is_dir() else []


def cache_slug(folder) -> str:
    """A folder name for the cache of ``folder``: its path with anything unusual replaced by ``-``."""
    text = "-".join(Path(folder).parts) if str(folder) not in ("", ".") else "root"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "cache"
