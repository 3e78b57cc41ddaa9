"""Serving latency and footprint of contextflix.service.Recommender; prints a table.

    python bench/serve.py [--bundle DIR] [--requests 1000] [--seed 0] [--threads N]

Without ``--bundle``: artifacts/ml-100k if it exists, else a quick in-memory ml-latest-small
bundle (``quick_bundle``: briefly fitted models, no Lightning; the tests build theirs the
same way). Latency does not depend on how well the models are trained, only on their sizes.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from contextflix.bundle import Bundle, export_bundle  # noqa: E402
from contextflix.data import DEVICES, TIMES_OF_DAY, load_dataset  # noqa: E402
from contextflix.models.collaborative import MatrixFactorization  # noqa: E402
from contextflix.models.content import ContentModel  # noqa: E402
from contextflix.models.hybrid import ContextHybrid  # noqa: E402
from contextflix.models.scoring import BaseModels, Requests, fit_popularity  # noqa: E402
from contextflix.models.sequential import SequentialRecommender  # noqa: E402
from contextflix.service import Recommender  # noqa: E402
from contextflix.service.requests import MAX_BATCH  # noqa: E402

TARGETS = {
    "recommend p50": ("ms", 5.0),
    "recommend p99": ("ms", 20.0),
    "cache hit p50": ("ms", 0.2),
    "similar p50": ("ms", 2.0),
    "bundle load": ("s", 5.0),
    "peak RSS": ("MB", 800.0),
}


def _fit_mf(data, n_factors: int = 32) -> MatrixFactorization:
    """Biases from means and factors from a truncated SVD of the residuals (protocol S train).

    One shot instead of an SGD loop: a loaded 2-core machine trains nothing in seconds, and
    SVD factors already give real neighbours ("users most like you") to explain with.
    """
    train = data.ratings.iloc[data.s.train]
    users = torch.tensor(train["user_idx"].to_numpy(dtype=np.int64))
    items = torch.tensor(train["item_idx"].to_numpy(dtype=np.int64))
    ratings = torch.tensor(train["rating"].to_numpy(dtype=np.float32))
    mean = float(ratings.mean())
    model = MatrixFactorization(data.n_users, data.n_items, n_factors, global_mean=mean)
    shrink = 5.0
    item_sum = torch.zeros(data.n_items).index_add_(0, items, ratings - mean)
    item_n = torch.zeros(data.n_items).index_add_(0, items, torch.ones_like(ratings))
    item_bias = item_sum / (item_n + shrink)
    residual = ratings - mean - item_bias[items]
    user_sum = torch.zeros(data.n_users).index_add_(0, users, residual)
    user_n = torch.zeros(data.n_users).index_add_(0, users, torch.ones_like(ratings))
    user_bias = user_sum / (user_n + shrink)
    dense = torch.zeros(data.n_users, data.n_items)
    dense[users, items] = residual - user_bias[users]
    u, s, v = torch.svd_lowrank(dense, q=n_factors, niter=2)
    with torch.no_grad():
        model.user_bias.weight[:, 0] = user_bias
        model.item_bias.weight[:, 0] = item_bias
        model.user_factors.weight.copy_(u * s.sqrt())
        model.item_factors.weight.copy_(v * s.sqrt())
    return model.eval()


def _fit_sequential(data, steps: int, batch: int = 32) -> SequentialRecommender:
    """Next-item cross-entropy on random batches of the users' last train windows."""
    model = SequentialRecommender(data.n_items, dim=32, heads=2, layers=1, max_len=20, dropout=0.1)
    train = data.ratings.iloc[data.s.train]
    users = np.arange(data.n_users)
    unknown = np.zeros(len(users), dtype=np.int64)
    full = Requests.from_frames(train, users, unknown, unknown)
    n = model.max_len
    items = full.items[:, -(n + 1) :]
    tod, dev = full.time_of_day[:, -n:], full.device[:, -n:]
    optimizer = torch.optim.Adam(model.parameters(), lr=0.005)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        rows = torch.randint(0, len(users), (batch,), generator=generator)
        inputs, targets = items[rows, :-1], items[rows, 1:]
        logits = model(inputs, tod[rows], dev[rows])
        mask = (inputs > 0) & (targets > 0)
        loss = F.cross_entropy(logits[mask], targets[mask] - 1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def quick_bundle(
    dataset: str = "ml-latest-small",
    seq_steps: int = 5,
    seed: int = 0,
    use_cache: bool = True,
) -> Bundle:
    """An in-memory bundle from briefly fitted models (seconds, no Lightning, no files).

    Real shapes and real data; the hybrids are untrained (near-equal trust), which is all a
    latency benchmark or a service test needs.
    """
    torch.manual_seed(seed)
    data = load_dataset(dataset, use_cache=use_cache)
    models = BaseModels(
        popularity=fit_popularity(data),
        collaborative=_fit_mf(data),
        content=ContentModel.from_movies(data.movies, n_tags=50, dim=32, hidden=64).eval(),
        sequential=_fit_sequential(data, seq_steps),
    )
    return Bundle(
        config={"name": f"quick-{dataset}", "dataset": dataset, "revision": None},
        models=models,
        hybrid=ContextHybrid(list(models.available)).eval(),
        hybrid_no_context=ContextHybrid(list(models.available), use_context=False).eval(),
        catalog=data.movies,
        interactions=data.served_interactions(),
        users=data.users,
        metrics=None,
    )


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _rss_mb() -> tuple[float, float]:
    """(current, peak) resident memory in MB (Linux: /proc for current, getrusage for peak)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    current = peak
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                current = int(line.split()[1]) / 1024
    return current, peak


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=None)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (1: best for one request)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    bundle_dir = args.bundle or (ROOT / "artifacts" / "ml-100k")

    if not bundle_dir.is_dir():
        if args.bundle:
            parser.error(f"{args.bundle} is not a bundle folder")
        # no trained bundle here: export a quick one, so the load below is the real path
        scratch = tempfile.TemporaryDirectory(prefix="contextflix-bench-")
        bundle_dir = export_bundle(quick_bundle(), Path(scratch.name) / "quick-ml-latest-small")
        source = "quick ml-latest-small bundle (no artifacts/ml-100k), exported to a temp dir"
    else:
        source = str(bundle_dir)
    start = time.perf_counter()
    service = Recommender.from_bundle(bundle_dir)
    load_s = time.perf_counter() - start
    load_what = "load_bundle + index (SHA-256 checks included)"

    rng = np.random.default_rng(args.seed)
    user_ids = service.catalog.user_ids
    contexts = [None, *TIMES_OF_DAY]
    devices = [None, *DEVICES]
    plan = [
        (
            int(rng.choice(user_ids)),
            contexts[rng.integers(len(contexts))],
            devices[rng.integers(len(devices))],
        )
        for _ in range(args.requests)
    ]
    for user, tod, dev in plan[:20]:  # warm-up: allocator, first-call paths
        service.recommend(user_id=user, time_of_day=tod, device=dev, cache=False)
    cold, cpu = [], []
    for user, tod, dev in plan:
        t, c = time.perf_counter(), time.thread_time()
        service.recommend(user_id=user, time_of_day=tod, device=dev, k=10, cache=False)
        cold.append((time.perf_counter() - t) * 1000)
        cpu.append((time.thread_time() - c) * 1000)

    asks = [{"user_id": u, "time_of_day": t, "device": d, "k": 10} for u, t, d in plan]
    start = time.perf_counter()
    for first in range(0, len(asks), MAX_BATCH):
        service.recommend_batch(asks[first : first + MAX_BATCH], cache=False)
    batched = (time.perf_counter() - start) * 1000 / len(asks)

    user, tod, dev = plan[0]
    service.recommend(user_id=user, time_of_day=tod, device=dev)
    hits = []
    for _ in range(1000):
        t = time.perf_counter()
        service.recommend(user_id=user, time_of_day=tod, device=dev)
        hits.append((time.perf_counter() - t) * 1000)

    visitor = [int(i) for i in service.catalog.item_ids[service.catalog.popular_order[:5]]]
    visits = []
    for _ in range(200):
        t = time.perf_counter()
        service.recommend(history=visitor, time_of_day="evening", device="tv", cache=False)
        visits.append((time.perf_counter() - t) * 1000)

    items = rng.choice(service.catalog.item_ids[service.catalog.popular_order[:2000]], 500)
    sims = []
    for item in items:
        t = time.perf_counter()
        service.similar(int(item), k=10)
        sims.append((time.perf_counter() - t) * 1000)
    current, peak = _rss_mb()

    rows = [
        ("recommend p50", statistics.median(cold), f"{args.requests} users, cache off, k=10"),
        ("recommend p99", _percentile(cold, 99), "with explanations"),
        ("recommend CPU", statistics.median(cpu), "p50 of thread CPU time (less load-bound)"),
        ("batched", batched, f"per request, recommend_batch of {MAX_BATCH}, same requests"),
        ("visitor p50", statistics.median(visits), "5 liked movies, fold-in"),
        ("cache hit p50", statistics.median(hits), "orjson copy of the cached answer"),
        ("similar p50", statistics.median(sims), "MF item neighbours + co-likers"),
        ("bundle load", load_s, load_what),
        ("peak RSS", peak, f"current {current:.0f} MB"),
    ]
    print(f"bundle: {source}; torch threads: {torch.get_num_threads()}")
    print(f"{'metric':<16}{'value':>10}  {'unit':<4}{'target':>9}  ok   note")
    for name, value, note in rows:
        unit, target = TARGETS.get(name, ("ms", None))
        verdict = "" if target is None else ("yes" if value <= target else "NO")
        target_text = "" if target is None else f"<= {target:g}"
        print(f"{name:<16}{value:>10.3f}  {unit:<4}{target_text:>9}  {verdict:<4} {note}")


if __name__ == "__main__":
    main()
