"""The Recommender: a loaded bundle answering the API's questions (docs/architecture.md).

Requests are validated by the one request model (service/requests.py), resolved against the
bundle's catalogue (service/catalog.py), scored by the one scoring path
(``contextflix.models.scoring.Scorer``, the evaluation's too) and explained
(service/explain.py). A data-set user's top 10 in their test target's context is therefore
exactly the protocol S test ranking of every model (tests/test_serving_parity.py).
``recommend_batch`` scores many requests together in the same passes, so each answer is the
one ``recommend`` gives, at a fraction of the cost: a lone request is a batch of one.
The file runs a little past 400 lines: it answers every question the API asks of a bundle.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import torch
from torch.nn import functional as F

from contextflix.data.context import DEVICES, TIMES_OF_DAY
from contextflix.models.popularity import UNKNOWN
from contextflix.models.scoring import MODELS, SOURCES, Requests, Scored, Scorer, scoring_pass
from contextflix.service.catalog import Catalog
from contextflix.service.errors import RecommenderError
from contextflix.service.explain import Explainer, occlusions
from contextflix.service.requests import MAX_BATCH, RecommendRequest, parse_request, quote
from contextflix.service.workers import BatchWorkers

log = logging.getLogger("contextflix.service")

CHUNK = 64
"""Requests answered together, at most: enough to fill the Scorer's passes, few enough that
the [rows, n_items] tensors of a big batch stay small. Chunks are answered one after another:
most of their work holds the GIL, so worker threads scored a batch no faster on 2 cores."""
SHARED_BATCH = 8
"""Requests a batch needs before helper processes take shares of it (service/workers.py). At 8
one helper already adds a third (311 -> 415 req/s, ``bench/batch.py --batch 8 --rounds 40``,
ml-100k, idle 2 cores); smaller batches are answered here, without the round trip."""


@dataclass(frozen=True)
class _Query:
    """A request resolved against the bundle: hashable, so it is also the cache key."""

    user_idx: int  # -1 for a visitor
    history: tuple[int, ...]  # visitor's item_idx, chronological (empty for data-set users)
    ratings: tuple[float, ...]
    time_of_day: int  # index into TIMES_OF_DAY, UNKNOWN = not given
    device: int
    k: int
    genres: tuple[str, ...]
    exclude_seen: bool
    model: str
    degraded: bool = False  # a hybrid was asked for, but the bundle holds popularity alone


class Recommender:
    """Recommendations with explanations from a bundle; thread-safe, cached, no training."""

    def __init__(self, bundle, cache_size: int = 1024, workers: BatchWorkers | None = None) -> None:
        self.bundle = bundle
        self.workers = workers
        self.models = bundle.models
        for model in (self.models.popularity, self.models.collaborative, self.models.content,
                      self.models.sequential, bundle.hybrid, bundle.hybrid_no_context):  # fmt: skip
            if model is not None:
                model.eval()
        self.catalog = Catalog(bundle.catalog, bundle.users, bundle.interactions)
        self.scorer = Scorer(
            self.models, bundle.hybrid, bundle.hybrid_no_context, candidates=self.catalog.rated
        )
        self.explainer = Explainer(self.scorer, self.catalog)
        mf = self.models.collaborative
        with torch.inference_mode():
            self._item_unit = F.normalize(mf.item_factors.weight, dim=1) if mf else None
        self._cache: OrderedDict[_Query, str] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.cache_hits = self.cache_misses = 0

    @classmethod
    def from_bundle(
        cls, path: str | os.PathLike, cache_size: int = 1024, batch_processes: int = 0
    ) -> Recommender:
        """Load a bundle folder (safetensors, JSON, parquet; never pickle) and serve it;
        ``batch_processes`` helper processes answer shares of large batches (workers.py)."""
        from contextflix.bundle import load_bundle

        workers = BatchWorkers(path, batch_processes) if batch_processes else None
        return cls(load_bundle(Path(path)), cache_size=cache_size, workers=workers)

    def close(self) -> None:
        """End the helper processes, if any (a swapped-out bundle); answering still works."""
        if self.workers is not None:
            self.workers.close()

    @property
    def n_items(self) -> int:
        return self.catalog.n_items

    @property
    def n_users(self) -> int:
        return self.catalog.n_users

    # --- requests ---------------------------------------------------------------------------

    def _resolve(self, request: RecommendRequest) -> _Query:
        """Check what needs the bundle: models held, known ids, rating range, genre names."""
        model, available = request.model, self.scorer.available_models()
        degraded = model.startswith("hybrid") and available == ("popularity",)
        if degraded:  # e.g. the first start, before the personalised models are trained
            model = "popularity"
        if model not in available:
            raise RecommenderError(
                f"Model {model!r} is not available in this bundle (degraded); available: "
                f"{', '.join(available)}"
            )
        catalog = self.catalog
        user_idx, items, values = -1, (), ()
        if request.user_id is not None:
            user_idx = catalog.user(request.user_id)
        else:
            items = tuple(catalog.item(i) for i in request.history)
            low, high = catalog.rating_range
            given = request.ratings or {}
            for movie, rating in given.items():
                if not low <= rating <= high:
                    raise RecommenderError(
                        f"Rating {quote(rating)} for movie {quote(movie)} is outside this data set's"
                        f" range {low:g} to {high:g}"
                    )
            values = tuple(float(given.get(i, high)) for i in request.history)  # unrated = liked
        return _Query(
            user_idx=user_idx,
            history=items,
            ratings=values,
            time_of_day=_index(request.time_of_day, TIMES_OF_DAY),
            device=_index(request.device, DEVICES),
            k=request.k,
            genres=catalog.genre_list(request.genres),
            exclude_seen=request.exclude_seen,
            model=model,
            degraded=degraded,
        )

    def _request(self, q: _Query) -> Requests:
        """One row of Requests: a data-set user's served history, or a visitor's list."""
        if q.user_idx >= 0:
            rows = self.catalog.history_rows(q.user_idx)
            c = self.catalog
            arrays = (c.h_item[rows], c.h_rating[rows], c.h_tod[rows], c.h_dev[rows])
        else:
            items = np.asarray(q.history, dtype=np.int64)
            unknown = np.full(len(items), UNKNOWN, dtype=np.int64)
            arrays = (items, np.asarray(q.ratings, dtype=np.float32), unknown, unknown)
        items, ratings, tod, dev = (
            torch.from_numpy(np.array(a, dtype=t))[None]
            for a, t in zip(arrays, (np.int64, np.float32, np.int64, np.int64), strict=True)
        )
        return Requests(
            user=torch.tensor([q.user_idx]),
            items=items + 1,
            ratings=ratings,
            time_of_day=tod,
            device=dev,
            target_time_of_day=torch.tensor([q.time_of_day]),
            target_device=torch.tensor([q.device]),
        )

    # --- recommend --------------------------------------------------------------------------

    def recommend(self, cache: bool = True, **fields: Any) -> dict:
        """Top-k items for a data-set user (``user_id``) or a visitor (``history``, ratings).

        ``fields`` are those of ``RecommendRequest``; returns the API's JSON object and raises
        RecommenderError for bad input. ``cache=False`` bypasses the LRU (benchmarks).
        """
        query = self._resolve(parse_request(fields))
        hit = self._cached(query) if cache else None
        if hit is not None:
            return hit
        result = self._answer([query])[0]
        if cache:
            self._store(query, result)
        return result

    def recommend_batch(
        self, requests: Sequence[Mapping[str, Any]], cache: bool = True
    ) -> list[dict]:
        """Each request's recommend() answer, or {"error": message}; valid ones scored together.

        At most MAX_BATCH requests, each with the fields of ``RecommendRequest``.
        """
        if not isinstance(requests, list | tuple):
            raise RecommenderError(f"requests must be a list, not {quote(requests)}")
        if len(requests) > MAX_BATCH:
            raise RecommenderError(f"a batch may hold at most {MAX_BATCH} requests")
        results: list[dict | None] = [None] * len(requests)
        pending: list[tuple[int, _Query]] = []
        for n, fields in enumerate(requests):
            try:
                query = self._resolve(parse_request(fields))
            except RecommenderError as error:
                results[n] = {"error": str(error)}
                continue
            results[n] = self._cached(query) if cache else None
            if results[n] is None:
                pending.append((n, query))
        answers = self._answer([q for _, q in pending])
        for (n, query), answer in zip(pending, answers, strict=True):
            if cache:
                self._store(query, answer)
            results[n] = answer
        return results

    def _cached(self, query: _Query) -> dict | None:
        if self._cache_size <= 0:
            return None
        with self._lock:
            hit = self._cache.get(query)
            if hit is not None:
                self._cache.move_to_end(query)
                self.cache_hits += 1
        return orjson.loads(hit) if hit is not None else None  # a copy callers cannot corrupt

    def _store(self, query: _Query, result: dict) -> None:
        if self._cache_size <= 0:
            return
        frozen = orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY)  # json.dumps: 10x
        with self._lock:
            self.cache_misses += 1
            self._cache[query] = frozen
            self._cache.move_to_end(query)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()
            self.cache_hits = self.cache_misses = 0

    def _answer(self, queries: list[_Query]) -> list[dict]:
        """Answers in order: a large batch in equal shares, one here and one per helper
        process, answered at once; each request's answer is the one it gets alone."""
        workers = self.workers
        if workers is None or len(queries) < SHARED_BATCH or not workers.ready():
            return self._answer_here(queries)
        size = -(-len(queries) // (workers.processes + 1))
        starts = range(size, len(queries), size)
        try:
            shares = [workers.submit(queries[start : start + size]) for start in starts]
        except RuntimeError:  # closed meanwhile (a bundle swap), or a helper was killed
            workers.close()
            return self._answer_here(queries)
        answers = self._answer_here(queries[:size])
        for start, share in zip(starts, shares, strict=True):
            try:
                answers += share.result()
            except Exception as error:  # a helper died: its share, and what follows, here
                log.warning("a batch helper failed (%s); answering alone from now on", error)
                workers.close()
                answers += self._answer_here(queries[start : start + size])
        return answers

    def _answer_here(self, queries: list[_Query]) -> list[dict]:
        """Answers in order; queries grouped by the model that scores them, in chunks of at
        most CHUNK. Each request's answer is the one it gets alone (its bits do not depend on
        its chunk, scoring.py)."""
        groups: dict[str, list[int]] = {}
        rows = [self._request(q) for q in queries]
        for n, q in enumerate(queries):
            groups.setdefault("popularity" if _cold(q) else q.model, []).append(n)
        answers: list[dict] = [{}] * len(queries)
        for model, members in groups.items():
            for start in range(0, len(members), CHUNK):
                chunk = members[start : start + CHUNK]
                chunk_answers = self._answer_chunk(model, chunk, queries, rows)
                for n, answer in zip(chunk, chunk_answers, strict=True):
                    answers[n] = answer
        return answers

    @scoring_pass
    def _answer_chunk(
        self, model: str, members: list[int], queries: list[_Query], rows: list[Requests]
    ) -> list[dict]:
        """The answers of ``members`` (indices into queries and rows), scored by ``model``.

        A request to a model that uses the sequential source also has its occlusion variants
        scored (_score_explained); the explanations of the chunk are computed together. All
        of it on one thread: the explanations' small products, split over two threads of a
        busy machine, made an answer ten times slower.
        """
        requests = [rows[n] for n in members]
        if "sequential" in self.scorer.sources_of(model):
            scored, occlusions = self._score_explained(model, requests)
        else:
            scored = self.scorer.score(Requests.concat(requests), model)
            occlusions = [None] * len(members)
        allowed = self._allowed([queries[n] for n in members], requests)
        k = max(queries[n].k for n in members)
        ranked = self.scorer.top_k(scored.scores, allowed, k).tolist()
        tops = [[item for item in ranked[i][: queries[n].k] if item >= 0]
                for i, n in enumerate(members)]  # fmt: skip
        reasons = self.explainer.explain(
            requests,
            scored,
            range(len(members)),
            tops,
            [_cold(queries[n]) for n in members],
            occlusions,
        )
        return [self._result(queries[n], scored, i, tops[i], reasons[i])
                for i, n in enumerate(members)]  # fmt: skip

    def _score_explained(
        self, model: str, requests: list[Requests]
    ) -> tuple[Scored, list[tuple[torch.Tensor, torch.Tensor, list[int]] | None]]:
        """The requests' Scored and, per request, the sequential scores of the request and of
        its occlusion variants, and the items those remove (or None), for a model that uses
        the sequential source.

        Two passes for the whole chunk: the requests (whose attention picks each one's
        variants), then every variant's state, read as its model reads it (no context for
        hybrid_no_context) at its request's width. The variants are scored against the
        catalogue in one ``scores_of`` (four rows a product: each row has the bits it has
        alone, as the request's own sequential scores do). Both passes are Scorer passes, so
        a request's reasons are the same alone or in a batch.
        """
        batch = Requests.concat(requests)
        scored = self.scorer.score(batch, model)
        reads = batch.without_context() if model == "hybrid_no_context" else batch
        variants, lengths, spans, removed = occlusions(reads, scored.attention)
        if not any(removed):
            return scored, [None] * len(requests)
        states = self.scorer.sequential_states(variants, lengths)
        columns = self.scorer.columns["sequential"]
        variant_scores = self.models.sequential.scores_of(states, columns)
        own = scored.raw["sequential"]
        found = [(own[row], variant_scores[span], items) if items else None
                 for row, (span, items) in enumerate(zip(spans, removed, strict=True))]  # fmt: skip
        return scored, found

    def _allowed(self, queries: list[_Query], requests: list[Requests]) -> torch.Tensor:
        """[B, n_items]: the catalogue, in the chosen genres, unseen unless asked otherwise."""
        allowed = self.catalog.rated.expand(len(queries), -1).clone()
        for row, (q, request) in enumerate(zip(queries, requests, strict=True)):
            if q.genres:
                in_genres = torch.zeros(self.n_items, dtype=torch.bool)
                for g in q.genres:
                    in_genres |= self.catalog.genre_masks[g]
                allowed[row] &= in_genres
            if q.exclude_seen:
                allowed[row] &= ~request.seen(self.n_items)[0]
        return allowed

    def _result(self, q: _Query, scored, row: int, top: list[int], reasons: dict) -> dict:
        """The API's answer: items with score, contributions and reasons, best reason first."""
        trust = {s: float(w[row]) for s, w in scored.weights.items()}
        contributions = {s: c[row, top].tolist() for s, c in scored.contributions.items()}
        scores = scored.scores[row, top].tolist()
        items = []
        for rank, item in enumerate(top):
            contrib = {s: round(values[rank], 4) for s, values in contributions.items()}
            ordered = sorted(contrib, key=lambda s: -contrib[s])
            item_reasons = [
                {**reasons[s][rank], "weight": round(trust[s], 4)} for s in ordered if s in reasons
            ]
            items.append(
                {
                    "rank": rank + 1,
                    **self.catalog.movie(item),
                    "score": round(scores[rank], 4),
                    "explanation": item_reasons[0]["text"] if item_reasons else "",
                    "reasons": item_reasons,
                    "contributions": contrib,
                }
            )
        return {
            "user_id": int(self.catalog.user_ids[q.user_idx]) if q.user_idx >= 0 else None,
            "context": {
                "time_of_day": None if q.time_of_day == UNKNOWN else TIMES_OF_DAY[q.time_of_day],
                "device": None if q.device == UNKNOWN else DEVICES[q.device],
                "device_simulated": True,
            },
            "model": q.model,
            "items": items,
            "fallback": "popularity" if _cold(q) or q.degraded else None,
        }

    # --- catalogue, users, history ----------------------------------------------------------

    def similar(self, item_id: int, k: int = 10) -> dict:
        """Movies like ``item_id``, each with why (see Catalog.similar)."""
        encodings = self.scorer.encodings if self.models.content is not None else None
        return self.catalog.similar(item_id, k, self._item_unit, encodings)

    def history(self, user_id: int, limit: int | None = None) -> dict:
        return self.catalog.history(user_id, limit)

    def preferences(self, user_id: int) -> dict:
        return self.catalog.preferences(user_id)

    def users(self, limit: int = 20, offset: int = 0) -> dict:
        return self.catalog.users(limit, offset)

    def movies(
        self, query: str = "", genre: str | None = None, limit: int = 20, offset: int = 0
    ) -> dict:
        return self.catalog.movies(query, genre, limit, offset)

    def genres(self) -> dict:
        return {"genres": list(self.catalog.genre_names)}

    # --- status -----------------------------------------------------------------------------

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
            "batch_helpers": "off" if self.workers is None else self.workers.state,
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


def _cold(q: _Query) -> bool:
    """A visitor with no history: context popularity is all we can offer."""
    return q.user_idx < 0 and not q.history


def _index(value: str | None, vocabulary: Sequence[str]) -> int:
    return UNKNOWN if value is None else vocabulary.index(value)


__all__ = ["MODELS", "Recommender"]
