"""The one scoring path: requests, base models' scores, standardisation, the mix, the ranking.

The hybrid's training (training/hybrid.py), the evaluation (evaluation/report.py) and the
service (service/recommender.py) all score through :class:`Scorer`, so what is served is what
was evaluated (tests/test_serving_parity.py checks it user by user).

A request is a history (chronological items with their ratings and contexts) plus the context
of the moment of the recommendation. Data-set users also carry their user index (the
collaborative model then uses its trained vector); new visitors carry -1 and are folded in
from their ratings.

Two details make "the same ranking" exact rather than nearly so:

- Blocks of fixed shape. CPU matrix kernels choose their summation order by the shape of
  the product, so a user's scores computed alone differ in the last bits from the same user's
  scores inside a batch of 256, enough to swap two near-equal items. The Scorer therefore
  scores every request in blocks of exactly ``BLOCK`` rows (the last block padded with empty
  requests) and every sequence padded to the model's ``max_len``: the bits of a request's
  scores do not depend on what else is in its batch.
- Ties broken once. Some models give several items exactly the same score (content: movies
  with identical features; popularity: equal counts). A served list must order them; protocol
  S ranks a target behind every item tied with it. :meth:`Scorer.ranking_key` breaks exact
  ties by training popularity, then item index, for both, so the evaluation ranks exactly the
  order the service shows (docs/protocols.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from contextflix.models.collaborative import MatrixFactorization
from contextflix.models.content import ContentModel, profile_weights
from contextflix.models.hybrid import ContextHybrid, standardise
from contextflix.models.popularity import UNKNOWN, ContextPopularity
from contextflix.models.sequential import SequentialRecommender

SOURCES = ("collaborative", "content", "sequential", "popularity")
MODELS = ("popularity", "collaborative", "content", "sequential", "hybrid_no_context", "hybrid")
"""Every model a request can name; hybrid_no_context is the A/B test's arm A."""
CONTEXT_FREE = ("collaborative", "content")
"""Sources whose scores do not depend on the context: computed once per request."""
BLOCK = 8
"""Rows per scoring pass (see the module docstring)."""


