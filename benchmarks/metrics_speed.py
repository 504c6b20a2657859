"""Per-image SSIM / MS-SSIM: :func:`astroae_core.analysis.image_metrics` (batched, buffers reused) against
pytorch-msssim (what it replaced, and what the tests hold it to), in one run, at one and two torch threads.

    python -m benchmarks.metrics_speed [--quick] [--out FILE] [--n 1000] [--batch-sizes 16,64,256] [--threads 1,2]

Both sides compute SSIM and MS-SSIM (and MSE) of ``n`` pairs of 187x187 float32 images (seeded uniform noise
and a noisy copy clipped to [0, 1]; the cost does not depend on the content) in batches of each size. Each figure
is the best of ``--repeats`` passes over all ``n`` images, as images/s of wall time and of this process's CPU
time (the CPU figure is the steadier one on a shared machine); ``ratio`` is new over reference;
``max_abs_diff`` the largest per-image difference in SSIM and in MS-SSIM between the two.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import emit, machine  # noqa: E402


def image_pairs(n: int, *, side: int = 187, seed: int = 0):
    """``n`` seeded (original, reconstruction) float32 pairs of shape (n, 1, side, side) in [0, 1]."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.random((n, 1, side, side), dtype=np.float32)
    y = np.clip(x + rng.normal(0, 0.05, x.shape), 0, 1).astype(np.float32)
    return x, y


def reference_metrics(x, y, *, batch_size: int) -> dict:
    """SSIM and MS-SSIM of every pair through pytorch-msssim, one call of each per batch (the former code)."""
    import numpy as np
    import torch
    from pytorch_msssim import ms_ssim, ssim

    out = {"ssim": [], "ms_ssim": [], "mse": []}
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            a, b = torch.from_numpy(x[i : i + batch_size]), torch.from_numpy(y[i : i + batch_size])
            out["mse"].append(((a - b) ** 2).flatten(1).mean(1).double().numpy())
            out["ssim"].append(ssim(a, b, data_range=1.0, size_average=False).double().numpy())
            out["ms_ssim"].append(ms_ssim(a, b, data_range=1.0, size_average=False).double().numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def _timed(fn, n: int, repeats: int) -> tuple[dict, dict]:
    """(the result of the last call, images/s of wall and of CPU time: the best of ``repeats`` calls)."""
    wall, cpu = float("inf"), float("inf")
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        res = fn()
        wall, cpu = min(wall, time.perf_counter() - w0), min(cpu, time.process_time() - c0)
    return res, {"images_per_s": round(n / wall, 1), "images_per_cpu_s": round(n / cpu, 1)}


def measure(n: int, batch_sizes, threads, *, repeats: int, seed: int = 0) -> dict:
    """Both implementations at each thread count and batch size."""
    import numpy as np
    import torch

    from astroae_core.analysis import image_metrics

    x, y = image_pairs(n, seed=seed)
    image_metrics(x[:8], y[:8])  # first-call costs (thread pool, kernels) outside the timings
    reference_metrics(x[:8], y[:8], batch_size=8)
    old = torch.get_num_threads()
    rows = {}
    try:
        for t in threads:
            torch.set_num_threads(int(t))
            for bs in batch_sizes:
                new, new_speed = _timed(lambda: image_metrics(x, y, batch_size=bs), n, repeats)
                ref, ref_speed = _timed(lambda: reference_metrics(x, y, batch_size=bs), n, max(1, repeats - 1))
                rows[f"threads={t},batch={bs}"] = {
                    "threads": int(t), "batch_size": int(bs), "new": new_speed, "pytorch_msssim": ref_speed,
                    "ratio": round(new_speed["images_per_s"] / ref_speed["images_per_s"], 2),
                    "ratio_cpu": round(new_speed["images_per_cpu_s"] / ref_speed["images_per_cpu_s"], 2),
                    "max_abs_diff": {k: float(np.max(np.abs(new[k] - ref[k]))) for k in ("ssim", "ms_ssim")},
                }
    finally:
        torch.set_num_threads(old)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a smoke test: 48 images, batch 16, one thread, one pass")
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("--n", type=int, default=1000, help="image pairs (default 1000)")
    p.add_argument("--batch-sizes", default="16,64,256", help="comma-separated (default 16,64,256)")
    p.add_argument("--threads", default="1,2", help="torch threads, comma-separated (default 1,2)")
    p.add_argument("--repeats", type=int, default=3, help="passes per figure, the best kept (default 3)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    n, batch_sizes, threads, repeats = args.n, args.batch_sizes, args.threads, args.repeats
    if args.quick:
        n, batch_sizes, threads, repeats = 48, "16", "1", 1
    sizes = [int(s) for s in str(batch_sizes).split(",")]
    thread_counts = [int(s) for s in str(threads).split(",")]
    result = {"benchmark": "metrics_speed", "quick": bool(args.quick), "machine": machine(), "n_images": n,
              "side": 187, "results": measure(n, sizes, thread_counts, repeats=repeats, seed=args.seed)}
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
