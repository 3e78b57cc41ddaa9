"""SequentialRecommender: learns planted sequential and context structure, serving API, CLI."""

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from contextflix.models.sequential import UNKNOWN, SequentialRecommender, unknown_context

ROOT = Path(__file__).resolve().parents[1]
N_ITEMS = 30
LENGTH = 12


def chains(n: int, context_dependent: bool, seed: int = 0):
    """Windows of item_idx + 1 following a planted rule, with the next item's context.

    Plain: next = current + 1. Context-dependent: next = current + 1 in the morning (0) and
    current + 2 at night (3); the time of day of each step is random.
    """
    g = torch.Generator().manual_seed(seed)
    tod = torch.where(torch.rand(n, LENGTH + 1, generator=g) < 0.5, 0, 3)
    if not context_dependent:
        tod = torch.zeros_like(tod)
    items = torch.zeros(n, LENGTH + 1, dtype=torch.long)
    items[:, 0] = torch.randint(0, N_ITEMS, (n,), generator=g)
    for t in range(1, LENGTH + 1):
        step = torch.where(tod[:, t] == 3, 2, 1) if context_dependent else 1
        items[:, t] = (items[:, t - 1] + step) % N_ITEMS
    device = torch.randint(0, 4, (n, LENGTH + 1), generator=g)
    # inputs, their (next-interaction) context, targets; item ids shifted by 1 (0 = pad)
    return items[:, :-1] + 1, tod[:, 1:], device[:, 1:], items[:, 1:]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def train(context_dependent: bool, steps: int = 150) -> SequentialRecommender:
    torch.manual_seed(0)
    model = SequentialRecommender(N_ITEMS, dim=32, heads=2, layers=1, max_len=LENGTH, dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(steps):
        items, tod, device, targets = chains(64, context_dependent, seed=step)
        loss = F.cross_entropy(model(items, tod, device).flatten(0, 1), targets.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def accuracy(model, items, tod, device, targets) -> float:
    with torch.no_grad():
        return (model(items, tod, device).argmax(-1) == targets).float().mean().item()


def test_learns_a_deterministic_chain():
    model = train(context_dependent=False, steps=60)
    items, tod, device, targets = chains(256, context_dependent=False, seed=10_000)
    assert accuracy(model, items, tod, device, targets) > 0.95


def test_context_dependent_chain_needs_the_time_of_day():
    model = train(context_dependent=True)
    items, tod, device, targets = chains(256, context_dependent=True, seed=10_000)
    with_context = accuracy(model, items, tod, device, targets)
    unknown = accuracy(model, items, *unknown_context(items), targets)
    swapped = accuracy(model, items, 3 - tod, device, targets)  # morning <-> night
    assert with_context > 0.95
    assert unknown < 0.7  # a coin flip between +1 and +2 at best
    assert swapped < 0.1


def small_model() -> SequentialRecommender:
    torch.manual_seed(1)
    return SequentialRecommender(50, dim=16, heads=4, layers=2, max_len=8, dropout=0.3).eval()


def padded_batch():
    items = torch.tensor([[0, 0, 0, 5, 9, 2, 7, 1], [3, 4, 5, 6, 7, 8, 9, 10], [0] * 7 + [4]])
    tod = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2]] * 3)
    device = torch.tensor([[4, 3, 2, 1, 0, 1, 2, 3]] * 3)
    return items, tod, device


