"""The one command line: ``astroae {train,encode,evaluate,demo-data}`` (also ``python -m astroae_core ...``;
``python -m train`` is ``astroae train``).

Each subcommand parses its options here and calls the library; progress goes through a
:class:`~astroae_core.progress.TqdmProgress`. Errors in the user's input (a missing folder, a bad checkpoint) print
one line on stderr and exit with status 2, never a traceback. Under torchrun, ``train`` and ``encode`` run in every
process and rank 0 alone reports.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from astroae_core.progress import TqdmProgress

__all__ = ["main", "build_parser"]


class UsageError(ValueError):
    """Bad input from the command line's user: said in one line, exit status 2."""


# -- train ---------------------------------------------------------------------------------------------------------


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train an autoencoder on a folder of FITS images", description=(
        "Train an astroae autoencoder on a folder of FITS images. Writes best.pt (with a validation split), last.pt, "
        "epoch_NNN.pt, history.json and config.json to --out. Under torchrun it trains with DistributedDataParallel."))
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
    p.add_argument("--crossval", metavar="JSON",
                   help="this recipe's cross-validation (benchmarks/latent_quality.py --folds output) to store in "
                        "its checkpoints: what to expect of a model trained on every image (val_fraction = 0)")
    p.add_argument("--dry-run", action="store_true",
                   help="resolve the recipe, find the data, print the plan; train nothing")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=_run_train)


def _train_recipe(args):
    from astroae_core.io import find_fits_files
    from train.config import load_recipe

    cfg = load_recipe(args.config).replace(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, loss=args.loss,
        max_files=args.max_files, group_regex=args.group_regex,
        model_skip_mode=args.skip_mode, preprocess_method=args.norm)
    data = Path(args.data)
    if not data.is_dir():
        raise UsageError(f"--data {str(data)!r} is not a folder")
    files = find_fits_files(data)
    if not files:
        raise UsageError(f"--data {str(data)!r} holds no FITS files")
    return cfg, data, files


def _run_train(args) -> int:
    from astroae_core.distributed import is_main_process
    from astroae_core.model import AutoEncoder, count_parameters
    from train.loop import train

    cfg, data, files = _train_recipe(args)
    crossval = _crossval_summary(args.crossval, cfg) if args.crossval else None
    if args.dry_run:
        plan = {"config": cfg.to_dict(), "data": str(data), "fits_files": len(files), "out": args.out,
                "resume": args.resume, "parameters": count_parameters(AutoEncoder(cfg.model))}
        print(json.dumps(plan, indent=2))
        return 0
    bars = TqdmProgress(disable=args.quiet)
    try:
        res = train(cfg, data, args.out, device=args.device, resume=args.resume, progress=bars,
                    on_epoch=None if args.quiet else lambda row: _print_epoch(row, cfg.epochs), crossval=crossval)
    finally:
        bars.close()
    if is_main_process():
        last = res.history[-1] if res.history else {}
        print(json.dumps({"run_dir": str(res.run_dir), "epochs": res.epochs_done,
                          "best_val_loss": res.best_val_loss if res.n_val else None, "last": last,
                          "train_images": res.n_train, "val_images": res.n_val, "skipped_files": res.n_skipped,
                          "train_images_per_s": round(res.train_images_per_s, 2)}, indent=2))
    return 0


def _crossval_summary(path, cfg) -> dict:
    """The cross-validation of ``cfg`` in the JSON file ``path``, as its checkpoints store it."""
    from train.crossval import stored_summary

    try:
        doc = json.loads(Path(path).read_text())
        results = doc.get("results", [doc])  # latent_quality's output, or one crossval() result
        if len(results) != 1:
            raise ValueError(f"it holds {len(results)} recipes' cross-validations; keep only this recipe's")
        return stored_summary(results[0], cfg)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"--crossval {str(path)!r}: {exc}") from None


def _print_epoch(row: dict, epochs: int) -> None:
    from tqdm import tqdm

    val = (f"val {row['val_loss']:.5g}  val MSE {row['val_mse']:.3g} (latent only {row['val_latent_mse']:.3g})  "
           if "val_loss" in row else "no validation split  ")
    tqdm.write(f"epoch {row['epoch']}/{epochs}  train {row['train_loss']:.5g}  {val}"
               f"{row['train_images_per_s']:.1f} img/s")


# -- encode --------------------------------------------------------------------------------------------------------


