"""The app and the cache at survey scale: cache load time, app cold start to a drawn latent map (AppTest, and the
real browser), the app server's peak memory on a 1M-row cache, and the encoder's peak memory as the folder grows.

    python -m benchmarks.cache_scale [--quick] [--out FILE] [--rows 10000,1000000] [--encode-sizes 2000,10000]
                                     [--no-browser]

Caches are synthetic but complete (every column an encoded cache has, meta.json, manifest, previews), written to a
temporary folder: the table from :func:`benchmarks.projections.clustered_latents`, the previews a sparse
``previews.npy`` (memory-mapped by the cache, so its contents do not change load time or memory), the checkpoint
``models/demo.pt``. Each measurement runs in a fresh process whose peak RSS (``VmHWM``) is its own:

``load``     :func:`astroae_core.cache.load_cache` plus ``latents()``;
``apptest``  ``streamlit.testing`` AppTest: the app's first run, then the Latent map page (figure built and
             serialized, not drawn);
``browser``  ``streamlit run`` and Debian's chromium (Playwright): server start, then the Latent map page opened
             in a fresh browser until its WebGL map is drawn; the server's peak RSS;
``encode``   :func:`astroae_core.cache.encode_folder` on N tiny synthetic FITS files with a tiny model (32x32
             input), so that the peak RSS measures what grows with N (the streamed reading, the per-image results,
             the maps), not a big model.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import ROOT, StagePeaks, emit, machine, peak_rss_mb, run_json  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
ROWS = (10_000, 1_000_000)
ENCODE_SIZES = (2_000, 10_000)


# ---------------------------------------------------------------------------------------------------------------
# synthetic caches and folders


def make_cache(out: Path, n: int, *, seed: int = 0, preview_size: int = 64) -> Path:
    """A complete synthetic latent cache of ``n`` rows in ``out`` (with an empty data folder beside it)."""
    import numpy as np
    import pandas as pd

    from astroae_core.analysis import fit_pca, pca_transform
    from astroae_core.cache import CACHE_FORMAT, FILES, CacheMeta, dataset_fingerprint, write_cache
    from astroae_core.model import file_sha256, read_checkpoint
    from benchmarks.projections import clustered_latents

    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    data_dir = out.parent / f"{out.name}-data"
    data_dir.mkdir(exist_ok=True)
    z = clustered_latents(n, seed=seed)
    paths = [f"f{i % 4}/ceers_f{150 + 50 * (i % 4)}w_{i:07d}.fits" for i in range(n)]
    t = pd.DataFrame({"id": pd.Series([p.rsplit("/", 1)[1][:-5] for p in paths], dtype="str"),
                      "path": pd.Series(paths, dtype="str"), "hdu": np.zeros(n, np.int64),
                      "split": pd.Series(np.where(rng.random(n) < 0.8, "train", "val"), dtype="str"),
                      "ra": rng.uniform(214.8, 215.2, n), "dec": rng.uniform(52.8, 53.0, n)})
    latent = [f"z{d}" for d in range(z.shape[1])]
    for d, c in enumerate(latent):
        t[c] = z[:, d]
    t["mse"] = rng.lognormal(-6, 0.5, n)
    t["ssim"] = rng.uniform(0.5, 1.0, n)
    t["ms_ssim"] = rng.uniform(0.5, 1.0, n)
    t["latent_mse"], t["latent_ssim"] = t["mse"] * 1.1, t["ssim"] * 0.95
    sample = z[rng.choice(n, min(n, 100_000), replace=False)]
    pca = fit_pca(sample)
    p = pca_transform(pca, z)
    t["pca_x"], t["pca_y"] = p[:, 0].astype(np.float32), p[:, 1].astype(np.float32)
    # a stand-in for UMAP coordinates: a fixed non-linear squash of the PCA map (uploads are placed on it from
    # their neighbours, as on a real one)
    t["umap_x"] = np.tanh(p[:, 0] / 4).astype(np.float32) * 10
    t["umap_y"] = np.tanh(p[:, 1] / 4).astype(np.float32) * 10
    scores = ["score_recon", "score_density", "score_peak", "score_flat"]
    for c in scores:
        t[c] = rng.lognormal(0, 1, n)
    t["anomaly_score"] = rng.normal(0, 1, n)
    t["anomaly_rank"] = (-t["anomaly_score"].to_numpy()).argsort().argsort() + 1
    # sparse: only the .npy header is written; the cache memory-maps it
    prev = np.lib.format.open_memmap(out / FILES["previews"], mode="w+", dtype=np.uint8,
                                     shape=(n, preview_size, preview_size))
    del prev
    ckpt = ROOT / "models" / "demo.pt"
    info = read_checkpoint(ckpt)
    meta = CacheMeta.from_dict({
        "format": CACHE_FORMAT, "package_version": "benchmark", "created_utc": "synthetic",
        "checkpoint": {"path": os.path.relpath(ckpt, out.resolve()), "sha256": file_sha256(ckpt),
                       "epoch": info.get("epoch")},
        "data_dir": os.path.relpath(data_dir.resolve(), out.resolve()),
        "dataset_fingerprint": dataset_fingerprint(data_dir), "n_files": n, "n_images": n,
        "columns": {"image": ["id", "path", "hdu", "split", "ra", "dec"], "latent": latent,
                    "metrics": ["mse", "ssim", "ms_ssim", "latent_mse", "latent_ssim"],
                    "maps": ["pca_x", "pca_y", "umap_x", "umap_y"],
                    "scores": scores + ["anomaly_score", "anomaly_rank"], "catalog": []},
        "options": {"preview_size": preview_size, "hdu": None, "plane": None, "umap_max_fit": 50_000, "seed": seed},
        "pca": {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in pca.items()},
        "umap": {"method": "umap", "n_neighbors": 15, "min_dist": 0.1, "n_fit": n},
        "split": {"counts": t["split"].value_counts().to_dict()},
        "timing": {"encode_seconds": 0, "maps_seconds": 0, "report_seconds": 0, "total_seconds": 0},
        "model_config": info["model_config"], "preprocess_config": info["preprocess_config"]})
    write_cache(out, meta, table=t[list(meta.columns.all)], manifest={"files": [], "catalog": None})
    return out


def write_tiny_folder(folder: Path, n: int, *, side: int = 32, seed: int = 0) -> Path:
    """``n`` tiny float32 FITS images (a Gaussian blob in noise), written quickly with a shared header."""
    import numpy as np
    from astropy.io import fits

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:side, :side] - (side - 1) / 2
    for i in range(n):
        a = rng.uniform(2, 6)
        img = rng.uniform(50, 200) * np.exp(-0.5 * (xx**2 + (yy * rng.uniform(1, 2)) ** 2) / a**2)
        img = (img + rng.normal(0, 1, img.shape)).astype(np.float32)
        sub = folder / f"sub{i // 1000:03d}"  # a thousand files per sub-folder, like a survey's tiles
        sub.mkdir(exist_ok=True)
        fits.PrimaryHDU(img).writeto(sub / f"tiny_{i:06d}.fits")
    return folder


def write_tiny_checkpoint(path: Path, *, seed: int = 0) -> Path:
    """A tiny untrained model (32x32 input, 4-8 channels, 8 latents); encode speed and memory do not need it
    trained."""
    import torch

    from astroae_core.model import save_checkpoint
    from astroae_core.model import AutoEncoder, ModelConfig
    from astroae_core.data import PreprocessConfig

    torch.manual_seed(seed)
    model = AutoEncoder(ModelConfig(in_size=32, channels=(4, 8), latent_dim=8),
                        preprocess_config=PreprocessConfig(size=32))
    return save_checkpoint(path, model.eval())


# ---------------------------------------------------------------------------------------------------------------
# one measurement in this process


def _data_root(cache: str) -> str:
    """The synthetic cache's own (empty) data folder: the app's data root, so that no other folder is scanned."""
    from astroae_core.cache import read_meta

    return str(read_meta(cache).data_path(cache))


def case_load(cache: str) -> dict:
    t0 = time.perf_counter()
    from astroae_core.cache import load_cache

    t1 = time.perf_counter()
    c = load_cache(cache)
    z = c.latents()
    t2 = time.perf_counter()
    return {"import_s": t1 - t0, "load_s": t2 - t1, "rows": len(c.table), "latent_shape": list(z.shape),
            "peak_rss_mb": peak_rss_mb()}


def case_apptest(cache: str) -> dict:
    from streamlit.testing.v1 import AppTest

    os.environ["ASTROAE_CACHE"] = cache
    os.environ["ASTROAE_DATA_ROOT"] = _data_root(cache)
    t0 = time.perf_counter()
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=600).run()
    t1 = time.perf_counter()
    at.switch_page("app_pages/latent_map.py").run()
    t2 = time.perf_counter()
    errors = [str(e.value)[:300] for e in at.exception]
    charts = at.get("plotly_chart")
    spec_mb = sum(len(el.proto.spec) for el in charts) / 1e6
    at.switch_page("app_pages/latent_map.py").run()  # a rerun: what a widget change costs
    t3 = time.perf_counter()
    return {"first_page_s": t1 - t0, "latent_map_s": t2 - t1, "cold_start_to_map_s": t2 - t0,
            "latent_map_rerun_s": t3 - t2, "charts": len(charts), "figure_json_mb": round(spec_mb, 2),
            "errors": errors, "peak_rss_mb": peak_rss_mb()}


def case_encode(folder: str, checkpoint: str, out: str) -> dict:
    from astroae_core.cache import encode_folder, read_meta

    stages = StagePeaks()
    t0 = time.perf_counter()
    encode_folder(checkpoint, folder, out, force=True, progress=stages)
    meta = read_meta(out)
    return {"seconds": time.perf_counter() - t0, "n_images": meta.n_images, "timing": dataclasses.asdict(meta.timing),
            "umap": {"method": meta.umap.method, "n_fit": meta.umap.n_fit}, "stage_peak_rss_mb": stages.finish(),
            "peak_rss_mb": peak_rss_mb()}


# ---------------------------------------------------------------------------------------------------------------
# the real browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _health(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
            return r.read().decode().strip() == "ok"
    except OSError:
        return False


_MAP_DRAWN = """() => {
    const gd = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
    if (!gd || !gd._fullData || !gd.querySelector('.main-svg')) return false;
    if (document.querySelectorAll('[data-stale="true"]').length) return false;
    return gd._fullData.reduce((n, t) => n + (t.x ? t.x.length : 0), 0);
}"""


def case_browser(cache: str, *, timeout_s: float = 300.0) -> dict:
    """Start ``streamlit run`` on ``cache``, open the Latent map in chromium, time it; the server's peak RSS."""
    from playwright.sync_api import sync_playwright

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, ASTROAE_CACHE=cache, ASTROAE_DATA_ROOT=_data_root(cache),
               STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"), "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    res: dict = {}
    try:
        while not _health(url):
            if proc.poll() is not None or time.perf_counter() - t0 > timeout_s:
                raise RuntimeError(f"streamlit did not start: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.2)
        res["server_start_s"] = time.perf_counter() - t0
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=str(CHROMIUM),
                                  args=["--headless", "--no-sandbox", "--disable-background-networking"])
            try:
                for label in ("first", "second"):  # cold (loads the cache), then a fresh session on a warm server
                    ctx = b.new_context(viewport={"width": 1440, "height": 1000}, base_url=url)
                    page = ctx.new_page()
                    page.set_default_timeout(timeout_s * 1e3)
                    t1 = time.perf_counter()
                    page.goto("/latent_map", wait_until="commit")
                    n = page.wait_for_function(_MAP_DRAWN, timeout=timeout_s * 1e3, polling=50).json_value()
                    res[f"{label}_map_drawn_s"] = time.perf_counter() - t1
                    res["points_drawn"] = int(n)
                    res["server_rss_mb_after_" + label] = _status_mb(proc.pid, "VmRSS")
                    errs = page.locator('[data-testid="stException"]').all_inner_texts()
                    if errs:
                        res.setdefault("errors", []).extend(e[:300] for e in errs)
                    ctx.close()
            finally:
                b.close()
        res["cold_start_to_map_s"] = res["server_start_s"] + res["first_map_drawn_s"]
        res["server_peak_rss_mb"] = _status_mb(proc.pid, "VmHWM")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    return res


