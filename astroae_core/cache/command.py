"""``python -m astroae_core encode``: the command line of :func:`~astroae_core.cache.encode_folder`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from astroae_core.cache.encode import check_out, encode_folder
from astroae_core.cache.fingerprint import cache_status
from astroae_core.cache.layout import FILES
from astroae_core.cache.meta import read_meta
from astroae_core.io import CATALOG_NAME, find_fits_files
from astroae_core.progress import TqdmProgress

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m astroae_core encode", description=(
        "Encode every FITS image under --data with a checkpoint and write the latent cache (latents, metrics, "
        "PCA/UMAP maps, anomaly scores, previews) to --out. A cache that is already up to date is left alone."))
    p.add_argument("--checkpoint", required=True, help="checkpoint file (python -m train output)")
    p.add_argument("--data", required=True, help="folder of FITS images (searched recursively)")
    p.add_argument("--out", required=True, help="cache folder to write")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--preview-size", type=int, default=64, help="side of the thumbnails (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the UMAP (default 0)")
    p.add_argument("--umap-max-fit", type=int, default=50_000, help="most latents the UMAP is fitted on")
    p.add_argument("--hdu", help="HDU to read in every file (index or EXTNAME); default: the first image HDU")
    p.add_argument("--plane", type=int, help="plane of a cube to read; default: the middle one")
    p.add_argument("--force", action="store_true", help="rebuild even if the cache is up to date")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--dry-run", action="store_true", help="say what would be done and write nothing")
    return p


def main(argv: list[str] | None = None) -> int:
    """``python -m astroae_core encode --checkpoint CKPT --data DIR --out CACHE [...]``.

    Returns
    -------
    int
        0 on success (or when the cache is already fresh), 2 on an error (a message on stderr, no traceback).
    """
    from tqdm.contrib.logging import logging_redirect_tqdm

    from astroae_core.distributed import is_main_process

    args = _parser().parse_args(argv)
    hdu = int(args.hdu) if args.hdu is not None and args.hdu.strip().lstrip("-").isdigit() else args.hdu
    try:
        if args.dry_run:
            return _dry_run(args) if is_main_process() else 0
        before = _meta_stamp(Path(args.out))
        bars = TqdmProgress(disable=args.quiet or not is_main_process())
        with logging_redirect_tqdm():
            try:
                out = encode_folder(args.checkpoint, args.data, args.out, batch_size=args.batch_size,
                                    preview_size=args.preview_size, progress=bars, force=args.force,
                                    umap_max_fit=args.umap_max_fit, seed=args.seed, hdu=hdu, plane=args.plane)
            finally:
                bars.close()
        if not is_main_process():  # under torchrun: rank 0 writes the cache and reports
            return 0
        meta = read_meta(out)
        if _meta_stamp(Path(out)) == before:
            print(f"{out} is up to date ({meta.n_images} images); nothing to do (--force rebuilds it)")
        else:
            print(f"wrote {out}: {meta.n_images} images, {len(meta.skipped)} skipped, "
                  f"map: {meta.umap.method}, {meta.timing.total_seconds:.1f} s")
    except (ValueError, OSError) as exc:
        if is_main_process() or not hasattr(exc, "from_rank"):  # rank 0's error: said once, by rank 0
            print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _meta_stamp(out: Path):
    try:
        st = (out / FILES["meta"]).stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def _dry_run(args) -> int:
    data = Path(args.data)
    if not Path(args.checkpoint).is_file():
        raise ValueError(f"checkpoint {args.checkpoint!r} does not exist")
    if not data.is_dir():
        raise ValueError(f"data folder {args.data!r} does not exist or is not a folder")
    check_out(Path(args.out), data)
    fresh, reason = cache_status(args.out, args.checkpoint, args.data)
    plan = {"checkpoint": args.checkpoint, "data": args.data, "out": args.out,
            "fits_files": len(find_fits_files(data)), "catalog": (data / CATALOG_NAME).is_file(),
            "cache_fresh": fresh, "reason": reason,
            "action": "rebuild (--force)" if args.force else ("nothing" if fresh else "build")}
    print(json.dumps(plan, indent=2))
    return 0
