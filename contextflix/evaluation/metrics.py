"""Metric core of protocol S (leave-one-out, full ranking) and protocol R (RMSE).

Protocol S ranks each user's held-out target against every catalogue item the user has not
seen before it. Ranks are pessimistic: every other candidate scoring at least as high as the
target is placed ahead of it, so a constant scorer (or one that saturates) earns nothing, and
non-finite scores are refused because a NaN compares false with everything and would silently
rank a target first. All of it runs as batched torch ops: no Python loop per user or per item.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike
from scipy import sparse

from contextflix.evaluation.stats import bootstrap_cis

TOP_N = 10
"""Length of the recommendation list kept per user for coverage and popularity."""

# Protocol S: 95% bootstrap interval over users, 1,000 resamples, seed 0.
CI_RESAMPLES = 1000
CI_SEED = 0

ScoreFn = Callable[[torch.Tensor], torch.Tensor]
History = sparse.csr_matrix | tuple[ArrayLike, ArrayLike]


def _show_rows(rows: torch.Tensor) -> str:
    listed = rows[:10].tolist()
    return f"{listed}{' ...' if rows.numel() > 10 else ''}"


def _candidate_mask(
    shape: tuple[int, int],
    exclude: torch.Tensor | None,
    candidates: torch.Tensor | None,
    device: torch.device,
) -> torch.Tensor:
    """[B, I] bool: True where an item competes with the target for that user."""
    valid = torch.ones(shape, dtype=torch.bool, device=device)
    if candidates is not None:
        if candidates.shape != (shape[1],) or candidates.dtype != torch.bool:
            raise ValueError(f"candidates must be a bool tensor of shape ({shape[1]},)")
        valid &= candidates.to(device)
    if exclude is not None:
        if exclude.shape != shape or exclude.dtype != torch.bool:
            raise ValueError(f"exclude must be a bool tensor of shape {tuple(shape)}")
        valid &= ~exclude.to(device)
    return valid


def _rows_with_non_finite_candidates(scores: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Indices of rows where some candidate's score is NaN or +-inf.

    A row sum is finite only when every score in the row is, so one cheap reduction clears the
    usual all-finite case; only rows with a non-finite sum (a non-finite score anywhere, or an
    overflow) pay for the exact elementwise check, which was the costliest step of a batch.
    """
    suspect = torch.nonzero(~torch.isfinite(scores.sum(dim=1))).flatten()
    if not suspect.numel():
        return suspect
    bad = (~torch.isfinite(scores[suspect]) & valid[suspect]).any(dim=1)
    return suspect[bad]


