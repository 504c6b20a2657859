"""Checkpoints: plain data only (tensors, numbers, strings, lists, dicts), written atomically, read with
``torch.load(weights_only=True)`` so that a checkpoint can never run code when it is opened."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import torch

from astroae_core import __version__
from astroae_core.io.atomic import atomic_path
from astroae_core.model.config import ModelConfig
from astroae_core.model.network import AutoEncoder

__all__ = ["CheckpointError", "save_checkpoint", "read_checkpoint", "load_model", "model_from_checkpoint",
           "file_sha256", "FORMAT"]

FORMAT = "astroae-checkpoint/1"
_REQUIRED = ("format", "model_config", "preprocess_config", "state_dict")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, corrupt, not plain data, or not matching its own config."""


def save_checkpoint(path, model: AutoEncoder, **extra) -> Path:
    """Write ``model`` (state, configs, version) plus ``extra`` plain data to ``path`` atomically.

    Parameters
    ----------
    path : str or Path
        Destination; the previous file there stays intact until the new one is complete.
    model : AutoEncoder
        The model (unwrap DistributedDataParallel first).
    **extra
        Plain data to store beside it, e.g. ``history``, ``epoch``, ``optimizer``, ``rng``, ``data``, ``train_config``.
    """
    payload = {
        "format": FORMAT,
        "version": __version__,
        "model_config": model.config.to_dict(),
        "preprocess_config": model.preprocess_config.to_dict(),
        # Contiguous NCHW copies: a channels_last training run must not leak its memory format into the file.
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        **extra,
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def read_checkpoint(path) -> dict:
    """Read a checkpoint as plain data, refusing anything that would need code to unpickle.

    Raises
    ------
    CheckpointError
        Naming the file and the reason (missing, not a checkpoint, contains code objects, missing keys).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refusing checkpoint {str(path)!r}: it holds objects other than plain data and could run code "
            f"when loaded ({_first_line(exc)})"
        ) from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types for corrupt or truncated files
        raise CheckpointError(f"cannot read checkpoint {str(path)!r}: {type(exc).__name__}: {_first_line(exc)}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not an astroae checkpoint (expected format {FORMAT!r})")
    missing = [k for k in _REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {str(path)!r} is missing {missing}")
    return ckpt


def model_from_checkpoint(ckpt: dict, *, source: str = "checkpoint") -> AutoEncoder:
    """Rebuild the model a checkpoint describes and load its weights (eval mode).

    The configuration and the weights are checked against each other before any memory is allocated for the model
    (the model is first built on torch's ``meta`` device, which allocates nothing), so a checkpoint whose config
    describes a gigantic model is refused rather than allocated.

    Raises
    ------
    CheckpointError
        Naming ``source`` and the problem: a config that is not a dict or not valid, weights that are not a dict
        of tensors, or weights missing, unexpected or of the wrong shape for the config.
    """
    from astroae_core.data import PreprocessConfig

    for key in ("model_config", "preprocess_config"):
        if not isinstance(ckpt[key], dict):
            raise CheckpointError(f"{source}: bad configuration: {key} is a {type(ckpt[key]).__name__}, not a dict")
    try:
        config = ModelConfig.from_stored(ckpt["model_config"])
        pre = PreprocessConfig.from_dict(ckpt["preprocess_config"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: bad configuration: {exc}") from None
    state = ckpt["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise CheckpointError(f"{source}: its state_dict is not a dict of parameter names to tensors")
    _check_weights(state, config, pre, source)
    model = AutoEncoder(config, preprocess_config=pre)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{source}: weights do not match its model config: {_first_line(exc)}") from None
    return model.eval()


def _check_weights(state: dict, config: ModelConfig, pre, source: str) -> None:
    """Compare names and shapes of ``state`` with those of the model ``config`` describes, built on no memory."""
    try:
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in AutoEncoder(config, preprocess_config=pre).state_dict().items()}
    except Exception as exc:  # noqa: BLE001 - a config that cannot be built is a bad checkpoint, whatever torch says
        raise CheckpointError(f"{source}: bad configuration: cannot build its model ({_first_line(exc)})") from None
    problems = []
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} is {tuple(state[k].shape)}, the config needs {shape}" for k, shape in expected.items()
             if k in state and tuple(state[k].shape) != shape]
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shapes", wrong)):
        if items:
            more = f" and {len(items) - 3} more" if len(items) > 3 else ""
            problems.append(f"{label}: {', '.join(items[:3])}{more}")
    if problems:
        raise CheckpointError(f"{source}: weights do not match its model config ({'; '.join(problems)})")


def load_model(path, *, device: str | torch.device = "cpu", runtime: str | None = None, batch_sizes=(64,),
               threads=None):
    """Load a model from a checkpoint, in eval mode, with ``model.config`` and ``model.preprocess_config`` set.

    Parameters
    ----------
    path : str or Path
        Checkpoint written by ``python -m train`` (or :func:`save_checkpoint`).
    device : str or torch.device
        Where to put the model.
    runtime : {None, "auto", "torch-fp32", "onnxruntime-fp32", "torch-bf16"}
        None: the trainable :class:`AutoEncoder`. Otherwise a model for inference only
        (:class:`~astroae_core.model.runtime.InferenceModel`) whose round trip and decode run on the fastest
        correct runtime of this machine, measured now (``"auto"``), or on the one named. On a GPU, the PyTorch
        module with BatchNorm folded.
    batch_sizes : sequence of int
        With ``runtime``: the batch sizes the round trip may use (the fastest is measured and kept).
    threads : int or dict, optional
        With ``runtime``: ONNX Runtime's threads, for both tasks or per task (``{"round_trip": 1}``); default
        ``torch.get_num_threads()``.

    Returns
    -------
    AutoEncoder or InferenceModel
        Its ``checkpoint_info`` holds the checkpoint's ``history``, ``epoch``, ``data``, ``train_config``,
        ``version``, ``evaluation`` and ``crossval`` (those present), the file's ``sha256`` and its ``path``.
    """
    ckpt = read_checkpoint(path)
    model = model_from_checkpoint(ckpt, source=f"checkpoint {str(path)!r}").to(device)
    info = {k: ckpt[k] for k in ("history", "epoch", "data", "train_config", "version", "evaluation", "crossval")
            if k in ckpt}
    info["sha256"] = file_sha256(path)
    info["path"] = str(path)
    model.checkpoint_info.update(info)
    if runtime is None:
        return model
    from astroae_core.model.network import fused_for_inference
    from astroae_core.model.runtime import InferenceModel

    fused = fused_for_inference(model)
    if torch.device(device).type != "cpu":
        return fused
    return InferenceModel(fused, runtime=runtime, batch_sizes=batch_sizes, threads=threads)


def file_sha256(path, *, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (identifies a checkpoint in a cache's metadata)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
