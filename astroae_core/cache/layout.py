"""What a cache folder holds: its format version, its file names, and how its table's columns are named."""

from __future__ import annotations

__all__ = ["CACHE_FORMAT", "CATALOG_PREFIX", "FILES", "REQUIRED_FILES"]

#: Version of the cache layout (files, meta.json schema, column naming); a cache of another version is rebuilt.
CACHE_FORMAT = "astroae-cache/3"

FILES = {"table": "latents.parquet", "previews": "previews.npy", "meta": "meta.json", "manifest": "manifest.json",
         "correlations": "correlations.parquet"}

#: Files every cache has (``correlations.parquet`` only with a catalog).
REQUIRED_FILES = ("table", "previews", "meta", "manifest")

#: Every column of a ``catalog.csv`` joined onto the table is named ``catalog.<its name>``: no catalog column can
#: take the place of a computed one (a latent, a score, a map axis), whatever it is called.
CATALOG_PREFIX = "catalog."
