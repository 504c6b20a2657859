"""The training loop: seeded, resumable, atomic checkpoints, DistributedDataParallel under torchrun."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from pytorch_msssim import ms_ssim
from torch.nn import functional as F
from tqdm.auto import tqdm

from astroae_core import distributed
from astroae_core.io import atomic_write_text
from astroae_core.model import read_checkpoint, save_checkpoint
from astroae_core.data import augment, group_keys, load_folder, split_by_group
from astroae_core.analysis import image_metrics
from astroae_core.model import AutoEncoder, batchnorm_layers

from .config import TrainConfig

log = logging.getLogger("astroae.train")

__all__ = ["train", "loss_fn", "latent_correlation_penalty", "freeze_batchnorm", "resolve_device", "TrainResult"]


@dataclass
class TrainResult:
    run_dir: Path
    epochs_done: int
    best_val_loss: float
    history: list[dict]
    n_train: int
    n_val: int
    n_skipped: int
    train_images_per_s: float


def resolve_device(name: str) -> torch.device:
    """``"auto"`` picks CUDA when present; ``"cuda"`` without a GPU is an error naming the problem."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA GPU on this machine")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def loss_fn(name: str, logits: torch.Tensor, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The training loss ``name`` (see ``TrainConfig.loss``), averaged over the batch."""
    if name == "bce":
        return F.binary_cross_entropy_with_logits(logits, x)
    if name == "mse":
        return F.mse_loss(x_hat, x)
    if name == "l1":
        return F.l1_loss(x_hat, x)
    if name == "ms_ssim_l1":
        # Zhao et al. (2017): MS-SSIM keeps structure, L1 keeps flux; 0.84 is their mixing weight.
        return 0.84 * (1 - ms_ssim(x_hat, x, data_range=1.0)) + 0.16 * F.l1_loss(x_hat, x)
    raise ValueError(f"unknown loss {name!r}")


def latent_correlation_penalty(z: torch.Tensor) -> torch.Tensor:
    """Mean squared off-diagonal correlation between the columns of a batch of latents ``z`` (N, D).

    0 when the latent numbers are uncorrelated over the batch, 1 when they all repeat one another.
    """
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"z must have shape (N >= 2, D), got {tuple(z.shape)}")
    zc = z - z.mean(0)
    zc = zc / zc.norm(dim=0).clamp_min(1e-8)
    corr = zc.T @ zc
    d = z.shape[1]
    return (corr.square().sum() - corr.diagonal().square().sum()) / max(d * (d - 1), 1)


def freeze_batchnorm(model: torch.nn.Module) -> int:
    """Put every BatchNorm of ``model`` in eval mode: normalize with the running statistics and stop updating them.

    The layers' scales and shifts still train. Returns how many layers were frozen; ``model.train()`` undoes it.
    """
    frozen = batchnorm_layers(model)
    for m in frozen:
        m.eval()
    return len(frozen)


def _check_run_dir(run_dir: Path, *, resume: bool) -> None:
    last_path = run_dir / "last.pt"
    if resume and not last_path.exists():
        raise FileNotFoundError(f"--resume: no {last_path} to resume from")
    if not resume and last_path.exists():
        raise FileExistsError(f"{run_dir} already holds a run (last.pt); use --resume or another --out")


def _rng_state(gens: dict[str, torch.Generator]) -> dict:
    # Everything random in the loop draws from these: the global generator (skip dropout) and our own two.
    return {"torch": torch.get_rng_state(), **{f"gen_{k}": g.get_state() for k, g in gens.items()}}


def _set_rng_state(state: dict, gens: dict[str, torch.Generator]) -> None:
    torch.set_rng_state(state["torch"])
    for k, g in gens.items():
        g.set_state(state[f"gen_{k}"])


@torch.no_grad()
def _validate(model: AutoEncoder, cfg: TrainConfig, x_val: torch.Tensor, device, batch: int = 64) -> dict:
    """Validation loss (the training objective's expectation) and metrics, full and from the latent alone."""
    model.eval()
    full, latent_only, losses = [], [], []
    for i in range(0, x_val.shape[0], batch):
        x = _to_device(x_val[i : i + batch], device, cfg)
        out = model(x)
        loss = loss_fn(cfg.loss, out["logits"], out["x_hat"], x)
        if model.config.has_skips:
            if model.config.skip_mode == "dropout":
                # The objective mixes both paths in training; validation measures the same mixture.
                lat_loss = loss_fn(cfg.loss, out["logits_latent"], out["x_hat_latent"], x)
                p = model.config.skip_dropout
                loss = p * lat_loss + (1 - p) * loss
            latent_only.append(out["x_hat_latent"].float().cpu())
        losses.append(float(loss) * x.shape[0])
        full.append(out["x_hat"].float().cpu())
    model.train()
    xv = x_val.float()
    m = image_metrics(xv, torch.cat(full))
    res = {"val_loss": sum(losses) / x_val.shape[0], "val_mse": float(m["mse"].mean()),
           "val_ssim": float(m["ssim"].mean()),
           # MS-SSIM is undefined below 161 pixels a side: null in the JSON history rather than NaN.
           "val_ms_ssim": float(m["ms_ssim"].mean()) if np.isfinite(m["ms_ssim"]).all() else None}
    if latent_only:
        ml = image_metrics(xv, torch.cat(latent_only))
        res.update(val_latent_mse=float(ml["mse"].mean()), val_latent_ssim=float(ml["ssim"].mean()))
    else:
        res.update(val_latent_mse=res["val_mse"], val_latent_ssim=res["val_ssim"])
    return res


def _to_device(x: torch.Tensor, device, cfg: TrainConfig) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if cfg.channels_last else x


def train(cfg: TrainConfig, data_dir, run_dir, *, device: str = "auto", resume: bool = False,
          progress: bool = True, stop_after_epochs: int | None = None) -> TrainResult:
    """Train an autoencoder on the FITS files under ``data_dir`` and write the run to ``run_dir``.

    Parameters
    ----------
    cfg : TrainConfig
        The resolved recipe.
    data_dir : str or Path
        Folder of FITS files (searched recursively).
    run_dir : str or Path
        Output folder: ``best.pt``, ``last.pt``, ``epoch_NNN.pt``, ``history.json``, ``config.json``.
    device : {"auto", "cpu", "cuda"}
        Where to train.
    resume : bool
        Continue from ``run_dir/last.pt`` (model, optimizer, epoch, RNG state): the resumed run ends where an
        uninterrupted one would.
    progress : bool
        Show a progress bar per epoch.
    stop_after_epochs : int, optional
        Stop (as if killed) after this many epochs of this call; used by tests of ``resume``.

    Returns
    -------
    TrainResult
    """
    dev = resolve_device(device)
    started_dist = distributed.init_process_group(device_type=dev.type)
    rank, world = distributed.rank_world()
    dev = distributed.local_device(dev)
    run_dir = Path(run_dir)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    elif world > 1 and dev.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", world))))

    last_path = run_dir / "last.pt"
    # Rank 0 decides and reads for all: every rank raises the same error, none waits for one that gave up.
    distributed.agree(_check_run_dir, run_dir, resume=resume)

    loaded = load_folder(data_dir, config=cfg.preprocess, progress=progress and rank == 0,
                         max_files=cfg.max_files or None)
    if len(loaded.paths) < 2:
        raise ValueError(f"{data_dir}: need at least 2 readable FITS images to train, found {len(loaded.paths)}")
    groups = group_keys(loaded.paths, group_regex=cfg.group_regex or None)
    train_idx, val_idx = split_by_group(groups, val_fraction=cfg.val_fraction, seed=cfg.seed)
    x_all = torch.from_numpy(loaded.x)
    x_train, x_val = x_all[train_idx], x_all[val_idx]

    torch.manual_seed(cfg.seed)
    gens = {"shuffle": torch.Generator().manual_seed(cfg.seed), "augment": torch.Generator().manual_seed(cfg.seed + 1)}

    model = AutoEncoder(cfg.model, preprocess_config=cfg.preprocess).to(dev)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.init_output_bias(float(x_train.mean()))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    history: list[dict] = []
    start_epoch, best, since_best = 0, math.inf, 0
    if resume:
        ckpt = distributed.agree(read_checkpoint, last_path)
        model.load_state_dict(ckpt["state_dict"])
        opt.load_state_dict(ckpt["optimizer"])
        history, start_epoch = list(ckpt["history"]), int(ckpt["epoch"])
        best, since_best = float(ckpt["best_val_loss"]), int(ckpt["since_best"])
        _set_rng_state(ckpt["rng"], gens)
        if rank == 0:
            log.info("resuming %s at epoch %d", run_dir, start_epoch)

    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)

    data_info = {"root": str(Path(data_dir).resolve()), "train_paths": [loaded.paths[i] for i in train_idx],
                 "val_paths": [loaded.paths[i] for i in val_idx], "skipped": [list(s) for s in loaded.skipped]}
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.json", json.dumps(cfg.to_dict(), indent=2))

    n_train = x_train.shape[0]
    steps = max(1, n_train // (cfg.batch_size * world))  # drop the ragged last batch: BatchNorm dislikes size 1
    images_seen, train_time = 0, 0.0
    epoch = start_epoch
    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        perm = torch.randperm(n_train, generator=gens["shuffle"])
        # Every rank draws the same permutation (the same seeded generators on every rank, so rank 0's saved
        # state resumes them all) and takes its own block of it, as DistributedSampler would.
        mine = distributed.shard(perm, rank=rank, world=world)
        model.train()
        if epoch > cfg.epochs - cfg.freeze_norm_epochs:
            freeze_batchnorm(model)
            if epoch == cfg.epochs - cfg.freeze_norm_epochs + 1:
                # Adam's step sizes were learned while BatchNorm made each layer blind to its weights' scale;
                # kept, they throw the first frozen steps far off (validation MSE 5e-4 -> 1.9e-3 on CEERS).
                opt.state.clear()
        elif cfg.freeze_latent_norm_after and epoch > cfg.freeze_latent_norm_after:
            freeze_batchnorm(model.latent_norm)
        t0, total = time.perf_counter(), 0.0
        bar = tqdm(range(steps), desc=f"epoch {epoch}/{cfg.epochs}", disable=not progress or rank != 0,
                   leave=False, mininterval=1.0)
        for s in bar:
            lr = _learning_rate(cfg, epoch, s, steps)
            for group in opt.param_groups:
                group["lr"] = lr
            xb = x_train[mine[s * cfg.batch_size : (s + 1) * cfg.batch_size]]
            if cfg.augment:
                xb = augment(xb, generator=gens["augment"])
            xb = _to_device(xb, dev, cfg)
            out = net(xb)
            loss = loss_fn(cfg.loss, out["logits"], out["x_hat"], xb)
            if cfg.decorrelation:
                # Relative to the reconstruction loss, so one weight means the same for every loss and scale.
                loss = loss + cfg.decorrelation * loss.detach() * latent_correlation_penalty(out["z"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item()
            bar.set_postfix(loss=f"{total / (s + 1):.4g}", refresh=False)
        dt = time.perf_counter() - t0
        train_time += dt
        images_seen += steps * cfg.batch_size * world
        distributed.broadcast_buffers(model)  # rank 0's BatchNorm statistics: the model it saves, on every rank
        val_part = distributed.shard(x_val, rank=rank, world=world) if x_val.shape[0] >= world else x_val
        val = distributed.reduce_means(_validate(model, cfg, val_part, dev), weight=val_part.shape[0])
        train_loss = distributed.reduce_means({"train_loss": total / steps}, weight=steps)["train_loss"]
        row = {"epoch": epoch, "train_loss": train_loss, **val,
               "seconds": dt, "train_images_per_s": steps * cfg.batch_size * world / dt}
        history.append(row)
        improved = row["val_loss"] < best
        if improved:
            best, since_best = row["val_loss"], 0
        else:
            since_best += 1
        stop = bool(cfg.early_stopping_patience) and since_best >= cfg.early_stopping_patience
        if rank == 0:
            _write_epoch(run_dir, model, opt, cfg, epoch, history, best, since_best, gens, data_info,
                         improved=improved, periodic=epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs or stop)
            log.info("epoch %d: %s", epoch, {k: round(v, 5) for k, v in row.items() if isinstance(v, float)})
            if progress:
                tqdm.write(f"epoch {epoch}/{cfg.epochs}  train {row['train_loss']:.5g}  val {row['val_loss']:.5g}  "
                           f"val MSE {row['val_mse']:.3g} (latent only {row['val_latent_mse']:.3g})  "
                           f"{row['train_images_per_s']:.1f} img/s")
        if stop or (stop_after_epochs is not None and epoch - start_epoch >= stop_after_epochs):
            break
    if world > 1:
        dist.barrier()
        if started_dist:
            dist.destroy_process_group()
    return TrainResult(run_dir, epoch, best, history, len(train_idx), len(val_idx), len(loaded.skipped),
                       images_seen / train_time if train_time else float("nan"))


def _learning_rate(cfg: TrainConfig, epoch: int, step: int, steps: int) -> float:
    """The learning rate at ``step`` of ``steps`` in ``epoch`` (1-based): a function of progress alone, so a resumed
    run needs no scheduler state."""
    lr = cfg.lr
    if cfg.lr_schedule == "cosine":
        lr = 0.5 * cfg.lr * (1 + math.cos(math.pi * (epoch - 1 + step / steps) / cfg.epochs))
    since_freeze = epoch - 1 - (cfg.epochs - cfg.freeze_norm_epochs)  # whole epochs frozen before this one
    if cfg.freeze_norm_epochs and since_freeze >= 0:
        lr *= cfg.freeze_lr_scale
        if since_freeze < cfg.freeze_warmup_epochs:
            lr *= (since_freeze * steps + step + 1) / (cfg.freeze_warmup_epochs * steps)
    return lr


def _write_epoch(run_dir, model, opt, cfg, epoch, history, best, since_best, gens, data_info, *, improved, periodic):
    common = {"epoch": epoch, "history": history, "train_config": cfg.to_dict(), "data": data_info,
              "best_val_loss": best, "since_best": since_best}
    # Write the resume point last: if killed in between, the older last.pt still matches its own history.
    if improved:
        save_checkpoint(run_dir / "best.pt", model, **common)
    if periodic:
        save_checkpoint(run_dir / f"epoch_{epoch:03d}.pt", model, **common)
    atomic_write_text(run_dir / "history.json", json.dumps(history, indent=1))
    save_checkpoint(run_dir / "last.pt", model, optimizer=opt.state_dict(), rng=_rng_state(gens), **common)
