"""Batched inference on the CPU or GPU: latents, full reconstructions and latent-only reconstructions."""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

__all__ = ["run_model", "participation_ratio", "dimension_influence"]


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def run_model(model, x, *, batch_size: int = 64, latent_only: bool = True, progress: bool = False) -> dict:
    """Run ``model`` over images ``x`` (N, 1, S, S) in batches.

    Returns
    -------
    dict of ndarray
        ``"z"`` (N, latent_dim), ``"x_hat"`` (N, 1, S, S) full reconstruction and, if ``latent_only``,
        ``"x_latent"``: the image decoded from the latent alone (identical to ``x_hat`` for ``skip_mode="none"``).
    """
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    dev = _device(model)
    zs, full, lat = [], [], []
    for i in tqdm(range(0, x.shape[0], batch_size), disable=not progress, desc="inference", leave=False):
        xb = x[i : i + batch_size].to(dev).contiguous(memory_format=torch.channels_last)
        out = model(xb)
        zs.append(out["z"].float().cpu())
        full.append(out["x_hat"].float().cpu())
        if latent_only:
            lat.append(model.decode(out["z"]).float().cpu() if model.config.has_skips else full[-1])
    res = {"z": torch.cat(zs).numpy(), "x_hat": torch.cat(full).numpy()}
    if latent_only:
        res["x_latent"] = torch.cat(lat).numpy()
    return res


def participation_ratio(z) -> float:
    """Effective dimensionality of latents: (sum of covariance eigenvalues)^2 / sum of their squares.

    1 when all variance lies along one direction, ``latent_dim`` when it is spread evenly.
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"need latents of shape (N >= 2, D), got {z.shape}")
    ev = np.clip(np.linalg.eigvalsh(np.cov(z, rowvar=False)), 0, None)
    return float(ev.sum() ** 2 / (ev**2).sum()) if ev.sum() > 0 else 0.0


@torch.inference_mode()
def dimension_influence(model, z, *, n_sigma: float = 2.0, max_images: int = 64, seed: int = 0) -> np.ndarray:
    """How much each latent dimension moves the decoded image.

    For up to ``max_images`` latents, dimension ``d`` is moved by plus and minus ``n_sigma`` of its standard
    deviation; the influence is the mean absolute change of the decoded image (latent only), divided by the
    mean absolute deviation of the decoded images from their mean (their spread).

    Returns
    -------
    ndarray of shape (latent_dim,)
    """
    z = np.asarray(z, dtype=np.float32)
    rng = np.random.default_rng(seed)
    pick = z[rng.choice(len(z), size=min(max_images, len(z)), replace=False)]
    dev = _device(model)
    zt = torch.from_numpy(pick).to(dev)
    base = model.decode(zt)
    spread = float((base - base.mean(0, keepdim=True)).abs().mean()) or 1e-12
    sd = torch.from_numpy(z.std(0)).to(dev)
    out = np.zeros(z.shape[1])
    for d in range(z.shape[1]):
        delta = torch.zeros_like(zt)
        delta[:, d] = n_sigma * sd[d]
        moved = (model.decode(zt + delta) - base).abs().mean() + (model.decode(zt - delta) - base).abs().mean()
        out[d] = float(moved) / 2 / spread
    return out
