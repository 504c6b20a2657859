"""Per-image reconstruction metrics on images in [0, 1]: MSE, PSNR, SSIM and MS-SSIM.

SSIM and MS-SSIM are those of pytorch-msssim with data range 1 (11-pixel Gaussian window of sigma 1.5, valid
padding, K = (0.01, 0.03), its default five MS-SSIM weights, 2x2 average pooling with zero padding on odd sides),
computed here in batches: the five local statistics (x, y, x², y², xy) of a few images are blurred together by
separable shifted sums into buffers allocated once per call, and MS-SSIM's first scale is SSIM's. The tests hold
the two to 1e-4 per image; ``benchmarks/metrics_speed.py`` measures the speed of both.
"""

from __future__ import annotations

import math
import numpy as np
import torch

__all__ = ["image_metrics", "summarize", "METRICS"]

METRICS = ("mse", "psnr", "ssim", "ms_ssim")

WIN_SIZE, WIN_SIGMA = 11, 1.5
C1, C2 = 0.01**2, 0.03**2
MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
#: MS-SSIM needs the smaller side above this (four halvings, each scale at least one window).
MS_MIN_SIDE = (WIN_SIZE - 1) * 2 ** (len(MS_WEIGHTS) - 1)


def _gauss_taps() -> list[float]:
    # The same float32 kernel as pytorch_msssim._fspecial_gauss_1d.
    c = torch.arange(WIN_SIZE, dtype=torch.float32) - WIN_SIZE // 2
    g = torch.exp(-(c**2) / (2 * WIN_SIGMA**2))
    return [float(v) for v in g / g.sum()]


_TAPS = _gauss_taps()


def _as_tensor(a) -> torch.Tensor:
    t = torch.as_tensor(a, dtype=torch.float32)
    if t.ndim == 2:
        t = t[None, None]
    elif t.ndim == 3:
        t = t[:, None]
    if t.ndim != 4 or t.shape[1] != 1:
        raise ValueError(f"expected images (N, 1, H, W), (N, H, W) or (H, W), got shape {tuple(t.shape)}")
    return t


def _valid(side: int) -> int:
    # pytorch-msssim skips the blur along a side shorter than the window.
    return side - WIN_SIZE + 1 if side >= WIN_SIZE else side


