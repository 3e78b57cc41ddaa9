"""The Recommender: a loaded bundle answering the API's questions (DESIGN.md, Service and API).

Everything the per-request path needs is prepared once in ``__init__`` as numpy/torch arrays
(histories in CSR form, a sorted (user, item) rating index, item encodings, unit factors),
so a recommendation is one batched full-catalogue pass per model plus a few small lookups
for the explanations. MovieLens ids go in and come out; dense indices stay inside.

Scoring follows ``contextflix.models.scoring`` exactly (same histories, same context shift
for the sequential model, same standardisation over the same candidates as training), so a
data-set user's hybrid top 10 in their test target's context is the protocol S test ranking.
"""

from __future__ import annotations

import json
import os
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from contextflix.data.context import DEVICES, TIMES_OF_DAY
from contextflix.models.content import profile_weights
from contextflix.models.hybrid import standardise
from contextflix.models.popularity import UNKNOWN
from contextflix.models.scoring import SOURCES, Requests
from contextflix.service import explain
from contextflix.service.errors import RecommenderError

MODELS = ("hybrid", "hybrid_no_context", "collaborative", "content", "sequential", "popularity")
"""``model`` values of recommend(); hybrid_no_context is the A/B test's arm A."""
MAX_K = 100
MAX_LIST = 1000
MAX_VISITOR_HISTORY = 1000
NO_GENRE = "(no genres listed)"
SIMILAR_MIN_RATINGS = 5
"""MF neighbours need this many ratings: factors of a movie rated once or twice are mostly
initialisation and regularisation, so their cosine to anything is noise."""


@dataclass(frozen=True)
class _Query:
    """A validated, normalised request: hashable, so it is also the cache key."""

    user_idx: int  # -1 for a visitor
    history: tuple[int, ...]  # visitor's item_idx, chronological (empty for data-set users)
    ratings: tuple[float, ...]
    time_of_day: int  # index into TIMES_OF_DAY, UNKNOWN = not given
    device: int
    k: int
    genres: tuple[str, ...]
    exclude_seen: bool
    model: str


@dataclass
class _Pass:
    """What one scoring pass computed, kept for the explanations."""

    raw: dict[str, torch.Tensor] = field(default_factory=dict)  # source -> [n_items]
    user_unit: torch.Tensor | None = None  # unit MF user vector (trained or folded in)
    profile: torch.Tensor | None = None  # unit content profile
    attention: torch.Tensor | None = None  # [L kept] last-layer attention of the last position
    kept_items: torch.Tensor | None = None  # [L kept] item_idx under that attention


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