def test_score_last_equals_forward_last_position():
    model = small_model()
    items, tod, device = padded_batch()
    with torch.no_grad():
        full = model(items, tod, device)
        last = model.score_last(items, tod, device)
        scores, _ = model.score_last(items, tod, device, return_attention=True)
        unpadded = model.score_last(items[2:, -1:], tod[2:, -1:], device[2:, -1:])
    assert full.shape == (3, 8, 50)
    torch.testing.assert_close(last, full[:, -1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(scores, last, rtol=1e-5, atol=1e-5)
    # right-aligned positions: a short history scores like the same history left-padded
    torch.testing.assert_close(unpadded, last[2:], rtol=1e-5, atol=1e-5)


def test_padding_does_not_change_scores():
    model = small_model()
    items, tod, device = padded_batch()
    changed = tod.clone()
    changed[0, :3] = 2  # context at padded positions
    with torch.no_grad():
        torch.testing.assert_close(
            model(items, tod, device)[0, 3:], model(items, changed, device)[0, 3:]
        )


def test_last_position_attention_sums_to_one_and_ignores_padding():
    model = small_model()
    items, tod, device = padded_batch()
    with torch.no_grad():
        _, attention = model.score_last(items, tod, device, return_attention=True)
    assert attention.shape == (3, 8)
    torch.testing.assert_close(attention.sum(dim=1), torch.ones(3))
    assert (attention[items == 0] == 0).all()
    assert (attention[items > 0] > 0).all()


def test_unknown_context_index_and_long_history_truncation():
    model = small_model()
    items = torch.arange(1, 13)[None]  # 12 > max_len 8: the last 8 are kept
    tod, device = unknown_context(items)
    assert (tod == UNKNOWN).all()
    with torch.no_grad():
        torch.testing.assert_close(
            model.score_last(items, tod, device),
            model.score_last(items[:, 4:], tod[:, 4:], device[:, 4:]),
        )
    with pytest.raises(ValueError, match="max_len"):
        model(items, tod, device)


def test_sampled_softmax_with_every_item_as_negative_is_the_full_softmax():
    from training.losses import sampled_cross_entropy

    torch.manual_seed(0)
    logits = torch.randn(6, N_ITEMS)
    targets = torch.randint(0, N_ITEMS, (6,))
    everything = torch.arange(N_ITEMS)
    uniform = torch.full((N_ITEMS,), -math.log(N_ITEMS))
    positive = logits[torch.arange(6), targets]
    sampled = sampled_cross_entropy(positive, logits, targets, everything, uniform)
    assert torch.allclose(sampled, F.cross_entropy(logits, targets), atol=1e-6)


def test_log_q_correction_removes_the_popularity_bias_of_the_proposal():
    """With a skewed proposal and equal true logits, the corrected loss is minimised by equal
    logits: the gradient pushes no item up just because it is drawn less often."""
    from training.losses import popularity_log_q, sample_negatives, sampled_cross_entropy

    torch.manual_seed(0)
    log_q = popularity_log_q(
        torch.arange(N_ITEMS).repeat_interleave(torch.arange(1, N_ITEMS + 1)).numpy(), N_ITEMS
    )
    scores = torch.zeros(N_ITEMS, requires_grad=True)
    optimizer = torch.optim.SGD([scores], lr=0.5)
    for _ in range(300):
        targets = torch.randint(0, N_ITEMS, (256,))  # every item equally often the target
        negatives = sample_negatives(log_q, 64)
        positive = scores[targets]
        negative = scores[negatives].expand(256, -1)
        loss = sampled_cross_entropy(positive, negative, targets, negatives, log_q)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    spread = scores.detach() - scores.detach().mean()
    assert spread.abs().max() < 0.35  # uncorrected, rare items would score ~log(30) higher


def test_gbce_at_t_zero_is_plain_binary_cross_entropy():
    from training.losses import gbce

    torch.manual_seed(0)
    positive, negative = torch.randn(5), torch.randn(5, 8)
    targets, negatives = torch.arange(5) + 20, torch.arange(8)  # no negative is a target
    logits = torch.cat([positive[:, None], negative], dim=1)
    labels = torch.zeros_like(logits)
    labels[:, 0] = 1.0
    plain = F.binary_cross_entropy_with_logits(logits, labels)
    assert torch.allclose(gbce(positive, negative, targets, negatives, N_ITEMS, t=0.0), plain)


def test_gbce_weighs_the_positive_by_beta_and_leaves_out_the_target_as_negative():
    """At t = 1, beta = alpha = K / (n_items - 1); a negative equal to the target adds nothing."""
    from training.losses import gbce

    torch.manual_seed(0)
    positive, negative = torch.randn(5), torch.randn(5, 8)
    negatives = torch.arange(8)
    targets = torch.tensor([3, 20, 21, 22, 23])  # row 0's target is negative number 3
    alpha = 8 / (N_ITEMS - 1)
    wanted = torch.ones(5, 8)
    wanted[0, 3] = 0.0
    expected = -(alpha * F.logsigmoid(positive) + (F.logsigmoid(-negative) * wanted).sum(1))
    loss = gbce(positive, negative, targets, negatives, N_ITEMS, t=1.0)
    assert torch.allclose(loss, expected.mean() / 9)
    moved = negative.clone()
    moved[0, 3] = 50.0  # the left-out entry's logit does not matter
    assert torch.allclose(gbce(positive, moved, targets, negatives, N_ITEMS, t=1.0), loss)
    with pytest.raises(ValueError, match="t must be"):
        gbce(positive, negative, targets, negatives, N_ITEMS, t=1.5)


def test_item_bias_is_in_every_score_and_starts_at_centred_log_popularity():
    """The bias is part of the training logits and of what is served, and a fit starts it at
    each movie's centred log training count, so the model first ranks by popularity."""
    import numpy as np
    import pandas as pd

    from training.sequential import SequentialModule

    module = SequentialModule(n_items=N_ITEMS, dim=16, heads=2, layers=1, max_len=LENGTH,
                              item_bias=True)  # fmt: skip
    train_items = np.array([0, 0, 0, 5, 5, 7])
    data = type("Data", (), {
        "ratings": pd.DataFrame({"item_idx": np.r_[train_items, 9]}),
        "s": type("Splits", (), {"train": np.arange(len(train_items))})(),
    })()  # fmt: skip
    module._trainer = type("Trainer", (), {"datamodule": type("DM", (), {"data": data})()})()
    module.setup("fit")
    bias = module.model.item_bias.detach()
    counts = np.bincount(train_items, minlength=N_ITEMS) + 1.0
    expected = torch.as_tensor(np.log(counts) - np.log(counts).mean(), dtype=torch.float32)
    torch.testing.assert_close(bias, expected)
    assert bias.argmax() == 0 and bias[9] == bias[1]  # the unseen test item counts for nothing

    model = module.model.eval()
    items, tod, device, _ = chains(5, context_dependent=True)
    with torch.no_grad():
        hidden, _ = model.hidden(items, tod, device)
        torch.testing.assert_close(model(items, tod, device), hidden @ model.item_table.T + bias)
        last, _ = model.last_hidden(items, tod, device)
        served = model.scores_of(last)
    torch.testing.assert_close(served, last @ model.item_table.T + bias, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="item_bias"):
        SequentialModule(n_items=N_ITEMS, loss="sce", item_bias=True)


def test_attention_dropout_is_its_own_setting_and_defaults_to_dropout():
    """In training, dropping attention weights is the only randomness when the other dropouts
    are off; without the setting it follows ``dropout``, as models trained before it did."""
    items, tod, device, _ = chains(4, context_dependent=False)

    def two_passes(**dropouts) -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(0)
        model = SequentialRecommender(N_ITEMS, dim=16, heads=2, layers=1, max_len=LENGTH,
                                      **dropouts).train()  # fmt: skip
        return model(items, tod, device), model(items, tod, device)

    first, second = two_passes(dropout=0.0, attention_dropout=0.5)
    assert not torch.equal(first, second)
    first, second = two_passes(dropout=0.0)
    assert torch.equal(first, second)
    model = SequentialRecommender(N_ITEMS, dim=16, heads=2, layers=1, max_len=LENGTH, dropout=0.3)
    assert model.config["attention_dropout"] == 0.3
    assert SequentialRecommender(**model.config).config == model.config
