"""Losses whose cost does not grow with the catalogue: sampled softmax (log-Q), gBCE and SCE.

The full softmax over every item costs O(batch x catalogue) per step, which is what makes
ML-25M-sized catalogues (59k-87k movies) slow. Instead, the target competes with ``K``
negatives drawn once per batch from a proposal ``q`` (training popularity to a power), every
logit corrected by ``- log q`` so that the expected gradient approximates the full softmax's
(Bengio & Senecal 2008; Yi et al., RecSys 2019), and a negative equal to the row's target is
masked. Cost per step: O(batch x K).

gBCE (Petrov & Macdonald, gSASRec, RecSys 2023) is the other way: binary cross-entropy of the
target against ``K`` uniform negatives, with the positive's probability raised to the power
``beta`` (from the sampling rate ``alpha = K / (n_items - 1)`` and a calibration ``t``), which
undoes the overconfidence that negative sampling teaches plain BCE.

SCE (Scalable Cross-Entropy, Mezentsev et al., RecSys 2024) keeps the full softmax's target but
only its hardest negatives: random directions act as buckets; each bucket takes the hidden
states and the items that point most along it (so a state meets the items it scores highest,
the ones that dominate the full softmax's normaliser), and each state's loss is its largest
cross-entropy over the buckets it is in. Cost per step: O(buckets x (N + n_items) x D) to
bucket (a projection, N / buckets times cheaper than the full logits) plus
O(buckets x rows x items x D) for the logits, which does not depend on the catalogue.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def popularity_log_q(items: np.ndarray, n_items: int, power: float = 1.0) -> torch.Tensor:
    """log q_i of the proposal q_i ~ (count_i + 1) ** power over the training interactions."""
    counts = np.bincount(np.asarray(items, dtype=np.int64), minlength=n_items)
    weights = torch.as_tensor(counts + 1.0, dtype=torch.float64) ** power
    return (weights / weights.sum()).log().float()


def sample_negatives(log_q: torch.Tensor, k: int) -> torch.Tensor:
    """``k`` item indices drawn with replacement from the proposal."""
    return torch.multinomial(log_q.exp(), k, replacement=True)


def sampled_cross_entropy(
    positive: torch.Tensor,
    negative: torch.Tensor,
    targets: torch.Tensor,
    negatives: torch.Tensor,
    log_q: torch.Tensor,
) -> torch.Tensor:
    """Mean cross-entropy of the target among [target, negatives], logits log-Q corrected.

    positive [N] (logit of each row's target), negative [N, K] (logits of the shared
    negatives), targets [N] and negatives [K] (item indices), log_q [n_items].
    """
    positive = positive - log_q[targets]
    negative = negative - log_q[negatives][None, :]
    negative = negative.masked_fill(negatives[None, :] == targets[:, None], float("-inf"))
    logits = torch.cat([positive[:, None], negative], dim=1)
    return F.cross_entropy(logits, torch.zeros_like(targets))


def gbce(
    positive: torch.Tensor,
    negative: torch.Tensor,
    targets: torch.Tensor,
    negatives: torch.Tensor,
    n_items: int,
    t: float = 0.75,
) -> torch.Tensor:
    """gSASRec's generalised binary cross-entropy, mean over the target and its negatives.

    positive [N], negative [N, K] logits; targets [N], negatives [K] item indices drawn
    uniformly; ``t`` in [0, 1] calibrates (0: plain BCE, 1: the full softmax's fixed point).
    A negative equal to the row's target is left out.
    """
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"gBCE's t must be in [0, 1], not {t}")
    alpha = len(negatives) / (n_items - 1)
    beta = alpha * (t * (1.0 - 1.0 / alpha) + 1.0 / alpha)
    wanted = negatives[None, :] != targets[:, None]
    negative_terms = (F.logsigmoid(-negative) * wanted).sum(dim=1)
    return -(beta * F.logsigmoid(positive) + negative_terms).mean() / (len(negatives) + 1)


def scalable_cross_entropy(
    hidden: torch.Tensor,
    table: torch.Tensor,
    targets: torch.Tensor,
    buckets: int,
    rows_per_bucket: int,
    items_per_bucket: int,
) -> torch.Tensor:
    """SCE: mean over the rows that fall in some bucket of each row's hardest bucket loss.

    hidden [N, D] (one row per prediction), table [n_items, D] (output embeddings), targets
    [N] item indices. ``buckets`` random directions each pick the ``rows_per_bucket`` rows and
    the ``items_per_bucket`` items with the largest projection on them; within a bucket a row's
    logits are its target's and those of the bucket's items (its own target left out). With
    buckets that hold every row and every item this is exactly the full cross-entropy.
    """
    if min(buckets, rows_per_bucket, items_per_bucket) < 1:
        raise ValueError("SCE needs buckets, rows_per_bucket and items_per_bucket >= 1")
    positive = (hidden * table[targets]).sum(-1)
    with torch.no_grad():  # bucketing is a search, not part of the loss
        directions = torch.randn(buckets, hidden.shape[1], device=hidden.device)
        rows = (directions @ hidden.T).topk(min(rows_per_bucket, len(hidden)), dim=1).indices
        items = (directions @ table.T).topk(min(items_per_bucket, len(table)), dim=1).indices
    negative = hidden[rows] @ table[items].transpose(1, 2)  # [buckets, rows, items]
    negative = negative.masked_fill(targets[rows][:, :, None] == items[:, None, :], float("-inf"))
    logits = torch.cat([positive[rows][:, :, None], negative], dim=2)
    per_pair = torch.logsumexp(logits, dim=2) - positive[rows]  # cross-entropy, target first
    per_row = hidden.new_zeros(len(hidden)).scatter_reduce(
        0, rows.flatten(), per_pair.flatten(), reduce="amax", include_self=False
    )
    bucketed = torch.bincount(rows.flatten(), minlength=len(hidden)) > 0
    return per_row[bucketed].mean()
