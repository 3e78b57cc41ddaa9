"""SYNTHETIC MovieLens-shaped data at the real releases' sizes, with a known best ranking.

``python -m contextflix.data synthesize --like ml-1m [--seed N] [--scale F]`` writes a folder
``synthetic-ml-1m`` (``synthetic-ml-1m-x0.2`` with ``--scale 0.2``) in the release's own file
format (ml-1m: ``::``-separated ``ratings.dat``, ``movies.dat``, ``users.dat``; ml-25m and
ml-32m: ``ratings.csv``, ``movies.csv``), so every loader, command and model runs on it
unchanged; a data set named ``synthetic-...`` is generated on first use like a release is
downloaded. Nothing in it is MovieLens data: titles read "Synthetic movie N", the folder holds
a README saying SYNTHETIC, and the name always starts with ``synthetic-``.
One file (past 400 lines): the generating model and its oracle read as one story.

The generating model (every draw from one seeded ``numpy`` generator):

- sizes: the release's users, items and ratings (see ``scaled``); per-user activity is 20 plus
  a log-normal (heavy tail, as in MovieLens), item popularity log-normal;
- taste: each item has one of the 18 MovieLens genres as its main genre (plus 0-2 extra
  genres), one of ``clusters_per_genre`` taste clusters of that genre (a kind of film no
  catalogue field names) and a release year; each user a Dirichlet mix over genres and, in
  each genre, one over its clusters, both blended with the crowd's; each genre an affinity to
  each time of day. Calibrated on the real releases (``bench/synthetic_taste.py``): there a
  user's genres tell little beyond popularity (ranking by genre history: 1.04-1.20x
  popularity's test NDCG@10) but who watched what tells much (EASE 1.65-2.17x; matrix
  factorisation 1.7x on ml-100k), and the time of day barely moves genres (std of the log
  lift 0.046). With taste in the 18 genres alone and a time-of-day tilt of 0.5 (generating
  model 2), EASE reached 1.78x here but matrix factorisation only popularity's level, and the
  time lift was 0.26 (which made popularity by time of day the baseline to beat). With 8
  clusters per genre and a tilt of 0.08: genre history 1.22x, EASE 2.34x, time lift 0.046,
  popularity's NDCG@10 0.0187 (ml-latest-small's 0.0189), matrix factorisation 1.40x;
- popularity: log-normal, and, as in the real releases, partly predictable from what a
  catalogue says about a movie: a share ``popularity_from_features`` of its log variance comes
  from the movie's genres (a popularity effect per genre) and its recency (least squares of
  log rating counts on the genre, year and decade features the content model reads explains
  0.19 of it on ml-100k and 0.15 on ml-latest-small). Without it no content model can beat
  popularity here: its features would say nothing about which movie of a genre people pick;
- time: sessions (a new one with probability ``1 - session_stay`` per rating) start on days
  apart at an hour drawn from a day-night rhythm (evening peak, few ratings at 3-6 am), in the
  user's own time zone (from the zip code of ``users.dat``; America/Chicago for the CSV
  formats, which have no zip codes), ratings within a session 20 s to a few minutes apart;
- choice: with probability ``follow`` the next item is the successor of the previous one in
  its cluster's fixed "series" order (sequence structure); otherwise a genre from the user's
  mix tilted by the time of day, a cluster of it from the user's mix, then an item of the
  cluster by popularity; repeats are dropped;
- rating: ``3.6 + user bias + item bias + taste of the user for the cluster + noise``, rounded
  (half stars for the CSV formats) and clipped.

The oracle ranks every candidate by its probability under this model given the user's
history and the target's time of day, and scores protocol S's test targets with it
(``oracle.json``): the NDCG@10 no model can expect to beat (it ignores only the dropped
repeats), so a model's figure reads as a fraction of it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from contextflix.data.releases import Release

SYNTHETIC_PREFIX = "synthetic-"
GENRES = (
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
)  # fmt: skip
# Share of items per genre cluster (MovieLens-like: many dramas and comedies, few westerns).
GENRE_SHARE = np.array([8, 4, 2, 3, 14, 4, 2, 18, 2, 1, 5, 2, 2, 7, 4, 8, 2, 1], dtype=float)
# Zip codes of four US time zones (users.dat), so local time follows the user's zone.
ZIPS = ("10001", "60601", "80202", "94103")
ZIP_UTC_OFFSET = (-5, -6, -7, -8)
# Relative number of session starts by local hour 0..23: evening peak, quiet small hours.
HOURLY_RHYTHM = np.array(
    [3, 2, 1, 0.5, 0.5, 0.5, 1, 2, 3, 4, 4, 4, 5, 5, 5, 5, 6, 7, 9, 11, 12, 11, 8, 5]
)


@dataclass(frozen=True)
class Shape:
    """What a synthetic release copies from the real one."""

    users: int
    items: int
    ratings: int
    format: str  # "dat" (ml-1m) or "csv"
    start: int  # first timestamp (Unix seconds), that of the real release
    last_year: int  # movies are released before this year


LIKE = {
    "ml-1m": Shape(6_040, 3_706, 1_000_209, "dat", 956_703_932, 2000),
    "ml-25m": Shape(162_541, 59_047, 25_000_095, "csv", 789_652_009, 2020),
    "ml-32m": Shape(200_948, 87_585, 32_000_204, "csv", 789_652_009, 2020),
}
FILES = {"dat": ("ratings.dat", "movies.dat", "users.dat"), "csv": ("ratings.csv", "movies.csv")}
# Written beside the files; a copy made by an earlier generator lacks it, so it is generated
# again on first use instead of being read as if it were this generator's data.
GENERATOR_MARK = "GENERATOR-3.txt"


@dataclass(frozen=True)
class Parameters:
    """The knobs of the generating model (defaults give MovieLens-like difficulty)."""

    taste_concentration: float = 0.3  # Dirichlet alpha of a user's genre mix (lower = pickier)
    taste_weight: float = 0.7  # share of a user's genre choices from their taste, not the crowd
    clusters_per_genre: int = 8  # taste clusters within each genre
    cluster_concentration: float = 0.1  # the same, for the user's mix of a genre's clusters
    cluster_taste_weight: float = 0.7
    time_of_day_tilt: float = 0.08  # std of a genre's log-affinity to each time of day
    follow: float = 0.3  # probability that the next item is the previous one's successor
    session_stay: float = 0.85  # probability that the next rating is in the same session
    # log-normal sigma of item popularity: with 1.8 the tail of synthetic-ml-1m is ml-100k's
    # (bench/synthetic_shape.py: most rated / median movie 20.4, top 1% share 0.073; ml-100k
    # 21.6 and 0.073, ml-latest-small 109.7 and 0.157)
    popularity_sigma: float = 1.8
    popularity_from_features: float = 0.18  # share of log-popularity variance from genres, year
    activity_sigma: float = 1.1  # log-normal sigma of per-user activity above the minimum
    min_per_user: int = 20


def synthetic_name(like: str, scale: float = 1.0) -> str:
    """``synthetic-ml-1m``, or ``synthetic-ml-25m-x0.2`` for a scaled copy."""
    if like not in LIKE:
        raise ValueError(f"unknown release {like!r} to imitate; use one of {sorted(LIKE)}")
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], not {scale}")
    return SYNTHETIC_PREFIX + like + ("" if scale == 1 else f"-x{scale:g}")


def parse_name(name: str) -> tuple[str, float] | None:
    """(release imitated, scale) of a synthetic data set name; None for any other name."""
    match = re.fullmatch(r"synthetic-(ml-[0-9a-z]+?)(?:-x([0-9.]+))?", name)
    if match is None or match.group(1) not in LIKE:
        return None
    scale = float(match.group(2) or 1)
    return (match.group(1), scale) if 0 < scale <= 1 else None


def oracle_figures(name: str) -> dict | None:
    """``oracle_test`` of a SYNTHETIC data set's oracle.json where it was generated; else None."""
    if parse_name(name) is None:
        return None
    from contextflix.data.errors import DataError
    from contextflix.data.fetch import dataset_path

    try:
        path = dataset_path(name, download=False) / "oracle.json"
    except DataError:
        return None
    return json.loads(path.read_text())["oracle_test"] if path.exists() else None