def _add_encode(sub) -> None:
    p = sub.add_parser("encode", help="write the latent cache of a folder", description=(
        "Encode every FITS image under --data with a checkpoint and write the latent cache (latents, metrics, "
        "PCA/UMAP maps, anomaly scores, previews) to --out. A cache that is already up to date is left alone. "
        "Under torchrun --nproc_per_node=N the files are shared out between the processes."))
    p.add_argument("--checkpoint", required=True, help="checkpoint file (astroae train output)")
    p.add_argument("--data", required=True, help="folder of FITS images (searched recursively)")
    p.add_argument("--out", required=True, help="cache folder to write")
    p.add_argument("--batch-size", type=int, help="images per model call (default: the faster of 16 and 64, measured)")
    p.add_argument("--runtime", default="auto", choices=("auto", "torch-fp32", "onnxruntime-fp32", "torch-bf16"),
                   help="inference runtime (default: the fastest correct one on this CPU, measured; recorded in "
                        "the cache's meta.json)")
    p.add_argument("--workers", type=int, help="threads that each read, infer and measure a batch (default 2, 1 on "
                                               "one core; each model call runs on its share of the cores)")
    p.add_argument("--preview-size", type=int, default=64, help="side of the thumbnails (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the UMAP (default 0)")
    p.add_argument("--umap-max-fit", type=int, default=50_000, help="most latents the UMAP is fitted on")
    p.add_argument("--hdu", help="HDU to read in every file (index or EXTNAME); default: the first image HDU")
    p.add_argument("--plane", type=int, help="plane of a cube to read; default: the middle one")
    p.add_argument("--train-data", help="folder holding the checkpoint's training images (for the PCA and "
                   "mean-image baselines), when --data does not; with an up-to-date cache add --force")
    p.add_argument("--force", action="store_true", help="rebuild even if the cache is up to date")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--dry-run", action="store_true", help="say what would be done and write nothing")
    p.set_defaults(run=_run_encode)


def _meta_stamp(out: Path):
    from astroae_core.cache.layout import FILES

    try:
        st = (out / FILES["meta"]).stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def _encode_plan(args) -> dict:
    from astroae_core.cache import cache_status
    from astroae_core.cache.encode import check_out
    from astroae_core.io import CATALOG_NAME, find_fits_files

    data = Path(args.data)
    if not Path(args.checkpoint).is_file():
        raise UsageError(f"checkpoint {args.checkpoint!r} does not exist")
    if not data.is_dir():
        raise UsageError(f"data folder {args.data!r} does not exist or is not a folder")
    check_out(Path(args.out), data)
    fresh, reason = cache_status(args.out, args.checkpoint, args.data)
    return {"checkpoint": args.checkpoint, "data": args.data, "out": args.out,
            "fits_files": len(find_fits_files(data)), "catalog": (data / CATALOG_NAME).is_file(),
            "cache_fresh": fresh, "reason": reason,
            "action": "rebuild (--force)" if args.force else ("nothing" if fresh else "build")}


def _run_encode(args) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from astroae_core.cache import encode_folder
    from astroae_core.cache.meta import read_meta
    from astroae_core.distributed import is_main_process

    if args.dry_run:
        if is_main_process():
            print(json.dumps(_encode_plan(args), indent=2))
        return 0
    hdu = int(args.hdu) if args.hdu is not None and args.hdu.strip().lstrip("-").isdigit() else args.hdu
    before = _meta_stamp(Path(args.out))
    bars = TqdmProgress(disable=args.quiet or not is_main_process())
    with logging_redirect_tqdm():
        try:
            out = encode_folder(args.checkpoint, args.data, args.out, batch_size=args.batch_size,
                                preview_size=args.preview_size, progress=bars, force=args.force,
                                umap_max_fit=args.umap_max_fit, seed=args.seed, hdu=hdu, plane=args.plane,
                                train_data=args.train_data, runtime=args.runtime, workers=args.workers)
        finally:
            bars.close()
    if not is_main_process():  # under torchrun: rank 0 writes the cache and reports
        return 0
    meta = read_meta(out)
    if _meta_stamp(Path(out)) == before:
        print(f"{out} is up to date ({meta.n_images} images); nothing to do (--force rebuilds it)")
    else:
        rt = (meta.runtime or {}).get("round_trip")
        print(f"wrote {out}: {meta.n_images} images, {len(meta.skipped)} skipped, "
              f"map: {meta.umap.method}, {meta.timing.total_seconds:.1f} s"
              + (f", model on {rt['runtime']} (batch {rt['batch_size']}, {rt['cpu']})" if rt else ""))
    far = meta.training_distance
    if far and far["far"]:
        from astroae_core.analysis.summary import HELD_OUT_WORDS

        print(f"warning: these images are far from what the model was trained on: their median latent-only error "
              f"is {far['ratio']:.1f} x the model's error on {HELD_OUT_WORDS[far.get('held_out', 'validation')]}, "
              "so their 8 numbers say little; train a model on this folder (astroae train)", file=sys.stderr)
    return 0


