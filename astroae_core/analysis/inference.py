"""Batched inference on the CPU or GPU (latents, full and latent-only reconstructions), and what the latent
carries: its effective dimensionality and each dimension's influence on the decoded image."""

from __future__ import annotations

import numpy as np
import torch

from astroae_core.progress import Progress, report

__all__ = ["run_model", "participation_ratio", "measure_influence", "image_spread"]


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def run_model(model, x, *, batch_size: int = 64, progress: Progress | None = None) -> dict:
    """Run ``model`` over images ``x`` (N, 1, S, S) in batches.

    Parameters
    ----------
    model : AutoEncoder or InferenceModel
        In eval mode.
    x : array_like, shape (N, 1, S, S)
        Images in the model's [0, 1] input units.
    batch_size : int
        Images per forward pass.
    progress : Progress, optional
        Called ``progress(done, total, "inference")`` with images done.

    Returns
    -------
    dict of ndarray
        ``"z"`` (N, latent_dim), ``"x_hat"`` (N, 1, S, S) full reconstruction and ``"x_hat_latent"``: the image decoded
        from the latent alone (the same array as ``x_hat`` for ``skip_mode="none"``).
    """
    from astroae_core.model import InferenceModel

    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    dev = _device(model)
    # an InferenceModel lays out its input as its runtime wants it; a PyTorch module runs fastest channels-last
    layout = torch.contiguous_format if isinstance(model, InferenceModel) else torch.channels_last
    zs, full, lat = [], [], []
    for i in range(0, x.shape[0], batch_size):
        xb = x[i : i + batch_size].to(dev).contiguous(memory_format=layout)
        out = model(xb)
        zs.append(out["z"].float().cpu())
        full.append(out["x_hat"].float().cpu())
        if out["x_hat_latent"] is not out["x_hat"]:
            lat.append(out["x_hat_latent"].float().cpu())
        report(progress, min(i + batch_size, x.shape[0]), x.shape[0], "inference")
    res = {"z": _joined(zs), "x_hat": _joined(full)}
    res["x_hat_latent"] = _joined(lat) if lat else res["x_hat"]
    return res


def _joined(parts: list) -> np.ndarray:
    """The batches' outputs as one array; a single batch's as it is, not copied."""
    return (parts[0] if len(parts) == 1 else torch.cat(parts)).numpy()


def participation_ratio(z) -> float:
    """Effective dimensionality of latents: (sum of covariance eigenvalues)^2 / sum of their squares.

    1 when all variance lies along one direction, ``latent_dim`` when it is spread evenly.
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"need latents of shape (N >= 2, D), got {z.shape}")
    ev = np.clip(np.linalg.eigvalsh(np.cov(z, rowvar=False)), 0, None)
    return float(ev.sum() ** 2 / (ev**2).sum()) if ev.sum() > 0 else 0.0


def image_spread(images) -> float:
    """Mean absolute deviation of images (N, ...) from their mean image: how much a set of images varies."""
    a = np.asarray(images, dtype=np.float32)
    a = a.reshape(len(a), -1)
    return float(np.abs(a - a.mean(0, keepdims=True)).mean()) if len(a) else 0.0


@torch.inference_mode()
def measure_influence(model, z, *, images=None, std=None, n_sigma: float = 2.0, max_images: int = 64,
                      seed: int = 0) -> dict:
    """How much each latent dimension moves the image decoded from the latent alone, in one pass.

    For up to ``max_images`` latents (a seeded sample of ``z``), dimension ``d`` is moved by plus and minus
    ``n_sigma`` standard deviations; ``change[d]`` is the mean absolute change of the decoded image. Two
    normalizations come from the same decodes: by the spread of the decoded sample (``relative``), and, when the
    real ``images`` behind ``z`` are given, by the spread of the same sample's real images (``vs_data``). The
    second shows a decoder that draws nearly the same image whatever the latent (the latent-only path of a model
    with skips): its decoded spread is tiny, so ``relative`` can look large while ``vs_data`` is small.

    Parameters
    ----------
    model : AutoEncoder
        Anything with ``decode(z) -> (N, 1, S, S)`` tensor and ``parameters()``.
    z : array_like, shape (N, D)
        Latents.
    images : array_like, shape (N, ...), optional
        The real images (model input units, [0, 1]) whose latents are ``z``, row for row.
    std : array_like, shape (D,), optional
        Standard deviation of each dimension (default: of ``z``); pass the whole dataset's when ``z`` is a sample.
    n_sigma : float
        How far each dimension moves, in standard deviations.
    max_images : int
        Most latents decoded (a seeded sample without replacement).
    seed : int
        Seed of the sample.

    Returns
    -------
    dict
        ``change`` (D,) mean absolute change of the decoded image, ``decoded_spread`` (mean absolute deviation of
        the decoded sample from its mean), ``relative`` = change / decoded_spread, and, with ``images``,
        ``data_spread`` (the same for the real images), ``vs_data`` = change / data_spread and
        ``decoded_vs_data`` = decoded_spread / data_spread (else None); ``n_images``, ``n_sigma``.
    """
    z = np.asarray(z, dtype=np.float32)
    if z.ndim != 2 or len(z) < 1:
        raise ValueError(f"z must have shape (N >= 1, D), got {z.shape}")
    if images is not None and len(images) != len(z):
        raise ValueError(f"images must match z row for row: {len(images)} images for {len(z)} latents")
    sd = z.std(0) if std is None else np.asarray(std, dtype=np.float32)
    if sd.shape != (z.shape[1],):
        raise ValueError(f"std must have shape ({z.shape[1]},), got {sd.shape}")
    rows = np.random.default_rng(seed).choice(len(z), size=min(max_images, len(z)), replace=False)
    dev = _device(model)
    zt = torch.from_numpy(z[rows]).to(dev)
    base = model.decode(zt).float()
    decoded_spread = float((base - base.mean(0, keepdim=True)).abs().mean())
    change = np.zeros(z.shape[1])
    for d in range(z.shape[1]):
        delta = torch.zeros_like(zt)
        delta[:, d] = n_sigma * float(sd[d])
        up = (model.decode(zt + delta).float() - base).abs().mean()
        down = (model.decode(zt - delta).float() - base).abs().mean()
        change[d] = float(up + down) / 2
    out = {"change": change, "decoded_spread": decoded_spread, "relative": change / max(decoded_spread, 1e-12),
           "data_spread": None, "vs_data": None, "decoded_vs_data": None, "n_images": int(len(rows)),
           "n_sigma": float(n_sigma)}
    if images is not None:
        data_spread = image_spread(np.asarray(images, dtype=np.float32)[rows])
        out.update(data_spread=data_spread, vs_data=change / max(data_spread, 1e-12),
                   decoded_vs_data=decoded_spread / data_spread if data_spread > 0 else 0.0)
    return out

