"""evaluate_bundle on a tiny in-test bundle of untrained models over ml-latest-small."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from contextflix.bundle import Bundle
from contextflix.data import load_dataset
from contextflix.evaluation.metrics import evaluate_ranking
from contextflix.evaluation.report import MODELS, evaluate_bundle, print_table
from contextflix.models.collaborative import MatrixFactorization
from contextflix.models.content import ContentModel
from contextflix.models.hybrid import ContextHybrid
from contextflix.models.scoring import BaseModels, Scorer, fit_popularity, protocol_s_targets
from contextflix.models.sequential import SequentialRecommender

PNGS = ("metrics.png", "ndcg_by_context.png", "hybrid_weights.png", "ab_test.png")


@pytest.fixture(scope="module")
def dataset():
    return load_dataset("ml-latest-small")


def tiny_bundle(dataset, **drop: bool) -> Bundle:
    """Small untrained models (seeded): enough to exercise every code path quickly."""
    torch.manual_seed(0)
    models = BaseModels(
        popularity=fit_popularity(dataset),
        collaborative=MatrixFactorization(dataset.n_users, dataset.n_items, n_factors=8),
        content=ContentModel.from_movies(dataset.movies, n_tags=20, dim=16, hidden=32),
        sequential=None
        if drop.get("sequential")
        else SequentialRecommender(dataset.n_items, dim=16, heads=2, layers=1, max_len=20),
    )
    with_hybrids = not drop.get("hybrids")
    history = np.concatenate([dataset.s.train, dataset.s.valid])
    return Bundle(
        config={"name": "test", "dataset": dataset.name},
        models=models,
        hybrid=ContextHybrid(models.available, use_context=True) if with_hybrids else None,
        hybrid_no_context=ContextHybrid(models.available, use_context=False)
        if with_hybrids
        else None,
        catalog=dataset.movies,
        interactions=dataset.ratings.iloc[history],
        users=dataset.users,
        metrics={"protocols": {"R": {"n_test": 7, "models": {"collaborative": {"rmse": 1.5}}}}},
    )


@pytest.fixture(scope="module")
def evaluated(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    metrics = evaluate_bundle(
        tiny_bundle(dataset), dataset, out, rating={"collaborative": {"test_rmse": 0.93}}
    )
    return metrics, out


def _finite_numbers(value) -> bool:
    if isinstance(value, dict):
        return all(_finite_numbers(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite_numbers(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return True


def test_metrics_have_the_design_shape(evaluated, dataset) -> None:
    metrics, _ = evaluated
    assert metrics["dataset"] == "ml-latest-small"
    s = metrics["protocols"]["S"]
    assert s["n_users"] == dataset.n_users
    assert list(s["models"]) == list(MODELS)
    for values in s["models"].values():
        for k in (5, 10, 20):
            for name in ("hr", "ndcg", "mrr", "precision", "recall"):
                key = f"{name}@{k}"
                lo, hi = values[f"{key}_ci"]
                assert lo <= values[key] <= hi, key
        assert 0 < values["coverage@10"] <= 1
        assert values["mean_popularity@10"] > 0
    assert metrics["protocols"]["R"] == {
        "n_test": len(dataset.r.test),
        "models": {"collaborative": {"rmse": 0.93}},
    }
    assert _finite_numbers(metrics)


def test_popularity_row_matches_a_direct_evaluation(evaluated, dataset) -> None:
    """The shared batch loop must give what evaluate_ranking gives for one model alone,
    with equal counts ordered as the service orders them (Scorer.ranking_key)."""
    metrics, _ = evaluated
    targets = protocol_s_targets(dataset, "test")
    popularity = fit_popularity(dataset)
    scores = popularity.score(targets.requests.target_time_of_day, targets.requests.target_device)
    scores = Scorer(BaseModels(popularity)).ranking_key(scores)
    seen = targets.requests.seen(dataset.n_items)
    rows, cols = (t.numpy() for t in torch.nonzero(seen, as_tuple=True))
    direct = evaluate_ranking(
        lambda p: scores[p],
        torch.arange(len(targets.items)),
        targets.items,
        (rows, cols),
        torch.as_tensor(dataset.candidates),
    )
    row = metrics["protocols"]["S"]["models"]["popularity"]
    assert row["ndcg@10"] == pytest.approx(direct.per_user["ndcg@10"].mean())
    assert row["hr@20"] == pytest.approx(direct.per_user["hr@20"].mean())


def test_every_model_is_paired_against_popularity(evaluated) -> None:
    """The difference is the same users' means; the report's table shows it."""
    metrics, out = evaluated
    s = metrics["protocols"]["S"]
    versus = s["vs_popularity"]
    assert list(versus) == list(MODELS[1:])
    base = s["models"]["popularity"]["ndcg@10"]
    for name, v in versus.items():
        mine = s["models"][name]["ndcg@10"]
        assert v["mean_diff"] == pytest.approx(mine - base)
        assert v["ci"][0] <= v["mean_diff"] <= v["ci"][1]
        assert 0 < v["p_value"] <= 1 and v["n"] == s["n_users"]
        assert v["ratio"] == pytest.approx(mine / base)
    content = versus["content"]
    row = (
        f"| content | {content['mean_diff']:+.4f} [{content['ci'][0]:+.4f},"
        f" {content['ci'][1]:+.4f}] | {content['p_value']:.4f} |"
    )
    assert row in (out / "metrics.md").read_text()


def test_files_are_written(evaluated) -> None:
    metrics, out = evaluated
    assert json.loads((out / "metrics.json").read_text()) == metrics
    table = (out / "metrics.md").read_text()
    assert all(f"| {name} |" in table for name in MODELS)
    assert "RMSE" in table and "0.9300" in table
    for name in (*PNGS, "ab_test.md", "ab_test.json"):
        path = out / name
        assert path.stat().st_size > 1000, name
    assert (out / "metrics.png").read_bytes()[:4] == b"\x89PNG"


def test_ab_reports_real_and_simulated_separately(evaluated, dataset) -> None:
    metrics, out = evaluated
    ab = metrics["ab_test"]
    assert ab["available"] and ab["arms"] == {"A": "hybrid_no_context", "B": "hybrid"}
    assert ab["n_resamples"] == 10_000 and ab["seed"] == 0
    assert set(ab["comparisons"]) == {"real_context_only", "with_simulated_device"}
    for comparison in ab["comparisons"].values():
        assert set(comparison["metrics"]) == {"ndcg@10", "hr@10", "engagement"}
        for result in comparison["metrics"].values():
            assert result["n"] == dataset.n_users
            assert ("includes zero" in result["verdict"]) == result["includes_zero"]
            assert 0 < result["p_value"] <= 1
    # Arm B with the simulated device is the "hybrid" row of the S table.
    simulated = ab["comparisons"]["with_simulated_device"]["metrics"]["ndcg@10"]
    assert simulated["mean_b"] == pytest.approx(
        metrics["protocols"]["S"]["models"]["hybrid"]["ndcg@10"]
    )
    report = (out / "ab_test.md").read_text()
    assert "real context only" in report and "with simulated device" in report
    assert json.loads((out / "ab_test.json").read_text()) == ab


def test_context_breakdown_and_weights(evaluated, dataset) -> None:
    metrics, _ = evaluated
    by_context = metrics["protocols"]["S"]["by_context"]["hybrid"]
    assert sum(cell["n"] for cell in by_context["time_of_day"].values()) == dataset.n_users
    assert sum(cell["n"] for cell in by_context["device"].values()) == dataset.n_users
    weights = metrics["hybrid_weights"]
    grid = np.asarray(weights["grid"])
    assert grid.shape == (4, 5, 4)
    assert np.allclose(grid.sum(-1), 1.0)
    assert weights["history_length"] > 0


def test_missing_models_are_skipped_and_r_kept(dataset, tmp_path: Path) -> None:
    bundle = tiny_bundle(dataset, sequential=True, hybrids=True)
    metrics = evaluate_bundle(bundle, dataset, tmp_path)
    s = metrics["protocols"]["S"]
    assert list(s["models"]) == ["popularity", "collaborative", "content"]
    assert set(s["skipped"]) == {"sequential", "hybrid_no_context", "hybrid"}
    assert metrics["protocols"]["R"] == bundle.metrics["protocols"]["R"]
    assert not metrics["ab_test"]["available"]
    assert not (tmp_path / "ab_test.png").exists()
    assert "Not run" in (tmp_path / "ab_test.md").read_text()


def test_print_table(evaluated, capsys) -> None:
    print_table(evaluated[0])
    out = capsys.readouterr().out
    assert all(name in out for name in MODELS)
    assert "RMSE" in out and "0.9300" in out


def test_evaluate_command_fails_in_one_line(tmp_path: Path, capsys) -> None:
    from training.evaluate import evaluate

    with pytest.raises(SystemExit) as exit_info:
        evaluate(str(tmp_path / "nowhere"), output=str(tmp_path / "reports"))
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
