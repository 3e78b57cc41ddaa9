"""Context-aware hybrid: how much to trust each base model, decided per request from context.

Each base model's scores are standardised per request over the items that can be
recommended (so a model's scale cannot buy it weight), then mixed with softmax weights that a
small network computes from the time of day, the device and the history length. With
``use_context=False`` the network sees a learned "unknown" context instead: the A/B test's
arm A, trained the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from contextflix.models.popularity import N_DEVICES, N_TIMES_OF_DAY, UNKNOWN


def standardise(scores: torch.Tensor, excluded: torch.Tensor | None = None) -> torch.Tensor:
    """Per-row z-scores over the non-excluded items; excluded items get 0."""
    allowed = torch.ones_like(scores, dtype=torch.bool) if excluded is None else ~excluded
    n = allowed.sum(-1, keepdim=True).clamp_min(1)
    zeroed = scores.masked_fill(~allowed, 0.0)
    mean = zeroed.sum(-1, keepdim=True) / n
    var = ((scores - mean).masked_fill(~allowed, 0.0) ** 2).sum(-1, keepdim=True) / n
    return ((scores - mean) / var.sqrt().clamp_min(1e-6)).masked_fill(~allowed, 0.0)


class ContextHybrid(nn.Module):
    def __init__(
        self,
        sources: Sequence[str],
        hidden: int = 16,
        use_context: bool = True,
        context_dim: int = 4,
    ) -> None:
        super().__init__()
        self.sources = list(sources)
        self.hidden, self.use_context, self.context_dim = hidden, use_context, context_dim
        self.time_of_day = nn.Embedding(N_TIMES_OF_DAY + 1, context_dim)
        self.device = nn.Embedding(N_DEVICES + 1, context_dim)
        self.gate = nn.Sequential(
            nn.Linear(2 * context_dim + 1, hidden), nn.Tanh(), nn.Linear(hidden, len(self.sources))
        )
        self.log_scale = nn.Parameter(torch.tensor(1.0))
        self.rating_offset = nn.Embedding((N_TIMES_OF_DAY + 1) * (N_DEVICES + 1), 1)
        nn.init.zeros_(self.rating_offset.weight)

    def config(self) -> dict:
        return {
            "sources": self.sources,
            "hidden": self.hidden,
            "use_context": self.use_context,
            "context_dim": self.context_dim,
        }

    def _context(self, time_of_day: torch.Tensor, device: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not self.use_context:
            return torch.full_like(time_of_day, UNKNOWN), torch.full_like(device, UNKNOWN)
        return time_of_day, device

    def weights(
        self, time_of_day: torch.Tensor, device: torch.Tensor, history_length: torch.Tensor
    ) -> torch.Tensor:
        """[B, n_sources] softmax trust in each base model for these requests."""
        time_of_day, device = self._context(time_of_day, device)
        signals = torch.log1p(history_length.float())[:, None] / 5.0
        x = torch.cat([self.time_of_day(time_of_day), self.device(device), signals], dim=-1)
        return F.softmax(self.gate(x), dim=-1)

    def forward(
        self,
        scores: torch.Tensor,
        time_of_day: torch.Tensor,
        device: torch.Tensor,
        history_length: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix standardised scores [B, n_sources, n_items] -> ([B, n_items], weights [B, n_sources])."""
        w = self.weights(time_of_day, device, history_length)
        return self.log_scale.exp() * torch.einsum("bs,bsi->bi", w, scores), w

    def rating(
        self, base_rating: torch.Tensor, time_of_day: torch.Tensor, device: torch.Tensor
    ) -> torch.Tensor:
        """A rating estimate: the collaborative prediction shifted by a learned context offset."""
        time_of_day, device = self._context(time_of_day, device)
        cell = time_of_day * (N_DEVICES + 1) + device
        return base_rating + self.rating_offset(cell).squeeze(-1)
