"""How much of the image do the 8 numbers carry? Train (or take) model variants and report, on held-out images,
full and latent-only reconstruction quality beside PCA-k and the mean image, the latent's effective
dimensionality and each dimension's influence. Prints JSON.

    python benchmarks/latent_quality.py --data ../shared/data/ceers_jwst \\
        --recipe train/configs/seed.toml --recipe train/configs/ceers.toml --epochs 20 --out runs/bench
    python benchmarks/latent_quality.py --data data/demo-eval --checkpoint models/demo.pt --checkpoint models/demo-unet.pt

With --recipe, each recipe is trained on --data (galaxy-level split from the recipe's group rule) and its last
epoch's model is evaluated on its own validation split; with --checkpoint, each checkpoint is evaluated on --data (its validation split if --data
is its training folder, else every image).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--recipe", action="append", default=[], help="train this recipe, then evaluate it (repeatable)")
    p.add_argument("--checkpoint", action="append", default=[], help="evaluate this checkpoint (repeatable)")
    p.add_argument("--epochs", type=int, help="override the recipes' epochs")
    p.add_argument("--out", default="runs/latent_quality", help="run folders for --recipe")
    p.add_argument("--dry-run", action="store_true", help="print what would run")
    args = p.parse_args(argv)
    if not args.recipe and not args.checkpoint:
        p.error("give at least one --recipe or --checkpoint")
    from astroae_core.analysis import evaluate
    from train.config import load_recipe
    from train.loop import train

    jobs = [("recipe", r) for r in args.recipe] + [("checkpoint", c) for c in args.checkpoint]
    if args.dry_run:
        print(json.dumps({"data": args.data, "jobs": jobs, "epochs": args.epochs}, indent=2))
        return 0
    results = []
    for kind, item in jobs:
        entry = {kind: item}
        ckpt = Path(item)
        if kind == "recipe":
            cfg = load_recipe(item).replace(epochs=args.epochs)
            run_dir = Path(args.out) / Path(item).stem
            t0 = time.perf_counter()
            res = train(cfg, args.data, run_dir, resume=(run_dir / "last.pt").exists())
            entry.update(train_seconds=round(time.perf_counter() - t0, 1), epochs=res.epochs_done,
                         train_images_per_s=round(res.train_images_per_s, 2))
            # The last epoch's model: best.pt was picked on the very galaxies it is evaluated on.
            ckpt = run_dir / "last.pt"
        t0 = time.perf_counter()
        ev = evaluate(ckpt, args.data)
        entry.update(eval_seconds=round(time.perf_counter() - t0, 1), **ev)
        results.append(entry)
        print(json.dumps(entry), file=sys.stderr, flush=True)
    print(json.dumps({"data": args.data, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