@dataclass
class Requests:
    """A padded batch: histories right-aligned in [B, L], item 0 = padding (items are idx + 1)."""

    user: torch.Tensor  # [B] user index, -1 for a new visitor
    items: torch.Tensor  # [B, L] item_idx + 1, 0 = padding
    ratings: torch.Tensor  # [B, L]
    time_of_day: torch.Tensor  # [B, L] context of each history interaction
    device: torch.Tensor  # [B, L]
    target_time_of_day: torch.Tensor  # [B] context of the recommendation
    target_device: torch.Tensor  # [B]

    def __len__(self) -> int:
        return len(self.user)

    @property
    def history_length(self) -> torch.Tensor:
        return (self.items > 0).sum(1)

    def _map(self, function) -> Requests:
        return Requests(**{f.name: function(f.name, getattr(self, f.name)) for f in fields(self)})

    def slice(self, start: int, stop: int) -> Requests:
        return self._map(lambda _, t: t[start:stop])

    def without_context(self) -> Requests:
        """The same requests with every context value replaced by "unknown"."""
        unknown = ("time_of_day", "device", "target_time_of_day", "target_device")
        return self._map(lambda name, t: torch.full_like(t, UNKNOWN) if name in unknown else t)

    def without_device(self) -> Requests:
        """The same requests with the (simulated) device unknown everywhere, time of day kept."""
        return self._map(lambda name, t: torch.full_like(t, UNKNOWN) if "device" in name else t)

    def padded(self, rows: int, width: int | None = None) -> Requests:
        """``rows`` requests: these, then empty visitor requests; histories ``width`` wide."""
        width = self.items.shape[1] if width is None else width
        extra = rows - len(self)

        def pad(name: str, t: torch.Tensor) -> torch.Tensor:
            fill = -1 if name == "user" else UNKNOWN if "time" in name or "device" in name else 0
            if t.ndim == 2:
                t = t[:, -width:] if t.shape[1] >= width else F.pad(t, (width - t.shape[1], 0))
            return torch.cat([t, torch.full((extra, *t.shape[1:]), fill, dtype=t.dtype)])

        return self._map(pad)

    @classmethod
    def concat(cls, parts: Sequence[Requests]) -> Requests:
        """One batch from several (histories left-padded to the widest)."""
        width = max(p.items.shape[1] for p in parts)
        padded = [p.padded(len(p), width) for p in parts]
        return cls(**{f.name: torch.cat([getattr(p, f.name) for p in padded]) for f in fields(cls)})

    def seen(self, n_items: int) -> torch.Tensor:
        """[B, n_items] True where the item is in the history."""
        mask = torch.zeros(len(self), n_items + 1, dtype=torch.bool)
        mask.scatter_(1, self.items, True)
        return mask[:, 1:]

    @classmethod
    def from_frames(
        cls,
        histories: pd.DataFrame,
        users: np.ndarray,
        target_time_of_day: np.ndarray,
        target_device: np.ndarray,
    ) -> Requests:
        """Build from interactions (user_idx, item_idx, rating, time_of_day, device, timestamp).

        ``users`` lists the requests' user indices in order; each user's history is their
        rows of ``histories`` sorted by time (ties in row order).
        """
        frame = histories[histories["user_idx"].isin(users)]
        request_of_user = pd.Series(np.arange(len(users)), index=users)
        row = request_of_user.loc[frame["user_idx"].to_numpy()].to_numpy()
        order = np.lexsort((np.arange(len(frame)), frame["timestamp"].to_numpy(), row))
        frame, row = frame.iloc[order], row[order]
        counts = np.bincount(row, minlength=len(users))
        length = max(int(counts.max()) if len(counts) else 0, 1)
        column = length - 1 - (np.cumsum(counts)[row] - 1 - np.arange(len(row)))
        shape = (len(users), length)

        def grid(values: np.ndarray, dtype: torch.dtype, shift: int = 0) -> torch.Tensor:
            out = torch.zeros(shape, dtype=dtype)
            out[row, column] = torch.tensor(values + shift, dtype=dtype)
            return out

        return cls(
            user=torch.tensor(users, dtype=torch.long),
            items=grid(frame["item_idx"].to_numpy(), torch.long, shift=1),
            ratings=grid(frame["rating"].to_numpy(), torch.float32),
            time_of_day=grid(frame["time_of_day"].to_numpy(), torch.long),
            device=grid(frame["device"].to_numpy(), torch.long),
            target_time_of_day=torch.tensor(np.asarray(target_time_of_day), dtype=torch.long),
            target_device=torch.tensor(np.asarray(target_device), dtype=torch.long),
        )


@dataclass
class BaseModels:
    """The models a hybrid mixes; any of the learned ones may be missing (degraded)."""

    popularity: ContextPopularity
    collaborative: MatrixFactorization | None = None
    content: ContentModel | None = None
    sequential: SequentialRecommender | None = None

    @property
    def available(self) -> tuple[str, ...]:
        return tuple(name for name in SOURCES if getattr(self, name) is not None)

    def scores(self, requests: Requests) -> dict[str, torch.Tensor]:
        """{source: [B, n_items] raw scores} of every available source, as :class:`Scorer`."""
        return Scorer(self).raw(requests)


@dataclass
class Scored:
    """One model's scores of a batch of requests, with what the explanations quote."""

    scores: torch.Tensor  # [B, n_items]
    contributions: dict[str, torch.Tensor]  # source -> [B, n_items], summing to ``scores``
    weights: dict[str, torch.Tensor]  # source -> [B] trust in it (1 for a single model)
    raw: dict[str, torch.Tensor]  # source -> [B, n_items] the source's own score
    user_vectors: torch.Tensor | None = None  # [B, F] MF user vectors (trained or folded in)
    profiles: torch.Tensor | None = None  # [B, D] unit content profiles

    @staticmethod
    def concat(parts: Sequence[Scored], rows: int) -> Scored:
        """The first ``rows`` rows of the parts, in order."""

        def cat(values: list) -> torch.Tensor | None:
            return None if values[0] is None else torch.cat(values)[:rows]

        first = parts[0]
        return Scored(
            scores=cat([p.scores for p in parts]),
            contributions={
                s: cat([p.contributions[s] for p in parts]) for s in first.contributions
            },
            weights={s: cat([p.weights[s] for p in parts]) for s in first.weights},
            raw={s: cat([p.raw[s] for p in parts]) for s in first.raw},
            user_vectors=cat([p.user_vectors for p in parts]),
            profiles=cat([p.profiles for p in parts]),
        )


