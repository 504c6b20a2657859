"""Per-image reconstruction metrics on images in [0, 1]: MSE, PSNR, SSIM and MS-SSIM (pytorch-msssim, data range 1)."""

from __future__ import annotations

import numpy as np
import torch
from pytorch_msssim import ms_ssim, ssim

__all__ = ["image_metrics", "summarize", "METRICS"]

METRICS = ("mse", "psnr", "ssim", "ms_ssim")


def _as_tensor(a) -> torch.Tensor:
    t = torch.as_tensor(a, dtype=torch.float32)
    if t.ndim == 2:
        t = t[None, None]
    elif t.ndim == 3:
        t = t[:, None]
    if t.ndim != 4 or t.shape[1] != 1:
        raise ValueError(f"expected images (N, 1, H, W), (N, H, W) or (H, W), got shape {tuple(t.shape)}")
    return t


@torch.no_grad()
def image_metrics(x, x_hat, *, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Per-image MSE, PSNR (dB), SSIM and MS-SSIM between originals and reconstructions.

    Parameters
    ----------
    x, x_hat : array_like or Tensor
        Originals and reconstructions in [0, 1], shape (N, 1, H, W), (N, H, W) or (H, W).
    batch_size : int
        Images per SSIM call (bounds memory).

    Returns
    -------
    dict of str to ndarray
        ``{"mse", "psnr", "ssim", "ms_ssim"}``, each float64 of shape (N,). PSNR is ``inf`` for a perfect copy.
        MS-SSIM needs images larger than 160 pixels a side (5 scales, 11-pixel window); for smaller ones it is NaN.
    """
    x, x_hat = _as_tensor(x), _as_tensor(x_hat)
    if x.shape != x_hat.shape:
        raise ValueError(f"shape mismatch: x {tuple(x.shape)} vs x_hat {tuple(x_hat.shape)}")
    out = {k: [] for k in METRICS}
    multi_scale_ok = min(x.shape[-2:]) > 160
    for i in range(0, x.shape[0], batch_size):
        a, b = x[i : i + batch_size], x_hat[i : i + batch_size]
        mse = ((a - b) ** 2).flatten(1).mean(1).double()
        out["mse"].append(mse)
        out["psnr"].append(10 * torch.log10(1.0 / mse))
        out["ssim"].append(ssim(a, b, data_range=1.0, size_average=False).double())
        if multi_scale_ok:
            out["ms_ssim"].append(ms_ssim(a, b, data_range=1.0, size_average=False).double())
        else:
            out["ms_ssim"].append(torch.full((a.shape[0],), float("nan"), dtype=torch.float64))
    return {k: torch.cat(v).numpy() for k, v in out.items()}


def summarize(per_image: dict[str, np.ndarray]) -> dict[str, float]:
    """Aggregate per-image metrics: the mean of each (PSNR from the mean MSE, so one perfect image cannot make it inf)."""
    agg = {k: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan") for k, v in per_image.items() if k != "psnr"}
    agg["psnr"] = float(10 * np.log10(1.0 / agg["mse"])) if agg["mse"] > 0 else float("inf")
    return {k: agg[k] for k in METRICS if k in agg}
