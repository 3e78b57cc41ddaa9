"""Explanations are true per item: the sequential reason names what drove THIS item."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from contextflix.models.popularity import UNKNOWN
from contextflix.models.scoring import Requests
from contextflix.models.sequential import SequentialRecommender
from tests.support import sequential_occlusion

PAIRS = {t: t + 8 for t in range(8)}
"""Planted chains: watching a trigger (0-7) makes its partner (8-15) likely next."""
FILLERS = torch.arange(16, 20)


def chain_sequences(n: int, generator: torch.Generator) -> torch.Tensor:
    """[n, 7] item_idx + 1: three distinct triggers, three fillers, the partner of one trigger.

    The triggers are never among the 3 most recent items: the reason must look further back.
    """
    rows = []
    for _ in range(n):
        triggers = torch.randperm(8, generator=generator)[:3]
        partner = PAIRS[int(triggers[torch.randint(3, (1,), generator=generator)])]
        fillers = FILLERS[torch.randint(len(FILLERS), (3,), generator=generator)]
        rows.append(torch.cat([triggers, fillers, torch.tensor([partner])]))
    return torch.stack(rows) + 1


def planted_model() -> SequentialRecommender:
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = SequentialRecommender(20, dim=32, heads=2, layers=1, max_len=6, dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.003)
    for _ in range(600):
        sequences = chain_sequences(64, generator)
        inputs, targets = sequences[:, :-1], sequences[:, 1:]
        unknown = torch.full_like(inputs, UNKNOWN)
        logits = model(inputs, unknown, unknown)[:, -1]  # only the partner is predictable
        loss = F.cross_entropy(logits, targets[:, -1] - 1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def test_sequential_reason_names_the_history_item_that_drove_each_recommendation() -> None:
    model = planted_model()
    history = torch.tensor([[0, 4, 6, 17, 16, 19]]) + 1  # the triggers 0, 4 and 6, then fillers
    unknown = torch.full_like(history, UNKNOWN)
    request = Requests(
        user=torch.tensor([-1]),
        items=history,
        ratings=torch.full(history.shape, 5.0),
        time_of_day=unknown,
        device=unknown,
        target_time_of_day=torch.tensor([UNKNOWN]),
        target_device=torch.tensor([UNKNOWN]),
    )
    with torch.inference_mode():
        scores = model.score_last(history, unknown, unknown)[0]
    top = scores.topk(3).indices.tolist()
    assert sorted(top) == [8, 12, 14]  # the partners of the watched triggers
    named = sequential_occlusion(model, request, top)
    for item, (because, drop) in zip(top, named, strict=True):
        assert PAIRS[because] == item and drop > 0