def _status_mb(pid: int, key: str) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def _child(*args: str, timeout: float | None = None) -> dict:
    """One measurement in a fresh process; a failure is recorded (and the other measurements still run)."""
    t0 = time.perf_counter()
    try:
        res = run_json(["-m", "benchmarks.cache_scale", "--case", *args], env={"PYTHONWARNINGS": "ignore"},
                       timeout=timeout)
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
        res = {"error": str(exc)[-1500:]}
    res["process_seconds"] = time.perf_counter() - t0
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a smoke test: 2,000-row cache, 100 and 300 files")
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("--rows", default=",".join(str(r) for r in ROWS), help="cache sizes (comma-separated)")
    p.add_argument("--encode-sizes", default=",".join(str(r) for r in ENCODE_SIZES),
                   help="folder sizes for the encode memory (comma-separated)")
    p.add_argument("--no-browser", action="store_true", help="skip the real-browser measurement")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--case", nargs="+", help=argparse.SUPPRESS)  # internal: one measurement in this process
    args = p.parse_args(argv)
    if args.case:
        kind, *rest = args.case
        fn = {"load": case_load, "apptest": case_apptest, "encode": case_encode, "browser": case_browser}[kind]
        emit(fn(*rest), None)
        return 0

    rows = [2_000] if args.quick else [int(r) for r in args.rows.split(",") if r.strip()]
    sizes = [100, 300] if args.quick else [int(r) for r in args.encode_sizes.split(",") if r.strip()]
    browser = not args.no_browser and CHROMIUM.exists()
    result = {"benchmark": "cache_scale", "quick": args.quick, "machine": machine(), "caches": {}, "encode": {}}
    if not browser:
        result["browser_skipped"] = "--no-browser" if args.no_browser else f"no chromium at {CHROMIUM}"
    tmp = Path(tempfile.mkdtemp(prefix="astroae-bench-cache-"))
    try:
        for n in rows:
            t0 = time.perf_counter()
            cache = make_cache(tmp / f"cache{n}", n, seed=args.seed)
            row = {"make_s": time.perf_counter() - t0,
                   "table_mb_on_disk": round((cache / "latents.parquet").stat().st_size / 1e6, 2)}
            row["load"] = _child("load", str(cache))
            row["apptest"] = _child("apptest", str(cache))
            if browser:
                row["browser"] = _child("browser", str(cache))
            result["caches"][str(n)] = row
            shutil.rmtree(cache, ignore_errors=True)
        ckpt = write_tiny_checkpoint(tmp / "tiny.pt", seed=args.seed)
        for n in sizes:
            folder = write_tiny_folder(tmp / f"fits{n}", n, seed=args.seed)
            result["encode"][str(n)] = _child("encode", str(folder), str(ckpt), str(tmp / f"enc{n}"))
            shutil.rmtree(folder, ignore_errors=True)
            shutil.rmtree(tmp / f"enc{n}", ignore_errors=True)
        ends = [result["encode"][str(s)] for s in (sizes[0], sizes[-1])] if len(sizes) >= 2 else []
        if ends and not any("error" in e for e in ends):
            a, b = ends
            slope = (b["peak_rss_mb"] - a["peak_rss_mb"]) / (sizes[-1] - sizes[0])
            result["encode_rss_mb_per_1k_images"] = round(slope * 1000, 3)
            result["encode_rss_mb_extrapolated_100k"] = round(b["peak_rss_mb"] + slope * (100_000 - sizes[-1]), 1)
            if a.get("stage_peak_rss_mb") and b.get("stage_peak_rss_mb"):
                # each stage's own peak and its slope: the process's peak at 100k is the largest stage's, not a sum
                result["encode_stage_rss_mb_per_1k_images"] = {
                    k: round((b["stage_peak_rss_mb"][k] - a["stage_peak_rss_mb"][k]) / (sizes[-1] - sizes[0]) * 1000, 3)
                    for k in b["stage_peak_rss_mb"] if k in a["stage_peak_rss_mb"]}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