class Recommender:
    """Recommendations with explanations from a bundle; thread-safe, cached, no training."""

    def __init__(self, bundle, cache_size: int = 1024) -> None:
        self.bundle = bundle
        self.models = bundle.models
        for model in (self.models.popularity, self.models.collaborative, self.models.content,
                      self.models.sequential, bundle.hybrid, bundle.hybrid_no_context):  # fmt: skip
            if model is not None:
                model.eval()
        self._prepare_catalog(bundle.catalog)
        self._prepare_users(bundle.users)
        self._prepare_interactions(bundle.interactions)
        self._prepare_models()
        self._cache: OrderedDict[_Query, str] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.cache_hits = self.cache_misses = 0

    @classmethod
    def from_bundle(cls, path: str | os.PathLike, cache_size: int = 1024) -> Recommender:
        """Load a bundle folder (safetensors, JSON, parquet; never pickle) and serve it."""
        from contextflix.bundle import load_bundle

        return cls(load_bundle(Path(path)), cache_size=cache_size)

    # --- preparation ----------------------------------------------------------------------

    def _prepare_catalog(self, catalog: pd.DataFrame) -> None:
        if "item_idx" in catalog.columns:
            catalog = catalog.sort_values("item_idx")
        catalog = catalog.reset_index(drop=True)
        self.n_items = len(catalog)
        self._item_ids = catalog["item_id"].to_numpy(dtype=np.int64)
        self._item_index = {int(i): n for n, i in enumerate(self._item_ids)}
        self._titles = [str(t) for t in catalog["title"]]
        self._folded_titles = [fold_text(t) for t in self._titles]
        years = catalog["year"] if "year" in catalog.columns else [None] * self.n_items
        self._years = [None if _plain(y) is None else int(y) for y in years]
        self._genres = [[str(g) for g in gs] for gs in catalog["genres"]]
        self._n_ratings = catalog["n_ratings"].to_numpy(dtype=np.int64)
        self._rated = torch.as_tensor(self._n_ratings > 0)
        self._supported = torch.as_tensor(self._n_ratings >= SIMILAR_MIN_RATINGS)
        names = sorted({g for gs in self._genres for g in gs if g and g != NO_GENRE})
        self._genre_names = names
        self._genre_folded = {fold_text(g): g for g in names}
        self._genre_masks = {
            g: torch.as_tensor(np.array([g in gs for gs in self._genres], dtype=bool))
            for g in names
        }
        popular_first = np.lexsort((np.arange(self.n_items), -self._n_ratings))
        self._popular_order = popular_first

    def _prepare_users(self, users: pd.DataFrame) -> None:
        if "user_idx" in users.columns:
            users = users.sort_values("user_idx")
        self._users = users.reset_index(drop=True)
        self.n_users = len(self._users)
        self._user_ids = self._users["user_id"].to_numpy(dtype=np.int64)
        self._user_index = {int(u): n for n, u in enumerate(self._user_ids)}

    def _prepare_interactions(self, frame: pd.DataFrame) -> None:
        """Histories as CSR arrays (by user, chronological) and a sorted (user, item) index."""
        user = frame["user_idx"].to_numpy(dtype=np.int64)
        ts = frame["timestamp"].to_numpy(dtype=np.int64)
        order = np.lexsort((np.arange(len(frame)), ts, user))  # same order as Requests
        self._h_user = user[order]
        self._h_item = frame["item_idx"].to_numpy(dtype=np.int64)[order]
        self._h_rating = frame["rating"].to_numpy(dtype=np.float32)[order]
        self._h_tod = frame["time_of_day"].to_numpy(dtype=np.int64)[order]
        self._h_dev = frame["device"].to_numpy(dtype=np.int64)[order]
        self._h_ts = ts[order]
        self._h_start = np.searchsorted(self._h_user, np.arange(self.n_users + 1))
        ratings = frame["rating"].to_numpy(dtype=np.float64)
        self.rating_range = (
            (float(ratings.min()), float(ratings.max()))
            if len(frame)
            else (
                1.0,
                5.0,
            )
        )
        pair = self._h_user * self.n_items + self._h_item
        pair_order = np.argsort(pair, kind="stable")
        self._pair_key = pair[pair_order]
        self._pair_rating = self._h_rating[pair_order]
        liked = self._h_rating >= explain.LIKED_RATING
        by_item = np.lexsort((self._h_user[liked], self._h_item[liked]))
        self._liker_item = self._h_item[liked][by_item]
        self._liker_user = self._h_user[liked][by_item]
        self._liker_start = np.searchsorted(self._liker_item, np.arange(self.n_items + 1))

    @torch.inference_mode()
    def _prepare_models(self) -> None:
        """Per-bundle constants the models would otherwise recompute on every request."""
        mf, content = self.models.collaborative, self.models.content
        self._item_unit = F.normalize(mf.item_factors.weight, dim=1) if mf is not None else None
        self._user_unit = F.normalize(mf.user_factors.weight, dim=1) if mf is not None else None
        if content is not None:
            self._encodings = content.encode_items()
            self._content_prior = content.item_prior(content.features)
            self._content_scale = content.log_scale.exp()
            slots = [j for j, _ in content.genre_slots]
            active = (content.features[:, slots] > 0).numpy()
            self._content_genres = [
                [content.genre_slots[n] for n in np.flatnonzero(row)] for row in active
            ]

    # --- validation -----------------------------------------------------------------------

    def _user(self, user_id: Any) -> int:
        try:
            if isinstance(user_id, bool):
                raise ValueError
            uid = int(user_id)
            if isinstance(user_id, float) and uid != user_id:
                raise ValueError
        except (TypeError, ValueError):
            raise RecommenderError(f"user_id must be a whole number, not {user_id!r}") from None
        if uid not in self._user_index:
            raise RecommenderError(
                f"Unknown user {uid}: user ids run from {self._user_ids.min()} to "
                f"{self._user_ids.max()} ({self.n_users} users)"
            )
        return self._user_index[uid]

    def _item(self, item_id: Any) -> int:
        try:
            if isinstance(item_id, bool):
                raise ValueError
            iid = int(item_id)
            if isinstance(item_id, float) and iid != item_id:
                raise ValueError
        except (TypeError, ValueError):
            raise RecommenderError(f"item ids must be whole numbers, not {item_id!r}") from None
        if iid not in self._item_index:
            raise RecommenderError(
                f"Unknown movie {iid}: not in this catalogue (search titles with movies())"
            )
        return self._item_index[iid]

    @staticmethod
    def _bounded(name: str, value: Any, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int | np.integer | str):
            raise RecommenderError(f"{name} must be a whole number from {low} to {high}")
        try:
            number = int(value)
        except ValueError:
            raise RecommenderError(f"{name} must be a whole number from {low} to {high}") from None
        if not low <= number <= high:
            raise RecommenderError(f"{name} must be from {low} to {high}, not {number}")
        return number

    @staticmethod
    def _context(name: str, value: Any, vocabulary: Sequence[str]) -> int:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "unknown")):
            return UNKNOWN
        if isinstance(value, str) and value.strip().lower() in vocabulary:
            return vocabulary.index(value.strip().lower())
        raise RecommenderError(
            f"Unknown {name} {value!r}: use one of {', '.join(vocabulary)} (or leave it out)"
        )

    def _genre_list(self, genres: Any) -> tuple[str, ...]:
        if genres is None or genres == "":
            return ()
        if isinstance(genres, str):
            genres = [g for g in genres.split(",") if g.strip()]
        out = []
        for g in genres:
            name = self._genre_folded.get(fold_text(str(g).strip()))
            if name is None:
                raise RecommenderError(
                    f"Unknown genre {g!r}: use one of {', '.join(self._genre_names)}"
                )
            out.append(name)
        return tuple(sorted(set(out)))

    def _visitor(self, history: Any, ratings: Any) -> tuple[tuple[int, ...], tuple[float, ...]]:
        if history is None:
            history = []
        if isinstance(history, str | bytes) or not isinstance(history, Iterable):
            raise RecommenderError("history must be a list of movie ids, oldest first")
        items = [self._item(i) for i in history]
        if len(items) > MAX_VISITOR_HISTORY:
            raise RecommenderError(f"history may hold at most {MAX_VISITOR_HISTORY} movies")
        given: dict[int, float] = {}
        if ratings:
            if not isinstance(ratings, Mapping):
                raise RecommenderError("ratings must map movie ids to ratings")
            low, high = self.rating_range
            for key, value in ratings.items():
                idx = self._item(key)
                if idx not in items:
                    raise RecommenderError(
                        f"rating given for movie {self._item_ids[idx]}, which is not in history"
                    )
                try:
                    rating = float(value)
                except (TypeError, ValueError):
                    rating = float("nan")
                if not low <= rating <= high:
                    raise RecommenderError(
                        f"Rating {value!r} for movie {self._item_ids[idx]} is outside this "
                        f"data set's range {low:g} to {high:g}"
                    )
                given[idx] = rating
        liked = self.rating_range[1]  # an unrated movie in the list counts as liked
        return tuple(items), tuple(given.get(i, liked) for i in items)

    def _query(
        self, user_id, history, ratings, time_of_day, device, k, genres, exclude_seen, model
    ) -> _Query:
        if model not in MODELS:
            raise RecommenderError(f"Unknown model {model!r}: use one of {', '.join(MODELS)}")
        if model != "popularity" and model not in self._available_models():
            raise RecommenderError(
                f"Model {model!r} is not available in this bundle (degraded); available: "
                f"{', '.join(self._available_models())}"
            )
        if user_id is not None and history:
            raise RecommenderError("Give either user_id (a data-set user) or history, not both")
        if user_id is None and ratings and not history:
            raise RecommenderError("ratings need the rated movies in history")
        if user_id is not None:
            user_idx, items, values = self._user(user_id), (), ()
        else:
            user_idx = -1
            items, values = self._visitor(history, ratings)
        return _Query(
            user_idx=user_idx,
            history=items,
            ratings=values,
            time_of_day=self._context("time_of_day", time_of_day, TIMES_OF_DAY),
            device=self._context("device", device, DEVICES),
            k=self._bounded("k", k, 1, MAX_K),
            genres=self._genre_list(genres),
            exclude_seen=bool(exclude_seen),
            model=model,
        )

    def _available_models(self) -> tuple[str, ...]:
        present = self.models.available
        hybrids = tuple(
            name
            for name in ("hybrid", "hybrid_no_context")
            if getattr(self.bundle, name) is not None or len(present) > 1
        )
        return (*hybrids, *present)

    # --- recommend ------------------------------------------------------------------------

    def recommend(
        self,
        user_id: int | None = None,
        history: Sequence[int] | None = None,
        ratings: Mapping[int, float] | None = None,
        time_of_day: str | None = None,
        device: str | None = None,
        k: int = 10,
        genres: Sequence[str] | str | None = None,
        exclude_seen: bool = True,
        model: str = "hybrid",
        cache: bool = True,
    ) -> dict:
        """Top-k items for a data-set user (``user_id``) or a visitor (``history``, ratings).

        Returns the API's JSON object (see the module docstring of DESIGN.md's API); raises
        RecommenderError for bad input. ``cache=False`` bypasses the LRU (benchmarks).
        """
        query = self._query(
            user_id, history, ratings, time_of_day, device, k, genres, exclude_seen, model
        )
        if cache and self._cache_size > 0:
            with self._lock:
                hit = self._cache.get(query)
                if hit is not None:
                    self._cache.move_to_end(query)
                    self.cache_hits += 1
            if hit is not None:
                return json.loads(hit)  # a fresh copy: callers cannot corrupt the cache
        result = self._recommend(query)
        if cache and self._cache_size > 0:
            frozen = json.dumps(result)
            with self._lock:
                self.cache_misses += 1
                self._cache[query] = frozen
                self._cache.move_to_end(query)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return result

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()
            self.cache_hits = self.cache_misses = 0

    def _history_arrays(self, q: _Query) -> tuple[np.ndarray, ...]:
        """(items, ratings, time_of_day, device) of the request's history, chronological."""
        if q.user_idx >= 0:
            s, e = self._h_start[q.user_idx], self._h_start[q.user_idx + 1]
            return self._h_item[s:e], self._h_rating[s:e], self._h_tod[s:e], self._h_dev[s:e]
        items = np.asarray(q.history, dtype=np.int64)
        unknown = np.full(len(items), UNKNOWN, dtype=np.int64)
        return items, np.asarray(q.ratings, dtype=np.float32), unknown, unknown.copy()

    def _requests(self, q: _Query, arrays: tuple[np.ndarray, ...]) -> Requests:
        items, ratings, tod, dev = (torch.from_numpy(np.ascontiguousarray(a))[None] for a in arrays)
        return Requests(
            user=torch.tensor([q.user_idx]),
            items=items + 1,
            ratings=ratings,
            time_of_day=tod,
            device=dev,
            target_time_of_day=torch.tensor([q.time_of_day]),
            target_device=torch.tensor([q.device]),
        )

    @torch.inference_mode()
    def _recommend(self, q: _Query) -> dict:
        arrays = self._history_arrays(q)
        requests = self._requests(q, arrays)
        if q.model == "hybrid_no_context":
            requests = requests.without_context()
        allowed = torch.ones(self.n_items, dtype=torch.bool)
        if q.model != "content":  # content alone can rank cold (never rated) items
            allowed &= self._rated
        if q.genres:
            in_genres = torch.zeros(self.n_items, dtype=torch.bool)
            for g in q.genres:
                in_genres |= self._genre_masks[g]
            allowed &= in_genres
        if q.exclude_seen and len(arrays[0]):
            allowed[torch.from_numpy(arrays[0])] = False

        fallback = None
        if len(arrays[0]) == 0:
            fallback, sources = "popularity", ("popularity",)
        elif q.model.startswith("hybrid"):
            sources = self.models.available
        else:
            sources = (q.model,)
        scored = self._score(requests, sources)

        if fallback or len(sources) == 1:
            score = scored.raw[sources[0]]
            contributions = {sources[0]: score}
            trust = {sources[0]: 1.0}
        else:
            score, contributions, trust = self._mix(q, requests, scored, allowed)
        top = self._top(score, allowed, q.k)
        items = self._explain(q, requests, scored, top, score, contributions, trust, fallback)
        return {
            "user_id": int(self._user_ids[q.user_idx]) if q.user_idx >= 0 else None,
            "context": {
                "time_of_day": None if q.time_of_day == UNKNOWN else TIMES_OF_DAY[q.time_of_day],
                "device": None if q.device == UNKNOWN else DEVICES[q.device],
                "device_simulated": True,
            },
            "model": q.model,
            "items": items,
            "fallback": fallback,
        }

    def _score(self, requests: Requests, sources: Sequence[str]) -> _Pass:
        """One full-catalogue pass per source: the computations of scoring.BaseModels.scores,
        reusing per-bundle constants and keeping what the explanations need."""
        out = _Pass()
        models = self.models
        items = requests.items[0] - 1
        ratings = requests.ratings[0]
        if "popularity" in sources:
            out.raw["popularity"] = models.popularity.score(
                requests.target_time_of_day, requests.target_device
            )[0]
        if "collaborative" in sources:
            mf = models.collaborative
            if requests.user[0] >= 0:
                out.raw["collaborative"] = mf.score_all(requests.user)[0]
                out.user_unit = self._user_unit[requests.user[0]]
            else:
                bias, vector = mf.fold_in(items, ratings)
                out.raw["collaborative"] = mf.score_vectors(bias, vector)
                out.user_unit = F.normalize(vector, dim=0)
        if "content" in sources:
            content = models.content
            weights = torch.zeros(self.n_items)
            weights[items] = profile_weights(ratings, content.weight_offset)
            out.profile = F.normalize(weights @ self._encodings, dim=-1)
            cosine = self._encodings @ out.profile
            out.raw["content"] = self._content_scale * cosine + self._content_prior
        if "sequential" in sources:
            seq = models.sequential
            tod = torch.cat([requests.time_of_day[:, 1:], requests.target_time_of_day[:, None]], 1)
            dev = torch.cat([requests.device[:, 1:], requests.target_device[:, None]], 1)
            kept = requests.items[:, -seq.max_len :]
            scores, attention = seq.score_last(
                kept, tod[:, -seq.max_len :], dev[:, -seq.max_len :], return_attention=True
            )
            out.raw["sequential"] = scores[0]
            out.attention, out.kept_items = attention[0], kept[0] - 1
        return out

    def _mix(self, q: _Query, requests: Requests, scored: _Pass, allowed: torch.Tensor):
        """Hybrid score = sum_s w_s * scale * z_s over the sources present (weights renormalised)."""
        hybrid = self.bundle.hybrid_no_context if q.model == "hybrid_no_context" else None
        hybrid = hybrid or self.bundle.hybrid
        present = [s for s in SOURCES if s in scored.raw]
        if hybrid is not None:
            w = hybrid.weights(
                requests.target_time_of_day, requests.target_device, requests.history_length
            )[0]
            by_name = dict(zip(hybrid.sources, w.tolist(), strict=True))
            raw_trust = {s: by_name.get(s, 0.0) for s in present}
            scale = float(hybrid.log_scale.exp())
        else:  # no trained hybrid: trust every model present equally
            raw_trust, scale = dict.fromkeys(present, 1.0), 1.0
        total = sum(raw_trust.values()) or 1.0
        trust = {s: v / total for s, v in raw_trust.items()}
        contributions = {
            s: trust[s] * scale * standardise(scored.raw[s][None], ~allowed[None])[0]
            for s in present
        }
        score = torch.stack(list(contributions.values())).sum(0)
        return score, contributions, trust

    @staticmethod
    def _top(score: torch.Tensor, allowed: torch.Tensor, k: int) -> torch.Tensor:
        n = int(allowed.sum())
        if n == 0:
            return torch.zeros(0, dtype=torch.long)
        masked = score.masked_fill(~allowed, float("-inf"))
        return masked.topk(min(k, n)).indices

    # --- explanations ---------------------------------------------------------------------

    def _explain(self, q, requests, scored, top, score, contributions, trust, fallback) -> list:
        """Per item: every source's reason, sorted by its contribution; the first is the
        headline ``explanation``."""
        top_list = top.tolist()
        reasons: dict[str, list[dict]] = {}
        tod = int(requests.target_time_of_day[0])
        dev = int(requests.target_device[0])
        if "popularity" in contributions:
            reasons["popularity"] = self._popularity_reasons(top_list, tod, dev, bool(fallback))
        if "collaborative" in contributions:
            reasons["collaborative"] = self._collaborative_reasons(q.user_idx, scored, top_list)
        if "content" in contributions:
            reasons["content"] = self._content_reasons(requests, scored, top_list)
        if "sequential" in contributions:
            reasons["sequential"] = self._sequential_reasons(scored, len(top_list))
        items = []
        for rank, item in enumerate(top_list):
            contrib = {s: round(float(c[item]), 4) for s, c in contributions.items()}
            ordered = sorted(contrib, key=lambda s: -contrib[s])
            item_reasons = [
                {**reasons[s][rank], "weight": round(trust[s], 4)} for s in ordered if s in reasons
            ]
            items.append(
                {
                    "rank": rank + 1,
                    "item_id": int(self._item_ids[item]),
                    "title": self._titles[item],
                    "year": self._years[item],
                    "genres": list(self._genres[item]),
                    "score": round(float(score[item]), 4),
                    "explanation": item_reasons[0]["text"] if item_reasons else "",
                    "reasons": item_reasons,
                    "contributions": contrib,
                }
            )
        return items

    def _popularity_reasons(self, top: list[int], tod: int, dev: int, cold: bool) -> list[dict]:
        popularity = self.models.popularity
        t, d = torch.tensor([tod]), torch.tensor([dev])
        lift = popularity.lift(t, d)[0]
        cell = popularity.cell(t, d)[0]
        tod_name = None if tod == UNKNOWN else TIMES_OF_DAY[tod]
        dev_name = None if dev == UNKNOWN else DEVICES[dev]
        return [
            explain.popularity_reason(
                float(lift[i]), float(cell[i]), int(self._n_ratings[i]), tod_name, dev_name, cold
            )
            for i in top
        ]

    def _neighbours(self, user_unit: torch.Tensor, own: int) -> tuple[np.ndarray, np.ndarray]:
        """(user_idx, cosine) of the N_NEIGHBOURS users closest to a unit MF user vector."""
        sims = self._user_unit @ user_unit
        if own >= 0:
            sims[own] = float("-inf")  # never one's own neighbour
        k = min(explain.N_NEIGHBOURS, self.n_users - (1 if own >= 0 else 0))
        values, index = sims.topk(k)
        return index.numpy(), values.numpy()

    def _collaborative_reasons(self, own: int, scored: _Pass, top: list[int]) -> list[dict]:
        """Nearest users by MF factors (as MatrixFactorization.user_neighbours, or to the
        folded-in vector of a visitor) who rated each item LIKED_RATING or more."""
        neighbours, _ = self._neighbours(scored.user_unit, own)
        keys = neighbours[:, None] * self.n_items + np.asarray(top)[None, :]
        pos = np.searchsorted(self._pair_key, keys).clip(max=len(self._pair_key) - 1)
        found = self._pair_key[pos] == keys
        rating = np.where(found, self._pair_rating[pos], np.nan)  # [N, k]
        low, high = self.rating_range
        out = []
        liked = rating >= explain.LIKED_RATING  # NaN (not rated) compares False
        for col, item in enumerate(top):
            rows = np.flatnonzero(liked[:, col])
            liked_by = [
                {"user_id": u, "rating": r}
                for u, r in zip(
                    self._user_ids[neighbours[rows]].tolist(),
                    rating[rows, col].tolist(),
                    strict=True,
                )
            ]
            predicted = float(scored.raw["collaborative"][item].clamp(low, high))
            out.append(explain.collaborative_reason(liked_by, len(neighbours), predicted))
        return out

    def _content_reasons(self, requests: Requests, scored: _Pass, top: list[int]) -> list[dict]:
        """Occlusion deltas of the content score (ContentModel.genre_contributions' formula),
        for all top items in one encoder pass, against the profile the score used."""
        content = self.models.content
        present = requests.items[0] > 0
        taste = content.genre_profile(requests.items[0][present] - 1, requests.ratings[0][present])
        rows, slots = [], []
        for item in top:
            base = content.features[item]
            rows.append(base)
            first = len(rows) - 1
            for j, g in self._content_genres[item]:
                variant = base.clone()
                variant[j] = 0.0
                rows.append(variant)
                slots.append((item, first, len(rows) - 1, g))
        variants = torch.stack(rows)
        values = self._content_scale * (content.encode(variants) @ scored.profile)
        values = values + content.item_prior(variants)
        deltas: dict[int, dict[str, float]] = {item: {} for item in top}
        for item, first, row, g in slots:
            deltas[item][g] = float(values[first] - values[row])
        cosine = self._encodings[top] @ scored.profile
        return [
            explain.content_reason(deltas[item], taste, float(cosine[n]))
            for n, item in enumerate(top)
        ]

    def _sequential_reasons(self, scored: _Pass, n: int) -> list[dict]:
        position = int(scored.attention.argmax())
        item = int(scored.kept_items[position])
        reason = explain.sequential_reason(
            int(self._item_ids[item]), self._titles[item], float(scored.attention[position])
        )
        return [reason] * n

    # --- catalogue, users, history --------------------------------------------------------

    def _movie(self, item: int) -> dict:
        return {
            "item_id": int(self._item_ids[item]),
            "title": self._titles[item],
            "year": self._years[item],
            "genres": list(self._genres[item]),
        }

    @torch.inference_mode()
    def similar(self, item_id: int, k: int = 10) -> dict:
        """Items closest to ``item_id``: MF item factors ("liked by the same people"), else
        content encodings, else shared genres; each with its reason and evidence."""
        item = self._item(item_id)
        k = self._bounded("k", k, 1, MAX_K)
        if self._item_unit is not None:
            source = "collaborative"
            sims = self._item_unit @ self._item_unit[item]
            allowed = self._supported.clone()
            if int(allowed.sum()) <= k:  # a tiny catalogue: any rated item will do
                allowed = self._rated.clone()
        elif self.models.content is not None:
            source = "content"
            sims = self._encodings @ self._encodings[item]
            allowed = torch.ones(self.n_items, dtype=torch.bool)
        else:
            source = "genres"
            mine = set(self._genres[item])
            sims = torch.tensor(
                [len(mine & set(g)) / max(len(mine | set(g)), 1) for g in self._genres]
            )
            allowed = torch.ones(self.n_items, dtype=torch.bool)
        allowed[item] = False
        top = self._top(sims, allowed, k).tolist()
        likers = self._likers(item)
        mine = set(self._genres[item]) - {NO_GENRE}
        items = []
        for other in top:
            shared = [g for g in self._genres[other] if g in mine]
            co_likers = int(np.intersect1d(likers, self._likers(other), assume_unique=True).size)
            parts = []
            if source == "collaborative":
                parts.append(
                    f"liked by the same people ({co_likers} rated both "
                    f"{explain.LIKED_RATING:g} or higher)"
                    if co_likers
                    else "liked by the same kind of viewer"
                )
            elif source == "content":
                parts.append("similar in content")
            if shared:
                parts.append(f"both {explain.join_names(shared)}")
            items.append(
                {
                    **self._movie(other),
                    "similarity": round(float(sims[other]), 4),
                    "explanation": "; ".join(parts) or "similar",
                    "evidence": {"source": source, "shared_genres": shared, "co_likers": co_likers},
                }
            )
        return {**self._movie(item), "model": source, "items": items}

    def _likers(self, item: int) -> np.ndarray:
        return self._liker_user[self._liker_start[item] : self._liker_start[item + 1]]

    def history(self, user_id: int, limit: int | None = None) -> dict:
        """A data-set user's interactions, newest first, with their (simulated-device) context."""
        user = self._user(user_id)
        s, e = self._h_start[user], self._h_start[user + 1]
        rows = range(e - 1, s - 1, -1)
        if limit is not None:
            rows = rows[: self._bounded("limit", limit, 1, 100_000)]
        items = [
            {
                **self._movie(int(self._h_item[r])),
                "rating": float(self._h_rating[r]),
                "timestamp": int(self._h_ts[r]),
                "time_of_day": TIMES_OF_DAY[self._h_tod[r]],
                "device": DEVICES[self._h_dev[r]],
                "device_simulated": True,
            }
            for r in rows
        ]
        return {"user_id": int(self._user_ids[user]), "items": items, "total": int(e - s)}

    def preferences(self, user_id: int) -> dict:
        """Genre mix of a user's history: share of genre mentions, count, mean rating."""
        user = self._user(user_id)
        s, e = self._h_start[user], self._h_start[user + 1]
        counts: dict[str, int] = {}
        sums: dict[str, float] = {}
        for item, rating in zip(self._h_item[s:e], self._h_rating[s:e], strict=True):
            for g in self._genres[item]:
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
        return {"user_id": int(self._user_ids[user]), "n_ratings": int(e - s), "genres": genres}

    def users(self, limit: int = 20, offset: int = 0) -> dict:
        """Data-set users, in user id order (paged)."""
        limit = self._bounded("limit", limit, 1, MAX_LIST)
        offset = self._bounded("offset", offset, 0, max(self.n_users, 0))
        page = self._users.iloc[offset : offset + limit]
        columns = [c for c in page.columns if c not in ("user_idx", "zip_code")]
        users = []
        for n, row in zip(
            range(offset, offset + len(page)), page[columns].itertuples(index=False), strict=True
        ):
            record = {c: _plain(v) for c, v in zip(columns, row, strict=True)}
            record["n_history"] = int(self._h_start[n + 1] - self._h_start[n])
            users.append(record)
        return {"users": users, "total": self.n_users}

    def movies(
        self, query: str = "", genre: str | None = None, limit: int = 20, offset: int = 0
    ) -> dict:
        """Title search tolerant of case and accents ("amelie" finds "Amélie"), most rated first."""
        limit = self._bounded("limit", limit, 1, MAX_LIST)
        offset = self._bounded("offset", offset, 0, self.n_items)
        genres = self._genre_list([genre] if genre else None)
        tokens = fold_text(query or "").split()
        matches = [
            i
            for i in self._popular_order
            if all(t in self._folded_titles[i] for t in tokens)
            and (not genres or genres[0] in self._genres[i])
        ]
        movies = [
            {**self._movie(int(i)), "n_ratings": int(self._n_ratings[i])}
            for i in matches[offset : offset + limit]
        ]
        return {"movies": movies, "total": len(matches)}

    def genres(self) -> dict:
        return {"genres": list(self._genre_names)}

    # --- status ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        name = getattr(self.bundle, "name", None)
        return str(name or self.bundle.config.get("name") or "unnamed bundle")

    def health(self) -> dict:
        """Which models are loaded; "degraded" when any is missing (the hybrid uses the rest)."""
        models = {s: getattr(self.models, s) is not None for s in SOURCES}
        models["hybrid"] = self.bundle.hybrid is not None
        models["hybrid_no_context"] = self.bundle.hybrid_no_context is not None
        degraded = [name for name, ok in models.items() if not ok]
        config = self.bundle.config or {}
        return {
            "status": "degraded" if degraded else "ok",
            "bundle": self.name,
            "revision": config.get("revision") or (config.get("hub") or {}).get("revision"),
            "dataset": config.get("dataset"),
            "models": models,
            "degraded": degraded,
            "n_users": self.n_users,
            "n_items": self.n_items,
        }

    def ab_results(self) -> dict:
        """The bundle's offline A/B section; "online" is filled by the app from its event log."""
        metrics = self.bundle.metrics or {}
        for key in ("ab", "ab_test", "offline_ab"):
            if metrics.get(key):
                return {"offline": metrics[key], "online": {}}
        return {
            "offline": {},
            "online": {},
            "note": "this bundle's metrics hold no offline A/B results",
        }