# -- evaluate ------------------------------------------------------------------------------------------------------


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="a checkpoint's metrics beside PCA and the mean image", description=(
        "Report MSE, PSNR, SSIM and MS-SSIM of a checkpoint's full and latent-only reconstructions beside PCA "
        "(as many components as the latent) and the mean image, both fitted on the checkpoint's training images."))
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True, help="folder of FITS images to evaluate on")
    p.add_argument("--train-data", help="folder holding the checkpoint's training images, if not --data")
    p.add_argument("--split", default="auto", choices=["auto", "all", "val"],
                   help="auto: the validation images when --data holds the training images, else all")
    p.add_argument("--json", help="also write the full result as JSON here")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=_run_evaluate)


def _run_evaluate(args) -> int:
    from astroae_core.analysis.evaluate import evaluate, format_table, write_json

    bars = TqdmProgress(disable=args.quiet)
    try:
        res = evaluate(args.checkpoint, args.data, train_data=args.train_data, split=args.split, progress=bars)
    finally:
        bars.close()
    print(format_table(res))
    if args.json:
        write_json(res, args.json)
    return 0


# -- demo-data -----------------------------------------------------------------------------------------------------


def _add_demo_data(sub) -> None:
    p = sub.add_parser("demo-data", help="generate the embedded GalSim demo dataset", description=(
        "Generate the embedded demo dataset: GalSim galaxy stamps (FITS) with injected oddities and a "
        "catalog.csv of the true parameters."))
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--n", type=int, default=2000, help="number of stamps (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    p.add_argument("--anomaly-fraction", type=float, default=0.04,
                   help="fraction of stamps with an injected oddity (default 0.04)")
    p.add_argument("--size", type=int, default=187, help="stamp side in pixels (default 187)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: CPUs, max 8)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--dry-run", action="store_true", help="print what would be written, write nothing")
    p.set_defaults(run=_run_demo_data)


def _run_demo_data(args) -> int:
    from astroae_core.demo.generate import dry_run_summary, generate_demo_data
    from astroae_core.io import CATALOG_NAME

    if args.dry_run:
        print(dry_run_summary(args.out, n=args.n, seed=args.seed, anomaly_fraction=args.anomaly_fraction,
                              size=args.size))
        return 0
    t0 = time.perf_counter()
    bar = TqdmProgress(disable=args.no_progress)
    try:
        catalog = generate_demo_data(args.out, n=args.n, seed=args.seed, anomaly_fraction=args.anomaly_fraction,
                                     size=args.size, progress=bar, workers=args.workers)
    finally:
        bar.close()
    print(f"wrote {len(catalog)} stamps ({int(catalog['is_anomaly'].sum())} anomalies) and {CATALOG_NAME} to "
          f"{args.out} in {time.perf_counter() - t0:.1f} s")
    return 0


# -- the entry point -----------------------------------------------------------------------------------------------


def build_parser(prog: str = "astroae") -> argparse.ArgumentParser:
    """The parser of every subcommand (``astroae --help`` lists them)."""
    p = argparse.ArgumentParser(prog=prog, description="See what an autoencoder learned about your FITS images.")
    sub = p.add_subparsers(dest="command", required=True, metavar="{train,encode,evaluate,demo-data}")
    for add in (_add_train, _add_encode, _add_evaluate, _add_demo_data):
        add(sub)
    return p


def main(argv: list[str] | None = None, *, prog: str = "astroae") -> int:
    """Run one subcommand; returns its exit status (2 for bad input, with the reason on stderr).

    Nothing here imports torch before a subcommand needs it: ``demo-data`` runs while the set-up still installs it.
    """
    args = build_parser(prog).parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "encode":
            # Under torchrun the ranks exchange only pickled results, never model tensors: gloo serves CPU and
            # GPU nodes alike.
            from astroae_core.distributed import process_group

            with process_group(backend="gloo"):
                return args.run(args)
        return args.run(args)
    except (ValueError, OSError) as exc:  # a CheckpointError is a ValueError
        if not hasattr(exc, "from_rank") or _is_main_process():  # under torchrun, rank 0's error said once
            print(f"error: {exc}", file=sys.stderr)
        return 2


def _is_main_process() -> bool:
    from astroae_core.distributed import is_main_process

    return is_main_process()
