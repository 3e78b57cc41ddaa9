"""A release made ready for training: dense ids, context per rating, both protocol splits.

``load_dataset`` is the one entry point models, evaluation and serving use. Its result is
cached as parquet under a key made of the raw files' SHA-256, the context parameters and the
split parameters, so a changed file or parameter can never pick up a stale cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from contextflix.data.context import (
    DEVICES,
    TIMES_OF_DAY,
    DeviceSimulation,
    local_hours,
    sessions,
    simulate_devices,
    time_of_day,
    user_timezones,
)
from contextflix.data.fetch import cache_dir, dataset_path
from contextflix.data.movielens import MovieLens, load_movielens
from contextflix.data.releases import get_release
from contextflix.data.splits import (
    R_SEED,
    R_TRAIN_FRACTION,
    RatingSplit,
    SequenceSplit,
    rating_split,
    sequence_split,
)

CACHE_FORMAT = 1


@dataclass(frozen=True)
class Dataset:
    """Ratings with context and splits, plus the id maps every model shares.

    ratings: the file's rows in file order, with user_idx and item_idx (0-based dense ids),
    local_hour, time_of_day (index into TIMES_OF_DAY), session, device (index into DEVICES,
    simulated). movies: one row per item_idx (every movie of the release, rated or not), with
    n_ratings. users: one row per user_idx (users with ratings), with their time zone.
    """

    name: str
    ratings: pd.DataFrame
    movies: pd.DataFrame
    users: pd.DataFrame
    r: RatingSplit
    s: SequenceSplit
    device_simulation: DeviceSimulation = field(default_factory=DeviceSimulation)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.movies)

    @property
    def rating_range(self) -> tuple[float, float]:
        values = self.ratings["rating"]
        return float(values.min()), float(values.max())

    @property
    def candidates(self) -> np.ndarray:
        """The ranking catalogue of protocol S: items with at least one rating anywhere."""
        return self.movies["n_ratings"].to_numpy() > 0

    def served_interactions(self) -> pd.DataFrame:
        """What serving may know of the data-set users: protocol S's train and validation rows.

        The test targets stay out, so serving a data-set user with the target's context ranks
        exactly what protocol S evaluated. A bundle stores (or rebuilds) this frame.
        """
        rows = np.concatenate([self.s.train, self.s.valid])
        return self.ratings.iloc[rows].reset_index(drop=True)

    def genre_names(self) -> list[str]:
        return sorted({g for genres in self.movies["genres"] for g in genres})


def _build(release: MovieLens, device_simulation: DeviceSimulation) -> tuple[pd.DataFrame, ...]:
    ratings = release.ratings.copy()
    movies = release.movies.sort_values("item_id", ignore_index=True)
    missing_items = np.setdiff1d(ratings["item_id"].unique(), movies["item_id"].to_numpy())
    if len(missing_items):
        raise ValueError(
            f"{release.name}: {len(missing_items)} rated movie ids are not in the movie list "
            f"(first: {missing_items[:5].tolist()})"
        )
    user_ids = np.unique(ratings["user_id"].to_numpy())
    users = pd.DataFrame({"user_id": user_ids}).merge(release.users, on="user_id", how="left")
    users["timezone"] = user_timezones(users).to_numpy()

    uid, ts = ratings["user_id"].to_numpy(), ratings["timestamp"].to_numpy()
    ratings["user_idx"] = np.searchsorted(user_ids, uid).astype(np.int32)
    ratings["item_idx"] = np.searchsorted(
        movies["item_id"].to_numpy(), ratings["item_id"].to_numpy()
    ).astype(np.int32)
    zones = users["timezone"].to_numpy()[ratings["user_idx"].to_numpy()]
    ratings["local_hour"] = local_hours(ts, zones)
    ratings["time_of_day"] = time_of_day(ratings["local_hour"].to_numpy())
    ratings["session"] = sessions(uid, ts)
    item_genres = movies["genres"].iloc[ratings["item_idx"].to_numpy()].reset_index(drop=True)
    ratings["device"] = simulate_devices(
        uid, ratings["session"].to_numpy(), ts, item_genres, device_simulation
    )
    movies["n_ratings"] = np.bincount(ratings["item_idx"], minlength=len(movies)).astype(np.int64)
    users["n_ratings"] = np.bincount(ratings["user_idx"], minlength=len(users)).astype(np.int64)
    return ratings, movies, users


def file_digests(folder: Path, names: list[str]) -> dict[str, str]:
    """SHA-256 of each named file that exists, for cache keys."""
    digests = {}
    for name in names:
        path = folder / name
        if path.exists():
            with path.open("rb") as handle:
                digests[name] = hashlib.file_digest(handle, "sha256").hexdigest()
    return digests


def _cache_key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    device_simulation: DeviceSimulation | None = None,
    r_seed: int = R_SEED,
    r_train_fraction: float = R_TRAIN_FRACTION,
    use_cache: bool = True,
) -> Dataset:
    """Load (downloading where needed), verify, add context and split a MovieLens release."""
    device_simulation = device_simulation or DeviceSimulation()
    release = get_release(name)
    folder = dataset_path(name, data_dir)
    key = _cache_key(
        {
            "format": CACHE_FORMAT,
            "dataset": name,
            "files": file_digests(folder, sorted(release.files)),
            "device": device_simulation.as_dict(),
            "r": [r_seed, r_train_fraction],
        }
    )
    cached = cache_dir() / "prepared" / name / key
    if use_cache and (cached / "done").exists():
        return _read_cache(cached, name, device_simulation)
    loaded = load_movielens(folder, name, release.format)
    ratings, movies, users = _build(loaded, device_simulation)
    r = rating_split(len(ratings), r_seed, r_train_fraction)
    s = sequence_split(ratings["user_id"].to_numpy(), ratings["timestamp"].to_numpy())
    dataset = Dataset(name, ratings, movies, users, r, s, device_simulation)
    if use_cache:
        _write_cache(dataset, cached)
    return dataset


def _write_cache(dataset: Dataset, target: Path) -> None:
    """Write into a temporary folder and rename, so a crash never leaves half a cache."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".staging-"))
    except OSError:
        return  # a read-only cache only costs speed
    try:
        dataset.ratings.to_parquet(staging / "ratings.parquet", index=False)
        dataset.movies.to_parquet(staging / "movies.parquet", index=False)
        dataset.users.to_parquet(staging / "users.parquet", index=False)
        pd.DataFrame({"row": dataset.r.train}).to_parquet(staging / "R-train.parquet", index=False)
        pd.DataFrame({"row": dataset.r.test}).to_parquet(staging / "R-test.parquet", index=False)
        for part in ("train", "valid", "test"):
            rows = getattr(dataset.s, part)
            pd.DataFrame({"row": rows}).to_parquet(staging / f"S-{part}.parquet", index=False)
        (staging / "done").write_text("ok\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _read_cache(folder: Path, name: str, device_simulation: DeviceSimulation) -> Dataset:
    def rows(stem: str) -> np.ndarray:
        return pd.read_parquet(folder / f"{stem}.parquet")["row"].to_numpy()

    movies = pd.read_parquet(folder / "movies.parquet")
    movies["genres"] = movies["genres"].map(list)
    if "tags" in movies.columns:
        movies["tags"] = movies["tags"].map(list)
    return Dataset(
        name=name,
        ratings=pd.read_parquet(folder / "ratings.parquet"),
        movies=movies,
        users=pd.read_parquet(folder / "users.parquet"),
        r=RatingSplit(train=rows("R-train"), test=rows("R-test")),
        s=SequenceSplit(train=rows("S-train"), valid=rows("S-valid"), test=rows("S-test")),
        device_simulation=device_simulation,
    )


def summary(dataset: Dataset) -> dict:
    """The numbers ``prepare`` prints: sizes, splits, zones and the context mix."""
    ratings = dataset.ratings
    tod = np.bincount(ratings["time_of_day"], minlength=len(TIMES_OF_DAY)) / len(ratings)
    dev = np.bincount(ratings["device"], minlength=len(DEVICES)) / len(ratings)
    return {
        "dataset": dataset.name,
        "users": dataset.n_users,
        "items": dataset.n_items,
        "rated_items": int(dataset.candidates.sum()),
        "ratings": len(ratings),
        "rating_range": list(dataset.rating_range),
        "split_R": {"train": len(dataset.r.train), "test": len(dataset.r.test)},
        "split_S": {
            "train": len(dataset.s.train),
            "valid": len(dataset.s.valid),
            "test": len(dataset.s.test),
        },
        "timezones": dataset.users["timezone"].value_counts().to_dict(),
        "time_of_day": dict(zip(TIMES_OF_DAY, np.round(tod, 4).tolist(), strict=True)),
        "device_simulated": dict(zip(DEVICES, np.round(dev, 4).tolist(), strict=True)),
        "device_simulation": dataset.device_simulation.as_dict(),
    }
