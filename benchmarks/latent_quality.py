"""How much of the image do the 8 numbers carry? Train (or take) model variants and report, on held-out images,
full and latent-only reconstruction quality beside PCA-k and the mean image, the latent's effective
dimensionality and each dimension's influence. Prints JSON.

    python benchmarks/latent_quality.py --data ../shared/data/ceers_jwst \\
        --recipe train/configs/seed.toml --recipe train/configs/ceers.toml --epochs 20 --out runs/bench
    python benchmarks/latent_quality.py --data data/demo-eval --checkpoint models/demo.pt --checkpoint models/demo-unet.pt

    python benchmarks/latent_quality.py --data ../shared/data/ceers_jwst --folds 5 --epochs 15 \\
        --recipe train/configs/ceers.toml --out runs/cv15 > runs/cv15-ceers.json

With --folds K, each recipe is cross-validated (train.crossval): K folds grouped by galaxy, each fold's last epoch
scored on its validation galaxies beside PCA-8 fitted on its training images, under the degradations of
astroae_core.analysis.robustness too (unless --no-robustness); the JSON has per-fold values, their mean, std, min and
max, and which of issue 17's targets are met. A killed run resumes: finished folds are reused from --out.
--epochs shortens a recipe's frozen-statistics phase, not its first batch-statistics epochs (train.config.with_epochs).

With --recipe (no --folds), each recipe is trained on --data (galaxy-level split from the recipe's group rule) and its last
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
    p.add_argument("--folds", type=int, help="cross-validate each --recipe over this many folds grouped by galaxy")
    p.add_argument("--only-folds", help="with --folds: train only these folds, e.g. 0,2,4 (another process "
                   "can take the rest); finished folds are read from their folders")
    p.add_argument("--no-robustness", action="store_true", help="with --folds: skip the degraded validation sets")
    p.add_argument("--dry-run", action="store_true", help="print what would run")
    args = p.parse_args(argv)
    if not args.recipe and not args.checkpoint:
        p.error("give at least one --recipe or --checkpoint")
    if args.folds is not None and args.checkpoint:
        p.error("--folds cross-validates recipes: give --recipe, not --checkpoint")
    from astroae_core.analysis import evaluate
    from train.config import load_recipe, with_epochs
    from train.loop import train

    jobs = [("recipe", r) for r in args.recipe] + [("checkpoint", c) for c in args.checkpoint]
    if args.dry_run:
        print(json.dumps({"data": args.data, "jobs": jobs, "epochs": args.epochs, "folds": args.folds}, indent=2))
        return 0
    if args.folds is not None:
        return _crossval(args)
    results = []
    for kind, item in jobs:
        entry = {kind: item}
        ckpt = Path(item)
        if kind == "recipe":
            cfg = with_epochs(load_recipe(item), args.epochs)
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


def _crossval(args) -> int:
    """Each recipe's k-fold cross-validation, one JSON document with a result per recipe."""
    from train.config import load_recipe, with_epochs
    from train.crossval import crossval

    results = []
    for recipe in args.recipe:
        cfg = with_epochs(load_recipe(recipe), args.epochs)
        t0 = time.perf_counter()
        res = crossval(cfg, args.data, Path(args.out) / Path(recipe).stem, folds=args.folds,
                       robustness=not args.no_robustness,
                       only_folds=None if args.only_folds is None else [int(k) for k in args.only_folds.split(",")],
                       on_fold=lambda k, row: print(json.dumps({"recipe": recipe, **row}), file=sys.stderr, flush=True))
        results.append({"recipe_file": recipe, "epochs": cfg.epochs, "seconds": round(time.perf_counter() - t0, 1),
                        **res})
    print(json.dumps({"data": args.data, "folds": args.folds, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
