"""Matrix factorisation: planted low-rank recovery, fold-in, neighbours, CLI smoke test."""

import math
import time
from pathlib import Path

import pytest
import torch

from contextflix.models.collaborative import MatrixFactorization
from training.collaborative import CollaborativeModule

ROOT = Path(__file__).resolve().parents[1]
NOISE = 0.3


def planted(n_users=200, n_items=120, rank=4, seed=0):
    """Ratings = 3 + biases + U V^T + N(0, NOISE^2); items come in rank groups (clusters)."""
    g = torch.Generator().manual_seed(seed)
    group = torch.arange(n_items) % rank
    centres = torch.randn(rank, rank, generator=g)
    v = centres[group] + 0.1 * torch.randn(n_items, rank, generator=g)
    u = torch.randn(n_users, rank, generator=g) * 0.6
    bu = 0.3 * torch.randn(n_users, generator=g)
    bi = 0.3 * torch.randn(n_items, generator=g)
    truth = 3.0 + bu[:, None] + bi[None, :] + u @ v.T
    observed = truth + NOISE * torch.randn(truth.shape, generator=g)
    return truth, observed, group, g


def split(n_users, n_items, g, density=0.5):
    seen = torch.rand(n_users, n_items, generator=g) < density
    users, items = torch.nonzero(seen, as_tuple=True)
    held_users, held_items = torch.nonzero(~seen, as_tuple=True)
    return (users, items), (held_users, held_items)


def fit(module, users, items, ratings, epochs=60, batch=512, seed=0):
    opt = torch.optim.Adam(module.parameters(), lr=module.hparams.lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(ratings), generator=g)
        for s in range(0, len(perm), batch):
            idx = perm[s : s + batch]
            loss, _ = module.loss({"user": users[idx], "item": items[idx], "rating": ratings[idx]})
            opt.zero_grad()
            loss.backward()
            opt.step()
    return module


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    truth, observed, group, g = planted()
    (u, i), (hu, hi) = split(*truth.shape, g)
    ratings = observed[u, i]
    module = CollaborativeModule(
        truth.shape[0], truth.shape[1], n_factors=8, lr=0.02, l2=0.002, l2_bias=0.0
    )
    module.model.global_mean.fill_(float(ratings.mean()))
    fit(module, u, i, ratings)
    return module.model.eval(), truth, observed, group, (hu, hi), float(ratings.mean())


def test_recovers_planted_low_rank_matrix(trained):
    model, _truth, observed, _, (hu, hi), mean = trained
    with torch.no_grad():
        pred = model(hu, hi)
    rmse = math.sqrt(((pred - observed[hu, hi]) ** 2).mean())
    baseline = math.sqrt(((mean - observed[hu, hi]) ** 2).mean())
    assert rmse < 1.35 * NOISE, rmse
    assert rmse < 0.4 * baseline, (rmse, baseline)
    # score_all agrees with forward
    users = torch.tensor([0, 5])
    assert torch.allclose(model.score_all(users)[:, 7], model(users, torch.tensor([7, 7])))


def test_fold_in_predicts_a_new_users_held_out_ratings(trained):
    model, _truth, _, _, _, _mean = trained
    # A new user from the same model: a mixture of two existing users' tastes.
    g = torch.Generator().manual_seed(1)
    w = model.user_factors.weight.detach()
    vector_true = 0.5 * (w[3] + w[11])
    bias_true = 0.2
    scores = model.score_vectors(bias_true, vector_true).detach()
    noisy = scores + 0.1 * torch.randn(scores.shape, generator=g)
    rated = torch.randperm(model.n_items, generator=g)[:30]
    held = torch.ones(model.n_items, dtype=torch.bool)
    held[rated] = False
    bias, vector = model.fold_in(rated, noisy[rated], reg=0.1)
    pred = model.score_vectors(bias, vector).detach()
    rmse = math.sqrt(((pred[held] - scores[held]) ** 2).mean())
    spread = float(scores[held].std())
    assert rmse < 0.25 * spread, (rmse, spread)
    # no ratings: the prior (global mean + item biases)
    b0, v0 = model.fold_in(torch.tensor([], dtype=torch.long), torch.tensor([]))
    assert float(b0) == 0.0 and float(v0.abs().sum()) == 0.0


def test_item_neighbours_are_the_planted_group(trained):
    model, _, _, group, _, _ = trained
    items = torch.arange(0, 40)
    neighbours, sims = model.item_neighbours(items, k=5)
    assert neighbours.shape == (40, 5)
    same = (group[neighbours] == group[items][:, None]).float().mean()
    assert same > 0.95, same
    assert (neighbours != items[:, None]).all()
    assert (sims[:, :-1] >= sims[:, 1:]).all()
    single, _ = model.item_neighbours(7, k=3)
    assert single.shape == (3,)
    users, _ = model.user_neighbours(torch.tensor([0, 1]), k=4)
    assert users.shape == (2, 4)


def test_neighbours_are_fast_at_ml100k_size():
    model = MatrixFactorization(943, 1682, 64)
    model.item_neighbours(0, 10)
    start = time.perf_counter()
    model.item_neighbours(torch.arange(1682), k=10)
    assert time.perf_counter() - start < 0.5


def test_ranking_term_is_finite_and_differentiable():
    module = CollaborativeModule(10, 20, n_factors=4, ranking_weight=1.0)
    batch = {
        "user": torch.tensor([0, 1, 2]),
        "item": torch.tensor([3, 4, 5]),
        "rating": torch.tensor([4.0, 2.0, 5.0]),
    }
    loss, _ = module.loss(batch)
    loss.backward()
    assert torch.isfinite(loss)
    assert module.model.item_factors.weight.grad.abs().sum() > 0
