"""Test helper launched by torchrun (tests/test_distributed.py): trains with ``train.loop.train`` and writes what
each rank ended with, so the test can compare the ranks.

usage: python -m torch.distributed.run --standalone --nproc_per_node=2 tests/distributed_train_worker.py
       RECIPE DATA RUN_DIR STATE_DIR [--resume] [--epochs N]

Writes ``STATE_DIR/rank<R>.pt``: ``{"state": the model's state_dict (parameters and buffers), "shards": the
training indices this rank drew each epoch}``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import astroae_core.distributed as distributed  # noqa: E402
import train.loop as loop  # noqa: E402
from train.config import load_recipe  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("recipe")
    p.add_argument("data")
    p.add_argument("run_dir")
    p.add_argument("state_dir")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--epochs", type=int)
    args = p.parse_args()

    # Keep a handle on the model the loop builds, and on the training shards it draws (permutations are the
    # 1-D integer tensors it shards; validation images are 4-D).
    made, shards = [], []

    class Recorded(loop.AutoEncoder):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append(self)

    real_shard = distributed.shard

    def recorded_shard(seq, *, rank, world):
        part = real_shard(seq, rank=rank, world=world)
        if isinstance(seq, torch.Tensor) and seq.ndim == 1:
            shards.append(part.tolist())
        return part

    loop.AutoEncoder = Recorded
    distributed.shard = recorded_shard

    cfg = load_recipe(args.recipe).replace(epochs=args.epochs)
    loop.train(cfg, args.data, args.run_dir, device="cpu", resume=args.resume)
    rank = int(os.environ["RANK"])
    state = {k: v.detach().cpu().clone() for k, v in made[-1].state_dict().items()}
    out = Path(args.state_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"state": state, "shards": shards}, out / f"rank{rank}.pt")


if __name__ == "__main__":
    main()
