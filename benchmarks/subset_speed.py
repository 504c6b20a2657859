"""What the shared subset costs a page run at survey scale, and how fast the exports are.

    python -m benchmarks.subset_speed [--rows 10000,1000000] [--export-rows 2000]

On a synthetic table (ids ``gal_0000000``..., paths, a kind with 6 values, a number), the median of 5 runs of:
``filters`` (a range and an is-in filter, what every page run pays when filters are set), ``search`` (a query
matching one image, what a keystroke in a picker pays), ``exact`` (the search that chooses the one image named);
and, on ``--export-rows`` rows of the same table, the CSV and the VOTable bytes. Prints JSON: seconds, and each
per-run figure as a ratio to a 0.25 s budget for a page run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import pandas as pd

BUDGET_S = 0.25


def table(n: int, *, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = [f"gal_{i:07d}" for i in range(n)]
    t = pd.DataFrame({"id": ids, "path": [f"field_{i % 97:02d}/{s}.fits" for i, s in enumerate(ids)]})
    t["catalog.kind"] = rng.choice(["galaxy", "ring", "merger", "star", "trail", "edge"], n)
    t["catalog.snr"] = rng.lognormal(3, 1, n)
    for d in range(8):
        t[f"z{d}"] = rng.normal(size=n).astype(np.float32)
    t["ra"], t["dec"] = rng.uniform(150, 151, n), rng.uniform(2, 3, n)
    return t


def median_s(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> dict:
    from astroae_core.analysis import subset
    from astroae_core.io import export

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="10000,1000000")
    ap.add_argument("--export-rows", type=int, default=2000)
    args = ap.parse_args(argv)
    out = {"budget_s": BUDGET_S, "tables": []}
    flt = [{"column": "catalog.snr", "op": "range", "lo": 50, "hi": None},
           {"column": "catalog.kind", "op": "in", "values": ["ring", "merger"]}]
    for n in (int(x) for x in args.rows.split(",")):
        t = table(n)
        q = f"{n // 2:07d}"
        row = {"rows": n, "filters_s": median_s(lambda: subset.apply_filters(t, flt)),
               "search_s": median_s(lambda: subset.search_images(t, q)),
               "exact_s": median_s(lambda: subset.exact_image(t, q))}
        for k in ("filters", "search", "exact"):
            row[f"{k}_vs_budget"] = round(row[f"{k}_s"] / BUDGET_S, 3)
        out["tables"].append(row)
    e = table(args.export_rows)
    out["export"] = {"rows": args.export_rows,
                     "csv_s": median_s(lambda: export.export_csv_bytes(e, data_folder="/data"), 3),
                     "votable_s": median_s(lambda: export.export_votable_bytes(e, data_folder="/data"), 3)}
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
