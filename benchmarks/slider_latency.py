"""Slider-to-redraw latency of the latent sliders page in a real browser, and a 100,000-point latent map's usability.

The app runs with ``streamlit run`` on a demo cache (40 GalSim stamps encoded with ``models/demo.pt``, built in a
temporary folder, or ``--cache``); Playwright drives Debian's chromium (``/usr/bin/chromium``). For each of
``--moves`` slider moves (arrow key on a slider thumb, each to a value not decoded before), once at once after the
page opens and once ``--settle`` seconds after it opened, the page itself records the key press
(``performance.now()`` in a capturing ``keydown`` listener) and the moment the live image shows the new picture: a
MutationObserver sees the ``<img>``'s new ``src``, then ``img.decode()`` and the next animation frame.
Prints JSON: median, p95, min, max and every latency in ms, with the load average and whether training ran.

With ``--map-rows N`` it also builds an N-row cache (the demo cache's rows repeated with jitter, small previews)
and times, on the Latent map page: the first draw, a hover label, a pan (mouse drag) and a box selection up to
the gallery of the selected images.

    nice -n 15 .venv/bin/python benchmarks/slider_latency.py [--moves 20] [--map-rows 100000] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dashboard import testing  # noqa: E402

T = 120_000  # ms: page waits on a shared machine

INSTRUMENT_JS = """sel => {
    window.__lat = [];
    window.__pending = null;
    const current = () => document.querySelector(sel);
    document.addEventListener('keydown', () => {
        const img = current();
        window.__pending = {t0: performance.now(), src: img ? img.getAttribute('src') : null};
    }, true);
    const check = () => {
        const p = window.__pending, img = current();
        if (!p || !img || img.getAttribute('src') === p.src) return;
        window.__pending = null;
        const tSrc = performance.now();
        img.decode().catch(() => null).then(() => requestAnimationFrame(() => {
            window.__lat.push({ms: performance.now() - p.t0, src_ms: tSrc - p.t0});
        }));
    };
    new MutationObserver(check).observe(document.body,
        {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
}"""


def _load() -> float:
    return os.getloadavg()[0]


def _training_running() -> bool:
    r = subprocess.run(["pgrep", "-f", "train --config|latent_quality"], capture_output=True, text=True, check=False)
    return bool(r.stdout.strip())


def _wait_idle(page, *, started_within_ms: int = 1500) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_selector('[data-testid="stApp"]:not([data-test-script-state="notRunning"])',
                               state="attached", timeout=started_within_ms)
    except PlaywrightTimeout:
        pass
    page.wait_for_selector(testing.IDLE, state="attached", timeout=T)


def _percentile(values, q: float) -> float:
    v = sorted(values)
    k = (len(v) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def _moves(page, moves: int) -> dict:
    """``moves`` slider moves, a few per dimension, each to a value never decoded before; their latencies."""
    page.evaluate("() => { window.__lat = []; }")
    dims = [f"z{d}" for d in range(8)]
    for i in range(moves):
        thumb = page.locator(f'.st-key-sl_{dims[i % len(dims)]} input[type="range"]')
        thumb.focus()
        page.keyboard.press("ArrowRight")  # always one way: every value is new (a value seen before is cached)
        page.wait_for_function(f"() => window.__lat.length >= {i + 1}", timeout=T)
        _wait_idle(page, started_within_ms=300)
        time.sleep(0.2)
    lat = page.evaluate("() => window.__lat")
    ms = [x["ms"] for x in lat]
    return {"moves": len(ms), "median_ms": statistics.median(ms), "p95_ms": _percentile(ms, 0.95),
            "min_ms": min(ms), "max_ms": max(ms), "src_change_median_ms": statistics.median(x["src_ms"] for x in lat),
            "all_ms": [round(x, 1) for x in ms]}


def slider_latency(browser, url: str, moves: int, *, settle: float) -> dict:
    """Two series of ``moves``: at once after the page opens, and again ``settle`` seconds after it opened."""
    page = browser.new_context(viewport={"width": 1440, "height": 1000}, base_url=url).new_page()
    page.set_default_timeout(T)
    opened = time.perf_counter()
    page.goto("/sliders")
    page.locator("h1", has_text="Latent sliders").wait_for(timeout=T)
    page.wait_for_selector(".st-key-slider_img img", timeout=T)
    _wait_idle(page)
    page.evaluate(INSTRUMENT_JS, ".st-key-slider_img img")
    # warm-up: the first move pays one-off costs (lazy imports, the fragment's first run)
    thumb = page.locator('.st-key-sl_z7 input[type="range"]')
    thumb.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => window.__lat.length >= 1", timeout=T)
    _wait_idle(page, started_within_ms=300)
    first = _moves(page, moves)
    time.sleep(max(0.0, settle - (time.perf_counter() - opened)))
    settled = _moves(page, moves)
    page.context.close()
    return {"at_once": first, "settled": {"after_s": settle, **settled}}


# ----------------------------------------------------------------------------------------------------------------
# a big map


def big_cache(src: Path, out: Path, rows: int, *, seed: int = 0, preview: int = 16) -> Path:
    """An ``rows``-row cache made from ``src`` (its rows repeated, latents and map coordinates jittered, unique
    ids, ``preview`` px thumbnails), for measuring the app on a large table without encoding that many images."""
    import dataclasses

    import numpy as np
    import pandas as pd
    import torch
    from torch.nn import functional as F

    from astroae_core.cache import FILES, load_cache, write_cache

    rng = np.random.default_rng(seed)
    cache = load_cache(src)
    meta, t = cache.meta, cache.table
    reps = -(-rows // len(t))
    big = pd.concat([t] * reps, ignore_index=True).iloc[:rows].copy()
    big["id"] = [f"{i}_{k:07d}" for k, i in enumerate(big["id"])]
    for c in [*meta.columns.latent, *meta.columns.maps]:
        v = big[c].to_numpy(dtype=np.float64)
        big[c] = (v + rng.normal(scale=0.15 * (v.std() or 1.0), size=len(v))).astype(big[c].dtype)
    out.mkdir(parents=True, exist_ok=True)
    p = torch.from_numpy(np.asarray(cache.previews, dtype=np.float32))[:, None]
    small = F.interpolate(p, size=(preview, preview), mode="area")[:, 0].round().clamp(0, 255).to(torch.uint8)
    np.save(out / FILES["previews"], np.tile(small.numpy(), (reps, 1, 1))[:rows])
    # the cache stores its checkpoint and data folder relative to itself: point them back at the source's
    rel = lambda path: os.path.relpath(path, out.resolve())  # noqa: E731
    meta = dataclasses.replace(meta, n_images=rows, data_dir=rel(meta.data_path(src)),
                               checkpoint=dataclasses.replace(meta.checkpoint, path=rel(meta.checkpoint_path(src))),
                               options=dataclasses.replace(meta.options, preview_size=preview))
    manifest = json.loads((src / FILES["manifest"]).read_text())
    write_cache(out, meta, table=big, manifest=manifest, correlations=cache.correlations)
    return out


def map_usability(browser, url: str) -> dict:
    """Time the Latent map page on a big cache: first draw, hover label, pan, box selection to the gallery."""
    page = browser.new_context(viewport={"width": 1440, "height": 1000}, base_url=url).new_page()
    page.set_default_timeout(T)
    res = {}
    t0 = time.perf_counter()
    page.goto("/latent_map")
    page.wait_for_function("""() => { const gd = document.querySelector('.js-plotly-plot');
        return gd && gd._fullData && gd._fullData.length && gd.querySelector('.gl-canvas, canvas'); }""", timeout=T)
    _wait_idle(page)
    res["first_draw_s"] = time.perf_counter() - t0
    res["points_drawn"] = page.evaluate("""() => document.querySelector('.js-plotly-plot')._fullData
        .reduce((n, tr) => n + (tr.x ? tr.x.length : 0), 0)""")
    gd = page.locator(".js-plotly-plot").first
    gd.scroll_into_view_if_needed()
    box = page.evaluate("""() => { const gd = document.querySelector('.js-plotly-plot'), L = gd._fullLayout;
        const r = gd.getBoundingClientRect(), xa = L.xaxis, ya = L.yaxis, tr = gd._fullData[0];
        let k = 0, best = 1e18; const cx = (xa.range[0] + xa.range[1]) / 2, cy = (ya.range[0] + ya.range[1]) / 2;
        for (let i = 0; i < tr.x.length; i += 97) { const d = (tr.x[i]-cx)**2 + (tr.y[i]-cy)**2;
            if (d < best) { best = d; k = i; } }
        return {left: r.left + xa._offset, top: r.top + ya._offset, w: xa._length, h: ya._length,
                px: r.left + xa._offset + xa.d2p(tr.x[k]), py: r.top + ya._offset + ya.d2p(tr.y[k]),
                xrange: [...xa.range]}; }""")
    # hover: move onto a point, wait for plotly's hover label
    page.mouse.move(box["px"] - 30, box["py"] - 30)
    t0 = time.perf_counter()
    page.mouse.move(box["px"], box["py"], steps=3)
    page.wait_for_selector(".hoverlayer .hovertext", state="attached", timeout=T)
    res["hover_label_ms"] = (time.perf_counter() - t0) * 1000
    # pan: the map opens in pan mode; a drag moves the axes
    cx, cy = box["left"] + box["w"] / 2, box["top"] + box["h"] / 2
    t0 = time.perf_counter()
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 150, cy + 60, steps=15)
    page.mouse.up()
    page.wait_for_function("""r => { const xa = document.querySelector('.js-plotly-plot')._fullLayout.xaxis;
        return xa.range[0] !== r[0]; }""", arg=box["xrange"], timeout=T)
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    res["pan_drag_ms"] = (time.perf_counter() - t0) * 1000
    # box select: the modebar's box tool, a drag over the middle, then the app's gallery of the selection
    page.mouse.move(cx, cy)
    page.locator('.modebar-btn[data-val="select"]').first.click()
    t0 = time.perf_counter()
    page.mouse.move(cx - 40, cy - 40)
    page.mouse.down()
    page.mouse.move(cx + 40, cy + 40, steps=8)
    page.mouse.up()
    page.wait_for_function("""() => [...document.querySelectorAll('h3')].some(h =>
        /Selection \\(([1-9][0-9,]*) images\\)/.test(h.textContent))""", timeout=T)
    _wait_idle(page, started_within_ms=300)
    page.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=T)
    res["box_select_to_gallery_ms"] = (time.perf_counter() - t0) * 1000
    res["selected"] = page.evaluate("""() => [...document.querySelectorAll('h3')].map(h => h.textContent)
        .find(t => t.startsWith('Selection'))""")
    errors = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]').all_inner_texts()
    res["errors"] = errors
    page.context.close()
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--moves", type=int, default=20, help="slider moves measured (default 20)")
    p.add_argument("--cache", help="an existing cache (default: 40 demo stamps encoded in a temporary folder)")
    p.add_argument("--data-root", help="ASTROAE_DATA_ROOT for --cache (default: its data folder's parent)")
    p.add_argument("--settle", type=float, default=30.0,
                   help="seconds after the page opens before the second series (default 30)")
    p.add_argument("--map-rows", type=int, default=0, help="also time the latent map of a cache this big")
    p.add_argument("--json", help="also write the JSON here")
    args = p.parse_args(argv)
    if not testing.CHROMIUM.is_file():
        print(f"Debian chromium is not installed at {testing.CHROMIUM}", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="astroae-slider-bench-"))
    try:
        t0 = time.perf_counter()
        if args.cache:
            cache = Path(args.cache).resolve()
            from astroae_core.cache import read_meta

            data_root = Path(args.data_root or read_meta(cache).data_path(cache).parent)
        else:
            env = testing.build_demo_cache(work / "demo", n=40, seed=3)
            cache, data_root = env["cache"], env["data_root"]
        setup_s = time.perf_counter() - t0
        out = {"benchmark": "slider_latency", "cache": str(cache), "setup_s": round(setup_s, 1),
               "load_avg_1min_before": _load(), "training_running": _training_running(),
               "cpu_count": os.cpu_count()}
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(testing.CHROMIUM), args=testing.CHROMIUM_ARGS)
            with testing.serve(cache, data_root, work / "logs") as url:
                out["slider"] = slider_latency(browser, url, args.moves, settle=args.settle)
            if args.map_rows:
                big = big_cache(cache, work / f"big{args.map_rows}", args.map_rows)
                with testing.serve(big, data_root, work / "logs-map") as url:
                    out["map"] = {"rows": args.map_rows, **map_usability(browser, url)}
            browser.close()
        out["load_avg_1min_after"] = _load()
        out["training_running_after"] = _training_running()
        text = json.dumps(out, indent=1)
        print(text)
        if args.json:
            Path(args.json).write_text(text)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
