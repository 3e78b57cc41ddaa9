"""Batch against one-at-a-time recommendations over the same requests: throughput and equal
results, in the service (its answer cache off) and end to end over HTTP.

The rows: the service alone (one process), the service with the helper processes
configs/app.yaml gives the app (``api.batch_processes``: a batch then uses 2 cores), and the
app over HTTP, helpers included.

    python bench/batch.py                          # demo bundle (ml-latest-small catalogue)
    python bench/batch.py --bundle artifacts/ml-100k --batch 100 --rounds 5

Requests: data-set users and new visitors (a few movies each), every context and k=10, drawn
at random. Over HTTP the single calls and the batch calls get different draws of the same
mix, because the app's answer cache would otherwise serve the second pass; the equality check
uses a further draw.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TIMES = ("morning", "afternoon", "evening", "night")
DEVICES = ("mobile", "tablet", "desktop", "tv")


def draw(rng: random.Random, n: int, n_users: int, movies: list[int]) -> list[dict]:
    requests = []
    for _ in range(n):
        request = {"time_of_day": rng.choice(TIMES), "device": rng.choice(DEVICES), "k": 10}
        if rng.random() < 0.7:
            request["user_id"] = rng.randint(1, n_users)
        else:
            request["history"] = rng.sample(movies, rng.randint(2, 8))
        requests.append(request)
    return requests


def in_process(
    bundle: Path, batch: int, rounds: int, seed: int, processes: int = 0
) -> tuple[float, float, str]:
    from contextflix.service import Recommender

    service = Recommender.from_bundle(bundle, cache_size=0, batch_processes=processes)
    gc.freeze()  # as app.py does once its bundle is loaded
    movies = [m["item_id"] for m in service.movies(limit=1000)["movies"]]
    rng = random.Random(seed)
    sets = [draw(rng, batch, service.n_users, movies) for _ in range(rounds)]
    service.recommend_batch(sets[0])  # warm up, and start the helpers
    while service.workers is not None and not service.workers.ready():
        time.sleep(0.1)
    service.recommend_batch(sets[0])  # the helpers' first answers warm them up too
    start = time.perf_counter()
    singles = [[service.recommend(**r, cache=False) for r in requests] for requests in sets]
    single_s = time.perf_counter() - start
    start = time.perf_counter()
    batched = [service.recommend_batch(requests) for requests in sets]
    batch_s = time.perf_counter() - start
    return single_s, batch_s, same(singles, batched)


def over_http(bundle: Path, batch: int, rounds: int, seed: int) -> tuple[float, float, str]:
    import httpx

    from tests.support import running_app

    with (
        running_app(bundle, Path(tempfile.mkdtemp(prefix="contextflix-batch-"))) as url,
        httpx.Client(base_url=url, timeout=120) as http,
    ):
        n_users = http.get("/api/users", params={"limit": 1}).json()["total"]
        movies = [m["item_id"] for m in http.get("/api/movies", params={"limit": 1000}).json()["movies"]]  # fmt: skip
        rng = random.Random(seed)
        warm = [{"requests": draw(random.Random(seed + n), batch, n_users, movies)} for n in (1, 2)]
        http.post("/api/recommend_batch", json=warm[0]).raise_for_status()  # starts the helpers
        while http.get("/api/health").json()["batch_helpers"] in ("waiting", "loading"):
            time.sleep(0.1)
        http.post("/api/recommend_batch", json=warm[1]).raise_for_status()  # warms the helpers
        single_sets = [draw(rng, batch, n_users, movies) for _ in range(rounds)]
        batch_sets = [draw(rng, batch, n_users, movies) for _ in range(rounds)]
        check = draw(rng, batch, n_users, movies)
        start = time.perf_counter()
        for requests in single_sets:
            for request in requests:
                http.post("/api/recommend", json=request).raise_for_status()
        single_s = time.perf_counter() - start
        start = time.perf_counter()
        for requests in batch_sets:
            http.post("/api/recommend_batch", json={"requests": requests}).raise_for_status()
        batch_s = time.perf_counter() - start
        singles = [http.post("/api/recommend", json=r).json() for r in check]
        batched = http.post("/api/recommend_batch", json={"requests": check}).json()["results"]
    return single_s, batch_s, same([singles], [batched])


def same(singles: list[list[dict]], batched: list[list[dict]]) -> str:
    """ "yes" when every answer is equal; else whether the rankings are, and the largest score
    difference (batched float32 sums may round the 4th decimal the other way)."""
    pairs = [(a, b) for one, many in zip(singles, batched, strict=True)
             for a, b in zip(one, many, strict=True)]  # fmt: skip
    if all(a == b for a, b in pairs):
        return "yes"
    ranked = all(
        [i["item_id"] for i in a.get("items", [])] == [i["item_id"] for i in b.get("items", [])]
        for a, b in pairs
    )
    gap = max(
        (abs(i["score"] - j["score"]) for a, b in pairs
         for i, j in zip(a.get("items", []), b.get("items", []), strict=False)),
        default=0.0,
    )  # fmt: skip
    return f"{'rankings' if ranked else 'NOT rankings'}, scores within {gap:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", help="a bundle folder (default: the demo bundle)")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.bundle:
        bundle = Path(args.bundle)
    else:
        from tests.support import build_demo_bundle

        bundle = build_demo_bundle(Path(tempfile.gettempdir()) / "contextflix-demo-bundle")
    n = args.batch * args.rounds
    print(f"{n} requests ({args.rounds} batches of {args.batch}), bundle {bundle}")
    print(f"{'where':<12}{'single req/s':>14}{'batch req/s':>13}{'speed-up':>10}  equal")
    from contextflix.web.limits import ApiConfig

    processes = ApiConfig.load().batch_processes
    rows = [("service", in_process, {})]
    if processes:
        rows.append((f"service+{processes}", in_process, {"processes": processes}))
    rows.append(("HTTP", over_http, {}))
    for name, measure, options in rows:
        single_s, batch_s, equal = measure(bundle, args.batch, args.rounds, args.seed, **options)
        print(
            f"{name:<12}{n / single_s:>14.1f}{n / batch_s:>13.1f}{single_s / batch_s:>9.1f}x"
            f"  {equal}"
        )


if __name__ == "__main__":
    main()
