"""The one scoring path: requests, base models' scores, standardisation, the mix, the ranking.

The hybrid's training (training/hybrid.py), the evaluation (evaluation/report.py) and the
service (service/recommender.py) all score through :class:`Scorer`, so what is served is what
was evaluated (tests/test_serving_parity.py checks it user by user). It stays one file, past
the usual 400 lines, because splitting it would recreate what it exists to prevent: two
places that each hold half of how a score is made.

Requests and protocol S targets are built in contextflix/models/requests.py, and what a
pass answers is a ``Scored`` (contextflix/models/scored.py); both re-exported here.

Two details make "the same ranking" exact rather than nearly so:

- One thread, and products whose bits do not depend on the batch. CPU matrix kernels choose
  their summation order by the shape of a product and by how many threads share it, enough
  to swap two near-equal items between a user scored alone and in a batch. The Scorer
  therefore scores on one intra-op thread, in passes of up to ``MAX_ROWS`` requests grouped
  by the sequence length their own history needs; the small products get at least MIN_ROWS
  rows (``at_least_rows``) and the products with the whole catalogue are made four rows at a
  time (``in_fours``; models/exact.py says why each). Seen exception: a product with fewer than
  16 outputs and an input width not a multiple of 4 depends on the row's place, so a hybrid
  gate narrower than 16 (``hidden``; the configs use 16) is exact only nearly. Everything
  else is row by row (elementwise, per-row reductions): a request's scores do not depend on
  what else is in its batch, nor on the machine's core count.
- Ties broken once. Some models give several items exactly the same score (content: movies
  with identical features; popularity: equal counts). A served list must order them; protocol
  S ranks a target behind every item tied with it. :meth:`Scorer.ranking_key` breaks exact
  ties by training popularity, then item index, for both, so the evaluation ranks exactly the
  order the service shows (docs/protocols.md).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from contextflix.models.collaborative import MatrixFactorization
from contextflix.models.content import ContentModel
from contextflix.models.exact import MIN_ROWS, at_least_rows, columns_of, in_fours
from contextflix.models.hybrid import ContextHybrid, standardise
from contextflix.models.popularity import UNKNOWN, ContextPopularity
from contextflix.models.requests import Requests, Targets, protocol_s_targets
from contextflix.models.scored import Pass, Scored, gather_rows
from contextflix.models.sequential import SequentialRecommender

__all__ = [
    "MAX_ROWS",
    "MIN_ROWS",
    "MODELS",
    "SOURCES",
    "BaseModels",
    "Requests",
    "Scored",
    "Scorer",
    "Targets",
    "at_least_rows",
    "columns_of",
    "fit_popularity",
    "in_fours",
    "one_thread",
    "protocol_s_targets",
    "scoring_pass",
    "sequential_length",
    "sequential_state",
]

SOURCES = ("collaborative", "content", "sequential", "popularity")
MODELS = ("popularity", "collaborative", "content", "sequential", "hybrid_no_context", "hybrid")
"""Every model a request can name; hybrid_no_context is the A/B test's arm A."""
CONTEXT_FREE = ("collaborative", "content")
"""Sources whose scores do not depend on the context: computed once per request."""
MAX_ROWS = 16
"""Rows of the largest scoring pass: enough that a batch costs a fraction per request; more
would cost more per row (the sequential model's activations leave the CPU cache: 0.21 ms a
row at 16, 0.42 at 64 on ml-100k) and a pass's [rows, n_items] tensors grow."""


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the enclosed scoring on one intra-op thread (the calling thread's setting only),
    so its bits do not depend on the core count (module docstring)."""
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def scoring_pass(method):
    """A method that scores (a Scorer pass, a served answer) without gradients, on one thread."""

    @functools.wraps(method)
    def wrapped(*args, **kwargs):
        with torch.inference_mode(), one_thread():
            return method(*args, **kwargs)

    return wrapped


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
            self.columns: dict[str, torch.Tensor] = {}  # catalogue tables as in_fours reads them
            if models.collaborative is not None:
                self.columns["collaborative"] = columns_of(models.collaborative.item_factors.weight)
            if models.sequential is not None:
                self.columns["sequential"] = columns_of(models.sequential.item_table)
            content = models.content
            if content is not None:
                self.encodings = content.encode_items()
                self.columns["content"] = columns_of(self.encodings)
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

    # --- scoring ---------------------------------------------------------------------------

    @scoring_pass
    def score(self, requests: Requests, model: str) -> Scored:
        """[B, n_items] scores of ``model`` with contributions, weights, raw scores and the
        evidence explanations quote (user vectors, content profiles, sequential attention
        and state)."""
        parts = [
            (rows, self._score_block(block, [model], length)[model])
            for rows, block, length in self._blocks(requests)
        ]
        return Scored.gather(parts, len(requests))

    @scoring_pass
    def scores(self, requests: Requests, models: Sequence[str]) -> dict[str, torch.Tensor]:
        """{model: [B, n_items] scores} of several models, context-free sources shared."""
        parts = [
            (rows, self._score_block(block, models, length))
            for rows, block, length in self._blocks(requests)
        ]
        return {m: gather_rows([(r, p[m].scores) for r, p in parts], len(requests)) for m in models}

    @scoring_pass
    def raw(self, requests: Requests, sources: Sequence[str] | None = None) -> dict:
        """{source: [B, n_items] raw scores} (default: every available source)."""
        sources = self.models.available if sources is None else sources
        parts = [
            (rows, self._raw_block(block, sources, length).raw)
            for rows, block, length in self._blocks(requests)
        ]
        return {s: gather_rows([(r, p[s]) for r, p in parts], len(requests)) for s in sources}

    @scoring_pass
    def sequential_states(
        self, requests: Requests, lengths: torch.Tensor | None = None
    ) -> torch.Tensor:
        """[B, D] the sequential model's state each request's next item is scored from.

        ``lengths`` (default: each history's length) decide which rows share a pass: a row
        that must be read like another (an occlusion variant like its request) may borrow its.
        """
        parts = [
            (rows, sequential_state(self.models.sequential, block, length)[0])
            for rows, block, length in self._blocks(requests, lengths)
        ]
        return gather_rows(parts, len(requests))

    @scoring_pass
    def standardised(
        self, requests: Requests, sources: Sequence[str]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """([B, n_sources, n_items] z-scores over each request's candidates, [B, n_items]
        excluded): the hybrid's input, as its training sees it."""
        z, excluded = [], []
        for rows, block, length in self._blocks(requests):
            raw = self._raw_block(block, sources, length).raw
            out = self.excluded(block)
            z.append((rows, _standardised(raw, sources, out)))
            excluded.append((rows, out))
        return gather_rows(z, len(requests)), gather_rows(excluded, len(requests))

    def excluded(self, requests: Requests) -> torch.Tensor:
        """[B, n_items] True where an item is no candidate: outside the catalogue or seen."""
        return requests.seen(self.n_items) | ~self.candidates

    def _blocks(
        self, requests: Requests, lengths: torch.Tensor | None = None
    ) -> list[tuple[torch.Tensor, Requests, int]]:
        """(row indices, a pass of them, its sequence length) covering ``requests``.

        Rows are grouped by the sequence length their own history needs
        (:func:`sequential_length`), so every row is computed in a pass of the same width,
        whatever else is in the batch; passes hold at most MAX_ROWS rows.
        """
        lengths = requests.history_length if lengths is None else lengths
        sequential = self.models.sequential
        groups: dict[int, list[int]] = {}
        for row, n in enumerate(lengths.tolist()):
            length = 1 if sequential is None else sequential_length(n, sequential.max_len)
            groups.setdefault(length, []).append(row)
        out = []
        for length, rows in sorted(groups.items()):
            width = max(requests.items.shape[1], length)
            for start in range(0, len(rows), MAX_ROWS):
                chunk = torch.tensor(rows[start : start + MAX_ROWS])
                block = requests if len(chunk) == len(requests) else requests.take(chunk)
                block = block.padded(len(chunk), width)
                out.append((chunk, block, length))
        return out

    def _score_block(
        self, requests: Requests, models: Sequence[str], length: int
    ) -> dict[str, Scored]:
        """Every model's Scored for one pass, context-free sources computed once."""
        variants = {"full": requests}
        if "hybrid_no_context" in models:
            variants["none"] = requests.without_context()
        needed = {s for m in models for s in self.sources_of(m)}
        passes = {"full": self._raw_block(requests, needed, length)}
        if "none" in variants:
            full = passes["full"]
            shared = {s: full.raw[s] for s in CONTEXT_FREE if s in full.raw}
            rest = self._raw_block(variants["none"], needed - set(shared), length)
            rest.raw.update(shared)
            rest.user_vectors, rest.profiles = full.user_vectors, full.profiles
            passes["none"] = rest
        excluded = self.excluded(requests) if any(m.startswith("hybrid") for m in models) else None
        out = {}
        for model in models:
            variant = "none" if model == "hybrid_no_context" else "full"
            done = passes[variant]
            if model.startswith("hybrid"):
                out[model] = self._mix(model, variants[variant], done.raw, excluded)
            else:
                one = done.raw[model]
                out[model] = Scored(one, {model: one}, {model: torch.ones(len(one))}, {model: one})
            out[model].user_vectors, out[model].profiles = done.user_vectors, done.profiles
            out[model].attention, out[model].state = done.attention, done.state
        return out

    def _mix(
        self, model: str, requests: Requests, raw: dict[str, torch.Tensor], excluded: torch.Tensor
    ) -> Scored:
        """The hybrid's score: its weights times the z-scores, as ContextHybrid.forward mixes
        (its gate's products on at least MIN_ROWS rows)."""
        hybrid = self.hybrids[model]
        present = torch.tensor([s in raw for s in hybrid.sources])
        stacked = _standardised(raw, hybrid.sources, excluded)
        weights = hybrid.weights(
            at_least_rows(requests.target_time_of_day),
            at_least_rows(requests.target_device),
            at_least_rows(requests.history_length),
            available=present,
        )[: len(requests)]
        mixed = hybrid.mix(stacked, weights)
        scale = hybrid.log_scale.exp()
        used = [s for s in hybrid.sources if s in raw]
        index = {s: j for j, s in enumerate(hybrid.sources)}
        contributions = scale * weights[:, :, None] * stacked
        return Scored(
            scores=mixed,
            contributions={s: contributions[:, index[s]] for s in used},
            weights={s: weights[:, index[s]] for s in used},
            raw={s: raw[s] for s in used},
        )

    def _raw_block(self, requests: Requests, sources, length: int) -> Pass:
        """Each source's [B, n_items] scores of one pass with their evidence; the sequential
        model reads its sequences ``length`` long."""
        models, done = self.models, Pass({})
        if "popularity" in sources:
            done.raw["popularity"] = models.popularity.score(
                requests.target_time_of_day, requests.target_device
            )
        if "collaborative" in sources and models.collaborative is not None:
            bias, done.user_vectors = self._user_vectors(requests)
            done.raw["collaborative"] = models.collaborative.score_vectors(
                bias, done.user_vectors, self.columns["collaborative"]
            )
        if "content" in sources and models.content is not None:
            done.profiles = self._profiles(requests)
            cosine = in_fours(done.profiles, self.columns["content"])
            done.raw["content"] = self._content_scale * cosine + self._content_prior
        if "sequential" in sources and models.sequential is not None:
            state, attention = sequential_state(models.sequential, requests, length, True)
            done.raw["sequential"] = models.sequential.scores_of(state, self.columns["sequential"])
            done.state = state
            done.attention = F.pad(attention, (models.sequential.max_len - attention.shape[1], 0))
        return done

    def _user_vectors(self, requests: Requests) -> tuple[torch.Tensor, torch.Tensor]:
        """MF (bias [B], vector [B, F]): trained for data-set users, folded in for visitors."""
        mf = self.models.collaborative
        known = requests.user >= 0
        bias = torch.zeros(len(requests))
        vectors = torch.zeros(len(requests), mf.n_factors)
        if known.any():
            bias[known] = mf.user_bias(requests.user[known]).squeeze(-1)
            vectors[known] = mf.user_factors(requests.user[known])
        visitors = ~known & (requests.history_length > 0)  # no history: the prior, 0
        for i in visitors.nonzero().flatten().tolist():
            present = requests.items[i] > 0
            bias[i], vectors[i] = mf.fold_in(
                requests.items[i][present] - 1, requests.ratings[i][present]
            )
        return bias, vectors

    def _profiles(self, requests: Requests) -> torch.Tensor:
        """[B, D] unit content profiles: sum of w_j e_j over each history, with the weights
        of ``content.profile_weights``: offset + rating - the history's mean rating.

        Each row's sum runs over its own movies in item order, whatever else is in the batch
        and however wide its padding: its bits are the row's, and no product with the whole
        catalogue is made."""
        present = requests.items > 0
        count = present.sum(1, keepdim=True).clamp_min(1)
        mean = (requests.ratings * present).sum(1, keepdim=True) / count  # exact: star sums
        w = (self.models.content.weight_offset + requests.ratings - mean) * present
        weights = torch.zeros(len(requests), self.n_items + 1).scatter_(1, requests.items, w)
        profiles = []
        for row in weights[:, 1:]:
            items = row.nonzero().squeeze(1)
            profiles.append(row[items] @ self.encodings[items])
        return F.normalize(torch.stack(profiles), dim=-1)

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


def _standardised(
    raw: dict[str, torch.Tensor], sources: Sequence[str], excluded: torch.Tensor
) -> torch.Tensor:
    """[B, n_sources, n_items] z-scores of the sources in order; zeros for a missing one."""
    zeros = torch.zeros_like(excluded, dtype=torch.float32)
    stacked = torch.stack([raw.get(s, zeros) for s in sources], 1)
    return standardise(stacked, excluded[:, None])


def _equal_trust(sources: Sequence[str]) -> ContextHybrid:
    """An untrained mix trusting every source equally (a bundle without a trained hybrid)."""
    hybrid = ContextHybrid(list(sources))
    with torch.no_grad():
        for parameter in hybrid.gate[-1].parameters():
            parameter.zero_()
        hybrid.log_scale.zero_()
    return hybrid.eval()


def sequential_length(history_length: int, max_len: int) -> int:
    """The sequence length a history is read at: the next power of two, at least MIN_ROWS
    (a lone request's products then have enough rows), at most max_len.

    A handful of widths, so the rows of a batch share few passes, and each history is always
    read at the same width (module docstring).
    """
    return min(max(MIN_ROWS, 1 << max(history_length - 1, 0).bit_length()), max_len)


def sequential_state(
    model: SequentialRecommender,
    requests: Requests,
    length: int | None = None,
    return_attention: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The hidden state [B, D] the next item after each history's last ``length`` (default
    max_len) items is scored from, and with ``return_attention`` the last position's
    attention over them, [B, length] (head mean of the last layer; 0 on padding), which does
    not change the state's bits.

    Position t carries the context of interaction t+1; the last, the request's context.
    """
    length = model.max_len if length is None else min(length, model.max_len)
    items = requests.items[:, -length:]
    tod = torch.cat([requests.time_of_day[:, 1:], requests.target_time_of_day[:, None]], 1)
    dev = torch.cat([requests.device[:, 1:], requests.target_device[:, None]], 1)
    return model.last_hidden(items, tod[:, -length:], dev[:, -length:], return_attention)


def fit_popularity(dataset) -> ContextPopularity:
    """Context popularity of protocol S's train interactions."""
    return ContextPopularity.from_frame(dataset.ratings.iloc[dataset.s.train], dataset.n_items)
