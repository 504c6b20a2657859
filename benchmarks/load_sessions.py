"""Load benchmark: several browser sessions use the app at once; errors and latency as JSON.

Starts ``streamlit run dashboard/app.py`` on a free localhost port (as ``tests/test_browser.py`` does), opens
``--sessions`` independent sessions (browser contexts of one headless Debian chromium, each its own Streamlit
session) and, for ``--seconds``, has each one alternate between the Latent sliders page (moving a slider with the
keyboard, timed until the decoded image on screen has changed) and the Latent map page (clicking an isolated point,
timed until "Chosen: <that file>" is shown). Prints one JSON object:

``errors``
    Actions that timed out or showed the wrong image, Streamlit exceptions or error alerts on a page, JavaScript
    errors in a page, and tracebacks in the server's log. Should be 0.
``latency_ms``
    p50 / p95 / max per action kind (``slider``, ``map_click``, ``page``) and over all actions: from the key press
    or click to the page showing the result (the script run that produced it included).
``server_rss_mb``
    The server's resident memory at the start (sessions open) and its peak, sampled every second.

    nice -n 15 .venv/bin/python benchmarks/load_sessions.py [--seconds 60] [--sessions 5] [--cache cache/demo]

The cache defaults to ``ASTROAE_CACHE``, else the demo cache ``cache/demo`` when it exists (read, never written),
else a tiny synthetic cache built in a temporary folder (the browser tests' one). Needs ``/usr/bin/chromium``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks._common import rss_mb  # noqa: E402
from dashboard import testing  # noqa: E402  (the browser tests' server and chromium settings)

IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
RUNNING = '[data-testid="stApp"]:not([data-test-script-state="notRunning"])'
SLIDER_IMG = ".st-key-slider_img img"  # the decoded image, a small PNG whose source changes with every decode

# The decoded image's source: a new PNG, hence a new data URL, for every redraw.
IMAGE_SRC_JS = """sel => { const img = document.querySelector(sel); return img ? img.getAttribute('src') : null; }"""

# Points of the map's first trace at least 6 px from any other, in page pixels, with their ids.
ISOLATED_POINTS_JS = """() => {
    const gd = document.querySelector('.js-plotly-plot');
    if (!gd || !gd._fullLayout || !gd._fullData) return [];
    const L = gd._fullLayout, xa = L.xaxis, ya = L.yaxis, tr = gd._fullData[0];
    const r = gd.getBoundingClientRect();
    const pts = Array.from(tr.x, (x, i) => [xa._offset + xa.d2p(x), ya._offset + ya.d2p(tr.y[i]),
                                           String(tr.customdata[i][0])]);
    const cell = 6, grid = new Map();
    for (const p of pts) { const k = Math.floor(p[0] / cell) + ',' + Math.floor(p[1] / cell);
        if (!grid.has(k)) grid.set(k, []); grid.get(k).push(p); }
    const out = [];
    for (const p of pts) {
        if (p[0] < xa._offset + 10 || p[0] > xa._offset + xa._length - 10) continue;
        if (p[1] < ya._offset + 10 || p[1] > ya._offset + ya._length - 10) continue;
        const gx = Math.floor(p[0] / cell), gy = Math.floor(p[1] / cell);
        let ok = true;
        for (let dx = -1; dx <= 1 && ok; dx++) for (let dy = -1; dy <= 1 && ok; dy++)
            for (const q of grid.get((gx + dx) + ',' + (gy + dy)) || [])
                if (q !== p && Math.hypot(q[0] - p[0], q[1] - p[1]) < cell) { ok = false; break; }
        if (ok) out.push({x: r.left + p[0], y: r.top + p[1], id: p[2]});
    }
    return out;
}"""


# ----------------------------------------------------------------------------------------------------------------
# the server


def pick_cache(arg: str | None, workdir: Path) -> tuple[Path, str]:
    """The cache to serve: ``--cache``, ``ASTROAE_CACHE``, ``cache/demo``, else a tiny one built in ``workdir``."""
    for candidate, source in ((arg, "--cache"), (os.environ.get("ASTROAE_CACHE"), "ASTROAE_CACHE"),
                              (str(ROOT / "cache" / "demo"), "demo cache")):
        if candidate and (Path(candidate) / "meta.json").is_file():
            return Path(candidate).resolve(), source
    from tests.test_app_pages import build_env  # the browser tests' tiny dataset, model and cache

    return Path(build_env(workdir)["cache"]).resolve(), "tiny synthetic cache"


# ----------------------------------------------------------------------------------------------------------------
# one session


class Session:
    """One browser context (= one Streamlit session) doing slider moves and map clicks until ``deadline``."""

    def __init__(self, index: int, browser, url: str, names: dict, *, seed: int, timeout_ms: int):
        self.index = index
        self.browser, self.url, self.names = browser, url, names
        self.rng = random.Random(seed * 1000 + index)
        self.timeout = timeout_ms
        self.latencies: dict[str, list[float]] = {"slider": [], "map_click": [], "page": []}
        self.errors: list[str] = []

    def error(self, what: str) -> None:
        self.errors.append(f"session {self.index}: {what}"[:500])

    async def wait_idle(self, page, *, started_within_ms: int = 1500) -> None:
        try:
            await page.wait_for_selector(RUNNING, state="attached", timeout=started_within_ms)
        except Exception:  # noqa: BLE001 - the run was over before we looked, or there was none
            pass
        await page.wait_for_selector(IDLE, state="attached", timeout=self.timeout)

    async def check_page(self, page, where: str) -> None:
        exc = page.locator('[data-testid="stException"]')
        if await exc.count():
            self.error(f"Streamlit exception on {where}: {(await exc.all_inner_texts())[:1]}")
        err = page.locator('[data-testid="stMain"] [data-testid="stAlertContentError"]')
        if await err.count():
            self.error(f"error alert on {where}: {(await err.all_inner_texts())[:1]}")

    async def open_page(self, page, title: str) -> None:
        t0 = time.perf_counter()
        await page.locator('[data-testid="stSidebarNavLink"]', has_text=title).click()
        await page.locator("h1", has_text=title).wait_for(timeout=self.timeout)
        await self.wait_idle(page)
        self.latencies["page"].append((time.perf_counter() - t0) * 1000)
        await self.check_page(page, title)

    async def move_sliders(self, page, n: int) -> None:
        await page.wait_for_selector(SLIDER_IMG, timeout=self.timeout)
        for _ in range(n):
            dim = self.rng.randrange(8)
            thumb = page.locator(f'.st-key-sl_z{dim} input[type="range"]')
            value = float(await thumb.input_value())
            lo, hi = [float(await thumb.get_attribute(a) or "nan") for a in ("min", "max")]
            key = "ArrowRight" if value < hi and (value <= lo or self.rng.random() < 0.5) else "ArrowLeft"
            old = await page.evaluate(IMAGE_SRC_JS, SLIDER_IMG)
            await thumb.focus()
            t0 = time.perf_counter()
            await page.keyboard.press(key)
            try:
                await page.wait_for_function(f"() => ({IMAGE_SRC_JS})({SLIDER_IMG!r}) !== {json.dumps(old)}",
                                             timeout=self.timeout, polling="raf")
            except Exception as exc:  # noqa: BLE001
                self.error(f"slider z{dim} {key}: the decoded image did not change ({type(exc).__name__})")
                await self.wait_idle(page)
                continue
            self.latencies["slider"].append((time.perf_counter() - t0) * 1000)
            await self.wait_idle(page, started_within_ms=300)
        await self.check_page(page, "Latent sliders")

    async def click_map(self, page, n: int) -> None:
        await page.wait_for_selector(".js-plotly-plot", timeout=self.timeout)
        for _ in range(n):
            points = await page.evaluate(ISOLATED_POINTS_JS)
            current = await page.locator("h3", has_text="Chosen:").all_inner_texts()
            points = [p for p in points if f"Chosen: {self.names.get(p['id'])}" not in current]
            if not points:
                self.error("no isolated point to click on the map")
                return
            p = self.rng.choice(points)
            name = self.names.get(p["id"], "?")
            await page.mouse.move(p["x"], p["y"])
            t0 = time.perf_counter()
            await page.mouse.click(p["x"], p["y"])
            try:
                await page.locator("h3", has_text=f"Chosen: {name}").wait_for(timeout=self.timeout)
                await self.wait_idle(page, started_within_ms=300)
            except Exception as exc:  # noqa: BLE001
                self.error(f"map click on {name}: not shown ({type(exc).__name__})")
                await self.wait_idle(page)
                continue
            self.latencies["map_click"].append((time.perf_counter() - t0) * 1000)
        await self.check_page(page, "Latent map")

    async def open(self) -> None:
        """Open the session on the Latent sliders page (not timed: the first load of a page is not the load)."""
        self.ctx = await self.browser.new_context(viewport={"width": 1440, "height": 1000}, base_url=self.url)
        self.page = await self.ctx.new_page()
        self.page.set_default_timeout(self.timeout)
        self.page.on("pageerror", lambda exc: self.error(f"JavaScript error: {exc}"))
        try:
            await self.page.goto("/sliders")
            await self.page.locator("h1", has_text="Latent sliders").wait_for(timeout=self.timeout)
            await self.wait_idle(self.page)
        except Exception as exc:  # noqa: BLE001 - a session that breaks is an error to report, not a crash
            self.error(f"opening: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            self.page = None

    async def work(self, deadline: float) -> None:
        """Sliders, then the map, then back, until ``deadline`` (at least one round)."""
        page = self.page
        if page is None:
            return
        try:
            while True:
                await self.move_sliders(page, self.rng.randint(3, 6))
                await self.open_page(page, "Latent map")
                await self.click_map(page, self.rng.randint(2, 4))
                await self.open_page(page, "Latent sliders")
                if time.monotonic() >= deadline:
                    break
        except Exception as exc:  # noqa: BLE001
            self.error(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")

    async def close(self) -> None:
        await self.ctx.close()


# ----------------------------------------------------------------------------------------------------------------


def _summary(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    q = statistics.quantiles(values, n=20, method="inclusive") if len(values) > 1 else [values[0]] * 19
    return {"n": len(values), "p50": round(statistics.median(values), 1), "p95": round(q[18], 1),
            "max": round(max(values), 1)}


async def drive(url: str, names: dict, *, sessions: int, seconds: float, seed: int, timeout_ms: int,
                server_pid: int) -> dict:
    from playwright.async_api import async_playwright

    rss: list[float] = []

    async def sample(stop: asyncio.Event) -> None:
        while not stop.is_set():
            v = rss_mb(server_pid)
            if v is not None:
                rss.append(v)
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except asyncio.TimeoutError:
                pass

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(testing.CHROMIUM), args=testing.CHROMIUM_ARGS)
        runners = [Session(i, browser, url, names, seed=seed, timeout_ms=timeout_ms) for i in range(sessions)]
        await asyncio.gather(*(s.open() for s in runners))
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample(stop))
        t0 = time.monotonic()
        await asyncio.gather(*(s.work(t0 + seconds) for s in runners))
        wall = time.monotonic() - t0
        stop.set()
        await sampler
        await asyncio.gather(*(s.close() for s in runners))
        await browser.close()
    lat = {k: sum((s.latencies[k] for s in runners), []) for k in ("slider", "map_click", "page")}
    errors = sum((s.errors for s in runners), [])
    return {"wall_seconds": round(wall, 1), "latency": lat, "errors": errors, "rss": rss}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="how long the sessions work (default 60)")
    ap.add_argument("--sessions", type=int, default=5, help="concurrent browser sessions (default 5)")
    ap.add_argument("--cache", help="latent cache to serve (default: ASTROAE_CACHE, else cache/demo, else a tiny one)")
    ap.add_argument("--data-root", help="ASTROAE_DATA_ROOT for the server (default: the repository's data/)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the sessions' choices (default 0)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds before an action counts as failed")
    args = ap.parse_args(argv)
    if not testing.CHROMIUM.is_file():
        print(json.dumps({"error": f"{testing.CHROMIUM} not found (apt-get install chromium)"}))
        return 2

    import pandas as pd

    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="astroae-load-") as tmp:
        work = Path(tmp)
        cache, source = pick_cache(args.cache, work)
        data_root = Path(args.data_root).resolve() if args.data_root else (ROOT / "data").resolve()
        table = pd.read_parquet(cache / "latents.parquet", columns=["id", "path"])
        names = {str(i): Path(str(p)).name for i, p in zip(table["id"], table["path"])}
        (work / "logs").mkdir()
        proc, url = testing.start(cache, data_root, work / "logs", start_timeout=600.0)
        try:
            # one warm-up session loads the cache, the model and the pages' code once, as a running server has
            warm = asyncio.run(drive(url, names, sessions=1, seconds=0, seed=args.seed + 99,
                                     timeout_ms=int(args.timeout * 1000), server_pid=proc.pid))
            res = asyncio.run(drive(url, names, sessions=args.sessions, seconds=args.seconds, seed=args.seed,
                                    timeout_ms=int(args.timeout * 1000), server_pid=proc.pid))
        finally:
            testing.stop(proc)
        log = (work / "logs" / "stderr.txt").read_text(errors="replace")
        log += (work / "logs" / "stdout.txt").read_text(errors="replace")
    errors = warm["errors"] + res["errors"]
    if "Traceback" in log or "Uncaught app execution" in log:
        errors.append("server log: " + log[log.find("Traceback"):][:800])
    lat = res["latency"]
    report = {
        "benchmark": "load_sessions",
        "sessions": args.sessions,
        "seconds": args.seconds,
        "wall_seconds": res["wall_seconds"],
        "cache": str(cache),
        "cache_source": source,
        "n_images": len(table),
        "actions": {k: len(v) for k, v in lat.items()},
        "errors": len(errors),
        "error_messages": errors[:20],
        "latency_ms": {**{k: _summary(v) for k, v in lat.items()}, "all": _summary(sum(lat.values(), []))},
        "server_rss_mb": {"start": round(res["rss"][0], 1) if res["rss"] else None,
                          "peak": round(max(res["rss"]), 1) if res["rss"] else None},
        "cpu_count": os.cpu_count(),
        "loadavg_1min_start": round(load_start, 2),
        "loadavg_1min_end": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(report, indent=1))
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
