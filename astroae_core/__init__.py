"""astroae core: FITS in, 8-number latents out.

Subpackages, one concept each (none imports streamlit):

``io``        reading FITS, finding files, the catalog, atomic writes, path confinement
``data``      preprocessing, folders in memory, grouped splits, augmentation
``model``     the autoencoder and its checkpoints
``analysis``  metrics, baselines, evaluation, latent influence, maps, outliers
``cache``     the latent cache of a dataset: encode, read, staleness
``demo``      the embedded GalSim demo dataset

The public API below is imported lazily, so ``import astroae_core`` (and the FITS reader) does not pay for
importing torch until a model is needed. No submodule shares a name with an exported function: importing a
submodule binds it on the package, which would shadow the function (``preprocess`` was once a module).
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "read_fits": "astroae_core.io",
    "FitsReadError": "astroae_core.io",
    "find_fits_files": "astroae_core.io",
    "preprocess": "astroae_core.data",
    "Norm": "astroae_core.data",
    "PreprocessConfig": "astroae_core.data",
    "ModelConfig": "astroae_core.model",
    "AutoEncoder": "astroae_core.model",
    "load_model": "astroae_core.model",
    "CheckpointError": "astroae_core.model",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'astroae_core' has no attribute {name!r}")
