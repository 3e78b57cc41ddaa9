"""Cost of the live A/B summary as the event table grows: the incremental summary (one row per
visitor, cached for a few seconds) against a full rescan + bootstrap of every event
(``ctr_by_arm(log.events())``, what each page load cost before). Also the write cost.

    python bench/events.py [--sizes 10000,100000,300000]

Each size is a fresh log in a temp folder filled with page views of 2,000 visitors (24
impressions each, 10% clicked); prints a table.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from contextflix.evaluation.ab import ctr_by_arm
from contextflix.web.events import EventLog
from contextflix.web.limits import EventLimits

VISITORS = 2000
PAGE = 24
LIMITS = EventLimits(
    max_rows=10_000_000,
    visitor_writes_per_minute=1e9,
    global_writes_per_minute=1e9,
    burst_clicks=10**6,
    summary_ttl_seconds=10,
)


def fill(log: EventLog, rows: int, rng: random.Random) -> float:
    """Write ``rows`` events; returns seconds per write call (one page view or one click)."""
    written = calls = 0
    start = time.perf_counter()
    while written < rows:
        visitor = f"{rng.randrange(VISITORS):032x}"
        arm = "AB"[int(visitor, 16) % 2]
        items = rng.sample(range(1, 5000), PAGE)
        written += log.record("impression", arm, visitor, [(i, r) for r, i in enumerate(items, 1)],
                              "evening", "tv")  # fmt: skip
        calls += 1
        if rng.random() < 0.1:
            written += log.record("click", arm, visitor, [(items[0], 1)], "evening", "tv")
            calls += 1
    return (time.perf_counter() - start) / calls


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,300000")
    args = parser.parse_args()
    print(f"{'events':>9}{'write ms':>10}{'summary ms':>12}{'cached ms':>11}{'rescan ms':>11}")
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            log = EventLog(Path(folder) / "events.sqlite", limits=LIMITS)
            write = fill(log, size, random.Random(0))
            summary = timed(log.summary)
            cached = timed(log.summary)
            rescan = timed(lambda log=log: ctr_by_arm(log.events(), n_resamples=2000))
            print(
                f"{size:>9,}{1000 * write:>10.2f}{1000 * summary:>12.1f}{1000 * cached:>11.3f}"
                f"{1000 * rescan:>11.0f}"
            )


if __name__ == "__main__":
    main()
