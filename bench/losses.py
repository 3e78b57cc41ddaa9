"""Cost of one training step's loss (forward + backward) against the catalogue size.

    python bench/losses.py [--rows 2600] [--dim 64] [--catalogues 1682 9742 59047] [--repeats 5]

``rows`` predictions (an ml-100k batch of 64 windows of 50 holds about 2,600) of ``dim``
hidden units are scored against catalogues of the given sizes (ml-100k, ml-latest-small,
ML-25M) with each loss of ``training.losses`` as ``training.sequential`` calls it: the full
softmax, the log-Q sampled softmax (1,024 negatives), gBCE (256 negatives) and SCE (twice the
square root of ``rows`` buckets of 256 items). One thread, random inputs: this measures cost,
not quality (bench/paired.py measures quality). Prints the median milliseconds per step.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from training.losses import (  # noqa: E402
    gbce,
    popularity_log_q,
    sample_negatives,
    sampled_cross_entropy,
    scalable_cross_entropy,
)


def losses(rows: int, n_items: int) -> dict[str, Callable]:
    """Each loss as a function of (hidden, table, targets)."""
    buckets = int(2 * math.sqrt(rows))
    uniform = popularity_log_q(torch.arange(n_items).numpy(), n_items, power=0.0)

    def sampled(hidden, table, targets, k=1024, loss="sampled"):
        negatives = sample_negatives(uniform, k)
        positive = (hidden * table[targets]).sum(-1)
        negative = hidden @ table[negatives].T
        if loss == "gbce":
            return gbce(positive, negative, targets, negatives, n_items)
        return sampled_cross_entropy(positive, negative, targets, negatives, uniform)

    return {
        "full softmax": lambda h, t, y: F.cross_entropy(h @ t.T, y),
        "sampled 1024": sampled,
        "gBCE 256": lambda h, t, y: sampled(h, t, y, 256, "gbce"),
        f"SCE {buckets}x256": lambda h, t, y: scalable_cross_entropy(
            h, t, y, buckets, buckets, 256
        ),
    }


def milliseconds(step: Callable, hidden, table, targets, repeats: int) -> float:
    times = []
    for _ in range(repeats + 1):  # the first call warms up
        hidden.grad = table.grad = None
        start = time.perf_counter()
        step(hidden, table, targets).backward()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2600)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--catalogues", type=int, nargs="+", default=[1682, 9742, 59047])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    hidden = torch.randn(args.rows, args.dim, requires_grad=True)
    results: dict[str, list[float]] = {}
    for n_items in args.catalogues:
        table = (0.1 * torch.randn(n_items, args.dim)).requires_grad_()
        targets = torch.randint(0, n_items, (args.rows,))
        for name, step in losses(args.rows, n_items).items():
            ms = milliseconds(step, hidden, table, targets, args.repeats)
            results.setdefault(name, []).append(ms)
    print(f"{args.rows} predictions x {args.dim} units, 1 thread: ms per loss forward + backward")
    print("| loss | " + " | ".join(f"{n:,} items" for n in args.catalogues) + " |")
    print("|---|" + "---:|" * len(args.catalogues))
    for name, row in results.items():
        print(f"| {name} | " + " | ".join(f"{ms:.1f}" for ms in row) + " |")


if __name__ == "__main__":
    main()
