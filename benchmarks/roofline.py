"""A per-layer roofline of the shipped model (``models/demo.pt``): each convolution's and linear layer's FLOPs and
bytes moved, against this machine's float32 matmul rate and memory bandwidth measured in the same run, and the
whole model's bound beside its measured speed.

    python -m benchmarks.roofline [--quick] [--out FILE] [--batch-sizes 1,8,64] [--threads N]

For every ``Conv2d``, ``ConvTranspose2d`` and ``Linear`` met by ``encode`` and by ``decode`` of the model fused for
inference (:func:`astroae_core.model.network.fused_for_inference`: BatchNorm folded, channels_last) at each batch
size:

``flops``       2 per multiply-add (bias adds not counted): Conv2d ``2 N C_out H_out W_out (C_in / groups) k_h k_w``,
                ConvTranspose2d ``2 N C_in H_in W_in (C_out / groups) k_h k_w``, Linear ``2 N in out``;
``bytes``       float32 input + weights (and bias) + output, each read or written once: the least traffic the
                layer can make;
``intensity``   flops / bytes;
``bound_gflops`` min(peak, intensity x bandwidth), ``bound_s`` flops / that: the layer can run no faster.

The machine: ``matmul_float32_gflops``, the best of timed ``torch.mm`` of two 2048 x 2048 float32 matrices;
``bandwidth_gb_s``, a STREAM-like triad ``a = b + s c`` in torch on three 48 MiB arrays (12 bytes per element:
two reads, one write), with a plain copy beside it. Both at the threads the model runs with, measured before and
after the model and the higher kept (a machine shared with other work gives low figures at times; a peak is a
peak).

The model's bound (``bound_images_per_s``) is the batch over the sum of its layers' ``bound_s``: pooling, ReLU and
the output squash are left out, so the true limit is lower still. ``measured_images_per_s`` is the fused model
on the same batch (best of repeated calls for about a second), ``fraction_of_bound`` their ratio.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import ROOT, emit, machine, matmul_gflops  # noqa: E402

BYTES = 4  # float32


def layer_cost(module, x_shape, y_shape) -> dict:
    """FLOPs and least bytes moved by one ``Conv2d``/``ConvTranspose2d``/``Linear`` call (module docstring)."""
    import math

    import torch.nn as nn

    n = x_shape[0]
    if isinstance(module, nn.ConvTranspose2d):
        _, c_in, h, w = x_shape
        flops = 2 * n * c_in * h * w * (module.out_channels // module.groups) * math.prod(module.kernel_size)
    elif isinstance(module, nn.Conv2d):
        _, c_out, h, w = y_shape
        flops = 2 * n * c_out * h * w * (module.in_channels // module.groups) * math.prod(module.kernel_size)
    elif isinstance(module, nn.Linear):
        flops = 2 * n * module.in_features * module.out_features
    else:
        raise TypeError(f"no cost model for {type(module).__name__}")
    params = sum(p.numel() for p in module.parameters())
    moved = BYTES * (math.prod(x_shape) + params + math.prod(y_shape))
    return {"flops": int(flops), "bytes": int(moved), "intensity": flops / moved}


def trace_layers(model, fn, arg) -> list[dict]:
    """Each weighted layer ``fn(arg)`` calls on ``model``, in call order, with its shapes and cost."""
    import torch
    import torch.nn as nn

    names = {m: name for name, m in model.named_modules()}
    rows, hooks = [], []

    def hook(module, inputs, output):
        x, y = tuple(inputs[0].shape), tuple(output.shape)
        rows.append({"layer": names[module], "type": type(module).__name__, "in_shape": list(x),
                     "out_shape": list(y), **layer_cost(module, x, y)})

    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            hooks.append(m.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            fn(arg)
    finally:
        for h in hooks:
            h.remove()
    return rows


def bandwidth_gb_s(*, mib: int = 48, seconds: float = 1.0) -> dict:
    """Memory bandwidth from a triad ``a = b + 0.5 c`` and a copy ``a = b`` on float32 arrays of ``mib`` MiB."""
    import torch

    n = mib * 2**20 // BYTES
    a, b, c = torch.zeros(n), torch.ones(n), torch.ones(n)

    def best(fn):
        fn()
        t, end, reps = float("inf"), time.perf_counter() + seconds, 0
        while reps < 3 or time.perf_counter() < end:
            t0 = time.perf_counter()
            fn()
            t, reps = min(t, time.perf_counter() - t0), reps + 1
        return t

    triad = 3 * BYTES * n / best(lambda: torch.add(b, c, alpha=0.5, out=a)) / 1e9
    copy = 2 * BYTES * n / best(lambda: a.copy_(b)) / 1e9
    return {"triad": round(triad, 2), "copy": round(copy, 2), "array_mib": mib}


def measured_images_per_s(fn, arg, *, seconds: float) -> float:
    """Best images/s of ``fn(arg)`` over calls for about ``seconds`` (after a warm-up call)."""
    import torch

    with torch.inference_mode():
        fn(arg)
        t, end, reps = float("inf"), time.perf_counter() + seconds, 0
        while reps < 3 or time.perf_counter() < end:
            t0 = time.perf_counter()
            fn(arg)
            t, reps = min(t, time.perf_counter() - t0), reps + 1
    return arg.shape[0] / t


def roofline(model, batch_sizes, *, seconds: float) -> dict:
    """Layers and measured speed of a fused model's encode and decode at each batch size (the bounds come from
    :func:`with_bounds`)."""
    import torch

    out = {"encode": {}, "decode": {}}
    s, d = model.config.in_size, model.config.latent_dim
    for bs in batch_sizes:
        g = torch.Generator().manual_seed(bs)
        args = {"encode": torch.rand(bs, 1, s, s, generator=g).contiguous(memory_format=torch.channels_last),
                "decode": torch.randn(bs, d, generator=g)}
        for part, fn in (("encode", model.encode), ("decode", model.decode)):
            rows = trace_layers(model, fn, args[part])
            speed = measured_images_per_s(fn, args[part], seconds=seconds)
            out[part][str(bs)] = {"batch_size": bs, "flops": sum(r["flops"] for r in rows),
                                  "bytes": sum(r["bytes"] for r in rows), "layers_counted": len(rows),
                                  "measured_images_per_s": round(speed, 1), "layers": rows}
    return out


def between_probes(measure, *, quick: bool, seconds: float) -> tuple[float, dict, object]:
    """``measure()`` run between two probes of the machine: the float32 matmul rate and the memory bandwidths, each
    the better of the two probes (a load that comes and goes lowers one of them), and what ``measure`` returned."""

    def probe():
        return (matmul_gflops(n=256 if quick else 2048, seconds=seconds),
                bandwidth_gb_s(mib=4 if quick else 48, seconds=seconds))

    peak, bw = probe()
    measured = measure()
    peak2, bw2 = probe()
    return max(peak, peak2), {k: max(bw[k], bw2[k]) for k in bw}, measured


def with_bounds(parts: dict, *, peak_gflops: float, bw_gb_s: float) -> dict:
    """Each layer's and each model call's roofline bound (module docstring) added to :func:`roofline`'s record."""
    for runs in parts.values():
        for row in runs.values():
            for r in row["layers"]:
                r["bound_gflops"] = min(peak_gflops, r["intensity"] * bw_gb_s)
                r["bound_s"] = r["flops"] / (r["bound_gflops"] * 1e9)
                r["memory_bound"] = r["intensity"] * bw_gb_s < peak_gflops
            bound = row.pop("batch_size") / sum(r["bound_s"] for r in row["layers"])
            row["memory_bound_layers"] = sum(r["memory_bound"] for r in row["layers"])
            row["bound_images_per_s"] = round(bound, 1)
            row["fraction_of_bound"] = round(row["measured_images_per_s"] / bound, 4)
    return parts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a smoke test: batches 1 and 2, small machine probes")
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("--batch-sizes", default="1,8,64", help="comma-separated (default 1,8,64)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = p.parse_args(argv)

    import torch

    from astroae_core.model import load_model
    from astroae_core.model.network import fused_for_inference

    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [1, 2] if args.quick else [int(b) for b in args.batch_sizes.split(",")]
    secs = 0.2 if args.quick else 1.0

    result = {"benchmark": "roofline", "quick": bool(args.quick), "machine": machine()}
    model = fused_for_inference(load_model(ROOT / "models" / "demo.pt"))
    peak, bw, measured = between_probes(lambda: roofline(model, sizes, seconds=secs), quick=args.quick, seconds=secs)
    result.update(matmul_float32_gflops=round(peak, 1), bandwidth_gb_s=bw,
                  ridge_flops_per_byte=round(peak / bw["triad"], 2),
                  models={"demo": with_bounds(measured, peak_gflops=peak, bw_gb_s=bw["triad"])})
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
