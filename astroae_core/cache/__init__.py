"""The latent cache: one folder per (checkpoint, dataset) holding every image's latents, metrics, map positions,
scores and previews. Its layout and typed ``meta.json`` (``layout``, ``meta``), opening it (``store``), knowing
when it is stale (``fingerprint``), and encoding a folder into it (``encode``: ``shard`` -> ``assemble`` ->
``report`` -> ``store``; ``previews``; its command line is ``astroae encode``, in :mod:`astroae_core.cli`)."""

from astroae_core.cache.encode import check_out, encode_folder
from astroae_core.cache.fingerprint import cache_status, dataset_fingerprint
from astroae_core.cache.layout import CACHE_FORMAT, CATALOG_PREFIX, FILES
from astroae_core.cache.meta import CacheMeta, MetaFormatError, read_meta
from astroae_core.cache.store import LatentCache, is_cache_dir, load_cache, write_cache

__all__ = ["CACHE_FORMAT", "CATALOG_PREFIX", "FILES", "CacheMeta", "LatentCache", "MetaFormatError",
           "cache_status", "check_out", "dataset_fingerprint", "encode_folder", "is_cache_dir", "load_cache",
           "read_meta", "write_cache"]
