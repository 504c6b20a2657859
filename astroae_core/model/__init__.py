"""The autoencoder: its configuration and network, and checkpoints that rebuild it."""

from astroae_core.model.checkpoint import (CheckpointError, file_sha256, load_model, model_from_checkpoint,
                                           read_checkpoint, save_checkpoint)
from astroae_core.model.network import (AutoEncoder, ModelConfig, batchnorm_layers, count_parameters,
                                        fused_for_inference)

__all__ = ["AutoEncoder", "CheckpointError", "ModelConfig", "batchnorm_layers", "count_parameters", "file_sha256",
           "fused_for_inference", "load_model", "model_from_checkpoint", "read_checkpoint", "save_checkpoint"]
