"""How fast this machine trains a recipe's model: training images a second over a few optimizer steps on random
images, and the seconds each epoch adds by writing its checkpoints; measured once per (model, batch, loss, threads,
device, torch, machine) and remembered in a JSON file.

The measurement runs in its own process (``python -m train.speed``, the recipe as JSON on stdin) with the recipe's
thread count, as a training run would: a server that serves other sessions keeps its own torch settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .config import TrainConfig

__all__ = ["Speed", "measure_speed", "record_speed", "speed_key", "training_speed"]

_REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Speed:
    """Training images a second, and the seconds each epoch adds writing its checkpoints (``last.pt`` with the
    optimizer, and the model again as ``best.pt`` when it improves): on a folder of a few images the epochs are
    short and their checkpoints take most of the time."""

    images_per_s: float
    epoch_seconds: float = 0.0


def measure_speed(cfg: TrainConfig, *, device: str = "auto", steps: int = 3) -> Speed:
    """``cfg``'s :class:`Speed`: ``steps`` timed optimizer steps after one untimed one, each as :mod:`train.loop`
    takes it (augmentation, channels-last, the loss and the decorrelation penalty), then an epoch's two checkpoint
    writes into a temporary folder."""
    import torch

    from astroae_core.data import augment
    from astroae_core.model import AutoEncoder, save_checkpoint

    from .loop import optimizer_step, resolve_device

    dev = resolve_device(device)
    model = AutoEncoder(cfg.model, preprocess_config=cfg.preprocess).to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(cfg.batch_size, 1, cfg.model.in_size, cfg.model.in_size, generator=gen)

    def step():
        optimizer_step(model, opt, cfg, augment(x, generator=gen).to(dev).contiguous(memory_format=torch.channels_last))
        if dev.type == "cuda":
            torch.cuda.synchronize()

    model.train()
    step()  # the first step allocates and picks kernels
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    ips = steps * cfg.batch_size / (time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        save_checkpoint(Path(tmp) / "best.pt", model, train_config=cfg.to_dict())
        save_checkpoint(Path(tmp) / "last.pt", model, optimizer=opt.state_dict(), train_config=cfg.to_dict())
        return Speed(ips, time.perf_counter() - t0)


def speed_key(cfg: TrainConfig, device: str = "auto") -> str:
    """What the speed depends on, hashed: the model, the batch, the loss, threads, device, torch and the machine."""
    import torch

    what = {"model": cfg.model.to_dict(), "batch_size": cfg.batch_size, "loss": cfg.loss,
            "decorrelation": bool(cfg.decorrelation), "threads": cfg.threads, "device": device,
            "cuda": torch.cuda.is_available(), "torch": torch.__version__, "cpus": os.cpu_count(),
            "machine": platform.machine(), "node": platform.node()}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def training_speed(cfg: TrainConfig, *, cache_file, device: str = "auto", timeout: float = 300.0) -> Speed:
    """``cfg``'s :class:`Speed` on this machine: remembered in ``cache_file``, else measured in a fresh process (a
    few seconds) and remembered.

    Raises
    ------
    RuntimeError
        If the measurement fails or takes longer than ``timeout`` seconds (with the reason it gave).
    """
    cache_file = Path(cache_file)
    known = _read(cache_file).get(speed_key(cfg, device))
    if known:
        return Speed(float(known["images_per_s"]), float(known.get("epoch_seconds", 0.0)))
    cmd = [sys.executable, "-m", "train.speed", "--device", device]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(_REPO), os.environ.get("PYTHONPATH")])))
    try:
        done = subprocess.run(cmd, input=json.dumps(cfg.to_dict()), capture_output=True, text=True, cwd=_REPO,
                              env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"measuring the training speed took longer than {timeout:.0f} s") from None
    if done.returncode != 0:
        raise RuntimeError(f"measuring the training speed failed: {done.stderr.strip()[-500:]}")
    speed = Speed(**json.loads(done.stdout))
    record_speed(cfg, speed.images_per_s, epoch_seconds=speed.epoch_seconds, cache_file=cache_file, device=device,
                 source="measured")
    return speed


def record_speed(cfg: TrainConfig, images_per_s: float, *, cache_file, epoch_seconds: float | None = None,
                 device: str = "auto", source: str = "run") -> None:
    """Remember ``images_per_s`` (and ``epoch_seconds``, else the one measured before) as ``cfg``'s speed on this
    machine. A whole run's median is a better figure than a few steps on random images: a run records its own."""
    from astroae_core.io import atomic_write_text

    cache_file = Path(cache_file)
    known = _read(cache_file)  # another process may have added its own measurement meanwhile
    key = speed_key(cfg, device)
    if epoch_seconds is None:
        epoch_seconds = float(known.get(key, {}).get("epoch_seconds", 0.0))
    known[key] = {"images_per_s": float(images_per_s), "epoch_seconds": float(epoch_seconds), "source": source,
                  "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cache_file, json.dumps(known, indent=1))


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def main(argv: list[str] | None = None) -> int:
    """``python -m train.speed [--device D] < recipe.json``: print the :class:`Speed` as JSON."""
    import argparse

    import torch

    p = argparse.ArgumentParser(prog="python -m train.speed", description=main.__doc__)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = p.parse_args(argv)
    cfg = TrainConfig.from_dict(json.loads(sys.stdin.read()))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    print(json.dumps(asdict(measure_speed(cfg, device=args.device))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
