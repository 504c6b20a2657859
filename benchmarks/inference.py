"""Model speed against this machine's own limit: encode throughput (batch 1..256), one-latent decode latency and
training throughput, each beside the roofline (model FLOPs / the float32 matmul rate measured in the same run).

    python -m benchmarks.inference [--quick] [--out FILE] [--threads N] [--compile]

Variants of the encoder, so that each fast path is chosen with numbers:

``baseline``  ``torch.no_grad``, NCHW tensors, the model as loaded.
``fast``      ``torch.inference_mode`` and channels_last model and input.
``fused``     ``fast`` with every BatchNorm folded into the convolution before it (an eval-mode model only).
``compiled``  ``torch.compile`` of ``fused`` (with ``--compile``; its compile time is reported apart).

The roofline ratio is ``images/s x FLOPs per image / matmul FLOP/s``: 1.0 would mean the convolutions ran as fast
as one big matrix multiply; memory-bound work (BatchNorm, ReLU, pooling) counts for no FLOPs and only costs time.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import ROOT, emit, machine, matmul_gflops, percentiles_ms  # noqa: E402
from astroae_core.model import fused_for_inference  # noqa: E402

BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def models(*, quick: bool) -> dict:
    """The shipped demo checkpoints and the seed's widths (16-32-64-128, U-Net skips; random weights: speed does not
    depend on their values)."""
    import torch

    from astroae_core.model import AutoEncoder, ModelConfig, load_model

    out = {"demo": load_model(ROOT / "models" / "demo.pt")}
    if not quick:
        out["demo-unet"] = load_model(ROOT / "models" / "demo-unet.pt")
        torch.manual_seed(0)
        seed = ModelConfig(channels=(16, 32, 64, 128), skip_mode="unet", standardize_latent=False)
        out["seed-16-32-64-128-unet"] = AutoEncoder(seed).eval()
    return out


def flops(fn, *args) -> int:
    """FLOPs of one call (``torch.utils.flop_counter``: 2 per multiply-add of convolutions and matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        fn(*args)
    return int(fc.get_total_flops())


def _images(n: int, size: int, *, seed: int = 0):
    import torch

    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed))


def _timed(fn, *, min_seconds: float, min_reps: int = 2) -> tuple[float, int]:
    """Total time and repetitions of ``fn`` after one warm-up call, run for at least ``min_seconds``."""
    fn()
    reps, t0 = 0, time.perf_counter()
    while reps < min_reps or time.perf_counter() - t0 < min_seconds:
        fn()
        reps += 1
    return time.perf_counter() - t0, reps


def encoder_variant(model, variant: str):
    """``(callable(x) -> z, input memory format)`` for one variant (see the module docstring)."""
    import torch

    if variant == "baseline":
        def enc(x):
            with torch.no_grad():
                return model.encode(x)
        return enc, torch.contiguous_format
    # copies: converting a module's memory format works in place, and the other variants need the original
    m = copy.deepcopy(model).to(memory_format=torch.channels_last) if variant == "fast" else fused_for_inference(model)
    if variant == "compiled":
        m_enc = torch.compile(m.encode, dynamic=False)
    else:
        m_enc = m.encode

    def enc(x):
        with torch.inference_mode():
            return m_enc(x)
    return enc, torch.channels_last


def encode_throughput(model, variant: str, batch_size: int, *, min_seconds: float) -> float:
    """Images per second through the encoder at one batch size."""
    enc, fmt = encoder_variant(model, variant)
    x = _images(batch_size, model.config.in_size).contiguous(memory_format=fmt)
    total, reps = _timed(lambda: enc(x), min_seconds=min_seconds)
    return batch_size * reps / total


def decode_latency(model, variant: str, *, n: int) -> dict:
    """p50/p95 milliseconds of decoding one latent (what a slider move costs)."""
    import torch

    m = model if variant == "baseline" else fused_for_inference(model)
    z = torch.randn(1, model.config.latent_dim, generator=torch.Generator().manual_seed(1))
    ctx = torch.no_grad if variant == "baseline" else torch.inference_mode
    times = []
    with ctx():
        for _ in range(3):
            m.decode(z)
        for _ in range(n):
            t0 = time.perf_counter()
            m.decode(z)
            times.append(time.perf_counter() - t0)
    return percentiles_ms(times)


def training_throughput(model, batch_size: int, *, channels_last: bool, min_seconds: float) -> tuple[float, int]:
    """Images per second of full training steps (forward, BCE loss, backward, Adam), and the FLOPs of one step."""
    import torch
    from torch.nn import functional as F

    m = copy.deepcopy(model).train()
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    x = _images(batch_size, model.config.in_size, seed=2)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def step():
        opt.zero_grad(set_to_none=True)
        out = m(x)
        loss = F.binary_cross_entropy_with_logits(out["logits"], x)
        loss.backward()
        opt.step()

    step_flops = flops(step)
    total, reps = _timed(step, min_seconds=min_seconds, min_reps=1)
    return batch_size * reps / total, step_flops


