"""Time from navigation to the first poster row, in headless Chromium; prints a table.

    python bench/first_row.py                          # starts app.py on a demo bundle itself
    python bench/first_row.py --bundle artifacts/ml-latest-small
    python bench/first_row.py --url http://host:7860   # an app that is already running

Each run is a new visitor (fresh browser context: no cookies, no storage, no HTTP cache), timed
from ``goto`` until the first row's posters have loaded. The first run also draws the posters
and warms the service's caches; the median is over the runs after it. Target: <= 1.5 s on
localhost with a loaded bundle.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FIRST_ROW_LOADED = (
    "() => { const imgs = [...document.querySelectorAll('#cf-row-0 img')];"
    " return imgs.length > 0 && imgs.slice(0, 6).every(i => i.complete && i.naturalWidth > 0); }"
)


def time_first_row(url: str, runs: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    from tests.support import CHROMIUM, CHROMIUM_ARGS

    seconds = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for _ in range(runs):
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            start = time.perf_counter()
            page.goto(url)
            page.wait_for_function(FIRST_ROW_LOADED, timeout=120_000, polling=20)
            seconds.append(time.perf_counter() - start)
            context.close()
        browser.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an app that is already running")
    parser.add_argument("--bundle", type=Path, help="bundle folder (default: a demo bundle)")
    parser.add_argument("--runs", type=int, default=6)
    args = parser.parse_args()

    if args.url:
        server, bundle = nullcontext(args.url), "(running app)"
    else:
        from tests.support import build_demo_bundle, running_app

        root = Path(tempfile.mkdtemp(prefix="contextflix-first-row-"))
        bundle = args.bundle or build_demo_bundle(root / "bundle")
        server = running_app(Path(bundle), root / "app")
    with server as url:
        seconds = time_first_row(url, args.runs)
    print(f"\nnavigation -> first poster row, headless Chromium 1400x1000 ({url}, bundle {bundle})")
    print(f"{'run':<6}{'seconds':>9}")
    for n, value in enumerate(seconds, 1):
        print(f"{n:<6}{value:>9.3f}{'  (cold: draws posters)' if n == 1 else ''}")
    warm = seconds[1:] or seconds
    print(f"{'median':<6}{statistics.median(warm):>9.3f}  (runs 2-{len(seconds)}; target <= 1.5)")


if __name__ == "__main__":
    main()
