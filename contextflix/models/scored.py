"""Scored: what the one scoring path (scoring.py) answers for a batch of requests.

Beside each model's scores it keeps what the explanations quote (service/explain.py): each
source's contribution, trust and raw score, the MF user vectors, the content profiles and the
sequential model's attention and state. Passes of a batch are scored separately and gathered
here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass
class Scored:
    """One model's scores of a batch of requests, with what the explanations quote."""

    scores: torch.Tensor  # [B, n_items]
    contributions: dict[str, torch.Tensor]  # source -> [B, n_items], summing to ``scores``
    weights: dict[str, torch.Tensor]  # source -> [B] trust in it (1 for a single model)
    raw: dict[str, torch.Tensor]  # source -> [B, n_items] the source's own score
    user_vectors: torch.Tensor | None = None  # [B, F] MF user vectors (trained or folded in)
    profiles: torch.Tensor | None = None  # [B, D] unit content profiles
    attention: torch.Tensor | None = None  # [B, max_len] sequential, see sequential_state
    state: torch.Tensor | None = None  # [B, D] sequential state its scores come from

    @staticmethod
    def gather(parts: Sequence[tuple[torch.Tensor, Scored]], n: int) -> Scored:
        """n rows from (row indices, block) pairs: block row j is request ``rows[j]``."""

        def field(get) -> torch.Tensor | None:
            if get(parts[0][1]) is None:
                return None
            return gather_rows([(rows, get(part)) for rows, part in parts], n)

        first = parts[0][1]
        return Scored(
            scores=field(lambda p: p.scores),
            contributions={
                s: field(lambda p, s=s: p.contributions[s]) for s in first.contributions
            },
            weights={s: field(lambda p, s=s: p.weights[s]) for s in first.weights},
            raw={s: field(lambda p, s=s: p.raw[s]) for s in first.raw},
            user_vectors=field(lambda p: p.user_vectors),
            profiles=field(lambda p: p.profiles),
            attention=field(lambda p: p.attention),
            state=field(lambda p: p.state),
        )


@dataclass
class Pass:
    """One pass's raw scores per source and the evidence computed with them."""

    raw: dict[str, torch.Tensor]
    user_vectors: torch.Tensor | None = None
    profiles: torch.Tensor | None = None
    attention: torch.Tensor | None = None
    state: torch.Tensor | None = None


def gather_rows(parts: Sequence[tuple[torch.Tensor, torch.Tensor]], n: int) -> torch.Tensor:
    """[n, ...] from (row indices, [pass rows, ...] values) pairs; padding rows dropped."""
    if len(parts) == 1:  # one block: its rows are 0..n-1 in order
        return parts[0][1][:n]
    first = parts[0][1]
    out = torch.empty((n, *first.shape[1:]), dtype=first.dtype)
    for rows, values in parts:
        out[rows] = values[: len(rows)]
    return out