def bench_model(name: str, model, *, peak_gflops: float, quick: bool, use_compile: bool, sizes=None) -> dict:
    import torch

    s = model.config.in_size
    min_s = 0.0 if quick else 1.0
    enc_flops = flops(model.encode, _images(1, s))
    dec_flops = flops(model.decode, torch.zeros(1, model.config.latent_dim))
    roof_enc = peak_gflops * 1e9 / enc_flops
    res = {"config": model.config.to_dict(), "encode_gflop_per_image": enc_flops / 1e9,
           "decode_gflop_per_image": dec_flops / 1e9, "encode_roofline_images_per_s": roof_enc}
    sizes = sizes or ((1, 4) if quick else BATCH_SIZES)
    variants = ["baseline", "fast", "fused"] + (["compiled"] if use_compile else [])
    enc = {}
    for v in variants:
        vs = sizes if v == "fused" else tuple(b for b in sizes if b in (1, 64, sizes[-1]))
        if v == "compiled":
            t0 = time.perf_counter()
            encode_throughput(model, v, 64, min_seconds=0.0)
            res["compile_seconds_bs64"] = time.perf_counter() - t0
        rows = {}
        for bs in vs:
            ips = encode_throughput(model, v, bs, min_seconds=min_s)
            rows[str(bs)] = {"images_per_s": round(ips, 2), "roofline_ratio": round(ips / roof_enc, 4)}
        enc[v] = rows
    res["encode"] = enc
    best = max(((v, b, r["images_per_s"]) for v, rows in enc.items() for b, r in rows.items()), key=lambda t: t[2])
    res["encode_best"] = {"variant": best[0], "batch_size": int(best[1]), "images_per_s": best[2],
                          "roofline_ratio": round(best[2] / roof_enc, 4)}
    n_dec = 5 if quick else 200
    res["decode_one"] = {v: decode_latency(model, v, n=n_dec) for v in ("baseline", "fused")}
    res["decode_one"]["roofline_ms"] = dec_flops / (peak_gflops * 1e9) * 1e3
    train = {}
    for bs in ((4,) if quick else (16, 64)):
        for cl in ((True,) if quick else (False, True)):
            ips, step_flops = training_throughput(model, bs, channels_last=cl, min_seconds=min_s * 3)
            roof = peak_gflops * 1e9 / (step_flops / bs)
            train[f"bs{bs}_{'channels_last' if cl else 'nchw'}"] = {
                "images_per_s": round(ips, 2), "gflop_per_image": step_flops / bs / 1e9,
                "roofline_images_per_s": round(roof, 2), "roofline_ratio": round(ips / roof, 4)}
    res["train"] = train
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a smoke test: demo model, few batch sizes, short timings")
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--compile", action="store_true", help="also time torch.compile (slow to start)")
    p.add_argument("--models", help="comma-separated subset of: demo, demo-unet, seed-16-32-64-128-unet")
    p.add_argument("--batch-sizes", help="comma-separated encode batch sizes (default 1,2,4,...,256)")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    peak = matmul_gflops(n=512 if args.quick else 2048, seconds=0.05 if args.quick else 2.0)
    result = {"benchmark": "inference", "quick": args.quick, "machine": machine(),
              "matmul_float32_gflops": round(peak, 2), "models": {}}
    chosen = models(quick=args.quick)
    if args.models:
        wanted = [m.strip() for m in args.models.split(",") if m.strip()]
        unknown = sorted(set(wanted) - set(chosen))
        if unknown:
            p.error(f"unknown --models {unknown}; choose from {sorted(chosen)}")
        chosen = {k: chosen[k] for k in wanted}
    sizes = tuple(int(b) for b in args.batch_sizes.split(",")) if args.batch_sizes else None
    for name, model in chosen.items():
        result["models"][name] = bench_model(name, model, peak_gflops=peak, quick=args.quick,
                                             use_compile=args.compile, sizes=sizes)
    if not args.quick:
        # thread scaling of the best encoder at batch 64 (2 cores: does the second one help?)
        m = models(quick=True)["demo"]
        scale = {}
        for t in sorted({1, os.cpu_count() or 1}):
            torch.set_num_threads(t)
            scale[str(t)] = round(encode_throughput(m, "fused", 64, min_seconds=1.0), 2)
        torch.set_num_threads(args.threads or os.cpu_count() or 1)
        result["demo_encode_threads_images_per_s"] = scale
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
