"""How much do BatchNorm's batch statistics cost a trained model? Prints JSON.

A BatchNorm layer in training mode normalizes with the statistics of its batch, so what the network computes for
one image depends on the others in its batch. This measures, on a checkpoint's own training images:

- the model's fit: its latent-only MSE beside PCA-k's, both on the training images (a nonlinear code that hardly
  beats a linear one on the images it trained on is underfitting);
- the MSE of the same weights when the latent's BatchNorm, the convolutions' BatchNorms, or all of them use the
  statistics of random batches (what training optimizes) instead of the running statistics (what is evaluated);
- how far the latent's batch mean strays from its running mean, in running standard deviations.

    python benchmarks/batch_statistics.py --checkpoint models/ceers.pt --train-data ../shared/data/ceers_jwst

``benchmarks/RESULTS.md`` ("Batch statistics were what limited the fit") has the figures and what they led to
(a recipe's ``[train.frozen_norm]``).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import CEERS, ROOT, emit, machine  # noqa: E402


def batchnorm_groups(model) -> dict[str, list]:
    """The model's BatchNorm layers: the latent's and the convolutions'."""
    from astroae_core.model import batchnorm_layers

    latent = batchnorm_layers(model.latent_norm)
    conv = [m for m in batchnorm_layers(model) if not any(m is q for q in latent)]
    return {"latent": latent, "conv": conv, "all": latent + conv}


def mse_with_batch_statistics(model, x, *, which: str, batch: int, repeats: int, seed: int) -> float:
    """MSE on ``x`` when the ``which`` BatchNorm layers normalize with the statistics of random batches of ``batch``
    images (their running statistics are left untouched); the other layers use their running statistics."""
    import torch

    m = copy.deepcopy(model).eval()
    for layer in batchnorm_groups(m)[which]:
        layer.train()
        layer.momentum = 0.0  # use the batch's statistics, keep the running ones
    g = torch.Generator().manual_seed(seed)
    errs = []
    with torch.no_grad():
        for _ in range(repeats):
            perm = torch.randperm(len(x), generator=g)
            for i in range(0, len(x) - batch + 1, batch):
                xb = x[perm[i:i + batch]]
                errs.append(float(((m(xb)["x_hat"] - xb) ** 2).mean()))
    return float(np.mean(errs))


def latent_batch_mean_spread(model, x, *, batch: int, seed: int) -> float:
    """Standard deviation over random batches of the latent's batch mean, in running standard deviations
    (averaged over the latent dimensions): how far the batch statistics shift every code in a batch."""
    import torch

    norm = model.latent_norm
    if not hasattr(norm, "running_mean"):
        raise ValueError("the model does not standardize its latent (standardize_latent = false)")
    with torch.no_grad():
        z = model.to_latent(model._encode_features(x)[-1].flatten(1))
        zs = (z - norm.running_mean) / torch.sqrt(norm.running_var + norm.eps)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    means = [zs[perm[i:i + batch]].mean(0) for i in range(0, len(x) - batch + 1, batch)]
    return float(torch.stack(means).std(0).mean())


def measure(checkpoint, *, train_data=None, n: int = 320, batch: int = 16, repeats: int = 3, seed: int = 0) -> dict:
    """Every figure of this benchmark for one checkpoint (see the module docstring)."""
    import torch

    from astroae_core.analysis import PCABaseline
    from astroae_core.model import load_model
    from astroae_core.analysis import training_images
    from astroae_core.analysis import run_model

    model = load_model(checkpoint)
    train = training_images(model, train_data)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(train.x), size=min(n, len(train.x)), replace=False))
    x = torch.from_numpy(np.ascontiguousarray(train.x[pick], dtype=np.float32))
    k = model.config.latent_dim
    x_latent = run_model(model, train.x, batch_size=64)["x_hat_latent"]
    model_mse = float(((x_latent - train.x) ** 2).mean())
    pca_mse = float(((PCABaseline(k).fit(train.x).reconstruct(train.x) - train.x) ** 2).mean())
    with torch.no_grad():
        running = float(((model(x)["x_hat"] - x) ** 2).mean())
    out = {
        "checkpoint": str(checkpoint),
        "n_train_images": len(train.x),
        "fit_on_training_images": {"latent_only_mse": model_mse, f"pca{k}_mse": pca_mse,
                                   "ratio": model_mse / pca_mse},
        "n_images": len(x), "batch": batch, "repeats": repeats,
        "mse_running_statistics": running,
        # None for a group the model lacks (a PCA-anchored latent is standardized by the PCA's scales)
        "mse_batch_statistics": {which: mse_with_batch_statistics(model, x, which=which, batch=batch,
                                                                  repeats=repeats, seed=seed)
                                 if layers else None for which, layers in batchnorm_groups(model).items()},
    }
    if batchnorm_groups(model)["latent"]:
        out["latent_batch_mean_spread_sd"] = latent_batch_mean_spread(model, x, batch=batch, seed=seed)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=str(ROOT / "models" / "ceers.pt"))
    p.add_argument("--train-data", default=str(CEERS), help="the folder the checkpoint was trained on")
    p.add_argument("--n", type=int, default=320, help="training images the batch statistics are drawn from")
    p.add_argument("--batch", type=int, default=16, help="batch size (the recipes': 16)")
    p.add_argument("--repeats", type=int, default=3, help="passes over the images, each in a new random order")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="a smoke run: 32 images, one pass")
    p.add_argument("--out", help="also write the JSON here")
    args = p.parse_args(argv)
    n, repeats = (32, 1) if args.quick else (args.n, args.repeats)
    result = {"benchmark": "batch_statistics", "quick": args.quick, "machine": machine(),
              **measure(args.checkpoint, train_data=args.train_data, n=n, batch=args.batch, repeats=repeats,
                        seed=args.seed)}
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
