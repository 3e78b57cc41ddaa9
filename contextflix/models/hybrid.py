"""Context-aware hybrid: how much to trust each base model, decided per request from context.

Each base model's scores are standardised per request over the items that can be
recommended (so a model's scale cannot buy it weight), then mixed with softmax weights that a
small network computes from the time of day, the device and the history length. With
``use_context=False`` the network sees a learned "unknown" context instead: the A/B test's
arm A, trained the same way. :meth:`ContextHybrid.forward` is the one place the mix is
written; training, evaluation and serving all call it (the last two through
``contextflix.models.scoring.Scorer``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from contextflix.models.popularity import N_DEVICES, N_TIMES_OF_DAY, UNKNOWN


def standardise(scores: torch.Tensor, excluded: torch.Tensor | None = None) -> torch.Tensor:
    """Per-row z-scores, with the mean and spread of the non-excluded items only.

    Excluded items (seen, outside the catalogue) get the z-score of their own value on that
    scale, so a caller that shows seen items ranks them on the same footing.
    """
    # finite scores times this mask: masked_fill's sums, 3x faster
    kept = torch.ones_like(scores) if excluded is None else (~excluded).to(scores.dtype)
    n = kept.sum(-1, keepdim=True).clamp_min(1)
    mean = (scores * kept).sum(-1, keepdim=True) / n
    centred = scores - mean
    spread = centred * kept
    var = (spread * spread).sum(-1, keepdim=True) / n
    return centred / var.sqrt().clamp_min(1e-6)


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

    def config(self) -> dict:
        return {
            "sources": self.sources,
            "hidden": self.hidden,
            "use_context": self.use_context,
            "context_dim": self.context_dim,
        }

    def weights(
        self,
        time_of_day: torch.Tensor,
        device: torch.Tensor,
        history_length: torch.Tensor,
        available: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """[B, n_sources] softmax trust in each base model for these requests.

        ``available`` ([n_sources] bool) drops missing sources and renormalises over the rest.
        """
        if not self.use_context:
            time_of_day, device = (
                torch.full_like(time_of_day, UNKNOWN),
                torch.full_like(device, UNKNOWN),
            )
        signals = torch.log1p(history_length.float())[:, None] / 5.0
        x = torch.cat([self.time_of_day(time_of_day), self.device(device), signals], dim=-1)
        logits = self.gate(x)
        if available is not None and not bool(available.all()):
            logits = logits.masked_fill(~available, float("-inf"))
        return F.softmax(logits, dim=-1)

    def forward(
        self,
        scores: torch.Tensor,
        time_of_day: torch.Tensor,
        device: torch.Tensor,
        history_length: torch.Tensor,
        available: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix standardised scores [B, n_sources, n_items] -> ([B, n_items], weights [B, n_sources])."""
        w = self.weights(time_of_day, device, history_length, available)
        return self.mix(scores, w), w

    def mix(self, scores: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """[B, n_items]: standardised scores [B, n_sources, n_items] weighted by trust."""
        return self.log_scale.exp() * (weights[:, :, None] * scores).sum(1)
