"""The hybrid learns whom to trust in which context; its inputs are built correctly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch.nn import functional as F

from contextflix.models.hybrid import ContextHybrid, standardise
from contextflix.models.popularity import UNKNOWN, ContextPopularity
from contextflix.models.scoring import Requests
from training.hybrid import HybridModule


def planted_scores(n: int, n_items: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Source 0 finds the target in the morning (0), source 1 at night (3); else noise."""
    gen = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, n_items, (n,), generator=gen)
    time_of_day = torch.where(torch.rand(n, generator=gen) < 0.5, 0, 3)
    scores = torch.randn(n, 2, n_items, generator=gen)
    rows = torch.arange(n)
    scores[rows, (time_of_day == 3).long(), targets] += 4.0
    return standardise(scores.reshape(n * 2, n_items)).reshape(n, 2, n_items), targets, time_of_day


def train(model: ContextHybrid, scores, targets, time_of_day, steps: int = 300) -> None:
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    device = torch.full_like(time_of_day, UNKNOWN)
    length = torch.full_like(time_of_day, 20)
    for _ in range(steps):
        mixed, _ = model(scores, time_of_day, device, length)
        loss = F.cross_entropy(mixed, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def hit_rate(model: ContextHybrid, scores, targets, time_of_day) -> float:
    device = torch.full_like(time_of_day, UNKNOWN)
    mixed, _ = model(scores, time_of_day, device, torch.full_like(time_of_day, 20))
    return (mixed.topk(10).indices == targets[:, None]).any(1).float().mean().item()


def test_hybrid_shifts_weight_to_the_informative_model_per_context() -> None:
    scores, targets, tod = planted_scores(400, 200, seed=0)
    model = ContextHybrid(["a", "b"])
    train(model, scores, targets, tod)
    unknown = torch.tensor([UNKNOWN, UNKNOWN])
    weights = model.weights(torch.tensor([0, 3]), unknown, torch.tensor([20, 20]))
    assert weights[0, 0] > 0.8 and weights[1, 1] > 0.8

    blind = ContextHybrid(["a", "b"], use_context=False)
    train(blind, scores, targets, tod)
    blind_weights = blind.weights(torch.tensor([0, 3]), unknown, torch.tensor([20, 20]))
    assert torch.allclose(blind_weights[0], blind_weights[1])
    test_scores, test_targets, test_tod = planted_scores(400, 200, seed=1)
    assert (
        hit_rate(model, test_scores, test_targets, test_tod)
        > hit_rate(blind, test_scores, test_targets, test_tod) + 0.1
    )


def test_standardise_ignores_excluded_items() -> None:
    scores = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    excluded = torch.tensor([[False, False, False, True]])
    z = standardise(scores, excluded)
    assert torch.allclose(z[0, :3], torch.tensor([-1.2247, 0.0, 1.2247]), atol=1e-4)
    assert z[0, 3] == pytest.approx((100.0 - 2.0) / (2 / 3) ** 0.5, rel=1e-4)  # on their scale


def test_standardise_excludes_the_same_items_of_every_source() -> None:
    scores = torch.tensor([[[1.0, 2.0, 3.0, 100.0], [-5.0, 0.0, 5.0, -1e6]]])  # [B, source, item]
    excluded = torch.tensor([[[False, False, False, True]]])  # [B, 1, item]: one mask for all
    z = standardise(scores, excluded)
    for source in range(2):
        alone = standardise(scores[:, source], excluded[:, 0])
        assert torch.equal(z[:, source], alone)
        assert z[0, source, :3].sum().abs() < 1e-6  # centred on the kept items


def test_context_popularity_marginals_and_lift() -> None:
    items = torch.tensor([0, 0, 0, 1, 1, 2])
    tod = torch.tensor([2, 2, 2, 0, 0, 0])
    device = torch.tensor([3, 3, 1, 0, 0, 0])
    model = ContextPopularity.fit(items, tod, device, n_items=3)
    assert model.counts[2, 3].tolist() == [2, 0, 0]
    assert model.counts[2, UNKNOWN].tolist() == [3, 0, 0]
    assert model.counts[UNKNOWN, UNKNOWN].tolist() == [3, 2, 1]
    lift = model.lift(torch.tensor([2]), torch.tensor([UNKNOWN]))[0]
    assert lift[0] > 1 > lift[1]


def test_requests_hold_histories_in_time_order_right_aligned() -> None:
    frame = pd.DataFrame(
        {
            "user_idx": [1, 0, 1, 1],
            "item_idx": [10, 5, 11, 12],
            "rating": [4.0, 3.0, 5.0, 2.0],
            "timestamp": [30, 7, 10, 20],
            "time_of_day": [0, 1, 2, 3],
            "device": [1, 1, 2, 3],
        }
    )
    requests = Requests.from_frames(frame, np.array([1, 0]), np.array([2, 0]), np.array([0, 1]))
    assert requests.items.tolist() == [[12, 13, 11], [0, 0, 6]]
    assert requests.ratings[0].tolist() == [5.0, 2.0, 4.0]
    assert requests.time_of_day[0].tolist() == [2, 3, 0]
    assert requests.history_length.tolist() == [3, 1]
    assert requests.seen(13)[1].nonzero().flatten().tolist() == [5]
    blind = requests.without_context()
    assert (blind.target_time_of_day == UNKNOWN).all() and (blind.device == UNKNOWN).all()


def test_every_hybrid_parameter_shapes_the_served_mix() -> None:
    """No parameter trains without reaching what is served: each gets gradient from the mix."""
    scores, targets, time_of_day = planted_scores(64, 30, seed=3)
    model = ContextHybrid(["a", "b"])
    device = torch.randint(0, UNKNOWN + 1, time_of_day.shape)
    mixed, _ = model(scores, time_of_day, device, torch.full_like(time_of_day, 20))
    F.cross_entropy(mixed, targets).backward()
    silent = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert silent == []


@pytest.mark.parametrize("config", ["configs/hybrid.yaml", "configs/ml-100k/hybrid.yaml"])
def test_hybrid_configs_name_no_inert_loss_term(config: str) -> None:
    init_args = yaml.safe_load(Path(config).read_text())["model"]["init_args"]
    assert "rating_weight" not in init_args
    assert "rating_weight" not in HybridModule.__init__.__code__.co_varnames
