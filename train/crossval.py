"""Grouped k-fold cross-validation of a recipe: train each fold, score its last epoch's model on the fold's
validation galaxies beside PCA-k fitted on the fold's training images, and summarize the spread over folds.

A fold's results are stored in its run folder (``fold_K/eval.json``, ``fold_K/robustness.json``) and reused, so a
killed cross-validation resumes where it stopped: an unfinished fold resumes from its ``last.pt``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from astroae_core.io import atomic_write_text

from .config import TrainConfig

log = logging.getLogger("astroae.train")

__all__ = ["crossval", "fold_metrics", "spread", "stored_summary", "TARGETS"]

# Issue 17's bar: mean and worst fold of latent-only MSE over PCA-k's, SSIM, effective dimensionality, and the
# ratio on the S/N-degraded folds.
TARGETS = {"mean_latent_vs_pca_max": 0.70, "worst_fold_latent_vs_pca_max": 0.85, "effective_dim_min": 4.0,
           "fainter_latent_vs_pca_max": 0.80}


def crossval(cfg: TrainConfig, data_dir, out_dir, *, folds: int = 5, device: str = "cpu", robustness: bool = True,
             seed: int = 0, only_folds=None, on_fold: Callable[[int, dict], None] | None = None) -> dict:
    """Cross-validate ``cfg`` on ``data_dir`` with ``folds`` folds grouped by its group rule.

    Parameters
    ----------
    cfg : TrainConfig
        The recipe (its epochs as they will be trained; its ``seed`` also seeds the folds).
    data_dir : str or Path
        The development images.
    out_dir : str or Path
        One run folder per fold (``fold_0`` ...); reused on a second call.
    folds : int
        Number of folds (>= 2).
    device : {"auto", "cpu", "cuda"}
        Where to train.
    robustness : bool
        Also score each fold's validation images under :data:`~astroae_core.analysis.robustness.DEGRADATIONS`.
    seed : int
        Seed of the degradations and of the influence sample.
    only_folds : iterable of int, optional
        Train only these folds; the others are read from their run folders where finished and left out where not,
        so that two processes can share one recipe's folds.
    on_fold : callable, optional
        Called with ``(fold, result)`` as each fold's result is ready.

    Returns
    -------
    dict
        ``recipe`` (the config), ``folds``, ``per_fold`` (:func:`fold_metrics` of each finished fold),
        ``complete`` (every fold finished), ``summary`` (each metric's :func:`spread`), ``robustness`` (per
        degradation, the spread of each ratio) and ``targets``.

    Raises
    ------
    ValueError
        If a fold folder holds a run of a different recipe.
    """
    out_dir = Path(out_dir)
    only = set(range(folds)) if only_folds is None else {int(k) for k in only_folds}
    if not only <= set(range(folds)):
        raise ValueError(f"only_folds {sorted(only)} must lie in 0..{folds - 1}")
    per_fold, robust = [], []
    for k in range(folds):
        fold_cfg = cfg.replace(folds=folds, fold=k)
        run_dir = out_dir / f"fold_{k}"
        finished = (run_dir / "eval.json").exists() and (not robustness or (run_dir / "robustness.json").exists())
        if k not in only and not finished:
            continue
        ev = _fold_eval(fold_cfg, data_dir, run_dir, device=device, seed=seed)
        row = {"fold": k, **fold_metrics(ev)}
        if robustness:
            row["robustness"] = _fold_robustness(run_dir, data_dir, seed=seed)
            robust.append(row["robustness"])
        per_fold.append(row)
        if on_fold is not None:
            on_fold(k, row)
    if not per_fold:
        return {"recipe": cfg.to_dict(), "folds": folds, "per_fold": [], "complete": False}
    keys = [k for k in per_fold[0] if k not in ("fold", "robustness")]
    summary = {k: spread([r[k] for r in per_fold]) for k in keys}
    res = {"recipe": cfg.to_dict(), "folds": folds, "per_fold": per_fold, "complete": len(per_fold) == folds,
           "summary": summary}
    if robust:
        res["robustness"] = {name: {m: spread([r[name][m] for r in robust]) for m in robust[0][name]}
                             for name in robust[0]}
    res["targets"] = targets_met(res)
    return res


def _fold_eval(cfg: TrainConfig, data_dir, run_dir: Path, *, device: str, seed: int) -> dict:
    """The fold's stored evaluation, or train (resuming an unfinished run) and evaluate it."""
    from astroae_core.analysis import evaluate
    from astroae_core.model import read_checkpoint

    from .loop import train

    done = run_dir / "eval.json"
    if done.exists():
        return json.loads(done.read_text())
    last = run_dir / "last.pt"
    resume = last.exists()
    t0 = time.perf_counter()
    if resume:
        stored = read_checkpoint(last)
        if TrainConfig.from_stored(stored["train_config"]) != cfg:
            raise ValueError(f"{run_dir} holds a run of another recipe or fold; use another output folder")
        if int(stored["epoch"]) < cfg.epochs:
            train(cfg, data_dir, run_dir, device=device, resume=True)
    else:
        train(cfg, data_dir, run_dir, device=device)
    seconds = time.perf_counter() - t0
    # The last epoch's model: best.pt would be picked on the very galaxies it is scored on.
    ev = evaluate(last, data_dir, split="val")
    ev["train_seconds"] = round(seconds, 1) if not resume else None
    atomic_write_text(done, json.dumps(ev, indent=1))
    return ev


