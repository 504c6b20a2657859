"""The autoencoder: its configuration (config), its network (network), and checkpoints that rebuild it
(checkpoint), and the runtime each inference task runs on, chosen by measurement (runtime)."""

from astroae_core.model.checkpoint import (CheckpointError, file_sha256, load_model, model_from_checkpoint,
                                           read_checkpoint, save_checkpoint)
from astroae_core.model.config import RETIRED_IN, SKIP_MODES, ModelConfig, drop_retired
from astroae_core.model.network import AutoEncoder, batchnorm_layers, count_parameters, fused_for_inference
from astroae_core.model.runtime import RUNTIMES, InferenceModel, RuntimeChoice, choose_runtime, native_bf16

__all__ = ["AutoEncoder", "CheckpointError", "InferenceModel", "RUNTIMES", "RuntimeChoice", "choose_runtime", "native_bf16", "ModelConfig", "RETIRED_IN", "SKIP_MODES", "batchnorm_layers",
           "count_parameters", "drop_retired", "file_sha256", "fused_for_inference", "load_model",
           "model_from_checkpoint", "read_checkpoint", "save_checkpoint"]