class Scorer:
    """Scores, mixes and ranks requests for every model; frozen models, no gradients."""

    def __init__(
        self,
        models: BaseModels,
        hybrid: ContextHybrid | None = None,
        hybrid_no_context: ContextHybrid | None = None,
        candidates: np.ndarray | torch.Tensor | None = None,
    ) -> None:
        self.models = models
        self.n_items = models.popularity.n_items
        self.candidates = (
            torch.ones(self.n_items, dtype=torch.bool)
            if candidates is None
            else torch.as_tensor(np.asarray(candidates), dtype=torch.bool)
        )
        if hybrid is None and len(models.available) > 1:
            hybrid = _equal_trust(models.available)  # degraded bundle: trust every model alike
        self.hybrids = {"hybrid": hybrid, "hybrid_no_context": hybrid_no_context or hybrid}
        with torch.inference_mode():
            overall = models.popularity.counts[UNKNOWN, UNKNOWN]
            priority = np.lexsort((np.arange(self.n_items), -overall.numpy()))
            self._tie_rank = torch.empty(self.n_items, dtype=torch.float64)
            self._tie_rank[torch.from_numpy(priority)] = torch.arange(
                self.n_items, dtype=torch.float64
            )
            self._tie_rank /= self.n_items
            content = models.content
            if content is not None:
                self.encodings = content.encode_items()
                self._content_prior = content.item_prior(content.features)
                self._content_scale = content.log_scale.exp()

    # --- what can be scored -----------------------------------------------------------------

    def available_models(self) -> tuple[str, ...]:
        """Models this scorer can answer for: the hybrids need two sources or a trained mix."""
        hybrids = tuple(name for name in ("hybrid", "hybrid_no_context") if self.hybrids[name])
        learned = tuple(s for s in self.models.available if s != "popularity")
        return ("popularity", *learned, *hybrids)

    def sources_of(self, model: str) -> tuple[str, ...]:
        if model not in MODELS:
            raise ValueError(f"unknown model {model!r}; use one of {MODELS}")
        if model.startswith("hybrid"):
            return tuple(s for s in self.hybrids[model].sources if s in self.models.available)
        return (model,)

    # --- scoring ----------------------------------------------------------------------------

    @torch.inference_mode()
    def score(self, requests: Requests, model: str) -> Scored:
        """[B, n_items] scores of ``model`` with contributions, weights and raw scores."""
        blocks = [self._score_block(block, [model])[model] for block in self._blocks(requests)]
        return Scored.concat(blocks, len(requests))

    @torch.inference_mode()
    def scores(self, requests: Requests, models: Sequence[str]) -> dict[str, torch.Tensor]:
        """{model: [B, n_items] scores} of several models, context-free sources shared."""
        blocks = [self._score_block(block, models) for block in self._blocks(requests)]
        return {m: torch.cat([b[m].scores for b in blocks])[: len(requests)] for m in models}

    @torch.inference_mode()
    def raw(self, requests: Requests, sources: Sequence[str] | None = None) -> dict:
        """{source: [B, n_items] raw scores} (default: every available source)."""
        sources = self.models.available if sources is None else sources
        blocks = [self._raw_block(block, sources)[0] for block in self._blocks(requests)]
        return {s: torch.cat([b[s] for b in blocks])[: len(requests)] for s in sources}

    @torch.inference_mode()
    def standardised(
        self, requests: Requests, sources: Sequence[str]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """([B, n_sources, n_items] z-scores over each request's candidates, [B, n_items]
        excluded): the hybrid's input, as its training sees it."""
        z, excluded = [], []
        for block in self._blocks(requests):
            raw, _, _ = self._raw_block(block, sources)
            out = self.excluded(block)
            z.append(torch.stack([standardise(raw[s], out) for s in sources], 1))
            excluded.append(out)
        return torch.cat(z)[: len(requests)], torch.cat(excluded)[: len(requests)]

    def excluded(self, requests: Requests) -> torch.Tensor:
        """[B, n_items] True where an item is no candidate: outside the catalogue or seen."""
        return requests.seen(self.n_items) | ~self.candidates

    def _blocks(self, requests: Requests) -> list[Requests]:
        width = requests.items.shape[1]
        if self.models.sequential is not None:
            width = max(width, self.models.sequential.max_len)
        return [
            requests.slice(start, start + BLOCK).padded(BLOCK, width)
            for start in range(0, len(requests), BLOCK)
        ]

    def _score_block(self, requests: Requests, models: Sequence[str]) -> dict[str, Scored]:
        variants = {"full": requests}
        if "hybrid_no_context" in models:
            variants["none"] = requests.without_context()
        needed = {s for m in models for s in self.sources_of(m)}
        raw, vectors, profiles = self._raw_block(requests, needed)
        raws = {"full": raw}
        if "none" in variants:
            shared = {s: raw[s] for s in CONTEXT_FREE if s in raw}
            raws["none"] = {**shared, **self._raw_block(variants["none"], needed - set(shared))[0]}
        excluded = self.excluded(requests) if any(m.startswith("hybrid") for m in models) else None
        out = {}
        for model in models:
            variant = "none" if model == "hybrid_no_context" else "full"
            if model.startswith("hybrid"):
                out[model] = self._mix(model, variants[variant], raws[variant], excluded)
            else:
                one = raws[variant][model]
                out[model] = Scored(one, {model: one}, {model: torch.ones(len(one))}, {model: one})
            out[model].user_vectors, out[model].profiles = vectors, profiles
        return out

    def _mix(
        self, model: str, requests: Requests, raw: dict[str, torch.Tensor], excluded: torch.Tensor
    ) -> Scored:
        """The hybrid's score: its weights times the z-scores, as ContextHybrid.forward mixes."""
        hybrid = self.hybrids[model]
        present = torch.tensor([s in raw for s in hybrid.sources])
        zeros = torch.zeros(len(requests), self.n_items)
        z = {s: standardise(raw[s], excluded) if s in raw else zeros for s in hybrid.sources}
        stacked = torch.stack([z[s] for s in hybrid.sources], 1)
        mixed, weights = hybrid(
            stacked,
            requests.target_time_of_day,
            requests.target_device,
            requests.history_length,
            available=present,
        )
        scale = hybrid.log_scale.exp()
        used = [s for s in hybrid.sources if s in raw]
        index = {s: j for j, s in enumerate(hybrid.sources)}
        return Scored(
            scores=mixed,
            contributions={s: scale * weights[:, index[s], None] * z[s] for s in used},
            weights={s: weights[:, index[s]] for s in used},
            raw={s: raw[s] for s in used},
        )

    def _raw_block(self, requests: Requests, sources) -> tuple[dict, torch.Tensor | None, ...]:
        """({source: [B, n_items]}, MF user vectors, content profiles) of one block."""
        models, raw = self.models, {}
        vectors = profiles = None
        if "popularity" in sources:
            raw["popularity"] = models.popularity.score(
                requests.target_time_of_day, requests.target_device
            )
        if "collaborative" in sources and models.collaborative is not None:
            bias, vectors = self._user_vectors(requests)
            raw["collaborative"] = models.collaborative.score_vectors(bias, vectors)
        if "content" in sources and models.content is not None:
            profiles = self._profiles(requests)
            cosine = profiles @ self.encodings.T
            raw["content"] = self._content_scale * cosine + self._content_prior
        if "sequential" in sources and models.sequential is not None:
            raw["sequential"] = sequential_scores(models.sequential, requests)
        return raw, vectors, profiles

    def _user_vectors(self, requests: Requests) -> tuple[torch.Tensor, torch.Tensor]:
        """MF (bias [B], vector [B, F]): trained for data-set users, folded in for visitors."""
        mf = self.models.collaborative
        known = requests.user >= 0
        bias = torch.zeros(len(requests))
        vectors = torch.zeros(len(requests), mf.n_factors)
        if known.any():
            bias[known] = mf.user_bias(requests.user[known]).squeeze(-1)
            vectors[known] = mf.user_factors(requests.user[known])
        for i in (~known).nonzero().flatten().tolist():
            present = requests.items[i] > 0
            bias[i], vectors[i] = mf.fold_in(
                requests.items[i][present] - 1, requests.ratings[i][present]
            )
        return bias, vectors

    def _profiles(self, requests: Requests) -> torch.Tensor:
        """[B, D] unit content profiles: sum of w_j e_j over each history (ContentModel)."""
        content = self.models.content
        weights = torch.zeros(len(requests), self.n_items + 1)
        for i in range(len(requests)):
            present = requests.items[i] > 0
            weights[i, requests.items[i][present]] = profile_weights(
                requests.ratings[i][present], content.weight_offset
            )
        return F.normalize(weights[:, 1:] @ self.encodings, dim=-1)

    # --- ranking ----------------------------------------------------------------------------

    def ranking_key(self, scores: torch.Tensor) -> torch.Tensor:
        """float64 scores without exact ties, in the order the service shows and S ranks.

        Each score moves down by less than half the gap to the next float32 value, in
        proportion to the item's place in the training popularity order: distinct scores
        keep their order, equal ones are ordered most popular first, then by item index.
        """
        scores = scores.float()
        gap = (torch.nextafter(scores, torch.tensor(float("inf"))) - scores).double()
        gap = torch.where(torch.isfinite(gap), gap, 0.0)
        return scores.double() - gap * self._tie_rank / 2

    def top_k(self, scores: torch.Tensor, allowed: torch.Tensor, k: int) -> torch.Tensor:
        """[B, k] best allowed items per row in ranking order, -1 where fewer are allowed."""
        key = self.ranking_key(scores).masked_fill(~allowed, float("-inf"))
        k = min(k, self.n_items)
        best, index = key.topk(k, dim=1)
        return index.masked_fill(best == float("-inf"), -1)


def _equal_trust(sources: Sequence[str]) -> ContextHybrid:
    """An untrained mix trusting every source equally (a bundle without a trained hybrid)."""
    hybrid = ContextHybrid(list(sources))
    with torch.no_grad():
        for parameter in hybrid.gate[-1].parameters():
            parameter.zero_()
        hybrid.log_scale.zero_()
    return hybrid.eval()


def sequential_scores(model: SequentialRecommender, requests: Requests) -> torch.Tensor:
    """Position t carries the context of interaction t+1; the last, the request's context."""
    items = requests.items[:, -model.max_len :]
    tod = torch.cat([requests.time_of_day[:, 1:], requests.target_time_of_day[:, None]], 1)
    dev = torch.cat([requests.device[:, 1:], requests.target_device[:, None]], 1)
    return model.score_last(items, tod[:, -model.max_len :], dev[:, -model.max_len :])


@dataclass
class Targets:
    """Protocol S targets of one part, one per user in user_idx order."""

    requests: Requests
    items: torch.Tensor  # [U] target item_idx
    ratings: torch.Tensor  # [U] the target's rating


def protocol_s_targets(dataset, part: str) -> Targets:
    """Requests and targets of protocol S's "val" or "test" part for every user.

    The history of a validation target is the train part; that of a test target is train
    plus the validation interaction (docs/protocols.md, S.6). The request's context is the
    target interaction's own context (S.5). This is the one place that builds them.
    """
    if part not in ("val", "test"):
        raise ValueError(f"part must be 'val' or 'test', not {part!r}")
    s = dataset.s
    history_rows = s.train if part == "val" else np.concatenate([s.train, s.valid])
    target = dataset.ratings.iloc[s.valid if part == "val" else s.test].sort_values("user_idx")
    requests = Requests.from_frames(
        dataset.ratings.iloc[history_rows],
        target["user_idx"].to_numpy(),
        target["time_of_day"].to_numpy(),
        target["device"].to_numpy(),
    )
    return Targets(
        requests=requests,
        items=torch.tensor(target["item_idx"].to_numpy(), dtype=torch.long),
        ratings=torch.tensor(target["rating"].to_numpy(), dtype=torch.float32),
    )


def fit_popularity(dataset) -> ContextPopularity:
    """Context popularity of protocol S's train interactions."""
    train = dataset.ratings.iloc[dataset.s.train]
    return ContextPopularity.fit(
        torch.tensor(train["item_idx"].to_numpy()),
        torch.tensor(train["time_of_day"].to_numpy()),
        torch.tensor(train["device"].to_numpy()),
        dataset.n_items,
    )
