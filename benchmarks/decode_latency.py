"""The slider's decode as the app runs it, beside its limit on this machine, in one run. Prints JSON.

    python -m benchmarks.decode_latency [--checkpoint models/demo.pt] [--n 300] [--quick] [--out FILE]

The app decodes one latent at a time on one thread (``dashboard/app.py``), with the model loaded as
``load_model(path, runtime="auto", batch_sizes=(1,))``. This times that call on ``--n`` random latents (p50, p95),
each runtime forced the same way, and the decoder's roofline bound at batch 1 on one thread: its FLOPs and bytes
per layer (``benchmarks.roofline``) against the float32 matmul rate and memory bandwidth probed before and after.
The issue's target: p50 at most 3 ms.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import emit, machine  # noqa: E402
from benchmarks.roofline import between_probes, roofline, with_bounds  # noqa: E402


def latencies_ms(model, z) -> dict:
    """p50 and p95 of ``model.decode`` on each row of ``z`` alone, after five warm-up calls."""
    import numpy as np
    import torch

    with torch.inference_mode():
        for row in z[:5]:
            model.decode(row[None])
        t = []
        for row in z:
            t0 = time.perf_counter()
            model.decode(row[None])
            t.append((time.perf_counter() - t0) * 1e3)
    return {"p50_ms": round(float(np.percentile(t, 50)), 3), "p95_ms": round(float(np.percentile(t, 95)), 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=str(ROOT / "models" / "demo.pt"))
    p.add_argument("--n", type=int, default=300, help="latents decoded per runtime")
    p.add_argument("--quick", action="store_true", help="a smoke test: 20 latents, short machine probes")
    p.add_argument("--out", help="also write the JSON here")
    args = p.parse_args(argv)
    n, secs = (20, 0.2) if args.quick else (args.n, 1.0)

    import torch

    from astroae_core.model import load_model
    from astroae_core.model.network import fused_for_inference
    from astroae_core.model.runtime import RUNTIMES, native_bf16

    torch.set_num_threads(1)  # as the app serves
    plain = load_model(args.checkpoint)
    z = torch.randn(n, plain.config.latent_dim, generator=torch.Generator().manual_seed(0))

    def measure() -> dict:
        app = load_model(args.checkpoint, runtime="auto", batch_sizes=(1,))
        app_ms = latencies_ms(app, z)
        record = app.runtime_record["decode"]  # chosen on the first decode
        runtimes = {name: latencies_ms(load_model(args.checkpoint, runtime=name, batch_sizes=(1,)), z)
                    for name in RUNTIMES if name != "torch-bf16" or native_bf16()}
        return {"app": {**app_ms, "runtime": record["runtime"], "choice_reused": record.get("reused", False)},
                "runtimes": runtimes, "roofline": roofline(fused_for_inference(plain), [1], seconds=secs)}

    info = machine()  # its load before the run
    peak, bw, measured = between_probes(measure, quick=args.quick, seconds=secs)
    bound = with_bounds(measured.pop("roofline"), peak_gflops=peak, bw_gb_s=bw["triad"])["decode"]["1"]
    bound_ms = 1e3 / bound["bound_images_per_s"]
    result = {"benchmark": "decode_latency", "quick": bool(args.quick), "machine": info,
              "checkpoint": Path(args.checkpoint).name, "threads": 1, **measured}
    result.update(matmul_float32_gflops=round(peak, 1), triad_gb_s=round(bw["triad"], 2),
                  decode_gflop=round(bound["flops"] / 1e9, 4), bound_ms=round(bound_ms, 3),
                  app_p50_vs_bound=round(result["app"]["p50_ms"] / bound_ms, 2), target_ms=3.0,
                  target_met=result["app"]["p50_ms"] <= 3.0, bound_below_target=bound_ms <= 3.0)
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
