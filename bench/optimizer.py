"""Cost of one optimiser step on the matrix factorisation's tables, against the data set's size.

    python bench/optimizer.py [--like ml-1m ml-25m ml-32m] [--factors 64] [--repeats 5]

MF's Adam (``training/collaborative.py``) updates every row of the user and movie tables at
each step, whatever the batch touched, so its step grows with users + movies. This times
``torch.optim.Adam``'s default (foreach) implementation, the single-tensor loop and the fused
kernel the module uses, on tables of each release's shape (users and movies of
``contextflix.data.synthetic``'s LIKE). One thread. The fused kernel's last bits differ from the
default's; ml-100k's pipeline figures are the same with either to the 4th decimal.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from contextflix.data.synthetic import LIKE  # noqa: E402

IMPLEMENTATIONS = {
    "default (foreach)": {},
    "single-tensor": {"foreach": False},
    "fused": {"fused": True},
}


def milliseconds(n_users: int, n_items: int, factors: int, options: dict, repeats: int) -> float:
    shapes = [(n, width) for n in (n_users, n_items) for width in (factors, 1)]
    parameters = [torch.nn.Parameter(0.1 * torch.randn(shape)) for shape in shapes]
    for parameter in parameters:
        parameter.grad = torch.randn_like(parameter)
    optimiser = torch.optim.Adam(parameters, lr=0.005, **options)
    times = []
    for _ in range(repeats + 1):  # the first step creates the moments
        start = time.perf_counter()
        optimiser.step()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--like", nargs="+", default=["ml-1m", "ml-25m", "ml-32m"])
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    shapes = [(LIKE[name].users, LIKE[name].items) for name in args.like]
    print(f"Adam step on MF tables ({args.factors} factors + biases), 1 thread, ms")
    print("| implementation | " + " | ".join(
        f"{name} ({u:,} users, {i:,} movies)" for name, (u, i) in zip(args.like, shapes, strict=True)
    ) + " |")  # fmt: skip
    print("|---|" + "---:|" * len(shapes))
    for label, options in IMPLEMENTATIONS.items():
        row = [milliseconds(u, i, args.factors, options, args.repeats) for u, i in shapes]
        print(f"| {label} | " + " | ".join(f"{ms:.1f}" for ms in row) + " |")


if __name__ == "__main__":
    main()
