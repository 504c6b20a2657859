"""PCA and UMAP of the latent map at 10k, 100k and 1M latents: fit time and peak memory; placing one new image on
the map, by UMAP's ``transform`` and by the cache's neighbour placement (latency, and how far apart they land), and
the neighbour placement cold in a fresh process (what an app's first upload pays: no model, no numba compile).

    python -m benchmarks.projections [--quick] [--out FILE] [--sizes 10000,100000,1000000] [--seed 0]

Latents are synthetic, 8-D, clustered (a seeded mixture of 12 anisotropic Gaussians plus 0.5 % scattered
outliers), like an encoded survey. Every case runs in a fresh Python process, so its peak RSS (``VmHWM``) is its
own. UMAP cases:

``umap-full``     UMAP fitted on every point (skipped at 1M: one core for tens of minutes);
``umap-sampled``  what the cache does (:func:`astroae_core.analysis.fit_umap` with its default ``max_fit``):
                  fit on a seeded sample, ``transform`` the rest.
``place-cold``    :func:`astroae_core.analysis.place_by_neighbors` of one latent on a stored map of N latents, in a
                  fresh process (imports included).

``numba_cache``: what a new process pays before its first UMAP of 2,000 8-D latents, in three fresh processes:
``before`` (plain ``umap.UMAP().fit``, numba's default caching: what every process paid before the disk cache),
``first_process`` and ``second_process`` (:func:`astroae_core.analysis.fit_umap` with ``NUMBA_CACHE_DIR`` on a new
empty folder: the first process on a machine fills it, every later one loads from it). Each gives the import and the
first fit, wall and CPU seconds, a second fit in the same process (no compile left), and the seconds numba spent
compiling (its ``numba:compile`` events, outermost only); ``cold_extra_cpu_s`` is import + first fit - second fit.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import emit, machine, peak_rss_mb, percentiles_ms, rss_mb, run_json  # noqa: E402

SIZES = (10_000, 100_000, 1_000_000)
FULL_UMAP_MAX = 100_000  # a full UMAP fit above this is not run (see the module docstring)


def clustered_latents(n: int, *, dim: int = 8, n_clusters: int = 12, seed: int = 0):
    """``n`` float32 latents from a seeded mixture of anisotropic Gaussians, 0.5 % of them scattered widely."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4.0, (n_clusters, dim))
    scales = rng.uniform(0.2, 1.2, (n_clusters, dim))
    label = rng.integers(0, n_clusters, n)
    z = centres[label] + rng.normal(size=(n, dim)) * scales[label]
    odd = rng.random(n) < 0.005
    z[odd] = rng.normal(0, 10.0, (int(odd.sum()), dim))
    return z.astype(np.float32)


def _one_point_latency(model, z, *, n: int = 20, seed: int = 1) -> dict:
    import numpy as np

    from astroae_core.analysis import umap_transform

    rng = np.random.default_rng(seed)
    q = z[rng.choice(len(z), n)] + rng.normal(0, 0.05, (n, z.shape[1])).astype(np.float32)
    umap_transform(model, q[:1])  # compiled already by the fit's own transform; one call to be sure
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        umap_transform(model, q[i : i + 1])
        times.append(time.perf_counter() - t0)
    return percentiles_ms(times)


def _placement(model, z, emb, *, n: int = 200, seed: int = 1) -> dict:
    """Neighbour placement beside UMAP's transform for ``n`` nudged dataset latents: one-point latency of each
    and how far apart they land (median and 90th percentile, as a fraction of the map's extent)."""
    import numpy as np

    from astroae_core.analysis import place_by_neighbors, umap_transform

    rng = np.random.default_rng(seed)
    q = z[rng.choice(len(z), n)] + rng.normal(0, 0.05, (n, z.shape[1])).astype(np.float32)
    miss = np.linalg.norm(place_by_neighbors(z, emb, q, k=model.n_neighbors) - umap_transform(model, q), axis=1)
    extent = float(np.ptp(emb, axis=0).max())
    times = []
    for i in range(20):
        t0 = time.perf_counter()
        place_by_neighbors(z, emb, q[i : i + 1], k=model.n_neighbors)
        times.append(time.perf_counter() - t0)
    return {"one_point": percentiles_ms(times), "vs_transform_median": float(np.median(miss)) / extent,
            "vs_transform_p90": float(np.quantile(miss, 0.9)) / extent}


def _compile_seconds(buffer) -> float:
    """Seconds of the outermost ``numba:compile`` events in a recorder's buffer (nested compiles counted once)."""
    depth, start, total = 0, 0.0, 0.0
    for ts, ev in buffer:
        if ev.is_start:
            start = ts if depth == 0 else start
            depth += 1
        else:
            depth -= 1
            total += ts - start if depth == 0 else 0.0
    return total


