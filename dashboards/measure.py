"""Open every dashboard page in headless Chromium and time it: ``python -m dashboards.measure``.

    python -m dashboards.measure --home /path/to/registry-home [--rounds 3] [--screenshots DIR]

Starts ``registry serve --no-dagster`` on a free port for that home (or uses ``--url`` of a running
one), then, after one warm-up load, opens each page path ``--rounds`` times and reports the median
time from navigation start until the page is ready: Streamlit's script has finished
(``data-test-script-state="notRunning"``), the title is drawn and every expected Plotly chart has
rendered its SVG. It also times switching pages through the sidebar (no full reload), which is
what a user mostly does. The browser test (``tests/browser/test_browser.py``) uses the same helpers.

Chromium is Debian's (``/usr/bin/chromium``, ``make browser`` installs it); Playwright drives it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]

#: URL path -> (sidebar title, number of Plotly charts the page draws with default settings).
PAGES: dict[str, tuple[str, int]] = {
    "": ("Overview", 3),
    "mortality": ("Mortality", 2),
    "organs": ("Organs", 3),
    "labs": ("Labs", 2),
    "cases": ("Cases", 2),
    "quality": ("Data quality", 2),
    "submit": ("Submit", 0),
    "sql": ("SQL", 0),
}

#: True once the page is ready: script finished, title drawn, ``n`` Plotly charts rendered.
READY_JS = """(n) => {
  const app = document.querySelector("[data-testid='stApp']");
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  if (!document.querySelector("[data-testid='stMain'] h1")) return false;
  // charts that have drawn (one Plotly chart has several .main-svg layers: count charts, not layers)
  return [...document.querySelectorAll("[data-testid='stPlotlyChart']")]
    .filter((c) => c.querySelector(".js-plotly-plot .main-svg")).length >= n;
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, timeout: float = 90.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=1) as r:  # noqa: S310 - localhost
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


@contextmanager
def serving(home: Path, *, log: Path | None = None) -> Iterator[str]:
    """``registry serve --no-dagster`` for ``home`` on a free port; yields its base URL."""
    port = free_port()
    env = {**os.environ, "REGISTRY_HOME": str(home)}
    exe = Path(sys.executable).with_name("registry")
    out = open(log, "w") if log else subprocess.DEVNULL
    proc = subprocess.Popen([str(exe), "serve", "--no-dagster", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        base = f"http://localhost:{port}"
        wait_healthy(base, proc=proc)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log:
            out.close()


def wait_ready(page, charts: int, timeout_ms: float = 60_000) -> None:
    page.wait_for_function(READY_JS, arg=charts, timeout=timeout_ms)


def screenshot(page, path: Path) -> None:
    """The whole page (Streamlit scrolls inside its main container, so grow the viewport first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size or {"width": 1440, "height": 1000}
    h = page.evaluate("() => { const m = document.querySelector('[data-testid=stMain]'); return m ? m.scrollHeight : 0; }")
    page.set_viewport_size({"width": size["width"], "height": int(min(max(size["height"], h + 40), 8000))})
    page.wait_for_timeout(400)
    page.screenshot(path=str(path))
    page.set_viewport_size(size)


def measure(base: str, *, rounds: int = 3, screenshots: Path | None = None) -> dict[str, dict[str, float]]:
    """Median milliseconds per page: ``load`` (open the URL) and ``switch`` (click it in the sidebar)."""
    from playwright.sync_api import sync_playwright  # only the measurement needs a browser driver

    out: dict[str, dict[str, list[float]]] = {p: {"load": [], "switch": []} for p in PAGES}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
        page.goto(base + "/")
        wait_ready(page, PAGES[""][1])  # warm-up: server caches, browser cache
        for _ in range(rounds):
            for path, (_title, n) in PAGES.items():
                page.goto(f"{base}/{path}")
                wait_ready(page, n)
                out[path]["load"].append(page.evaluate("() => performance.now()"))
        for _ in range(rounds):
            for path, (title, n) in list(PAGES.items())[1:] + [("", PAGES[""])]:
                t = time.perf_counter()
                page.locator("[data-testid='stSidebarNav'] a").filter(has_text=title).first.click()
                page.wait_for_url(f"{base}/{path}*" if path else f"{base}/", timeout=30_000)
                wait_ready(page, n)
                out[path]["switch"].append((time.perf_counter() - t) * 1000)
        if screenshots:
            for path in PAGES:
                page.goto(f"{base}/{path}")
                wait_ready(page, PAGES[path][1])
                screenshot(page, screenshots / f"{path or 'overview'}.png")
        browser.close()
    return {p: {k: statistics.median(v) for k, v in d.items() if v} for p, d in out.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dashboards.measure", description=__doc__.splitlines()[0])
    ap.add_argument("--home", help="registry home to serve (default: $REGISTRY_HOME)")
    ap.add_argument("--url", help="base URL of dashboards already running (instead of --home)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--screenshots", type=Path)
    ap.add_argument("--json", type=Path, help="also write the medians here")
    args = ap.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is missing: install Debian's chromium (make browser)", file=sys.stderr)
        return 2
    if args.url:
        res = measure(args.url.rstrip("/"), rounds=args.rounds, screenshots=args.screenshots)
    else:
        home = Path(args.home or os.environ.get("REGISTRY_HOME", "./data")).resolve()
        with serving(home) as base:
            res = measure(base, rounds=args.rounds, screenshots=args.screenshots)
    print(f"{'page':<12} {'open URL (ms)':>14} {'sidebar switch (ms)':>20}")
    for path, d in res.items():
        print(f"/{path:<11} {d.get('load', float('nan')):>14.0f} {d.get('switch', float('nan')):>20.0f}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