class _Scale:
    """Buffers for one scale of ``n`` images of ``h x w``: the four local statistics (x, y, x² + y², xy; SSIM
    needs the two variances only as a sum), then their blur along rows and columns."""

    def __init__(self, n: int, h: int, w: int):
        self.n, self.h, self.w, self.oh, self.ow = n, h, w, _valid(h), _valid(w)
        self.maps = torch.empty(4, n, h, w)
        self.rows = torch.empty(4, n, self.oh, w) if h >= WIN_SIZE else self.maps
        self.out = torch.empty(4, n, self.oh, self.ow) if w >= WIN_SIZE else self.rows

    def ssim_cs(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean SSIM and contrast-structure term per image of ``x``, ``y`` (``(m, h, w)``, m <= n)."""
        m = x.shape[0]
        maps, rows, out = (_carve(b, (4, m) + b.shape[2:]) for b in (self.maps, self.rows, self.out))
        maps[0].copy_(x)
        maps[1].copy_(y)
        torch.mul(x, x, out=maps[2]).addcmul_(y, y)
        torch.mul(x, y, out=maps[3])
        if self.h >= WIN_SIZE:
            _blur(maps, rows, dim=2)
        if self.w >= WIN_SIZE:
            _blur(rows, out, dim=3)
        return _ssim_from_stats(out, scratch=maps)


def _carve(buf: torch.Tensor, shape: tuple) -> torch.Tensor:
    """A contiguous ``shape`` view of the start of ``buf`` (a smaller last chunk reuses the same memory)."""
    return buf.view(-1)[: math.prod(shape)].view(shape)


def _blur(src: torch.Tensor, dst: torch.Tensor, *, dim: int) -> None:
    """``dst`` = ``src`` convolved (valid) with the Gaussian along ``dim``, as eleven shifted multiply-adds."""
    size = dst.shape[dim]
    torch.mul(src.narrow(dim, 0, size), _TAPS[0], out=dst)
    for k in range(1, WIN_SIZE):
        dst.add_(src.narrow(dim, k, size), alpha=_TAPS[k])


def _ssim_from_stats(stats: torch.Tensor, *, scratch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SSIM and contrast-structure means from blurred (x, y, x² + y², xy), in place."""
    mu1, mu2, s_sq, sxy = stats
    lum, mu12 = _carve(scratch, (2, *mu1.shape))
    torch.mul(mu1, mu1, out=lum).addcmul_(mu2, mu2)  # mu1² + mu2²
    torch.mul(mu1, mu2, out=mu12)
    # cs = (2 s12 + C2) / (s1² + s2² + C2) with s12 = E[xy] - mu1 mu2 and s1² + s2² = E[x² + y²] - lum
    cs_map = sxy.sub_(mu12).mul_(2).add_(C2).div_(s_sq.sub_(lum).add_(C2))
    ssim_map = mu12.mul_(2).add_(C1).div_(lum.add_(C1)).mul_(cs_map)
    return ssim_map.flatten(1).mean(1), cs_map.flatten(1).mean(1)


class _Pool:
    """pytorch-msssim's downsampling (``avg_pool2d``, kernel 2, a zero row/column on both sides of an odd side,
    counted in the mean) into buffers, summing the four pixels in the order ``avg_pool2d`` does."""

    def __init__(self, n: int, h: int, w: int):
        self.h, self.w = h, w
        self.padded = torch.zeros(n, h + h % 2, w + w % 2)  # the zero border is never written
        self.out = torch.empty(2, n, (h + h % 2) // 2, (w + w % 2) // 2)

    def __call__(self, x: torch.Tensor, which: int) -> torch.Tensor:
        m = x.shape[0]
        p = self.padded[:m]
        p[:, self.h % 2 :, self.w % 2 :].copy_(x)
        out = _carve(self.out[which], (m,) + self.out.shape[2:])
        torch.add(p[:, 0::2, 0::2], p[:, 0::2, 1::2], out=out)
        return out.add_(p[:, 1::2, 0::2]).add_(p[:, 1::2, 1::2]).mul_(0.25)


class _Workspace:
    """Every buffer one call needs for chunks of ``n`` images of ``h x w``: one :class:`_Scale` per MS-SSIM scale."""

    def __init__(self, n: int, h: int, w: int, *, multi_scale: bool):
        self.scales, self.pools = [_Scale(n, h, w)], []
        if multi_scale:
            for _ in MS_WEIGHTS[1:]:
                self.pools.append(_Pool(n, h, w))
                h, w = (h + h % 2) // 2, (w + w % 2) // 2
                self.scales.append(_Scale(n, h, w))
        self.weights = torch.tensor(MS_WEIGHTS, dtype=torch.float32)

    def chunk(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """MSE, SSIM and MS-SSIM (NaN without the scales for it) of one chunk of ``(m, h, w)`` images."""
        d = _carve(self.scales[0].maps, x.shape)
        mse = torch.sub(x, y, out=d).mul_(d).flatten(1).mean(1)
        s, cs = self.scales[0].ssim_cs(x, y)
        if len(self.scales) == 1:
            return mse, s, torch.full_like(s, float("nan"))
        factors = [cs]
        for pool, scale in zip(self.pools, self.scales[1:]):
            x, y = pool(x, 0), pool(y, 1)
            s_i, cs_i = scale.ssim_cs(x, y)
            factors.append(cs_i)
        factors[-1] = s_i
        stacked = torch.relu(torch.stack(factors))
        return mse, s, torch.prod(stacked ** self.weights[:, None], dim=0)


@torch.inference_mode()
def image_metrics(x, x_hat, *, batch_size: int = 16) -> dict[str, np.ndarray]:
    """Per-image MSE, PSNR (dB), SSIM and MS-SSIM between originals and reconstructions.

    Parameters
    ----------
    x, x_hat : array_like or Tensor
        Originals and reconstructions in [0, 1], shape (N, 1, H, W), (N, H, W) or (H, W).
    batch_size : int
        Images computed together; the buffers (about 2.4 MB per 187x187 image) are sized for this many and
        allocated once per call.

    Returns
    -------
    dict of str to ndarray
        ``{"mse", "psnr", "ssim", "ms_ssim"}``, each float64 of shape (N,). PSNR is ``inf`` for a perfect copy.
        MS-SSIM needs images larger than 160 pixels a side (5 scales, 11-pixel window); for smaller ones it is NaN.
    """
    x, x_hat = _as_tensor(x), _as_tensor(x_hat)
    if x.shape != x_hat.shape:
        raise ValueError(f"shape mismatch: x {tuple(x.shape)} vs x_hat {tuple(x_hat.shape)}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    n, (h, w) = x.shape[0], x.shape[-2:]
    x, x_hat = x[:, 0], x_hat[:, 0]
    res = torch.empty(3, n, dtype=torch.float64)
    step = min(int(batch_size), max(n, 1))
    ws = _Workspace(step, h, w, multi_scale=min(h, w) > MS_MIN_SIDE)
    for i in range(0, n, step):
        for row, v in zip(res, ws.chunk(x[i : i + step], x_hat[i : i + step])):
            row[i : i + len(v)] = v
    mse, ssim, ms = res
    with np.errstate(divide="ignore"):
        psnr = 10 * np.log10(1.0 / mse.numpy())
    return {"mse": mse.numpy(), "psnr": psnr, "ssim": ssim.numpy(), "ms_ssim": ms.numpy()}


def summarize(per_image: dict[str, np.ndarray]) -> dict[str, float]:
    """Aggregate per-image metrics: the mean of each (PSNR from the mean MSE, so one perfect image cannot make it inf)."""
    agg = {k: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan") for k, v in per_image.items() if k != "psnr"}
    agg["psnr"] = float(10 * np.log10(1.0 / agg["mse"])) if agg["mse"] > 0 else float("inf")
    return {k: agg[k] for k in METRICS if k in agg}
