"""Is the synthetic popularity shaped like the real releases'? Tail and what the catalogue tells.

    CONTEXTFLIX_DATA_DIR=../shared/data python bench/synthetic_shape.py [--datasets ...]

For each data set (real ones where present, SYNTHETIC ones generated on first use) prints the
ratings of the most rated movie over the median movie's, the share of ratings of the top 1%
of movies, and R^2 of log(ratings per movie) by least squares on the features the content
model reads (genres, year, decades; ``contextflix.models.content.item_features``): how much
of a movie's popularity its catalogue entry tells. No model is trained.
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
from contextflix.models.content import item_features  # noqa: E402


def shape(name: str) -> str:
    data = load_dataset(name)
    counts = np.bincount(data.ratings["item_idx"], minlength=data.n_items)
    rated = counts > 0
    top = np.sort(counts)[::-1][: max(1, data.n_items // 100)]
    features, _ = item_features(data.movies, n_tags=0)
    x = np.c_[features.numpy(), np.ones(data.n_items)][rated]
    y = np.log(counts[rated])
    residual = y - x @ np.linalg.lstsq(x, y, rcond=None)[0]
    return (
        f"| {name} | {len(data.ratings):,} | {counts.max() / np.median(counts[rated]):.1f} | "
        f"{top.sum() / counts.sum():.3f} | {1 - residual.var() / y.var():.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets", nargs="+", default=["ml-100k", "ml-latest-small", "synthetic-ml-1m"]
    )
    args = parser.parse_args()
    print("| data set | ratings | most rated / median | top 1% share | R^2 of log count |")
    print("|---|---:|---:|---:|---:|")
    for name in args.datasets:
        try:
            print(shape(name))
        except DataError as error:
            print(f"| {name} | not available: {error} | | | |")


if __name__ == "__main__":
    main()
