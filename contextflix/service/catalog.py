"""The catalogue, the users and their histories, prepared once for the per-request path.

Movies, users and interactions of a bundle as numpy arrays (histories in CSR form by user,
chronological; who liked what, by movie), plus the questions that
need no scoring: id lookups, search, genres, a user's history and preferences, similar movies.
MovieLens ids go in and come out; dense indices stay inside.
"""

from __future__ import annotations

import unicodedata
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import sparse

from contextflix.data.context import DEVICES, TIMES_OF_DAY
from contextflix.data.splits import chronological_order
from contextflix.service.errors import RecommenderError
from contextflix.service.reasons import LIKED_RATING, similar_text
from contextflix.service.requests import MAX_K, MAX_LIST, MAX_QUERY_CHARS, MAX_QUERY_WORDS, quote

NO_GENRE = "(no genres listed)"
SIMILAR_MIN_RATINGS = 5
"""MF neighbours need this many ratings: factors of a movie rated once or twice are mostly
initialisation and regularisation, so their cosine to anything is noise."""


def fold_text(text: str) -> str:
    """Case- and accent-insensitive form for search: NFKD, drop combining marks, casefold."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _plain(value: Any) -> Any:
    """A catalogue cell as a JSON value (numpy scalars -> Python, NaN -> None)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def whole_number(name: str, value: Any) -> int:
    """An int (or a string of digits), never a bool, else RecommenderError."""
    number = None
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        number = int(value)
    elif isinstance(value, str) and len(value) < 20:
        try:
            number = int(value)
        except ValueError:
            number = None
    if number is None:
        raise RecommenderError(f"{name} must be a whole number, not {quote(value)}")
    return number


def bounded(name: str, value: Any, low: int, high: int) -> int:
    """A whole number in [low, high], else RecommenderError."""
    number = whole_number(name, value)
    if not low <= number <= high:
        raise RecommenderError(f"{name} must be from {low} to {high}, not {quote(number)}")
    return number


