"""The two evaluation protocols of docs/protocols.md, as row indices into the ratings in file order.

Protocol R: a seeded permutation, first 90% train, rest test (rating prediction, RMSE).
Protocol S: per user, by time, last rating = test, second-last = validation (top-N ranking).
Rows, not copies, so a split is cheap to cache and can always be traced back to the file line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

R_SEED = 42
R_TRAIN_FRACTION = 0.9


@dataclass(frozen=True)
class RatingSplit:
    """Protocol R: train and test rows, both in permutation order."""

    train: np.ndarray
    test: np.ndarray


@dataclass(frozen=True)
class SequenceSplit:
    """Protocol S: train rows ordered by user then time; valid and test rows by user."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray


def rating_split(
    n_ratings: int, seed: int = R_SEED, train_fraction: float = R_TRAIN_FRACTION
) -> RatingSplit:
    perm = np.random.default_rng(seed).permutation(n_ratings)
    cut = math.floor(train_fraction * n_ratings)
    return RatingSplit(train=perm[:cut], test=perm[cut:])


def chronological_order(user_ids: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """Rows ordered by user, then time; ties keep file order (a stable sort).

    One stable sort of a combined (user, time) int64 key where it fits, which is several
    times faster than a three-key lexsort at tens of millions of ratings.
    """
    users = np.asarray(user_ids, dtype=np.int64)
    times = np.asarray(timestamps, dtype=np.int64)
    if len(users) == 0:
        return np.arange(0)
    span = int(times.max()) - int(times.min()) + 1
    if users.min() < 0 or int(users.max()) >= (1 << 62) // span:
        return np.lexsort((np.arange(len(users)), times, users))
    key = users * span  # in place from here: at 32M rows each temporary is 256 MB to fill
    key += times
    key -= times.min()
    return np.argsort(key, kind="stable")


def sequence_split(user_ids: np.ndarray, timestamps: np.ndarray) -> SequenceSplit:
    """Leave the last two ratings of each user out by time.

    Users with fewer than three ratings cannot give a train history, a validation and a test
    target, so all their rows stay in train (none of the MovieLens releases has such users).
    """
    order = chronological_order(user_ids, timestamps)
    users = user_ids[order]
    last = np.r_[users[1:] != users[:-1], True]
    counts = np.diff(np.r_[0, np.flatnonzero(last) + 1])
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    position_from_end = np.repeat(starts + counts, counts) - 1 - np.arange(len(order))
    eligible = np.repeat(counts >= 3, counts)
    test = order[eligible & (position_from_end == 0)]
    valid = order[eligible & (position_from_end == 1)]
    train = order[~eligible | (position_from_end >= 2)]
    return SequenceSplit(train=train, valid=valid, test=test)


def write_split_tsv(ratings: pd.DataFrame, rows: np.ndarray, path: Path) -> None:
    """Write rows in the peers' format: header ``user item rating timestamp row``, LF endings.

    Whole-number ratings are written without a decimal part (as in u.data), others as-is.
    """
    part = ratings.iloc[rows]
    rating = part["rating"].to_numpy()
    whole = np.all(rating == np.round(rating))
    frame = pd.DataFrame(
        {
            "user": part["user_id"].to_numpy(),
            "item": part["item_id"].to_numpy(),
            "rating": rating.astype(np.int64) if whole else rating.astype(np.float64),
            "timestamp": part["timestamp"].to_numpy(),
            "row": rows,
        }
    )
    frame.to_csv(path, sep="\t", index=False, lineterminator="\n")