def _fold_robustness(run_dir: Path, data_dir, *, seed: int) -> dict:
    """The fold's stored robustness scores, or score its validation images under every degradation."""
    from astroae_core.analysis.robustness import score_checkpoint

    done = run_dir / "robustness.json"
    if done.exists():
        return json.loads(done.read_text())
    res = score_checkpoint(run_dir / "last.pt", data_dir, seed=seed)
    atomic_write_text(done, json.dumps(res, indent=1))
    return res


# Settings that say how a run is split or written, not what it learns: a recipe trained for good on every image
# (val_fraction = 0) is the recipe its folds trained.
_RUN_ONLY = ("val_fraction", "folds", "fold", "checkpoint_every", "threads")


def stored_summary(result: dict, cfg: TrainConfig) -> dict:
    """What a checkpoint of recipe ``cfg`` keeps of its cross-validation ``result`` (a :func:`crossval` result):
    the number of folds, each compared figure's :func:`spread` over them, and the robustness ratios.

    Raises
    ------
    ValueError
        If the cross-validation is incomplete, or was of another recipe (the differing settings are named).
    """
    if not result.get("complete"):
        raise ValueError(f"the cross-validation is incomplete: {len(result.get('per_fold', []))} of "
                         f"{result.get('folds')} folds finished")
    theirs = TrainConfig.from_stored(result["recipe"]).to_dict()
    ours = cfg.to_dict()
    differ = sorted(k for k in ours if k not in _RUN_ONLY and ours[k] != theirs.get(k))
    if differ:
        raise ValueError("the cross-validation was of another recipe: "
                         + ", ".join(f"{k} {theirs.get(k)!r} there, {ours[k]!r} here" for k in differ))
    s = result["summary"]
    return {"folds": result["folds"], "group_regex": theirs["group_regex"], "n_images": int(s["n_images"]["mean"]),
            "n_images_total": int(sum(s["n_images"]["values"])),
            **{k: s[k] for k in ("latent_vs_pca_mse", "latent_mse", "latent_ssim", "pca_ssim", "effective_dim")},
            "robustness": {name: r["latent_vs_pca_mse"] for name, r in (result.get("robustness") or {}).items()}}


def fold_metrics(ev: dict) -> dict:
    """The numbers a cross-validation compares, from one fold's :func:`~astroae_core.analysis.evaluate` result."""
    rows = ev["rows"]
    return {"latent_vs_pca_mse": ev["latent_vs_pca_mse"], "latent_mse": rows["latent_only"]["mse"],
            "pca_mse": rows["pca"]["mse"], "latent_ssim": rows["latent_only"]["ssim"], "pca_ssim": rows["pca"]["ssim"],
            "latent_minus_pca_ssim": rows["latent_only"]["ssim"] - rows["pca"]["ssim"],
            "effective_dim": ev["effective_dim"], "n_images": ev["n_images"],
            "train_seconds": ev.get("train_seconds")}


def spread(values) -> dict | None:
    """Mean, standard deviation over folds (ddof=1), min and max of ``values`` (None where a fold has none)."""
    if any(v is None for v in values):
        return None
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
            "min": float(a.min()), "max": float(a.max()), "values": a.tolist()}


def targets_met(res: dict) -> dict:
    """Which of :data:`TARGETS` the cross-validation meets (None where it was not measured)."""
    s = res["summary"]
    fainter = (res.get("robustness") or {}).get("fainter", {}).get("latent_vs_pca_mse")
    return {"mean_latent_vs_pca": s["latent_vs_pca_mse"]["mean"] <= TARGETS["mean_latent_vs_pca_max"],
            "worst_fold_latent_vs_pca": s["latent_vs_pca_mse"]["max"] <= TARGETS["worst_fold_latent_vs_pca_max"],
            "latent_ssim_above_pca": s["latent_minus_pca_ssim"]["mean"] > 0,
            "effective_dim": s["effective_dim"]["mean"] >= TARGETS["effective_dim_min"],
            "fainter_latent_vs_pca": (fainter["mean"] <= TARGETS["fainter_latent_vs_pca_max"]
                                      if fainter else None)}
