"""astroae core: FITS in, 8-number latents out.

The public API is imported lazily so that ``import astroae_core`` (and the FITS reader) does not pay for
importing torch until a model is actually needed.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "read_fits": "astroae_core.fits_io",
    "FitsReadError": "astroae_core.fits_io",
    "find_fits_files": "astroae_core.fits_io",
    "preprocess": "astroae_core.preprocess",
    "Norm": "astroae_core.preprocess",
    "PreprocessConfig": "astroae_core.preprocess",
    "ModelConfig": "astroae_core.model",
    "AutoEncoder": "astroae_core.model",
    "load_model": "astroae_core.checkpoint",
    "CheckpointError": "astroae_core.checkpoint",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'astroae_core' has no attribute {name!r}")
