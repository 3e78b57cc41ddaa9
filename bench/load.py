"""Load test of the served app: N client processes for T seconds against REST /api/recommend,
the Gradio /recommend endpoint and a trivial Gradio endpoint (/movie_genres, the floor of the
queue and transport cost). Prints throughput, p50/p95 latency and errors per target.

    python bench/load.py                          # starts app.py on a demo bundle itself
    python bench/load.py --url http://host:7860   # an app that is already running
    python bench/load.py --clients 8 --seconds 20

Requests vary user and context so the service's LRU cache does not answer everything.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TIMES = ("morning", "afternoon", "evening", "night")
DEVICES = ("mobile", "tablet", "desktop", "tv")


def _params(rng: random.Random) -> dict:
    return {
        "user_id": rng.randint(1, 610),
        "time_of_day": rng.choice(TIMES),
        "device": rng.choice(DEVICES),
        "k": 10,
    }


def _worker(target: str, url: str, seconds: float, seed: int, out: mp.Queue) -> None:
    """One client: sequential requests until the deadline; reports latencies and errors."""
    import httpx

    rng = random.Random(seed)
    latencies, errors = [], 0
    if target == "rest":
        http = httpx.Client(base_url=url, timeout=60)
        call = lambda: http.get("/api/recommend", params=_params(rng)).raise_for_status()  # noqa: E731
    else:
        from gradio_client import Client

        client = Client(url, verbose=False)
        if target == "gradio":
            call = lambda: client.predict(**_params(rng), api_name="/recommend")  # noqa: E731
        else:
            call = lambda: client.predict(api_name="/movie_genres")  # noqa: E731
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        try:
            call()
            latencies.append(time.perf_counter() - start)
        except Exception:
            errors += 1
    out.put((latencies, errors))


def run(target: str, url: str, clients: int, seconds: float) -> dict:
    queue: mp.Queue = mp.Queue()
    procs = [
        mp.Process(target=_worker, args=(target, url, seconds, i, queue)) for i in range(clients)
    ]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    latencies = sorted(x for lat, _ in results for x in lat)
    errors = sum(e for _, e in results)
    n = len(latencies)
    return {
        "target": target,
        "requests": n,
        "rps": n / seconds,
        "p50_ms": 1000 * statistics.median(latencies) if n else float("nan"),
        "p95_ms": 1000 * latencies[int(0.95 * (n - 1))] if n else float("nan"),
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running app (default: start app.py on a demo bundle)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument(
        "--targets", default="rest,gradio,gradio_trivial", help="comma-separated subset"
    )
    args = parser.parse_args()

    if args.url:
        server = nullcontext(args.url)
    else:
        from tests.support import build_demo_bundle, running_app

        root = Path(tempfile.mkdtemp(prefix="contextflix-bench-"))
        server = running_app(build_demo_bundle(root / "bundle"), root / "app")
    with server as url:
        rows = [run(t, url, args.clients, args.seconds) for t in args.targets.split(",")]
    print(f"\n{args.clients} clients x {args.seconds:g} s each target ({url})")
    print(f"{'target':<16}{'requests':>10}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'errors':>8}")
    for r in rows:
        print(
            f"{r['target']:<16}{r['requests']:>10}{r['rps']:>9.1f}{r['p50_ms']:>9.1f}"
            f"{r['p95_ms']:>9.1f}{r['errors']:>8}"
        )


if __name__ == "__main__":
    main()
