"""What is served is what was evaluated: user by user, for every model.

For each data-set user, the service's top 10 (history excluded, the test target's context) must
be the evaluation's top 10, and the protocol S metrics recomputed from the served lists must be
evaluate_bundle's. Parity needs no trained quality, so the bundle holds freshly initialised
(seeded) models over the train + validation interactions, exactly as the pipeline assembles one.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contextflix.bundle import Bundle
from contextflix.data import DEVICES, TIMES_OF_DAY, load_dataset
from contextflix.evaluation.metrics import ranking_metrics
from contextflix.evaluation.report import MODELS, evaluate_bundle, run_protocol_s
from contextflix.models.collaborative import MatrixFactorization
from contextflix.models.content import ContentModel
from contextflix.models.hybrid import ContextHybrid
from contextflix.models.scoring import (
    SOURCES,
    BaseModels,
    fit_popularity,
    protocol_s_targets,
)
from contextflix.models.sequential import SequentialRecommender
from contextflix.service import Recommender
from contextflix.service.requests import MAX_BATCH
from tests.conftest import requires_ml100k


def fresh_bundle(dataset) -> Bundle:
    """Seeded, untrained models; interactions = train + validation (training/pipeline.py)."""
    torch.manual_seed(0)
    models = BaseModels(
        popularity=fit_popularity(dataset),
        collaborative=MatrixFactorization(dataset.n_users, dataset.n_items, 8),
        content=ContentModel.from_movies(dataset.movies, n_tags=20, dim=16, hidden=32),
        sequential=SequentialRecommender(dataset.n_items, dim=16, heads=2, layers=1, max_len=20),
    )
    return Bundle(
        config={"name": f"parity-{dataset.name}", "dataset": dataset.name},
        models=models,
        hybrid=ContextHybrid(SOURCES, hidden=16),
        hybrid_no_context=ContextHybrid(SOURCES, hidden=16, use_context=False),
        catalog=dataset.movies,
        interactions=dataset.served_interactions(),
        users=dataset.users,
        metrics=None,
    )


def check_parity(name: str, tmp_path) -> None:
    dataset = load_dataset(name)
    bundle = fresh_bundle(dataset)
    run = run_protocol_s(bundle.models, bundle.hybrid, bundle.hybrid_no_context, dataset)
    metrics = evaluate_bundle(bundle, dataset, tmp_path)["protocols"]["S"]["models"]
    service = Recommender(bundle, cache_size=0)
    requests = run.targets.requests
    users = service.catalog.user_ids[requests.user.numpy()]
    contexts = [
        {"time_of_day": TIMES_OF_DAY[int(t)], "device": DEVICES[int(d)]}
        for t, d in zip(requests.target_time_of_day, requests.target_device, strict=True)
    ]
    targets = service.catalog.item_ids[run.targets.items.numpy()]
    for model in MODELS:
        asks = [
            {"user_id": int(u), **c, "k": 10, "exclude_seen": True, "model": model}
            for u, c in zip(users, contexts, strict=True)
        ]
        served = []
        for start in range(0, len(asks), MAX_BATCH):
            served += service.recommend_batch(asks[start : start + MAX_BATCH])
        evaluated = service.catalog.item_ids[run.results[model].top_items]
        ranks = []
        for n, answer in enumerate(served):
            top = [item["item_id"] for item in answer["items"]]
            assert top == evaluated[n].tolist(), f"{name} {model} user {users[n]}"
            ranks.append(top.index(targets[n]) + 1 if targets[n] in top else 11)
        recomputed = ranking_metrics(np.array(ranks), ks=(10,))
        for key in ("hr@10", "ndcg@10", "mrr@10"):
            assert recomputed[key].mean() == pytest.approx(metrics[model][key], abs=1e-12), (
                f"{name} {model} {key}"
            )
    for n in range(0, len(asks), max(1, len(asks) // 10)):  # single calls answer the same
        assert service.recommend(**asks[n]) == served[n]


def test_served_rankings_are_the_evaluated_ones_on_ml_latest_small(tmp_path) -> None:
    check_parity("ml-latest-small", tmp_path)


@requires_ml100k
def test_served_rankings_are_the_evaluated_ones_on_ml_100k(tmp_path) -> None:
    check_parity("ml-100k", tmp_path)


def test_scores_do_not_depend_on_the_batch_nor_the_thread_count() -> None:
    """Why parity is exact (contextflix/models/scoring.py): a request scored alone, whose
    sequential products would have fewer than 4 rows, and the same request among 40 scored
    with two intra-op threads requested get the same bits, for every model."""
    dataset = load_dataset("ml-latest-small")
    bundle = fresh_bundle(dataset)
    scorer = Recommender(bundle).scorer  # models in eval mode, as served
    requests = protocol_s_targets(dataset, "test").requests.slice(0, 40)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        together = scorer.scores(requests, MODELS)
    finally:
        torch.set_num_threads(threads)
    assert torch.get_num_threads() == threads
    for row in range(0, 40, 3):
        alone = scorer.scores(requests.slice(row, row + 1), MODELS)
        for model in MODELS:
            assert torch.equal(alone[model][0], together[model][row]), (model, row)
