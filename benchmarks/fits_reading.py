"""FITS reading and preprocessing throughput (files/s): the CEERS cutouts and large images.

    python -m benchmarks.fits_reading [--quick] [--out FILE] [--data DIR] [--large-side 4096] [--large-n 6]

Three stages are timed per file: ``read`` (:func:`~astroae_core.io.read_fits_with_index`), ``read+preprocess``
(the model's input) and ``encode-reader`` (what the cache's encode does per file: read, preprocess, the WCS sky
position and the flat-region score). The encode reader is run serially and with a 2-thread pool (the cache's
encode reads on two worker threads, each beside the other's model call) so that the speed-up says whether both
cores stay busy.

The CEERS folder is ``../shared/data/ceers_jwst`` beside the checkout; large images (``--large-side`` squared,
float32 noise with a galaxy) are written to a temporary folder and removed afterwards.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import CEERS, emit, machine, peak_rss_mb  # noqa: E402


def write_large_images(folder: Path, n: int, side: int, *, seed: int) -> list[Path]:
    """``n`` float32 ``side x side`` FITS images (sky noise plus one bright elliptical source)."""
    import numpy as np
    from astropy.io import fits

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.ogrid[:side, :side]
    c = (side - 1) / 2
    galaxy = (200.0 * np.exp(-0.5 * (((xx - c) / (0.05 * side)) ** 2 + ((yy - c) / (0.03 * side)) ** 2)))
    paths = []
    for i in range(n):
        img = (galaxy + rng.normal(0, 1.0, (side, side))).astype(np.float32)
        p = folder / f"large_{i:03d}.fits"
        fits.PrimaryHDU(img).writeto(p, overwrite=True)
        paths.append(p)
    return paths


def _stages(config):
    from astroae_core.cache.shard import read_image
    from astroae_core.io import read_fits_with_index
    from astroae_core.data import preprocess

    def read(p):
        return read_fits_with_index(p)[0].shape

    def read_pre(p):
        return preprocess(read_fits_with_index(p)[0], config=config)[0].shape

    def encode_reader(p):
        r = read_image(p, config)
        if isinstance(r, str):
            raise ValueError(f"{p}: {r}")
        return r.x.shape

    return {"read": read, "read+preprocess": read_pre, "encode-reader": encode_reader}


def files_per_second(fn, paths, *, workers: int = 1, min_seconds: float = 0.0) -> float:
    """Files per second of ``fn`` over ``paths`` (repeated until ``min_seconds``), serially or on a thread pool."""
    done, t0 = 0, time.perf_counter()
    while True:
        if workers <= 1:
            for p in paths:
                fn(p)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(fn, paths))
        done += len(paths)
        if time.perf_counter() - t0 >= min_seconds:
            return done / (time.perf_counter() - t0)


def bench_folder(paths, config, *, min_seconds: float) -> dict:
    stages = _stages(config)
    for p in paths[: min(5, len(paths))]:  # warm-up: imports, page cache
        stages["encode-reader"](p)
    res = {"n_files": len(paths), "bytes_per_file": int(sum(p.stat().st_size for p in paths) / max(1, len(paths)))}
    for name, fn in stages.items():
        res[f"{name}_files_per_s"] = round(files_per_second(fn, paths, min_seconds=min_seconds), 2)
    two = files_per_second(stages["encode-reader"], paths, workers=2, min_seconds=min_seconds)
    res["encode-reader_2_threads_files_per_s"] = round(two, 2)
    res["thread_speedup"] = round(two / res["encode-reader_files_per_s"], 3)
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a smoke test: 20 CEERS files, two 1024^2 images")
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("--data", default=str(CEERS), help="folder of FITS cutouts (default: the CEERS folder)")
    p.add_argument("--large-side", type=int, default=4096)
    p.add_argument("--large-n", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from astroae_core.io import find_fits_files
    from astroae_core.data import PreprocessConfig

    config = PreprocessConfig()  # the models' input: 187x187, asinh
    min_s = 0.0 if args.quick else 3.0
    result = {"benchmark": "fits_reading", "quick": args.quick, "machine": machine(),
              "preprocess": {"size": config.size, "method": config.method}}
    data = Path(args.data)
    if data.is_dir():
        files = find_fits_files(data)
        if args.quick:
            files = files[:20]
        result["ceers"] = {"folder": str(data), **bench_folder(files, config, min_seconds=min_s)}
    else:
        result["ceers"] = {"folder": str(data), "skipped": "folder not found"}
    side = 1024 if args.quick else int(args.large_side)
    n = 2 if args.quick else int(args.large_n)
    with tempfile.TemporaryDirectory(prefix="astroae-bench-io-") as tmp:
        paths = write_large_images(Path(tmp), n, side, seed=args.seed)
        rss0 = peak_rss_mb()
        large = bench_folder(paths, config, min_seconds=min_s)
        large["side"] = side
        large["megapixels_per_s_read+preprocess"] = round(large["read+preprocess_files_per_s"] * side * side / 1e6, 2)
        large["peak_rss_mb_before"], large["peak_rss_mb_after"] = rss0, peak_rss_mb()
        result["large"] = large
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
