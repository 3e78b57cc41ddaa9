"""Is the synthetic taste shaped like the real releases'? What genres, time and co-views tell.

    CONTEXTFLIX_DATA_DIR=../shared/data python bench/synthetic_taste.py [--datasets ...]

For each data set (real ones where present, SYNTHETIC ones generated on first use), on
protocol S, without training a model:

- time lift: the standard deviation of log(P(genre | time of day) / P(genre)) over the
  genres with at least 2% of the ratings (a rating split evenly over its movie's genres);
  how much the time of day changes what is watched;
- popularity: validation / test NDCG@10 of ranking by training counts;
- genre history: ranking by popularity times the mean, over a movie's genres, of the user's
  smoothed share of that genre over the crowd's (what genre taste alone adds), over popularity;
- EASE (Steck, WWW 2019; closed form, its L2 weight chosen on validation among 100, 300 and
  1,000): what who-watched-what adds, over popularity.

On the real releases genres add little and co-views much; matrix factorisation beats
popularity by as much as EASE does there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from contextflix.data import load_dataset  # noqa: E402
from contextflix.data.errors import DataError  # noqa: E402


def genre_shares(data) -> np.ndarray:
    """[items, genres]: each movie's genres, weights summing to 1 (0 for a movie without)."""
    names = sorted({g for gs in data.movies["genres"] for g in gs})
    names = [g for g in names if g not in ("(no genres listed)", "unknown")]
    column = {g: j for j, g in enumerate(names)}
    item_idx = dict(zip(data.ratings["item_id"], data.ratings["item_idx"], strict=False))
    shares = np.zeros((data.n_items, len(names)))
    for item_id, genres in zip(data.movies["item_id"], data.movies["genres"], strict=True):
        kept = [column[g] for g in genres if g in column]
        if item_id in item_idx and kept:
            shares[item_idx[item_id], kept] = 1.0 / len(kept)
    return shares


def time_lift(data, shares: np.ndarray) -> float:
    items, tod = data.ratings["item_idx"].to_numpy(), data.ratings["time_of_day"].to_numpy()
    table = np.stack([shares[items[tod == t]].sum(axis=0) for t in range(4)], axis=1)
    table = table[table.sum(axis=1) >= 0.02 * table.sum()]
    by_time = table / table.sum(axis=0)
    overall = table.sum(axis=1, keepdims=True) / table.sum()
    return float(np.log(by_time / overall).std())


def ndcg_at_10(scores: np.ndarray, seen: np.ndarray, candidates: np.ndarray, target) -> float:
    scores = np.where(seen | ~candidates, -np.inf, scores)
    rank = (scores >= scores[np.arange(len(target)), target][:, None]).sum(axis=1)
    return float(np.where(rank <= 10, 1 / np.log2(rank + 1), 0.0).mean())


def rankers(data, shares: np.ndarray, part: str, weights: tuple[float, ...]) -> dict[str, float]:
    """NDCG@10 of popularity, genre history and EASE (for each L2 weight) on one part."""
    users, items = data.ratings["user_idx"].to_numpy(), data.ratings["item_idx"].to_numpy()
    history = data.s.train if part == "val" else np.concatenate([data.s.train, data.s.valid])
    target = data.s.valid if part == "val" else data.s.test
    x = np.zeros((data.n_users, data.n_items), dtype=np.float32)
    x[users[history], items[history]] = 1.0
    u, t = users[target], items[target]
    seen = x[u] > 0
    popularity = x.sum(axis=0)
    profile = x @ shares
    crowd = profile.sum(axis=0) / profile.sum()
    share = (profile + 5 * crowd) / (profile.sum(axis=1, keepdims=True) + 5)
    scores = {
        "popularity": np.tile(popularity, (len(u), 1)),
        "genre history": ((share / crowd)[u] @ shares.T) * popularity,
    }
    gram = (x.T @ x).astype(np.float64)
    for weight in weights:
        inverse = np.linalg.inv(gram + weight * np.eye(data.n_items))
        b = -inverse / np.diag(inverse)
        np.fill_diagonal(b, 0.0)
        scores[f"ease {weight:g}"] = x[u] @ b
    return {name: ndcg_at_10(s, seen, data.candidates, t) for name, s in scores.items()}


def taste(name: str) -> str:
    data = load_dataset(name)
    shares = genre_shares(data)
    val = rankers(data, shares, "val", (100.0, 300.0, 1_000.0))
    ease = max((k for k in val if k.startswith("ease")), key=val.get)
    test = rankers(data, shares, "test", (float(ease.split()[1]),))
    pop_val, pop_test = val["popularity"], test["popularity"]
    return (
        f"| {name} | {time_lift(data, shares):.3f} | {pop_val:.4f} / {pop_test:.4f} | "
        f"{val['genre history'] / pop_val:.2f} / {test['genre history'] / pop_test:.2f} | "
        f"{val[ease] / pop_val:.2f} / {test[ease] / pop_test:.2f} ({ease}) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets", nargs="+", default=["ml-100k", "ml-latest-small", "synthetic-ml-1m"]
    )
    args = parser.parse_args()
    print(
        "| data set | time lift | popularity NDCG@10 val / test | genre history / popularity"
        " val / test | EASE / popularity val / test |"
    )
    print("|---|---:|---:|---:|---:|")
    for name in args.datasets:
        try:
            print(taste(name))
        except DataError as error:
            print(f"| {name} | not available: {error} | | | |")


if __name__ == "__main__":
    main()