def _checked_masked_scores(
    scores: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """Scores with non-candidates at -inf, after refusing bad targets and non-finite scores."""
    n_users, n_items = scores.shape
    if targets.shape != (n_users,):
        raise ValueError(f"need one target per row: targets {tuple(targets.shape)}, rows {n_users}")
    if n_users and (targets.min() < 0 or targets.max() >= n_items):
        raise ValueError(f"targets must be item indices in [0, {n_items})")
    rows = torch.arange(n_users, device=scores.device)
    not_candidate = torch.nonzero(~valid[rows, targets]).flatten()
    if not_candidate.numel():
        raise ValueError(
            f"{not_candidate.numel()} targets are not candidates (excluded as history or outside"
            f" the catalogue), rows {_show_rows(not_candidate)}"
        )
    non_finite = _rows_with_non_finite_candidates(scores, valid)
    if non_finite.numel():
        raise ValueError(
            f"non-finite scores among candidates for {non_finite.numel()} users,"
            f" rows {_show_rows(non_finite)}"
        )
    return scores.masked_fill(~valid, float("-inf"))


def _pessimistic_ranks(masked: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1 + number of other candidates scoring >= the (finite) target score, per row.

    Non-candidates hold -inf and never reach a finite target score; the target itself satisfies
    >=, so the count is already the 1-based rank. Ties count against the target.
    """
    rows = torch.arange(masked.shape[0], device=masked.device)
    target_scores = masked[rows, targets].unsqueeze(1)
    # An int32 count reduces about twice as fast as the default int64 one on CPU.
    return (masked >= target_scores).sum(dim=1, dtype=torch.int32).long()


def target_ranks(
    scores: torch.Tensor,
    targets: torch.Tensor,
    exclude: torch.Tensor | None = None,
    candidates: torch.Tensor | None = None,
) -> torch.Tensor:
    """1-based pessimistic rank of each row's target among its candidates.

    Candidates are the items where ``candidates`` is True and ``exclude`` (the user's history
    before the target) is False. rank = 1 + number of other candidates scoring >= the target.
    Raises ValueError when a target is not a candidate or a candidate's score is not finite.
    """
    if scores.ndim != 2:
        raise ValueError(f"scores must be [users, items], got shape {tuple(scores.shape)}")
    valid = _candidate_mask(scores.shape, exclude, candidates, scores.device)
    targets = torch.as_tensor(targets, dtype=torch.long, device=scores.device)
    return _pessimistic_ranks(_checked_masked_scores(scores, targets, valid), targets)


def ranking_metrics(
    ranks: ArrayLike | torch.Tensor, ks: Sequence[int] = (5, 10, 20)
) -> dict[str, np.ndarray]:
    """Per-user HR, NDCG, MRR, precision and recall at each k, from 1-based ranks.

    With a single target per user: NDCG@k = 1/log2(r+1), MRR@k = 1/r (both 0 beyond k),
    precision@k = HR@k / k and recall@k = HR@k.
    """
    if isinstance(ranks, torch.Tensor):
        ranks = ranks.cpu().numpy()
    r = np.asarray(ranks, dtype=np.float64)
    if r.ndim != 1 or (r < 1).any():
        raise ValueError("ranks must be a 1-d array of 1-based ranks")
    out: dict[str, np.ndarray] = {}
    for k in ks:
        hit = r <= k
        out[f"hr@{k}"] = hit.astype(np.float64)
        out[f"ndcg@{k}"] = np.where(hit, 1.0 / np.log2(r + 1.0), 0.0)
        out[f"mrr@{k}"] = np.where(hit, 1.0 / r, 0.0)
        out[f"precision@{k}"] = hit / k
        out[f"recall@{k}"] = hit.astype(np.float64)
    return out


def coverage(top_items: np.ndarray, n_candidates: int) -> float:
    """Share of the catalogue that appears in at least one user's top list (-1 = padding)."""
    shown = np.unique(top_items[top_items >= 0])
    return float(shown.size / n_candidates)


def mean_popularity(top_items: np.ndarray, item_counts: ArrayLike) -> float:
    """Mean train-interaction count of the recommended items (-1 = padding).

    Next to HR and NDCG it shows whether a model wins by recommending blockbusters to everyone.
    """
    counts = np.asarray(item_counts, dtype=np.float64)
    shown = top_items[top_items >= 0]
    return float(counts[shown].mean()) if shown.size else 0.0


@dataclass(frozen=True)
class EvaluationResult:
    """Per-user outcome of a protocol S evaluation, in the order of the evaluated users."""

    per_user: dict[str, np.ndarray]
    ranks: np.ndarray
    top_items: np.ndarray
    """[n_users, TOP_N] item indices of each user's top list among candidates; -1 pads."""
    n_candidates: int

    def summary(
        self, ci: bool = True, item_counts: ArrayLike | None = None
    ) -> dict[str, float | list[float]]:
        """Means over users with "<metric>_ci" intervals, keyed as in metrics.json.

        Adds "coverage@10" always and "mean_popularity@10" when train ``item_counts`` is given.
        """
        intervals = bootstrap_cis(self.per_user, CI_RESAMPLES, CI_SEED) if ci else {}
        out: dict[str, float | list[float]] = {}
        for name, values in self.per_user.items():
            out[name] = float(values.mean())
            if ci:
                out[f"{name}_ci"] = list(intervals[name])
        out[f"coverage@{TOP_N}"] = coverage(self.top_items, self.n_candidates)
        if item_counts is not None:
            out[f"mean_popularity@{TOP_N}"] = mean_popularity(self.top_items, item_counts)
        return out


def _as_csr(history: History, n_rows: int) -> sparse.csr_matrix:
    """History as a CSR matrix with at least ``n_rows`` rows (stored entries = seen items)."""
    if sparse.issparse(history):
        matrix = sparse.csr_matrix(history)
        if matrix.shape[0] < n_rows:
            raise ValueError(f"history has {matrix.shape[0]} rows, users need {n_rows}")
        return matrix
    rows, cols = (np.asarray(part, dtype=np.int64) for part in history)
    if rows.shape != cols.shape or rows.ndim != 1:
        raise ValueError("history (rows, cols) must be two 1-d arrays of the same length")
    n_cols = int(cols.max()) + 1 if cols.size else 0
    n_rows = max(n_rows, int(rows.max()) + 1 if rows.size else 0)
    ones = np.ones(rows.size, dtype=np.bool_)
    return sparse.csr_matrix((ones, (rows, cols)), shape=(n_rows, n_cols))


def history_mask(
    history: sparse.csr_matrix, user_rows: np.ndarray, n_items: int, device: torch.device
) -> torch.Tensor:
    """[len(user_rows), n_items] bool mask of the history rows of a batch, built in one scatter."""
    block = history[user_rows]
    if block.indices.size and block.indices.max() >= n_items:
        raise ValueError(f"history holds item indices >= the {n_items} scored items")
    rows = np.repeat(np.arange(len(user_rows)), np.diff(block.indptr))
    mask = torch.zeros(len(user_rows), n_items, dtype=torch.bool, device=device)
    row_index = torch.from_numpy(rows).to(device)
    col_index = torch.from_numpy(block.indices).long().to(device)
    mask[row_index, col_index] = True
    return mask


def _top_items(masked: torch.Tensor) -> torch.Tensor:
    """[B, TOP_N] best-scoring candidates per row; -1 where a row has fewer candidates."""
    top = torch.full((masked.shape[0], TOP_N), -1, dtype=torch.long, device=masked.device)
    k = min(TOP_N, masked.shape[1])
    best, index = masked.topk(k, dim=1)
    top[:, :k] = index.masked_fill(best == float("-inf"), -1)
    return top


def _evaluate_batch(
    scores: torch.Tensor,
    batch_targets: torch.Tensor,
    exclude: torch.Tensor,
    candidates: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ranks and top lists of one batch of users, on the scores' device."""
    valid = _candidate_mask(scores.shape, exclude, candidates, scores.device)
    batch_targets = batch_targets.to(scores.device)
    masked = _checked_masked_scores(scores, batch_targets, valid)
    return _pessimistic_ranks(masked, batch_targets), _top_items(masked)


def evaluate_ranking(
    score_fn: ScoreFn,
    users: torch.Tensor,
    targets: torch.Tensor,
    history: History,
    candidates: torch.Tensor | None = None,
    batch_size: int = 1024,
    ks: Sequence[int] = (5, 10, 20),
) -> EvaluationResult:
    """Protocol S evaluation of ``score_fn`` over ``users`` in batches.

    ``score_fn(positions)`` gets a LongTensor of positions into ``users`` and returns the
    [len(positions), n_items] scores of those users. ``history`` rows are indexed by the values
    of ``users`` (user indices), as a CSR matrix or as (rows, cols) arrays of (user, item) pairs
    to exclude; ``targets[j]`` is the target item of ``users[j]``. Batching bounds memory to
    ``batch_size x n_items`` (60k-item catalogues of ml-25m included).
    """
    users = torch.as_tensor(users, dtype=torch.long)
    targets = torch.as_tensor(targets, dtype=torch.long)
    if users.ndim != 1 or users.numel() == 0 or users.shape != targets.shape:
        raise ValueError("users and targets must be non-empty 1-d tensors of the same length")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    user_rows = users.numpy()
    matrix = _as_csr(history, int(user_rows.max()) + 1)
    ranks, tops = [], []
    n_items: int | None = None
    with torch.no_grad():
        for start in range(0, len(users), batch_size):
            positions = torch.arange(start, min(start + batch_size, len(users)))
            scores = score_fn(positions)
            if n_items is None:
                n_items = scores.shape[-1]
            expected = (len(positions), n_items)
            if scores.shape != expected:
                raise ValueError(f"score_fn gave shape {tuple(scores.shape)}, expected {expected}")
            exclude = history_mask(matrix, user_rows[positions.numpy()], n_items, scores.device)
            try:
                batch_ranks, batch_top = _evaluate_batch(
                    scores, targets[positions], exclude, candidates
                )
            except ValueError as error:
                raise ValueError(f"users[{start}:{start + len(positions)}]: {error}") from error
            ranks.append(batch_ranks.cpu())
            tops.append(batch_top.cpu())
    rank_array = torch.cat(ranks).numpy()
    n_candidates = int(candidates.sum()) if candidates is not None else int(n_items)
    return EvaluationResult(
        ranking_metrics(rank_array, ks), rank_array, torch.cat(tops).numpy(), n_candidates
    )


def rmse(predictions: ArrayLike, truth: ArrayLike, low: float, high: float) -> float:
    """Protocol R root mean squared error, predictions clipped to the rating range [low, high]."""
    pred = np.asarray(predictions, dtype=np.float64)
    true = np.asarray(truth, dtype=np.float64)
    if pred.shape != true.shape or pred.size == 0:
        raise ValueError(f"need equally many predictions and ratings: {pred.shape} vs {true.shape}")
    if not np.isfinite(pred).all():
        raise ValueError(f"{int((~np.isfinite(pred)).sum())} predictions are not finite")
    return float(np.sqrt(np.mean((np.clip(pred, low, high) - true) ** 2)))
