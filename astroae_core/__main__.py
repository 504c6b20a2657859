"""``python -m astroae_core``: demo-data, encode, evaluate (each subcommand's ``main(argv)`` lives beside it)."""

from __future__ import annotations

import argparse
import json
import logging
import sys

USAGE = """usage: python -m astroae_core {demo-data,encode,evaluate} ...

  demo-data   generate the embedded GalSim demo dataset           (--out DIR [--n N] [--seed S])
  encode      write the latent cache of a dataset                 (--checkpoint CKPT --data DIR --out CACHE)
              (shards the files across processes under torchrun --nproc_per_node=N -m astroae_core encode)
  evaluate    metrics of a checkpoint beside PCA and mean image   (--checkpoint CKPT --data DIR [--json OUT])
"""


def evaluate_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m astroae_core evaluate", description=(
        "Report MSE, PSNR, SSIM and MS-SSIM of a checkpoint's full and latent-only reconstructions beside PCA "
        "(as many components as the latent) and the mean image, both fitted on the checkpoint's training images."))
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True, help="folder of FITS images to evaluate on")
    p.add_argument("--train-data", help="folder of the checkpoint's training images, if moved")
    p.add_argument("--split", default="auto", choices=["auto", "all", "val"],
                   help="auto: the validation images when --data is the training folder, else all")
    p.add_argument("--json", help="also write the full result as JSON here")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    from astroae_core.model.checkpoint import CheckpointError
    from astroae_core.analysis.evaluate import evaluate, format_table, write_json

    try:
        res = evaluate(args.checkpoint, args.data, train_data=args.train_data, split=args.split,
                       progress=not args.quiet)
    except (ValueError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(res))
    if args.json:
        write_json(res, args.json)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "demo-data":
        from astroae_core.demo.generate import main as run
    elif cmd == "encode":
        from astroae_core.cache import main as encode

        def run(args):
            from .distributed import process_group

            # Under torchrun the ranks exchange only pickled results, never model tensors: gloo serves CPU and
            # GPU nodes alike.
            with process_group(backend="gloo"):
                return encode(args)
    elif cmd == "evaluate":
        run = evaluate_main
    else:
        print(f"error: unknown command {cmd!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    return run(rest) or 0


if __name__ == "__main__":
    sys.exit(main())
