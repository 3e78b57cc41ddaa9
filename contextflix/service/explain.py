"""Explanations: the evidence behind each recommended item, and the reasons that phrase it.

:class:`Explainer` computes the evidence for a request's top items from what the scoring pass
kept (``Scored``: raw scores, MF user vectors, content profiles) plus batched occlusion passes:
the nearest users by MF factors who liked the item; how much each of the item's genres raises
its content score; which history item, removed, lowers THIS item's sequential score the most
(of those the model attends to most anywhere in its kept window); the item's popularity in
the request's context. The builders of service/reasons.py only phrase that evidence, so a
reason cannot claim more than its evidence shows.

Why not occlude every history position: each removal is one more row for the sequential
model over the whole window (as costly as scoring the request itself), so 50 of them would
multiply a recommendation's cost many times; attention picks the few worth trying.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from contextflix.data.context import DEVICES, TIMES_OF_DAY, UNKNOWN
from contextflix.models.scoring import (
    Requests,
    Scored,
    Scorer,
    columns_of,
    in_fours,
    scoring_pass,
)
from contextflix.service.reasons import (
    N_NEIGHBOURS,
    NEIGHBOUR_POOL,
    collaborative_reason,
    content_reason,
    popularity_reason,
    sequential_reason,
)

OCCLUSION_CANDIDATES = 3
"""History items the sequential reason tries removing: those the model attends to most. Each
is one more sequential row to score beside the request."""


# --- evidence ---------------------------------------------------------------------------------

_HISTORY_PADDING = {"items": 0, "ratings": 0.0, "time_of_day": UNKNOWN, "device": UNKNOWN}


def occlusions(
    reads: Requests, attention: torch.Tensor
) -> tuple[Requests, torch.Tensor, list[slice], list[list[int]]]:
    """Each request's occlusion variants: the request with, in turn, one of the history items
    the sequential model attends to most removed (older items slide into the window, as if
    never watched).

    ``reads``: the requests as the scoring model reads them (without context for
    hybrid_no_context); ``attention``: their ``Scored.attention``, the last layer's attention
    of the last position over the kept window, which the request's own scoring pass computed
    (its bits do not depend on the batch, so neither do the candidates). Returns (every
    variant, one request's after another; the history lengths that make the Scorer read each
    at its request's width; each request's slice of them; the item_idx each removes).

    Occluding the OCCLUSION_CANDIDATES most attended items, not every position, keeps the
    reason at a few rows per request (a next-item model's evidence is rarely where it does
    not look); histories that short are occluded whole.
    """
    n = reads.history_length
    width = reads.items.shape[1]
    k = min(OCCLUSION_CANDIDATES, width)
    attended = attention.topk(k, dim=1).indices + (width - attention.shape[1])
    latest = torch.arange(width - k, width).expand(len(reads), k)
    columns = torch.where((n <= OCCLUSION_CANDIDATES)[:, None], latest, attended).sort(1).values
    real = columns >= width - n[:, None]  # the latest k of a shorter history include padding
    rows = torch.arange(len(reads))[:, None].expand_as(columns)[real]
    columns = columns[real]
    others = torch.arange(width - 1)[None]
    kept = others + (others >= columns[:, None]).long()  # [variants, width - 1]: all but one
    history = {  # one padding column in front keeps the width
        name: F.pad(getattr(reads, name)[rows[:, None], kept], (1, 0), value=fill)
        for name, fill in _HISTORY_PADDING.items()
    }
    variants = Requests(
        user=reads.user[rows],
        **history,
        target_time_of_day=reads.target_time_of_day[rows],
        target_device=reads.target_device[rows],
    )
    counts = real.sum(1).tolist()
    stops = list(itertools.accumulate(counts))
    removed = (reads.items[rows, columns] - 1).tolist()
    spans = [slice(stop - count, stop) for count, stop in zip(counts, stops, strict=True)]
    return variants, n[rows], spans, [removed[span] for span in spans]


def occlusion_drops(
    scores: torch.Tensor, variant_scores: torch.Tensor, removed: list[int], items: Sequence[int]
) -> list[tuple[int | None, float]]:
    """Per item: (removed item_idx that lowers its log-probability most, that drop).

    Log-probabilities, not raw scores: a removal that shifts every item's score alike says
    nothing about THIS item. (None, 0.0) when no removal makes the item less likely.
    """
    items = list(items)
    if not removed:
        return [(None, 0.0)] * len(items)
    log_p = scores.log_softmax(-1)[items]
    drops = log_p[None] - variant_scores.log_softmax(-1)[:, items]  # [removed, items]
    best = drops.max(0)
    return [
        (removed[j], value) if value > 0 else (None, 0.0)
        for value, j in zip(best.values.tolist(), best.indices.tolist(), strict=True)
    ]


class Explainer:
    """Reasons for recommended items, from the models and the catalogue of one bundle.

    :meth:`explain` answers a whole chunk of requests at once: the neighbours of every request
    at once, the content occlusion deltas of every (request, item) pair in one pass.
    Content sums run in float64 and the neighbour search four rows a product (models/exact.py),
    on one thread, so a reason is the same whether its request came alone or in a batch.
    """

    def __init__(self, scorer: Scorer, catalog) -> None:
        self.scorer, self.catalog = scorer, catalog
        self.models = scorer.models
        mf, content = self.models.collaborative, self.models.content
        if mf is not None:  # the NEIGHBOUR_POOL most active users, in index order
            activity = np.diff(catalog.h_start)
            self.pool = np.sort(np.argsort(-activity, kind="stable")[:NEIGHBOUR_POOL])
            self._pool_position = np.full(catalog.n_users, -1)
            self._pool_position[self.pool] = np.arange(len(self.pool))
            with torch.inference_mode():
                weights = mf.user_factors.weight[torch.from_numpy(self.pool)]
                self.user_columns = columns_of(F.normalize(weights, dim=1))
        if content is not None:
            self._prepare_content(content)
        with torch.inference_mode():  # [time of day, device, item] context lift, every cell
            popularity = self.models.popularity
            tod, dev = torch.meshgrid(
                torch.arange(popularity.counts.shape[0]),
                torch.arange(popularity.counts.shape[1]),
                indexing="ij",
            )
            lift = popularity.lift(tod.flatten(), dev.flatten())
            self._lift = lift.reshape(*tod.shape, -1)

    @torch.inference_mode()
    def _prepare_content(self, content) -> None:
        """Each item's content encoding and prior with one of its genres switched off, once:
        the occlusion deltas of a request are then dot products with its profile."""
        slots = [j for j, _ in content.genre_slots]
        active = (content.features[:, slots] > 0).numpy()
        self.content_genres = [[content.genre_slots[n] for n in np.flatnonzero(r)] for r in active]
        rows = [(item, j) for item, pairs in enumerate(self.content_genres) for j, _ in pairs]
        variants = content.features[[item for item, _ in rows]].clone()
        variants[torch.arange(len(rows)), torch.tensor([j for _, j in rows], dtype=torch.long)] = 0
        self._variant_encodings = content.encode(variants).double()
        self._variant_prior = content.item_prior(variants).double()
        self._variant_start = np.cumsum([0] + [len(p) for p in self.content_genres])
        self._encodings = self.scorer.encodings.double()
        self._content_prior = content.item_prior(content.features).double()
        self._content_scale = float(content.log_scale.exp())
        self._genre_features = content.features[:, slots].double()
        self._genre_names = [g for _, g in content.genre_slots]

    @scoring_pass
    def explain(
        self,
        requests: Sequence[Requests],
        scored: Scored,
        rows: Sequence[int],
        tops: Sequence[list[int]],
        cold: Sequence[bool],
        occlusions: Sequence[tuple[torch.Tensor, torch.Tensor, list[int]] | None],
    ) -> list[dict[str, list[dict]]]:
        """Per request, {source: one reason per top item} for every source that contributed.

        ``requests`` are one-row; request i is row ``rows[i]`` of ``scored`` and recommends
        ``tops[i]``. ``occlusions[i]``: the sequential scores of the request and of its
        occlusion variants, and the items those remove (Recommender._score_explained), or
        None.
        """
        out: list[dict[str, list[dict]]] = [{} for _ in requests]
        sources = scored.contributions
        if "popularity" in sources:
            for i, request in enumerate(requests):
                out[i]["popularity"] = self._popularity(request, tops[i], cold[i])
        if "collaborative" in sources:
            for i, reasons in enumerate(self._collaborative(requests, scored, rows, tops)):
                out[i]["collaborative"] = reasons
        if "content" in sources:
            for i, reasons in enumerate(self._content(requests, scored, rows, tops)):
                out[i]["content"] = reasons
        if "sequential" in sources:
            for i, occlusion in enumerate(occlusions):
                found = (
                    [(None, 0.0)] * len(tops[i])
                    if occlusion is None
                    else occlusion_drops(*occlusion, tops[i])
                )
                out[i]["sequential"] = [
                    sequential_reason(
                        None if item is None else int(self.catalog.item_ids[item]),
                        None if item is None else self.catalog.titles[item],
                        drop,
                    )
                    for item, drop in found
                ]
        return out

    def _popularity(self, request: Requests, top: list[int], cold: bool) -> list[dict]:
        tod, dev = int(request.target_time_of_day[0]), int(request.target_device[0])
        tod_name = None if tod == UNKNOWN else TIMES_OF_DAY[tod]
        dev_name = None if dev == UNKNOWN else DEVICES[dev]
        lift = self._lift[tod, dev, top].tolist()
        cell = self.models.popularity.counts[tod, dev, top].tolist()
        n_ratings = self.catalog.n_ratings[top].tolist()
        return [
            popularity_reason(lift[n], cell[n], n_ratings[n], tod_name, dev_name, cold)
            for n in range(len(top))
        ]

    def _collaborative(
        self, requests: Sequence[Requests], scored: Scored, rows: Sequence[int], tops
    ) -> list[list[dict]]:
        """Nearest users by MF factors (to the trained or folded-in vector) among the
        NEIGHBOUR_POOL most active who rated each item LIKED_RATING or more; every request's
        neighbours from one product."""
        catalog, pool = self.catalog, len(self.pool)
        own = np.array([int(r.user[0]) for r in requests])
        index = torch.as_tensor(list(rows), dtype=torch.long)
        vectors = F.normalize(scored.user_vectors[index], dim=1)
        sims = in_fours(vectors, self.user_columns)  # the same bits in any batch
        position = np.where(own >= 0, self._pool_position[own.clip(min=0)], -1)
        inside = np.flatnonzero(position >= 0)
        sims[inside, position[inside]] = float("-inf")  # never one's own neighbour
        k = min(N_NEIGHBOURS, pool)
        neighbours = self.pool[sims.topk(k, dim=1).indices.numpy()]  # own last when k = pool
        counts = np.where(position >= 0, min(N_NEIGHBOURS, pool - 1), k)
        searched = pool if pool < catalog.n_users else None
        width = max(len(top) for top in tops)
        items = np.array([list(top) + [0] * (width - len(top)) for top in tops])  # [R, width]
        rating = np.full((*neighbours.shape, width), np.nan)  # liked ratings, NaN elsewhere
        for i, top in enumerate(tops):
            for col, item in enumerate(top):
                rating[i, :, col] = catalog.liked_ratings(item, neighbours[i])
        low, high = catalog.rating_range
        raw = scored.raw["collaborative"][index[:, None], torch.as_tensor(items)]
        predicted = raw.clamp(low, high).tolist()
        liked = ~np.isnan(rating)
        out = []
        for i, top in enumerate(tops):
            n = int(counts[i])
            reasons = []
            for col in range(len(top)):
                hits = np.flatnonzero(liked[i, :n, col])
                liked_by = [
                    {"user_id": u, "rating": r}
                    for u, r in zip(
                        catalog.user_ids[neighbours[i, hits]].tolist(),
                        rating[i, hits, col].tolist(),
                        strict=True,
                    )
                ]
                reasons.append(collaborative_reason(liked_by, n, predicted[i][col], searched))
            out.append(reasons)
        return out

    def _content(
        self, requests: Sequence[Requests], scored: Scored, rows: Sequence[int], tops
    ) -> list[list[dict]]:
        """Occlusion deltas of the content score (ContentModel.genre_contributions' formula):
        the item's score for this profile minus its score with one genre switched off; every
        (request, item, genre) of the chunk in one pass."""
        profiles = scored.profiles[torch.as_tensor(list(rows), dtype=torch.long)].double()
        tastes = self._tastes(requests)
        pair_request = torch.tensor(
            [i for i, top in enumerate(tops) for _ in top], dtype=torch.long
        )
        pair_item = torch.tensor([item for top in tops for item in top], dtype=torch.long)
        cosine = (self._encodings[pair_item] * profiles[pair_request]).sum(-1)
        scores = (self._content_scale * cosine + self._content_prior[pair_item]).tolist()
        starts = self._variant_start[pair_item.numpy()]
        stops = self._variant_start[pair_item.numpy() + 1]
        spans = [np.arange(a, b) for a, b in zip(starts, stops, strict=True)]
        variant = torch.from_numpy(np.concatenate([np.zeros(0, dtype=np.int64), *spans]))
        owner = pair_request.repeat_interleave(torch.from_numpy(stops - starts))
        switched = (self._variant_encodings[variant] * profiles[owner]).sum(-1)
        values = (self._content_scale * switched + self._variant_prior[variant]).tolist()
        out, pair, start = [], 0, 0
        for i, top in enumerate(tops):
            reasons = []
            for item in top:
                genres = [g for _, g in self.content_genres[item]]
                chunk = values[start : start + len(genres)]
                start += len(genres)
                deltas = {g: scores[pair] - v for g, v in zip(genres, chunk, strict=True)}
                reasons.append(content_reason(deltas, tastes[i], float(cosine[pair])))
                pair += 1
            out.append(reasons)
        return out

    def _tastes(self, requests: Sequence[Requests]) -> list[dict[str, float]]:
        """Each request's genre mix (ContentModel.genre_profile's), in one product."""
        offset = self.models.content.weight_offset
        weights, items = [], []
        for request in requests:
            present = request.items[0] > 0
            ratings = request.ratings[0][present].double()
            weights.append(offset + (ratings - ratings.mean()) if len(ratings) else ratings)
            items.append(request.items[0][present] - 1)
        owner = torch.repeat_interleave(torch.tensor([len(w) for w in weights]))
        w = torch.cat(weights)
        mix = torch.zeros(len(requests), len(self._genre_names), dtype=torch.float64)
        mix.index_add_(0, owner, w[:, None] * self._genre_features[torch.cat(items)])
        total = torch.zeros(len(requests), dtype=torch.float64).index_add_(0, owner, w.abs())
        mix = (mix / total.clamp_min(1e-12)[:, None]).tolist()
        return [
            {g: v for g, v in zip(self._genre_names, row, strict=True) if abs(v) > 1e-12}
            for row in mix
        ]