class Catalog:
    """Movies, users and histories of a bundle, with the lookups the API needs."""

    def __init__(self, catalog: pd.DataFrame, users: pd.DataFrame, interactions: pd.DataFrame):
        if "item_idx" in catalog.columns:
            catalog = catalog.sort_values("item_idx")
        catalog = catalog.reset_index(drop=True)
        self.n_items = len(catalog)
        self.item_ids = catalog["item_id"].to_numpy(dtype=np.int64)
        self.item_index = {int(i): n for n, i in enumerate(self.item_ids)}
        self.titles = [str(t) for t in catalog["title"]]
        years = catalog["year"] if "year" in catalog.columns else [None] * self.n_items
        self.years = [None if _plain(y) is None else int(y) for y in years]
        self.genres = [[str(g) for g in gs] for gs in catalog["genres"]]
        self.n_ratings = catalog["n_ratings"].to_numpy(dtype=np.int64)
        self.rated = torch.as_tensor(self.n_ratings > 0)
        """The ranking catalogue of protocol S: movies with a rating anywhere in the data set."""
        self.genre_names = sorted({g for gs in self.genres for g in gs if g and g != NO_GENRE})
        self._genre_folded = {fold_text(g): g for g in self.genre_names}
        self.genre_masks = {
            g: torch.as_tensor(np.array([g in gs for gs in self.genres], dtype=bool))
            for g in self.genre_names
        }
        self.popular_order = np.lexsort((np.arange(self.n_items), -self.n_ratings))

        users = users.sort_values("user_idx") if "user_idx" in users.columns else users
        self.user_ids = users["user_id"].to_numpy(dtype=np.int64)
        self.n_users = len(self.user_ids)
        self.user_index = {int(u): n for n, u in enumerate(self.user_ids)}
        self._prepare_histories(interactions)

    def _prepare_histories(self, frame: pd.DataFrame) -> None:
        """Histories as CSR arrays (by user, chronological) and the likers of each movie.

        Columns keep their stored types (no 64-bit copies of 8- and 32-bit columns) and the
        timestamps, which only history() shows, are read through the order instead of
        gathered: at 25M ratings every new column is a fresh array to fill, which is much
        of what a load costs.
        """
        user = frame["user_idx"].to_numpy()
        self._timestamps = frame["timestamp"].to_numpy(dtype=np.int64)
        self._order = chronological_order(user, self._timestamps)  # the order of Requests
        order = self._order
        users = user.astype(np.int32, copy=False)[order]
        self.h_item = frame["item_idx"].to_numpy().astype(np.int32, copy=False)[order]
        self.h_rating = frame["rating"].to_numpy(dtype=np.float32)[order]
        self.h_tod = frame["time_of_day"].to_numpy().astype(np.int8, copy=False)[order]
        self.h_dev = frame["device"].to_numpy().astype(np.int8, copy=False)[order]
        self.h_start = np.searchsorted(users, np.arange(self.n_users + 1, dtype=np.int32))
        ratings = self.h_rating
        self.rating_range = (float(ratings.min()), float(ratings.max())) if len(frame) else (1, 5)
        # who liked what: the liked part of the histories as a users x movies matrix, turned
        # by movie (scipy's counting sort, linear in the ratings), each movie's likers in
        # user order (a user's repeats in time order)
        liked = ratings >= LIKED_RATING
        per_user = np.bincount(users[liked], minlength=self.n_users)
        by_user = sparse.csr_array(
            (ratings[liked], self.h_item[liked], np.r_[0, np.cumsum(per_user)]),
            shape=(self.n_users, self.n_items),
        )
        by_item = by_user.tocsc()
        self._liker_start, self._liker_user = by_item.indptr, by_item.indices
        self._liker_rating = by_item.data

    @cached_property
    def _folded_titles(self) -> list[str]:
        """Titles as search compares them; made at the first search, not at every load."""
        return [fold_text(t) for t in self.titles]

    # --- lookups ----------------------------------------------------------------------------

    def user(self, user_id: Any) -> int:
        """The dense index of a data-set user id, else RecommenderError."""
        uid = whole_number("user_id", user_id)
        if uid not in self.user_index:
            raise RecommenderError(
                f"Unknown user {quote(uid)}: user ids run from {self.user_ids.min()} to "
                f"{self.user_ids.max()} ({self.n_users} users)"
            )
        return self.user_index[uid]

    def item(self, item_id: Any) -> int:
        """The dense index of a MovieLens movie id, else RecommenderError."""
        iid = whole_number("item_id", item_id)
        if iid not in self.item_index:
            raise RecommenderError(
                f"Unknown movie {quote(iid)}: not in this catalogue (search titles with movies())"
            )
        return self.item_index[iid]

    def genre_list(self, genres: list[str] | None) -> tuple[str, ...]:
        """Canonical genre names, sorted and distinct, else RecommenderError."""
        out = set()
        for g in genres or []:
            name = self._genre_folded.get(fold_text(str(g).strip()))
            if name is None:
                raise RecommenderError(
                    f"Unknown genre {quote(g)}: use one of {', '.join(self.genre_names)}"
                )
            out.add(name)
        return tuple(sorted(out))

    def history_rows(self, user: int) -> slice:
        return slice(int(self.h_start[user]), int(self.h_start[user + 1]))

    def likers(self, item: int) -> np.ndarray:
        return self._liker_user[self._liker_start[item] : self._liker_start[item + 1]]

    def liked_ratings(self, item: int, users: np.ndarray) -> np.ndarray:
        """The rating each of ``users`` gave ``item`` where they liked it (LIKED_RATING or
        more; their first such rating), else NaN.

        A binary search among the movie's likers, who are in user order: no index of every
        (user, item) pair to sort at load, which at 25M ratings took seconds."""
        start, stop = self._liker_start[item], self._liker_start[item + 1]
        found = np.full(len(users), np.nan)
        if stop > start:
            users = users.astype(self._liker_user.dtype)  # no copy of the likers to compare
            at = start + np.searchsorted(self._liker_user[start:stop], users).clip(
                max=stop - start - 1
            )
            hit = self._liker_user[at] == users
            found[hit] = self._liker_rating[at[hit]]
        return found

    def movie(self, item: int) -> dict:
        return {
            "item_id": int(self.item_ids[item]),
            "title": self.titles[item],
            "year": self.years[item],
            "genres": list(self.genres[item]),
        }

    # --- API answers ------------------------------------------------------------------------

    def history(self, user_id: Any, limit: Any = None) -> dict:
        """A data-set user's interactions, newest first, with their (simulated-device) context."""
        user = self.user(user_id)
        rows = self.history_rows(user)
        order = range(rows.stop - 1, rows.start - 1, -1)
        if limit is not None:
            order = order[: bounded("limit", limit, 1, 100_000)]
        items = [
            {
                **self.movie(int(self.h_item[r])),
                "rating": float(self.h_rating[r]),
                "timestamp": int(self._timestamps[self._order[r]]),
                "time_of_day": TIMES_OF_DAY[self.h_tod[r]],
                "device": DEVICES[self.h_dev[r]],
                "device_simulated": True,
            }
            for r in order
        ]
        return {
            "user_id": int(self.user_ids[user]),
            "items": items,
            "total": rows.stop - rows.start,
        }

    def preferences(self, user_id: Any) -> dict:
        """Genre mix of a user's history: share of genre mentions, count, mean rating."""
        user = self.user(user_id)
        rows = self.history_rows(user)
        counts: dict[str, int] = {}
        sums: dict[str, float] = {}
        for item, rating in zip(self.h_item[rows], self.h_rating[rows], strict=True):
            for g in self.genres[item]:
                if g != NO_GENRE:
                    counts[g] = counts.get(g, 0) + 1
                    sums[g] = sums.get(g, 0.0) + float(rating)
        total = sum(counts.values()) or 1
        genres = [
            {
                "genre": g,
                "share": round(counts[g] / total, 4),
                "count": counts[g],
                "mean_rating": round(sums[g] / counts[g], 3),
            }
            for g in sorted(counts, key=lambda g: (-counts[g], g))
        ]
        n = rows.stop - rows.start
        return {"user_id": int(self.user_ids[user]), "n_ratings": n, "genres": genres}

    def users(self, limit: Any = 20, offset: Any = 0) -> dict:
        """Data-set users in id order (paged): their id and how many ratings they have here.

        Only these documented fields: the bundle's user table may hold demographics and zip
        codes, which the API never publishes.
        """
        limit = bounded("limit", limit, 1, MAX_LIST)
        offset = bounded("offset", offset, 0, max(self.n_users, 0))
        stop = min(offset + limit, self.n_users)
        users = [
            {
                "user_id": int(self.user_ids[n]),
                "n_ratings": int(self.h_start[n + 1] - self.h_start[n]),
            }
            for n in range(offset, stop)
        ]
        return {"users": users, "total": self.n_users}

    def movies(self, query: Any = "", genre: Any = None, limit: Any = 20, offset: Any = 0) -> dict:
        """Title search tolerant of case and accents ("amelie" finds "Amélie"), most rated first.

        A query may hold MAX_QUERY_CHARS characters and MAX_QUERY_WORDS distinct words, so a
        search costs at most that many scans of the titles.
        """
        limit = bounded("limit", limit, 1, MAX_LIST)
        offset = bounded("offset", offset, 0, self.n_items)
        query = "" if query is None else query
        if not isinstance(query, str):
            raise RecommenderError(f"query must be text, not {quote(query)}")
        if len(query) > MAX_QUERY_CHARS:
            raise RecommenderError(f"query may hold at most {MAX_QUERY_CHARS} characters")
        tokens = list(dict.fromkeys(fold_text(query).split()))
        if len(tokens) > MAX_QUERY_WORDS:
            raise RecommenderError(f"query may hold at most {MAX_QUERY_WORDS} distinct words")
        if genre is not None and not isinstance(genre, str):
            raise RecommenderError(f"genre must be text, not {quote(genre)}")
        genres = self.genre_list([genre] if genre else None)
        matches = [
            i
            for i in self.popular_order
            if all(t in self._folded_titles[i] for t in tokens)
            and (not genres or genres[0] in self.genres[i])
        ]
        movies = [
            {**self.movie(int(i)), "n_ratings": int(self.n_ratings[i])}
            for i in matches[offset : offset + limit]
        ]
        return {"movies": movies, "total": len(matches)}

    @torch.inference_mode()
    def similar(
        self, item_id: Any, k: Any, item_unit: torch.Tensor | None, encodings: torch.Tensor | None
    ) -> dict:
        """Items closest to ``item_id``: unit MF item factors ("liked by the same people"),
        else content encodings, else shared genres; each with its reason and evidence."""
        item = self.item(item_id)
        k = bounded("k", k, 1, MAX_K)
        if item_unit is not None:
            source = "collaborative"
            sims = item_unit @ item_unit[item]
            allowed = torch.as_tensor(self.n_ratings >= SIMILAR_MIN_RATINGS)
            if int(allowed.sum()) <= k:  # a tiny catalogue: any rated item will do
                allowed = self.rated.clone()
        elif encodings is not None:
            source = "content"
            sims = encodings @ encodings[item]
            allowed = torch.ones(self.n_items, dtype=torch.bool)
        else:
            source = "genres"
            mine = set(self.genres[item])
            sims = torch.tensor(
                [len(mine & set(g)) / max(len(mine | set(g)), 1) for g in self.genres]
            )
            allowed = torch.ones(self.n_items, dtype=torch.bool)
        allowed[item] = False
        masked = sims.masked_fill(~allowed, float("-inf"))
        top = masked.topk(min(k, int(allowed.sum()))).indices.tolist()
        likers = self.likers(item)
        mine = set(self.genres[item]) - {NO_GENRE}
        items = []
        for other in top:
            shared = [g for g in self.genres[other] if g in mine]
            co_likers = int(np.intersect1d(likers, self.likers(other), assume_unique=True).size)
            items.append(
                {
                    **self.movie(other),
                    "similarity": round(float(sims[other]), 4),
                    "explanation": similar_text(source, shared, co_likers),
                    "evidence": {"source": source, "shared_genres": shared, "co_likers": co_likers},
                }
            )
        return {**self.movie(item), "model": source, "items": items}
