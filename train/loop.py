"""The training loop: seeded, resumable, atomic checkpoints, DistributedDataParallel under torchrun."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from pytorch_msssim import ms_ssim
from torch.nn import functional as F

from astroae_core import distributed
from astroae_core.analysis import image_metrics
from astroae_core.data import augment, group_keys, kfold_by_group, load_folder, split_by_group, training_views
from astroae_core.data.training_views import VIEW_RANGES
from astroae_core.io import atomic_write_text
from astroae_core.model import AutoEncoder, batchnorm_layers, read_checkpoint, save_checkpoint
from astroae_core.progress import Progress, report

from .config import TrainConfig

log = logging.getLogger("astroae.train")

__all__ = ["train", "loss_fn", "latent_correlation_penalty", "freeze_batchnorm", "resolve_device", "TrainResult"]


@dataclass
class TrainResult:
    """What a run did: its folder, epochs, best validation loss, history, split sizes and training speed."""

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
        x = _to_device(x_val[i : i + batch], device)
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


def _to_device(x: torch.Tensor, device) -> torch.Tensor:
    return x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)


def train(cfg: TrainConfig, data_dir, run_dir, *, device: str = "auto", resume: bool = False,
          progress: Progress | None = None, on_epoch: Callable[[dict], None] | None = None,
          stop_after_epochs: int | None = None, crossval: dict | None = None) -> TrainResult:
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
    progress : Progress, optional
        Called on rank 0 as the files are read (``load_folder``'s stages) and as each epoch's images are trained
        (stage ``"epoch E/N"``, counted in images).
    on_epoch : callable, optional
        Called on rank 0 with each epoch's history row once it is written.
    stop_after_epochs : int, optional
        Stop (as if killed) after this many epochs of this call; used by tests of ``resume``.
    crossval : dict, optional
        This recipe's cross-validated figures (:func:`train.crossval.stored_summary`), stored in every checkpoint so
        that a model trained on all its images (``val_fraction = 0``) still says what to expect of it.

    Returns
    -------
    TrainResult
    """
    dev = resolve_device(device)
    started_dist = distributed.init_process_group(device_type=dev.type)
    rank, world = distributed.rank_world()
    dev = distributed.local_device(dev)
    run_dir = Path(run_dir)
    _set_threads(cfg, dev, world)
    if rank != 0:
        progress, on_epoch = None, None
    # Rank 0 decides and reads for all: every rank raises the same error, none waits for one that gave up.
    distributed.agree(_check_run_dir, run_dir, resume=resume)
    data = _load_data(cfg, data_dir, progress)
    torch.manual_seed(cfg.seed)
    gens = {"shuffle": torch.Generator().manual_seed(cfg.seed), "augment": torch.Generator().manual_seed(cfg.seed + 1)}
    model = AutoEncoder(cfg.model, preprocess_config=cfg.preprocess).to(dev).to(memory_format=torch.channels_last)
    model.init_output_bias(float(data.x_train.mean()))
    if cfg.model.pca_anchor:
        _set_pca_basis(model, data.x_train, seed=cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    history, start_epoch, best = [], 0, math.inf
    if resume:
        history, start_epoch, best, stored_cv = _resume(run_dir, model, opt, gens)
        if crossval is not None and stored_cv is not None and crossval != stored_cv:
            raise ValueError(f"{run_dir} was trained with another cross-validation stored; resume it without one")
        crossval = crossval if crossval is not None else stored_cv
    if crossval is not None and crossval.get("n_images_total") not in (None, len(data.x_train) + len(data.x_val)):
        raise ValueError(f"the cross-validation scored {crossval['n_images_total']} images, {data_dir} holds "
                         f"{len(data.x_train) + len(data.x_val)} usable ones: it was of another data set")
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.json", json.dumps(cfg.to_dict(), indent=2))
    if cfg.synthetic and start_epoch == 0:  # a resumed run's weights hold their pretraining already
        with torch.random.fork_rng(devices=[]):  # skip dropout draws from the global generator: leave it as it was
            _pretrain(net, model, cfg, data.native_size, dev, progress)

    steps = max(1, data.x_train.shape[0] // (cfg.batch_size * world))  # no ragged last batch: BatchNorm dislikes 1
    images_seen, train_time = 0, 0.0
    epoch = start_epoch
    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        train_loss, dt = _train_epoch(net, model, opt, cfg, data, epoch, steps, gens, dev, progress)
        train_time += dt
        images_seen += steps * cfg.batch_size * world
        distributed.broadcast_buffers(model)  # rank 0's BatchNorm statistics: the model it saves, on every rank
        val = {}
        if data.x_val.shape[0]:  # none when val_fraction = 0: no best.pt, the last epoch is the model
            val_part = data.x_val
            if val_part.shape[0] >= world:
                val_part = distributed.shard(val_part, rank=rank, world=world)
            val = distributed.reduce_means(_validate(model, cfg, val_part, dev), weight=val_part.shape[0])
        train_loss = distributed.reduce_means({"train_loss": train_loss}, weight=steps)["train_loss"]
        row = {"epoch": epoch, "train_loss": train_loss, **val,
               "seconds": dt, "train_images_per_s": steps * cfg.batch_size * world / dt}
        history.append(row)
        improved = row.get("val_loss", math.inf) < best
        best = min(best, row.get("val_loss", math.inf))
        if rank == 0:
            _write_epoch(run_dir, model, opt, cfg, epoch, history, best, gens, data.info, crossval,
                         improved=improved, periodic=epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs)
            log.info("epoch %d: %s", epoch, {k: round(v, 5) for k, v in row.items() if isinstance(v, float)})
            if on_epoch is not None:
                on_epoch(row)
        if stop_after_epochs is not None and epoch - start_epoch >= stop_after_epochs:
            break
    if world > 1:
        dist.barrier()
        if started_dist:
            dist.destroy_process_group()
    return TrainResult(run_dir, epoch, best, history, data.x_train.shape[0], data.x_val.shape[0], data.n_skipped,
                       images_seen / train_time if train_time else float("nan"))


def synthetic_set(cfg: TrainConfig, size: int, *, progress: Progress | None = None) -> np.ndarray:
    """The recipe's ``cfg.synthetic`` GalSim galaxies at ``size`` pixels, preprocessed as its images are: kept on
    this machine once drawn (:func:`train.synthetic.kept_synthetic_galaxies`, ``cache/synthetic`` or
    ``ASTROAE_SYNTHETIC_CACHE``)."""
    from astroae_core.data import preprocess, preprocessing
    from astroae_core.io.paths import project_cache_dir

    from .synthetic import kept_synthetic_galaxies, source_hash

    return kept_synthetic_galaxies(
        cfg.synthetic, size=size, seed=cfg.seed, progress=progress,
        transform=lambda s: preprocess(s, config=cfg.preprocess)[0],
        transform_key={"preprocess": cfg.preprocess.to_dict(), "code": source_hash(*(
            Path(preprocessing.__file__).with_name(f"{m}.py")
            for m in ("config", "noise", "normalization", "pixels", "preprocessing", "resize")))},
        folder=project_cache_dir("synthetic", env="ASTROAE_SYNTHETIC_CACHE"))


def _pretrain(net, model, cfg: TrainConfig, size: int, dev, progress: Progress | None) -> None:
    """``cfg.synthetic_epochs`` epochs on ``cfg.synthetic`` GalSim galaxies (:mod:`train.synthetic`), preprocessed
    as the training images are, with batch statistics, a cosine schedule of their own and an optimizer that is then
    dropped. Its generator is its own, so the run's own epochs draw as they would without it. Under torchrun every
    rank draws the set and takes the same steps (DDP averages equal gradients): correct, not faster."""
    x = torch.from_numpy(synthetic_set(cfg, size, progress=progress))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed + 2)
    steps, epochs = x.shape[0] // cfg.batch_size, cfg.synthetic_epochs
    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(x.shape[0], generator=gen)
        t0, total = time.perf_counter(), 0.0
        for s in range(steps):
            for group in opt.param_groups:
                group["lr"] = _cosine(cfg.lr, epoch + s / steps, epochs)
            xb = x[perm[s * cfg.batch_size : (s + 1) * cfg.batch_size]]
            if cfg.augment:
                xb = augment(xb, generator=gen)
            total += optimizer_step(net, opt, cfg, _to_device(xb, dev))
            report(progress, (s + 1) * cfg.batch_size, steps * cfg.batch_size, f"pretrain {epoch + 1}/{epochs}")
        log.info("pretrain epoch %d: train_loss %.5f, %.0f s", epoch + 1, total / steps, time.perf_counter() - t0)


def _set_pca_basis(model: AutoEncoder, x_train: torch.Tensor, *, seed: int) -> None:
    """Anchor ``model`` on the PCA of the training images, fitted as the PCA-k baseline is fitted
    (:class:`astroae_core.analysis.PCABaseline`), so training starts at the baseline's own error."""
    from sklearn.decomposition import PCA

    flat = x_train.reshape(x_train.shape[0], -1).numpy().astype(np.float32)
    pca = PCA(model.config.latent_dim, svd_solver="randomized", random_state=seed).fit(flat)
    model.set_pca_basis(pca.mean_, pca.components_, np.sqrt(pca.explained_variance_))


def _resume(run_dir: Path, model, opt, gens: dict) -> tuple[list[dict], int, float, dict | None]:
    """Load ``run_dir/last.pt`` into the model, the optimizer and the generators; return (history, epoch, best,
    the cross-validation it stores)."""
    ckpt = distributed.agree(read_checkpoint, run_dir / "last.pt")
    model.load_state_dict(ckpt["state_dict"])
    opt.load_state_dict(ckpt["optimizer"])
    _set_rng_state(ckpt["rng"], gens)
    if distributed.rank_world()[0] == 0:
        log.info("resuming %s at epoch %d", run_dir, int(ckpt["epoch"]))
    return list(ckpt["history"]), int(ckpt["epoch"]), float(ckpt["best_val_loss"]), ckpt.get("crossval")


def _set_threads(cfg: TrainConfig, dev: torch.device, world: int) -> None:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    elif world > 1 and dev.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", world))))


@dataclass
class _Data:
    x_train: torch.Tensor
    x_val: torch.Tensor
    info: dict  # stored in every checkpoint: the split by content hash and by relative path, the skipped files
    n_skipped: int
    views: dict = field(default_factory=dict)  # kind: (N_train, 3, 1, S, S), for each kind with a share
    native_size: int = 0  # the training images' median side as read (the synthetic galaxies' size)


def _load_data(cfg: TrainConfig, data_dir, progress: Progress | None) -> _Data:
    """Read and preprocess the folder, and split it by group into training and validation images."""
    kinds = [k for k in VIEW_RANGES if getattr(cfg, k)]  # views are made in flux units, from the images as read
    loaded = load_folder(data_dir, config=cfg.preprocess, progress=progress, max_files=cfg.max_files or None,
                         keep_raw=bool(kinds))
    if len(loaded.paths) < 2:
        raise ValueError(f"{data_dir}: need at least 2 readable FITS images to train, found {len(loaded.paths)}")
    groups = group_keys(loaded.paths, group_regex=cfg.group_regex or None)
    if cfg.folds:
        train_idx, val_idx = kfold_by_group(groups, n_folds=cfg.folds, seed=cfg.seed)[cfg.fold]
    else:
        train_idx, val_idx = split_by_group(groups, val_fraction=cfg.val_fraction, seed=cfg.seed)
    x_all = torch.from_numpy(loaded.x)
    # Images are identified by their pixels (astroae_core.analysis.TrainingSet), so the split is known wherever the
    # folder lives; the relative paths are for people reading the checkpoint. No absolute path is stored.
    info = {"folder": Path(data_dir).resolve().name,
            "train_hashes": [loaded.hashes[i] for i in train_idx], "val_hashes": [loaded.hashes[i] for i in val_idx],
            "train_paths": [loaded.paths[i] for i in train_idx], "val_paths": [loaded.paths[i] for i in val_idx],
            "skipped": [list(s) for s in loaded.skipped]}
    raw = [loaded.raw[i] for i in train_idx] if kinds else []
    views = {k: torch.from_numpy(training_views(raw, kind=k, config=cfg.preprocess, seed=cfg.seed + n))
             for n, k in enumerate(VIEW_RANGES) if k in kinds}  # seeded by the kind's place: one kind alone or both
    native = int(np.median([max(loaded.norms[i].orig_shape) for i in train_idx]))
    return _Data(x_all[train_idx], x_all[val_idx], info, len(loaded.skipped), views, native)


def _train_epoch(net, model, opt, cfg: TrainConfig, data: _Data, epoch: int, steps: int, gens: dict,
                 dev, progress: Progress | None) -> tuple[float, float]:
    """One epoch of optimizer steps on this rank's block of a fresh permutation; returns (mean loss, seconds)."""
    x_train = data.x_train
    rank, world = distributed.rank_world()
    perm = torch.randperm(x_train.shape[0], generator=gens["shuffle"])
    # Every rank draws the same permutation (the same seeded generators on every rank, so rank 0's saved
    # state resumes them all) and takes its own block of it, as DistributedSampler would.
    mine = distributed.shard(perm, rank=rank, world=world)
    model.train()
    first_frozen = cfg.epochs - cfg.frozen_norm.epochs + 1
    if epoch >= first_frozen:
        freeze_batchnorm(model)
        if epoch == first_frozen:
            # Adam's step sizes were learned while BatchNorm made each layer blind to its weights' scale; kept,
            # they throw the first frozen steps far off (benchmarks/RESULTS.md, section 2).
            opt.state.clear()
    t0, total = time.perf_counter(), 0.0
    stage, per_step = f"epoch {epoch}/{cfg.epochs}", cfg.batch_size * world
    for s in range(steps):
        lr = _learning_rate(cfg, epoch, s, steps)
        for group in opt.param_groups:
            group["lr"] = lr
        idx = mine[s * cfg.batch_size : (s + 1) * cfg.batch_size]
        xb = x_train[idx]
        for kind, views in data.views.items():  # the generator draws only for the kinds a recipe uses
            shown = torch.rand(len(idx), generator=gens["augment"]) < getattr(cfg, kind)
            view = torch.randint(0, views.shape[1], (len(idx),), generator=gens["augment"])
            xb = torch.where(shown[:, None, None, None], views[idx, view], xb)
        if cfg.augment:
            xb = augment(xb, generator=gens["augment"])
        total += optimizer_step(net, opt, cfg, _to_device(xb, dev))
        report(progress, (s + 1) * per_step, steps * per_step, stage)
    return total / steps, time.perf_counter() - t0


def _learning_rate(cfg: TrainConfig, epoch: int, step: int, steps: int) -> float:
    """The learning rate at ``step`` of ``steps`` in ``epoch`` (1-based): a function of progress alone, so a resumed
    run needs no scheduler state."""
    lr = cfg.lr
    if cfg.lr_schedule == "cosine":
        lr = _cosine(cfg.lr, epoch - 1 + step / steps, cfg.epochs)
    frozen = cfg.frozen_norm
    since_freeze = epoch - 1 - (cfg.epochs - frozen.epochs)  # whole epochs frozen before this one
    if frozen.epochs and since_freeze >= 0:
        lr *= frozen.lr_scale
        if since_freeze < frozen.warmup_epochs:
            lr *= (since_freeze * steps + step + 1) / (frozen.warmup_epochs * steps)
    return lr


def _cosine(lr: float, done: float, total: float) -> float:
    """A cosine schedule's rate, from ``lr`` when ``done`` = 0 to zero when ``done`` = ``total`` (epochs)."""
    return 0.5 * lr * (1 + math.cos(math.pi * done / total))


def optimizer_step(net, opt, cfg: TrainConfig, xb: torch.Tensor) -> float:
    """One optimizer step on batch ``xb`` (already on the device); returns the loss."""
    out = net(xb)
    loss = loss_fn(cfg.loss, out["logits"], out["x_hat"], xb)
    if cfg.decorrelation:
        # Relative to the reconstruction loss, so one weight means the same for every loss and scale.
        loss = loss + cfg.decorrelation * loss.detach() * latent_correlation_penalty(out["z"])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


def _write_epoch(run_dir, model, opt, cfg, epoch, history, best, gens, data_info, crossval, *, improved, periodic):
    common = {"epoch": epoch, "history": history, "train_config": cfg.to_dict(), "data": data_info,
              "best_val_loss": best, **({"crossval": crossval} if crossval else {})}
    # Write the resume point last: if killed in between, the older last.pt still matches its own history.
    if improved:
        save_checkpoint(run_dir / "best.pt", model, **common)
    if periodic:
        save_checkpoint(run_dir / f"epoch_{epoch:03d}.pt", model, **common)
    atomic_write_text(run_dir / "history.json", json.dumps(history, indent=1))
    save_checkpoint(run_dir / "last.pt", model, optimizer=opt.state_dict(), rng=_rng_state(gens), **common)