def synthetic_release(name: str) -> Release | None:
    """The Release describing a synthetic data set (no URL, no digests), or None."""
    parsed = parse_name(name)
    if parsed is None:
        return None
    fmt = LIKE[parsed[0]].format
    return Release(
        name,
        url="",
        zip_sha256=None,
        folder=name,
        files=dict.fromkeys((*FILES[fmt], GENERATOR_MARK)),
        format=fmt,
    )


def scaled(shape: Shape, scale: float) -> Shape:
    """A smaller copy: users and ratings times ``scale``, items times its square root.

    Users keep their activity (ratings per user), and the catalogue shrinks more slowly, as
    it does between the real releases, so a scaled copy stays sparse.
    """
    users = max(50, round(shape.users * scale))
    items = max(50, round(shape.items * math.sqrt(scale)))
    ratings = min(round(shape.ratings * scale), users * max(20, items // 2))
    return Shape(users, items, ratings, shape.format, shape.start, shape.last_year)


def _activity(rng: np.random.Generator, shape: Shape, p: Parameters) -> np.ndarray:
    """Ratings per user: the minimum plus a log-normal tail, summing exactly to the total."""
    extra = rng.lognormal(0.0, p.activity_sigma, shape.users)
    budget = shape.ratings - p.min_per_user * shape.users
    if budget < 0:
        raise ValueError(f"{shape.ratings} ratings cannot give {shape.users} users 20 each")
    cap = max(p.min_per_user, shape.items // 2) - p.min_per_user
    counts = np.minimum(np.floor(extra / extra.sum() * budget), cap).astype(np.int64)
    while (short := budget - counts.sum()) > 0:  # hand out what rounding and the cap left
        room = np.flatnonzero(counts < cap)
        counts[rng.choice(room, min(short, len(room)), replace=False)] += 1
    return counts + p.min_per_user


class _World:
    """The latent structure: clusters, popularity, series order, tastes and affinities."""

    def __init__(self, rng: np.random.Generator, shape: Shape, p: Parameters) -> None:
        k, m = len(GENRES), p.clusters_per_genre
        self.genre = rng.choice(k, shape.items, p=GENRE_SHARE / GENRE_SHARE.sum())
        self.cluster = self.genre * m + rng.integers(0, m, shape.items)  # a taste within it
        self.n_clusters = k * m
        extra = rng.integers(0, k, (shape.items, 2))
        n_extra = rng.choice(3, shape.items, p=[0.5, 0.35, 0.15])
        self.genres = np.zeros((shape.items, k), dtype=bool)  # main genre first, then extras
        self.genres[np.arange(shape.items), self.genre] = True
        for j in range(2):
            chosen = n_extra > j
            self.genres[np.flatnonzero(chosen), extra[chosen, j]] = True
        self.years = rng.integers(1920, shape.last_year, shape.items)
        self.popularity = np.exp(self._log_popularity(rng, p))
        # items sorted by cluster, in a random "series" order within each cluster
        self.series = np.lexsort((rng.random(shape.items), self.cluster))
        self.position = np.empty(shape.items, dtype=np.int64)
        self.position[self.series] = np.arange(shape.items)
        sizes = np.bincount(self.cluster, minlength=self.n_clusters)
        self.cluster_start = np.r_[0, np.cumsum(sizes)[:-1]]
        self.cluster_size = sizes
        mass = np.bincount(self.cluster, weights=self.popularity, minlength=self.n_clusters)
        self.within = self.popularity / mass[self.cluster]  # P(item | cluster)
        crowd = (mass / mass.sum()).reshape(k, m)  # P(cluster), by genre
        genre_crowd = crowd.sum(axis=1)
        genre_mix = (1 - p.taste_weight) * genre_crowd + p.taste_weight * _dirichlet(
            rng, p.taste_concentration, genre_crowd > 0, (shape.users, k)
        )
        in_genre = (1 - p.cluster_taste_weight) * crowd / np.maximum(
            genre_crowd[:, None], 1e-300
        ) + p.cluster_taste_weight * _dirichlet(
            rng, p.cluster_concentration, crowd > 0, (shape.users, k, m)
        )
        self.mix = (genre_mix[:, :, None] * in_genre).reshape(shape.users, -1)  # [users, clusters]
        # a time of day favours genres, each genre's clusters alike: [time of day, clusters]
        self.tilt = np.exp(rng.normal(0.0, p.time_of_day_tilt, (4, k))).repeat(m, axis=1)
        self.user_bias = rng.normal(0.0, 0.35, shape.users)
        self.item_bias = rng.normal(0.0, 0.35, shape.items) + 0.1 * np.log(self.within)
        self.item_bias -= self.item_bias.mean()

    def _log_popularity(self, rng: np.random.Generator, p: Parameters) -> np.ndarray:
        """Per-genre effects plus a recency slope (share ``popularity_from_features``), plus noise."""
        known = self.genres @ rng.normal(0.0, 1.0, self.genres.shape[1])
        known = known + 3.0 * (self.years - self.years.mean()) / max(np.ptp(self.years), 1)
        # P(item | cluster) is what the choice reads, so only the part within a cluster counts
        sizes = np.bincount(self.cluster, minlength=self.n_clusters)
        known = (
            known
            - (np.bincount(self.cluster, known, len(sizes)) / np.maximum(sizes, 1))[self.cluster]
        )
        known = known / max(known.std(), 1e-12)
        share = p.popularity_from_features
        self.feature_popularity = p.popularity_sigma * math.sqrt(share) * known
        noise = rng.normal(0.0, 1.0, len(known))
        return self.feature_popularity + p.popularity_sigma * math.sqrt(1 - share) * noise

    def cluster_probability(self, users: np.ndarray, tod: np.ndarray) -> np.ndarray:
        """[n, clusters] P(cluster | user, time of day) of a non-follow choice."""
        weights = self.mix[users] * self.tilt[tod]
        return weights / weights.sum(axis=1, keepdims=True)

    def successor(self, items: np.ndarray) -> np.ndarray:
        c = self.cluster[items]
        start, size = self.cluster_start[c], self.cluster_size[c]
        return self.series[start + (self.position[items] - start + 1) % size]


def _dirichlet(
    rng: np.random.Generator, alpha: float, allowed: np.ndarray, shape: tuple[int, ...]
) -> np.ndarray:
    """Symmetric Dirichlet(alpha) draws over the last axis's ``allowed`` entries (0 elsewhere)."""
    draws = rng.gamma(alpha, 1.0, shape) * allowed
    return draws / np.maximum(draws.sum(axis=-1, keepdims=True), 1e-300)


def _time_of_day(hours: np.ndarray) -> np.ndarray:
    """Same buckets as contextflix.data.context.time_of_day (morning, afternoon, evening, night)."""
    return np.select([(hours >= 5) & (hours < 12), (hours >= 12) & (hours < 17),
                      (hours >= 17) & (hours < 22)], [0, 1, 2], 3)  # fmt: skip


def _draw(
    rng: np.random.Generator, world: _World, users: np.ndarray, p: Parameters, shape: Shape
) -> tuple[np.ndarray, np.ndarray]:
    """Local timestamps and items of one chronological stream of draws per user (sorted by user)."""
    n = len(users)
    first = np.r_[True, users[1:] != users[:-1]]
    new_session = first | (rng.random(n) > p.session_stay)
    session_id = np.cumsum(new_session) - 1
    n_sessions = session_id[-1] + 1
    session_user = users[new_session]
    gap_days = rng.geometric(0.25, n_sessions).astype(np.int64)
    gap_days[first[new_session]] = rng.integers(0, 1000, int(first.sum()))
    day = _cumsum_by_group(gap_days, session_user)
    hour = rng.choice(24, n_sessions, p=HOURLY_RHYTHM / HOURLY_RHYTHM.sum())
    session_start = day * 86_400 + hour * 3_600 + rng.integers(0, 3_600, n_sessions)
    step = np.where(new_session, 0, 20 + rng.exponential(120.0, n).astype(np.int64))
    offset = _cumsum_by_group(step, session_id)
    midnight = shape.start - shape.start % 86_400  # local clock starts at 0:00
    local = midnight + session_start[session_id] + offset
    tod = _time_of_day((local // 3_600) % 24)

    # a genre from the user's mix tilted by the time of day, a cluster of it from the user's
    # mix (the tilt is the genre's: together, P(cluster | user, time of day)), then an item of
    # it by popularity
    k, n_users = len(GENRES), len(world.mix)
    m = world.n_clusters // k
    by_genre = world.mix.reshape(n_users, k, m)
    tilted = by_genre.sum(axis=2).repeat(4, axis=0) * np.tile(world.tilt[:, ::m], (n_users, 1))
    genre = _draw_columns(rng, tilted, users * 4 + tod)  # rows: (user, time of day)
    cluster = genre * m + _draw_columns(rng, by_genre.reshape(n_users * k, m), users * k + genre)
    within_cdf = np.cumsum(world.within[world.series]) - np.repeat(
        np.cumsum(np.r_[0.0, np.bincount(world.cluster, world.within, world.n_clusters)[:-1]]),
        world.cluster_size,
    )
    flat = within_cdf + np.repeat(np.arange(world.n_clusters), world.cluster_size)
    position = np.searchsorted(flat, cluster + rng.random(n) * (1 - 1e-9), side="right")
    items = world.series[np.minimum(position, len(world.series) - 1)]
    # follow chains: a run of follows after an anchor walks the anchor's series
    follow = ~first & (rng.random(n) < p.follow)
    anchor = np.maximum.accumulate(np.where(follow, 0, np.arange(n)))
    steps = np.arange(n) - anchor
    a = items[anchor]
    c = world.cluster[a]
    start, size = world.cluster_start[c], world.cluster_size[c]
    items = np.where(
        follow, world.series[start + (world.position[a] - start + steps) % size], items
    )
    return local, items


def _draw_columns(rng: np.random.Generator, weights: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """For each of ``rows``, a column of ``weights[row]`` drawn in proportion to its weights.

    Inverse CDFs, flattened with each row's number added, so one searchsorted serves every row.
    """
    cdf = np.cumsum(weights, axis=1)
    cdf /= np.maximum(cdf[:, -1:], 1e-300)
    flat = (np.minimum(cdf, 1 - 1e-12) + np.arange(len(weights))[:, None]).ravel()
    columns = (
        np.searchsorted(flat, rows + rng.random(len(rows)), side="right") - rows * weights.shape[1]
    )
    return np.minimum(columns, weights.shape[1] - 1)


def _cumsum_by_group(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting at each new value of the (sorted) group array."""
    total = np.cumsum(values)
    starts = np.r_[True, group[1:] != group[:-1]]
    base = np.maximum.accumulate(np.where(starts, np.arange(len(values)), 0))
    return total - total[base] + values[base]


def generate(
    like: str, seed: int = 0, scale: float = 1.0, parameters: Parameters | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, _World, Shape]:
    """Ratings (file order = per user, chronological), movies and users of a synthetic release."""
    p = parameters or Parameters()
    shape = scaled(LIKE[like], scale)
    rng = np.random.default_rng(seed)
    counts = _activity(rng, shape, p)
    world = _World(rng, shape, p)
    zone = rng.integers(0, len(ZIPS), shape.users) if shape.format == "dat" else None
    kept_users, kept_local, kept_items = [], [], []
    pending, factor = np.arange(shape.users), 1.3
    while len(pending):  # redraw, with more draws, the users whose repeats left them short
        draws = np.ceil(counts[pending] * factor).astype(np.int64) + 10
        users = np.repeat(pending, draws)
        local, items = _draw(rng, world, users, p, shape)
        key = users * shape.items + items
        first = np.zeros(len(key), dtype=bool)
        first[np.unique(key, return_index=True)[1]] = True
        users, local, items = users[first], local[first], items[first]
        rank = np.arange(len(users)) - np.searchsorted(users, users)
        keep = rank < counts[users]
        got = np.bincount(users[keep], minlength=shape.users)
        done = got[pending] == counts[pending]
        ok = np.isin(users, pending[done]) & keep
        kept_users.append(users[ok]), kept_local.append(local[ok]), kept_items.append(items[ok])
        pending, factor = pending[~done], factor * 2
    users = np.concatenate(kept_users)
    order = np.argsort(users, kind="stable")
    users, local = users[order], np.concatenate(kept_local)[order]
    items = np.concatenate(kept_items)[order]
    utc_offset = np.array(ZIP_UTC_OFFSET)[zone[users]] if zone is not None else -6
    timestamps = local - utc_offset * 3_600
    taste = np.log(world.mix[users, world.cluster[items]] * world.n_clusters)
    raw = 3.6 + world.user_bias[users] + world.item_bias[items] + 0.3 * taste
    raw = raw + rng.normal(0.0, 0.8, len(users))
    step = 1.0 if shape.format == "dat" else 0.5
    rating = np.clip(np.round(raw / step) * step, step, 5.0)
    ratings = pd.DataFrame(
        {"user_id": users + 1, "item_id": items + 1, "rating": rating, "timestamp": timestamps}
    )
    ratings["local_hour"] = (local // 3_600) % 24  # the oracle's context; not written out
    genres = [
        "|".join(GENRES[g] for g in (c, *(g for g in np.flatnonzero(row) if g != c)))
        for c, row in zip(world.genre, world.genres, strict=True)
    ]
    years = world.years
    movies = pd.DataFrame({
        "item_id": np.arange(1, shape.items + 1),
        "title": [f"Synthetic movie {i} ({y})" for i, y in enumerate(years, start=1)],
        "genres": genres,
    })  # fmt: skip
    people = pd.DataFrame({
        "user_id": np.arange(1, shape.users + 1),
        "gender": rng.choice(["F", "M"], shape.users),
        "age": rng.choice([1, 18, 25, 35, 45, 50, 56], shape.users),
        "occupation": rng.integers(0, 21, shape.users),
        "zip": np.array(ZIPS)[zone] if zone is not None else "",
    })  # fmt: skip
    return ratings, movies, people, world, shape


def oracle_ndcg(
    ratings: pd.DataFrame,
    world: _World,
    n_items: int,
    follow: float,
    max_users: int = 6_040,
    seed: int = 0,
) -> dict:
    """Protocol S test NDCG@10/HR@10 of the generating model's own ranking (see module doc).

    Also ``taste_ndcg@10``, the oracle restricted to taste: the user's exact cluster mix at
    that time of day times the item's popularity within its cluster, without the series
    order. It is what a model of who likes what (matrix factorisation) can at best reach, so
    it tells whether the planted taste leaves such a model room above popularity. And
    ``genre_taste_ndcg@10``: a content-only reference (not a bound), ranking by the same
    taste times the popularity an item's genres and year tell (no series order, no
    popularity beyond what the catalogue says).
    """
    users = ratings["user_id"].to_numpy() - 1
    items = ratings["item_id"].to_numpy() - 1
    ends = np.r_[np.flatnonzero(users[1:] != users[:-1]), len(users) - 1]  # last = test target
    starts = np.r_[0, ends[:-1] + 1]
    if len(ends) > max_users:
        chosen = np.sort(np.random.default_rng(seed).choice(len(ends), max_users, replace=False))
        ends, starts = ends[chosen], starts[chosen]
    candidates = np.bincount(items, minlength=n_items) > 0
    hours = ratings["local_hour"].to_numpy()
    ndcg, hits, taste_ndcg, content_ndcg = [], [], [], []

    def ranks(scores: np.ndarray, rows: np.ndarray, history: np.ndarray, end: np.ndarray):
        scores[rows, history] = -np.inf
        scores[:, ~candidates] = -np.inf
        target = scores[np.arange(len(end)), items[end]]
        return (scores >= target[:, None]).sum(axis=1)  # pessimistic: ties go first

    for lo in range(0, len(ends), 1_000):
        end, start = ends[lo : lo + 1_000], starts[lo : lo + 1_000]
        u = users[end]
        tod = _time_of_day(hours[end])
        cluster_taste = world.cluster_probability(u, tod)
        taste = cluster_taste[:, world.cluster]
        scores = (1 - follow) * taste * world.within[None, :]
        scores[np.arange(len(end)), world.successor(items[end - 1])] += follow
        lengths = end - start
        rows = np.repeat(np.arange(len(end)), lengths)
        history = items[np.concatenate([np.arange(s, e) for s, e in zip(start, end, strict=True)])]
        rank = ranks(scores, rows, history, end)
        ndcg.append(np.where(rank <= 10, 1 / np.log2(rank + 1), 0.0))
        hits.append(rank <= 10)
        rank = ranks(taste * world.within[None, :], rows, history, end)
        taste_ndcg.append(np.where(rank <= 10, 1 / np.log2(rank + 1), 0.0))
        genre_taste = cluster_taste.reshape(len(end), len(GENRES), -1).sum(axis=2)[:, world.genre]
        rank = ranks(genre_taste * np.exp(world.feature_popularity)[None, :], rows, history, end)
        content_ndcg.append(np.where(rank <= 10, 1 / np.log2(rank + 1), 0.0))
    return {
        "ndcg@10": float(np.concatenate(ndcg).mean()),
        "hr@10": float(np.concatenate(hits).mean()),
        "taste_ndcg@10": float(np.concatenate(taste_ndcg).mean()),
        "genre_taste_ndcg@10": float(np.concatenate(content_ndcg).mean()),
        "users": len(ends),
    }


def write_release(folder: Path, like: str, seed: int = 0, scale: float = 1.0) -> dict:
    """Generate and write the files of ``synthetic_name(like, scale)`` into ``folder``."""
    params = Parameters()
    ratings, movies, users, world, shape = generate(like, seed, scale, params)
    folder.mkdir(parents=True, exist_ok=True)
    oracle = oracle_ndcg(ratings, world, shape.items, params.follow)
    ratings = ratings.drop(columns="local_hour")
    if shape.format == "dat":
        _write_dat(ratings.astype({"rating": "int64"}), folder / "ratings.dat")
        _write_dat(movies, folder / "movies.dat")
        _write_dat(users[["user_id", "gender", "age", "occupation", "zip"]], folder / "users.dat")
    else:
        stars = np.array([f"{h / 2:.1f}" for h in range(11)])  # "0.0" ... "5.0", as the release
        table = pa.table({
            "userId": ratings["user_id"].to_numpy(),
            "movieId": ratings["item_id"].to_numpy(),
            "rating": stars[(ratings["rating"].to_numpy() * 2).astype(np.int64)],
            "timestamp": ratings["timestamp"].to_numpy(),
        })  # fmt: skip
        options = pa_csv.WriteOptions(include_header=False, quoting_style="none")
        with (folder / "ratings.csv").open("wb") as out:  # pandas' writer takes minutes at 25M
            out.write(b"userId,movieId,rating,timestamp\n")
            pa_csv.write_csv(table, out, options)
        movies.rename(columns={"item_id": "movieId"}).to_csv(folder / "movies.csv", index=False)
    info = {
        "SYNTHETIC": "generated by contextflix.data.synthetic; not MovieLens data",
        "name": synthetic_name(like, scale),
        "like": like,
        "seed": seed,
        "scale": scale,
        "users": shape.users,
        "items": shape.items,
        "ratings": len(ratings),
        "parameters": asdict(params),
        "oracle_test": oracle,
    }
    (folder / "oracle.json").write_text(json.dumps(info, indent=1) + "\n")
    (folder / GENERATOR_MARK).write_text("contextflix.data.synthetic, generating model 3\n")
    (folder / "README.txt").write_text(
        f"SYNTHETIC data set {info['name']}: {shape.users:,} users, {shape.items:,} movies, "
        f"{len(ratings):,} ratings in the file format of MovieLens {like}, generated by "
        f"contextflix.data.synthetic (seed {seed}). It contains no MovieLens data. The best "
        f"achievable protocol-S test NDCG@10 (the generating model's own ranking) is "
        f"{oracle['ndcg@10']:.4f}; see oracle.json.\n"
    )
    return info


def _write_dat(frame: pd.DataFrame, path: Path) -> None:
    """``a::b::c`` lines, as ml-1m's files (an empty column between fields makes the ``::``)."""
    spaced = pd.DataFrame(
        {f"{i}{j}": frame[c] if j == 0 else "" for i, c in enumerate(frame.columns) for j in (0, 1)}
    ).iloc[:, :-1]
    spaced.to_csv(path, sep=":", header=False, index=False, encoding="latin-1")
