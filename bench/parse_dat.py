"""The ``::`` parser against pandas' python engine on a synthetic ML-1M-sized ratings.dat.

    python bench/parse_dat.py [--lines 1000209]

Generates a file in the ML-1M ratings format (UserID::MovieID::Rating::Timestamp), parses it
both ways, checks the frames are identical and prints a table of the times.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from contextflix.data.movielens import RATING_COLUMNS, read_ratings_dat


def write_ratings_dat(path: Path, n_lines: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "user": rng.integers(1, 6041, n_lines),
            "item": rng.integers(1, 3953, n_lines),
            "rating": rng.integers(1, 6, n_lines),
            "timestamp": rng.integers(956_703_932, 1_046_454_590, n_lines),
        }
    )
    lines = frame.astype(str).agg("::".join, axis=1)
    path.write_text("\n".join(lines) + "\n")


def best_of(repeats: int, fn) -> tuple[float, pd.DataFrame]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_209)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ratings.dat"
        write_ratings_dat(path, args.lines)
        fast_s, fast = best_of(3, lambda: read_ratings_dat(path))
        slow_s, slow = best_of(
            1, lambda: pd.read_csv(path, sep="::", engine="python", names=RATING_COLUMNS)
        )
    identical = fast.equals(slow.astype(fast.dtypes.to_dict()))
    print(f"ratings.dat, {args.lines:,} lines ({path.name} in the ML-1M format)")
    print("| parser | seconds | lines/s |\n|---|---:|---:|")
    print(
        f"| contextflix read_ratings_dat (C engine) | {fast_s:.3f} | {args.lines / fast_s:,.0f} |"
    )
    print(f"| pd.read_csv(sep='::', engine='python') | {slow_s:.3f} | {args.lines / slow_s:,.0f} |")
    print(f"speed-up: {slow_s / fast_s:.1f}x; identical frames: {identical}")
    if not identical:
        raise SystemExit("the two parsers disagree")


if __name__ == "__main__":
    main()
