"""The latent cache: one folder per (checkpoint, dataset) holding every image's latents, scores, map positions and
previews; encoding a folder into it, reading it back, and knowing when it is stale."""

from astroae_core.cache.encode import (CACHE_FORMAT, FILES, LatentCache, cache_status, dataset_fingerprint,
                                       encode_folder, latent_correlations, load_cache)

__all__ = ["CACHE_FORMAT", "FILES", "LatentCache", "cache_status", "dataset_fingerprint", "encode_folder",
           "latent_correlations", "load_cache"]
