"""What the app reads of a latent cache's folder and meta.json: whether a folder is a cache, the checkpoint it was
encoded with, its latent columns. (These follow the cache's API: they move when it does.)"""

from __future__ import annotations

import re
from pathlib import Path


def is_cache_dir(path) -> bool:
    """Whether ``path`` holds a finished latent cache (``meta.json`` and ``latents.parquet``)."""
    p = Path(path)
    return (p / "meta.json").is_file() and (p / "latents.parquet").is_file()


def cache_checkpoint(meta: dict) -> Path | None:
    """The checkpoint a cache was encoded with (``meta["checkpoint"]["path"]``), or None."""
    ck = meta.get("checkpoint")
    path = ck.get("path") if isinstance(ck, dict) else ck
    return Path(path) if path else None


def cache_checkpoint_sha(meta: dict) -> str | None:
    """The sha256 of the checkpoint a cache was encoded with, or None."""
    ck = meta.get("checkpoint")
    return ck.get("sha256") if isinstance(ck, dict) else None


def latent_columns(table) -> list[str]:
    """``z0``, ``z1``, ... in numeric order."""
    cols = [c for c in table.columns if re.fullmatch(r"z\d+", str(c))]
    return sorted(cols, key=lambda c: int(c[1:]))
