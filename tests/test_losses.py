"""SCE (training.losses.scalable_cross_entropy): the full softmax when its buckets hold
everything, a lower bound that tightens as they grow, gradients, and a model it can train."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from training.losses import scalable_cross_entropy
from training.sequential import SequentialModule

N_ROWS, N_ITEMS, DIM = 40, 30, 8


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def problem(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(N_ROWS, DIM, generator=g, requires_grad=True)
    table = torch.randn(N_ITEMS, DIM, generator=g, requires_grad=True)
    targets = torch.randint(0, N_ITEMS, (N_ROWS,), generator=g)
    return hidden, table, targets


def sce(hidden, table, targets, buckets=4, rows=N_ROWS, items=N_ITEMS, seed=0) -> torch.Tensor:
    torch.manual_seed(seed)  # the same random directions for every call
    return scalable_cross_entropy(hidden, table, targets, buckets, rows, items)


def test_buckets_holding_every_row_and_item_give_the_full_cross_entropy():
    hidden, table, targets = problem()
    full = F.cross_entropy(hidden @ table.T, targets)
    loss = sce(hidden, table, targets)
    assert loss.shape == ()
    # the target is among every bucket's items: counted once (masked as a negative), or the
    # loss would be higher than the full softmax's
    torch.testing.assert_close(loss, full)
    # more rows or items than exist are capped, not an error
    torch.testing.assert_close(sce(hidden, table, targets, rows=999, items=999), full)


def test_fewer_items_per_bucket_give_a_lower_bound_that_tightens_with_size():
    hidden, table, targets = problem(1)
    full = F.cross_entropy(hidden @ table.T, targets).item()
    losses = [sce(hidden, table, targets, items=k).item() for k in (1, 4, 10, 20, N_ITEMS)]
    assert all(a <= b + 1e-6 for a, b in itertools.pairwise(losses))
    assert losses[0] < full - 0.5
    assert losses[-1] == pytest.approx(full, abs=1e-6)


def test_a_bucket_whose_only_item_is_the_target_costs_nothing():
    hidden, table, _ = problem()
    only = table[:1]
    assert sce(hidden, only, torch.zeros(N_ROWS, dtype=torch.long), items=1).item() == 0.0


def test_gradients_reach_the_hidden_states_and_the_item_table():
    hidden, table, targets = problem(2)
    sce(hidden, table, targets, buckets=3, rows=10, items=5).backward()
    assert hidden.grad is not None and table.grad is not None
    assert torch.isfinite(hidden.grad).all() and torch.isfinite(table.grad).all()
    rows_in_a_bucket = (hidden.grad != 0).any(dim=1)
    assert 0 < rows_in_a_bucket.sum() < N_ROWS  # 3 buckets of 10 rows: only those learn
    assert (table.grad != 0).any(dim=1).sum() > 5  # targets and bucketed negatives


def test_rejects_empty_buckets():
    hidden, table, targets = problem()
    with pytest.raises(ValueError, match="SCE needs"):
        scalable_cross_entropy(hidden, table, targets, 0, 4, 4)


def test_sequential_module_learns_a_chain_with_sce():
    """next = current + 1: SCE with 8 of 30 items per bucket still learns it."""
    torch.manual_seed(0)
    module = SequentialModule(
        n_items=N_ITEMS, dim=32, heads=2, layers=1, max_len=12, dropout=0.0, loss="sce",
        bucket_items=8,
    )  # fmt: skip
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-2)
    starts = torch.arange(N_ITEMS).repeat(4)
    items = (starts[:, None] + torch.arange(13)[None, :]) % N_ITEMS + 1
    unknown = torch.full((len(items), 12), 4)
    for _ in range(60):
        hidden, _ = module.model.hidden(items[:, :-1], unknown, unknown)
        loss = module.loss(hidden.flatten(0, 1), items[:, 1:].flatten() - 1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        predicted = module.model(items[:, :-1], unknown, unknown).argmax(-1)
    assert (predicted == items[:, 1:] - 1).float().mean() > 0.95


def test_sce_settings_are_checked():
    with pytest.raises(ValueError, match="loss must be"):
        SequentialModule(n_items=N_ITEMS, loss="sampled")
    with pytest.raises(ValueError, match="sce"):
        SequentialModule(n_items=N_ITEMS, loss="sce", bucket_items=0)