def _cold_umap(case: str, z, seed: int) -> dict:
    """Import, first fit and second fit of a 2-D UMAP in this fresh process, with numba's compile time."""
    import warnings

    from numba.core import event

    from astroae_core.analysis.projections import _import_umap, fit_umap, numba_cache_dir

    def fit():
        if case == "umap-cold":
            return fit_umap(z, seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return umap.UMAP(n_neighbors=15, min_dist=0.1, random_state=seed, transform_seed=seed).fit(z)

    marks = [(time.perf_counter(), time.process_time())]
    with event.install_recorder("numba:compile") as rec:
        if case == "umap-cold":
            umap = _import_umap()
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import umap
        marks.append((time.perf_counter(), time.process_time()))
        for _ in range(2):
            fit()
            marks.append((time.perf_counter(), time.process_time()))
    (w0, c0), (w1, c1), (w2, c2), (w3, c3) = marks
    folder = numba_cache_dir() if case == "umap-cold" else None
    return {"import_s": w1 - w0, "import_cpu_s": c1 - c0, "first_fit_s": w2 - w1, "first_fit_cpu_s": c2 - c1,
            "second_fit_s": w3 - w2, "second_fit_cpu_s": c3 - c2, "compile_s": _compile_seconds(rec.buffer),
            "cold_extra_cpu_s": (c2 - c0) - (c3 - c2), "cache_dir": str(folder) if folder else None,
            "cache_index_files": len(list(folder.rglob("*.nbi"))) if folder else None}


def run_case(case: str, n: int, *, seed: int) -> dict:
    """One measurement in this process (called in a fresh child by :func:`main`)."""
    import numpy as np

    res = {"case": case, "n": n}
    z = clustered_latents(n, seed=seed)
    if case in ("umap-cold", "umap-cold-before"):
        return {**res, **_cold_umap(case, z, seed)}
    if case == "place-cold":
        # What the app's first upload pays: the import and one placement on a stored map (any 2-D map will do).
        t0 = time.perf_counter()
        from astroae_core.analysis import place_by_neighbors

        t1 = time.perf_counter()
        place_by_neighbors(z, z[:, :2], z[:1] + 0.1, k=15)
        t2 = time.perf_counter()
        place_by_neighbors(z, z[:, :2], z[1:2] + 0.1, k=15)
        t3 = time.perf_counter()
        res.update(import_s=t1 - t0, first_place_s=t2 - t1, second_place_ms=(t3 - t2) * 1e3,
                   peak_rss_mb=peak_rss_mb())
        return res
    res["rss_with_data_mb"] = rss_mb()
    if case == "pca":
        from astroae_core.analysis import fit_pca, pca_transform

        t0 = time.perf_counter()
        p = pca_transform(fit_pca(z), z)
        res["fit_seconds"] = time.perf_counter() - t0
        res["finite"] = bool(np.isfinite(p).all())
    elif case in ("umap-full", "umap-sampled"):
        from astroae_core.analysis import fit_umap

        # In a fresh process, as the cache's encode runs it: the figure includes numba's compile of UMAP's code.
        kw = {"max_fit": n} if case == "umap-full" else {}
        t0 = time.perf_counter()
        emb, model = fit_umap(z, seed=seed, **kw)
        res["fit_seconds"] = time.perf_counter() - t0
        res["n_fit"] = int(model.embedding_.shape[0])
        res["finite"] = bool(np.isfinite(emb).all())
        res["transform_one_point"] = _one_point_latency(model, z)
        res["neighbour_placement"] = _placement(model, z, emb)
    else:
        raise ValueError(f"unknown case {case!r}")
    res["peak_rss_mb"] = peak_rss_mb()
    return res


def _child(case: str, n: int, seed: int, env: dict | None = None) -> dict:
    argv = ["-m", "benchmarks.projections", "--case", case, "--n", str(n), "--seed", str(seed)]
    t0 = time.perf_counter()
    res = run_json(argv, env={"PYTHONWARNINGS": "ignore", **(env or {})})
    res["process_seconds"] = time.perf_counter() - t0
    return res


def numba_cache_runs(seed: int, *, n: int = 2_000) -> dict:
    """The ``numba_cache`` record (module docstring): before, then a first and a second process on one new folder."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="numba-cache-") as folder:
        res = {"n": n, "before": _child("umap-cold-before", n, seed, {"NUMBA_CACHE_DIR": ""}),
               "first_process": _child("umap-cold", n, seed, {"NUMBA_CACHE_DIR": folder}),
               "second_process": _child("umap-cold", n, seed, {"NUMBA_CACHE_DIR": folder})}
    res["saved_cpu_s"] = res["before"]["cold_extra_cpu_s"] - res["second_process"]["cold_extra_cpu_s"]
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a smoke test: 2,000 latents")
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("--sizes", default=",".join(str(s) for s in SIZES), help="comma-separated numbers of latents")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--case", help=argparse.SUPPRESS)  # internal: one case in this process
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.case:
        emit(run_case(args.case, args.n, seed=args.seed), None)
        return 0

    from astroae_core.analysis import fit_umap

    sizes = [2_000] if args.quick else [int(s) for s in args.sizes.split(",") if s.strip()]
    result = {"benchmark": "projections", "quick": args.quick, "machine": machine(),
              "default_umap_max_fit": fit_umap.__kwdefaults__["max_fit"], "sizes": {}}
    for n in sizes:
        row = {"pca": _child("pca", n, args.seed), "place-cold": _child("place-cold", n, args.seed)}
        if n <= FULL_UMAP_MAX:
            row["umap-full"] = _child("umap-full", n, args.seed)
        else:
            row["umap-full"] = {"skipped": f"a full UMAP fit on {n:,} points is not run (single-threaded when "
                                          "seeded); the cache fits on a sample and transforms the rest"}
        if n > result["default_umap_max_fit"]:
            row["umap-sampled"] = _child("umap-sampled", n, args.seed)
        else:
            row["umap-sampled"] = {"same_as": "umap-full (N <= max_fit)"}
        result["sizes"][str(n)] = row
    result["numba_cache"] = numba_cache_runs(args.seed)
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
