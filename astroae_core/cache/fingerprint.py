"""Whether a cache still describes its data: the dataset's manifest and fingerprint, and what changed since.

A cache is fresh when its format, checkpoint SHA-256, data folder and dataset fingerprint (sorted relative path,
size and mtime of every FITS file, plus ``catalog.csv``) all match, and, for an encode, its settings. Anything
else rebuilds it: a cache is never silently reused for other data.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from astroae_core.cache.layout import CACHE_FORMAT, FILES, REQUIRED_FILES
from astroae_core.cache.meta import EncodeOptions, MetaFormatError, json_value, read_meta
from astroae_core.io import CATALOG_NAME, find_fits_files

__all__ = ["cache_status", "dataset_fingerprint", "dataset_manifest", "describe_changes", "freshness",
           "manifest_fingerprint"]


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.resolve().relative_to(root.resolve()).as_posix()


def dataset_manifest(data_dir) -> dict:
    """``{"files": [[relative path, size, mtime_ns], ...] (sorted), "catalog": [name, size, mtime_ns] or None}``
    of the FITS files under ``data_dir`` and its ``catalog.csv``.

    Raises
    ------
    ValueError
        If ``data_dir`` is not a folder.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise ValueError(f"data folder {str(root)!r} does not exist or is not a folder")
    files = []
    for f in find_fits_files(root):
        st = f.stat()
        files.append([_relative(f, root), int(st.st_size), int(st.st_mtime_ns)])
    files.sort()
    cat = root / CATALOG_NAME
    catalog = None
    if cat.is_file():
        st = cat.stat()
        catalog = [CATALOG_NAME, int(st.st_size), int(st.st_mtime_ns)]
    return {"files": files, "catalog": catalog}


def manifest_fingerprint(manifest: dict) -> str:
    """SHA-256 (hex) of a :func:`dataset_manifest`."""
    h = hashlib.sha256()
    entries = list(manifest["files"]) + ([manifest["catalog"]] if manifest["catalog"] else [])
    for rel, size, mtime in entries:
        h.update(f"{rel}\0{size}\0{mtime}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def dataset_fingerprint(data_dir) -> str:
    """SHA-256 over the sorted (relative path, size, mtime_ns) of every FITS file under ``data_dir``, and of its
    ``catalog.csv`` if present.

    Parameters
    ----------
    data_dir : str or Path
        The data folder (searched recursively with :func:`~astroae_core.io.find_fits_files`).

    Returns
    -------
    str
        64 hex digits. Adding, removing, renaming, rewriting or touching a file changes it; moving the whole
        folder does not.

    Raises
    ------
    ValueError
        If ``data_dir`` is not a folder.
    """
    return manifest_fingerprint(dataset_manifest(data_dir))


def describe_changes(old: dict | None, new: dict) -> str:
    """What changed between two manifests, for humans: ``"1 file added, 2 files removed, catalog.csv modified"``."""
    if not old or "files" not in old:
        return "data changed"
    before = {r: (s, m) for r, s, m in old["files"]}
    after = {r: (s, m) for r, s, m in new["files"]}
    added = len(after.keys() - before.keys())
    removed = len(before.keys() - after.keys())
    modified = sum(1 for r in after.keys() & before.keys() if tuple(after[r]) != tuple(before[r]))
    parts = [f"{n} file{'s' if n != 1 else ''} {word}"
             for n, word in ((added, "added"), (modified, "modified"), (removed, "removed")) if n]
    oc, nc = old.get("catalog"), new.get("catalog")
    if (oc is None) != (nc is None):
        parts.append(f"{CATALOG_NAME} {'added' if nc else 'removed'}")
    elif oc and list(oc) != list(nc):
        parts.append(f"{CATALOG_NAME} modified")
    return ", ".join(parts) or "data changed"


def _read_manifest(out: Path) -> dict | None:
    try:
        with open(out / FILES["manifest"], encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def freshness(out, *, ckpt_sha: str | None, data_dir, manifest: dict | None = None,
              options: EncodeOptions | None = None) -> tuple[bool, str]:
    """Whether the cache in ``out`` is fresh, and why not (the reasons of :func:`cache_status`).

    Parameters
    ----------
    out : str or Path
        Cache folder.
    ckpt_sha : str or None
        The checkpoint's SHA-256 (None: not compared).
    data_dir : str or Path
        The data folder.
    manifest : dict, optional
        Its :func:`dataset_manifest`, if already made.
    options : EncodeOptions, optional
        The encode's settings, compared with the cache's.
    """
    out, data_dir = Path(out), Path(data_dir)
    if not (out / FILES["meta"]).is_file():
        return False, "no cache"
    try:
        meta = read_meta(out)
    except MetaFormatError as exc:
        return False, f"cache format changed ({exc.found} -> {CACHE_FORMAT})"
    except ValueError as exc:
        return False, str(exc).removeprefix(f"{str(out)!r}: ")
    missing = [FILES[k] for k in REQUIRED_FILES if not (out / FILES[k]).is_file()]
    if meta.correlations is not None and not (out / FILES["correlations"]).is_file():
        missing.append(FILES["correlations"])
    if missing:
        return False, f"cache incomplete (missing {', '.join(missing)})"
    reasons = []
    if ckpt_sha is not None and meta.checkpoint.sha256 != ckpt_sha:
        reasons.append("checkpoint changed")
    if meta.data_path(out) != data_dir.resolve():
        reasons.append(f"data folder changed (cache made from {str(meta.data_path(out))!r})")
    manifest = manifest if manifest is not None else dataset_manifest(data_dir)
    if meta.dataset_fingerprint != manifest_fingerprint(manifest):
        reasons.append(describe_changes(_read_manifest(out), manifest))
    if options is not None and options != meta.options:
        was, now = json_value(meta.options), json_value(options)
        diff = [f"{k} {was[k]!r} -> {v!r}" for k, v in now.items() if was[k] != v]
        reasons.append("settings changed (" + ", ".join(diff) + ")")
    if reasons:
        return False, "; ".join(reasons)
    return True, f"up to date ({meta.n_images} images, made {meta.created_utc})"


def cache_status(out, checkpoint, data_dir) -> tuple[bool, str]:
    """Whether the cache in ``out`` is fresh for ``checkpoint`` and ``data_dir``, and why not.

    Parameters
    ----------
    out : str or Path
        Cache folder.
    checkpoint : str or Path
        Checkpoint file (compared by SHA-256).
    data_dir : str or Path
        Data folder (compared by :func:`dataset_fingerprint` and location).

    Returns
    -------
    fresh : bool
    reason : str
        For humans: ``"no cache"``, ``"checkpoint changed"``, ``"3 files added, 1 file modified"``,
        ``"catalog.csv modified"``, ``"cache format changed (astroae-cache/1 -> astroae-cache/2)"``,
        ``"checkpoint ... does not exist"``, or ``"up to date (...)"``; several reasons are joined with ``"; "``.
    """
    from astroae_core.model import file_sha256

    out, data_dir, checkpoint = Path(out), Path(data_dir), Path(checkpoint)
    if not checkpoint.is_file():
        return False, f"checkpoint {str(checkpoint)!r} does not exist"
    if not data_dir.is_dir():
        return False, f"data folder {str(data_dir)!r} does not exist"
    return freshness(out, ckpt_sha=file_sha256(checkpoint), data_dir=data_dir)
