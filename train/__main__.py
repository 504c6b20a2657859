"""``python -m train``: train an autoencoder on a folder of FITS files (see ``main``)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train", description=(
        "Train an astroae autoencoder on a folder of FITS images. Writes best.pt, last.pt, epoch_NNN.pt, "
        "history.json and config.json to --out. Under torchrun it trains with DistributedDataParallel."))
    p.add_argument("--config", required=True, help="recipe TOML, e.g. train/configs/demo.toml")
    p.add_argument("--data", required=True, help="folder of FITS files (searched recursively)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--skip-mode", choices=["unet", "none", "dropout"])
    p.add_argument("--loss", choices=["bce", "mse", "l1", "ms_ssim_l1"])
    p.add_argument("--norm", choices=["minmax", "asinh"], help="preprocessing normalization")
    p.add_argument("--seed", type=int)
    p.add_argument("--max-files", type=int, help="use only the first N files (quick experiments)")
    p.add_argument("--group-regex", help="regex whose first group names a file's group for the split")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    p.add_argument("--dry-run", action="store_true", help="resolve the recipe, find the data, print the plan; train nothing")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (2 for bad arguments or data, with the reason on stderr)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from astroae_core.io import find_fits_files
    from astroae_core.model import AutoEncoder, count_parameters

    from .config import load_recipe

    try:
        cfg = load_recipe(args.config).replace(
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, loss=args.loss,
            max_files=args.max_files, group_regex=args.group_regex,
            model_skip_mode=args.skip_mode, preprocess_method=args.norm)
        data = Path(args.data)
        if not data.is_dir():
            raise ValueError(f"--data {str(data)!r} is not a folder")
        files = find_fits_files(data)
        if not files:
            raise ValueError(f"--data {str(data)!r} holds no FITS files")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        plan = {"config": cfg.to_dict(), "data": str(data), "fits_files": len(files), "out": args.out,
                "resume": args.resume, "parameters": count_parameters(AutoEncoder(cfg.model))}
        print(json.dumps(plan, indent=2))
        return 0
    from astroae_core.distributed import is_main_process
    from astroae_core.progress import TqdmProgress

    from .loop import train

    bars = TqdmProgress()
    try:
        res = train(cfg, data, args.out, device=args.device, resume=args.resume,
                    progress=None if args.quiet else bars,
                    on_epoch=None if args.quiet else lambda row: _print_epoch(row, cfg.epochs))
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        if is_main_process() or not hasattr(exc, "from_rank"):  # rank 0's error: said once, by rank 0
            print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        bars.close()
    if not is_main_process():
        return 0
    last = res.history[-1] if res.history else {}
    print(json.dumps({"run_dir": str(res.run_dir), "epochs": res.epochs_done, "best_val_loss": res.best_val_loss,
                      "last": last, "train_images": res.n_train, "val_images": res.n_val,
                      "skipped_files": res.n_skipped, "train_images_per_s": round(res.train_images_per_s, 2)},
                     indent=2))
    return 0


def _print_epoch(row: dict, epochs: int) -> None:
    from tqdm import tqdm

    tqdm.write(f"epoch {row['epoch']}/{epochs}  train {row['train_loss']:.5g}  val {row['val_loss']:.5g}  "
               f"val MSE {row['val_mse']:.3g} (latent only {row['val_latent_mse']:.3g})  "
               f"{row['train_images_per_s']:.1f} img/s")


if __name__ == "__main__":
    sys.exit(main())
