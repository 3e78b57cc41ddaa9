"""Protocol S / R metric core: hand-computed cases, a slow reference, torchmetrics agreement."""

import math

import numpy as np
import pytest
import torch
from scipy import sparse
from torchmetrics.functional.retrieval import retrieval_hit_rate, retrieval_normalized_dcg

from contextflix.evaluation.metrics import (
    coverage,
    evaluate_ranking,
    mean_popularity,
    ranking_metrics,
    rmse,
    target_ranks,
)


def ranks_of(scores, targets, exclude=None, candidates=None):
    return target_ranks(
        torch.tensor(scores, dtype=torch.float32),
        torch.tensor(targets),
        None if exclude is None else torch.tensor(exclude),
        None if candidates is None else torch.tensor(candidates),
    ).tolist()


# --- target_ranks: hand-computed cases --------------------------------------------------


def test_target_ranked_first_and_last():
    assert ranks_of([[0.9, 0.1, 0.5, 0.3]], [0]) == [1]
    assert ranks_of([[0.9, 0.1, 0.5, 0.3]], [1]) == [4]


def test_ties_count_against_the_target():
    # Items 1 and 3 tie with the target item 2: both are placed ahead of it.
    assert ranks_of([[0.9, 0.5, 0.5, 0.5, 0.1]], [2]) == [4]


def test_constant_scorer_ranks_target_last():
    assert ranks_of([[1.0] * 50, [0.0] * 50], [7, 0]) == [50, 50]


def test_history_is_excluded_from_the_ranking():
    scores = [[0.9, 0.8, 0.7, 0.1]]
    assert ranks_of(scores, [2]) == [3]
    assert ranks_of(scores, [2], exclude=[[True, False, False, False]]) == [2]
    assert ranks_of(scores, [2], exclude=[[True, True, False, False]]) == [1]


def test_non_candidate_items_are_ignored_even_when_non_finite():
    scores = [[0.9, float("nan"), float("inf"), 0.5, 0.1]]
    candidates = [False, False, False, True, True]
    assert ranks_of(scores, [3], candidates=candidates) == [1]
    assert ranks_of(scores, [4], candidates=candidates) == [2]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_candidate_scores_raise_and_name_the_rows(bad):
    scores = [[0.1, 0.2, 0.3], [0.3, bad, 0.1], [bad, 0.1, 0.2]]
    with pytest.raises(ValueError, match=r"non-finite.*2 users.*\[1, 2\]"):
        ranks_of(scores, [0, 0, 1])


def test_huge_finite_scores_are_not_mistaken_for_non_finite():
    # float32 row sum overflows to inf although every score is finite.
    assert ranks_of([[3e38, 3e38, 1e38, 2e38]], [3]) == [3]


def test_nan_in_excluded_history_is_fine():
    assert ranks_of([[float("nan"), 0.2, 0.3]], [1], exclude=[[True, False, False]]) == [2]


def test_excluded_or_non_candidate_target_raises():
    with pytest.raises(ValueError, match=r"not candidates.*\[0\]"):
        ranks_of([[0.1, 0.2]], [1], exclude=[[False, True]])
    with pytest.raises(ValueError, match="not candidates"):
        ranks_of([[0.1, 0.2]], [1], candidates=[True, False])
    with pytest.raises(ValueError, match="item indices"):
        ranks_of([[0.1, 0.2]], [2])


# --- ranking_metrics -----------------------------------------------------------------------


def test_metric_values_at_k():
    m = ranking_metrics(np.array([1, 3, 10, 11]), ks=(10,))
    assert m["hr@10"].tolist() == [1, 1, 1, 0]
    assert m["recall@10"].tolist() == [1, 1, 1, 0]
    assert m["precision@10"].tolist() == pytest.approx([0.1, 0.1, 0.1, 0.0])
    assert m["mrr@10"].tolist() == pytest.approx([1.0, 1 / 3, 0.1, 0.0])
    assert m["ndcg@10"].tolist() == pytest.approx([1.0, 0.5, 1 / math.log2(11), 0.0])


def test_metrics_exist_for_each_k():
    m = ranking_metrics(torch.tensor([6]), ks=(5, 10, 20))
    assert m["hr@5"][0] == 0 and m["hr@10"][0] == 1 and m["hr@20"][0] == 1
    assert m["precision@20"][0] == pytest.approx(0.05)
    assert set(m) == {f"{name}@{k}" for name in ("hr", "ndcg", "mrr", "precision", "recall")
                      for k in (5, 10, 20)}  # fmt: skip


def test_ranks_below_one_are_refused():
    with pytest.raises(ValueError):
        ranking_metrics(np.array([0, 2]))


# --- against a slow reference and torchmetrics ---------------------------------------------


def slow_rank(scores, target, seen, candidates):
    """One user, obviously correct: count the other candidates scoring >= the target."""
    ahead = 0
    for item, score in enumerate(scores):
        if item != target and candidates[item] and item not in seen and score >= scores[target]:
            ahead += 1
    return 1 + ahead


def random_problem(seed, n_users=40, n_items=60, decimals=1):
    """Random scores rounded to create ties, random history, random catalogue, valid targets."""
    rng = np.random.default_rng(seed)
    scores = np.round(rng.normal(size=(n_users, n_items)), decimals)
    candidates = rng.random(n_items) < 0.9
    history = [set(rng.choice(n_items, size=rng.integers(0, 20), replace=False).tolist())
               for _ in range(n_users)]  # fmt: skip
    targets = [int(rng.choice([i for i in np.flatnonzero(candidates) if i not in seen]))
               for seen in history]  # fmt: skip
    return scores, candidates, history, np.array(targets)


def history_pairs(history):
    rows = [u for u, seen in enumerate(history) for _ in seen]
    cols = [i for seen in history for i in seen]
    return np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64)


@pytest.mark.parametrize("seed", range(5))
def test_batched_evaluation_matches_slow_loop(seed):
    scores, candidates, history, targets = random_problem(seed)
    expected = [slow_rank(scores[u], targets[u], history[u], candidates)
                for u in range(len(targets))]  # fmt: skip
    result = evaluate_ranking(
        lambda pos: torch.from_numpy(scores)[pos],
        torch.arange(len(targets)),
        torch.from_numpy(targets),
        history_pairs(history),
        candidates=torch.from_numpy(candidates),
        batch_size=7,
    )
    assert result.ranks.tolist() == expected
    reference = ranking_metrics(np.array(expected))
    for name, values in result.per_user.items():
        np.testing.assert_allclose(values, reference[name])


def test_csr_history_and_user_subset_match_pairs():
    """History rows are indexed by user values; score_fn gets positions into ``users``."""
    scores, candidates, history, targets = random_problem(11)
    rows, cols = history_pairs(history)
    csr = sparse.csr_matrix((np.full(rows.size, 4.0), (rows, cols)), shape=(40, 60))
    users = torch.tensor([5, 3, 30, 0, 17])
    expected = [slow_rank(scores[u], targets[u], history[u], candidates) for u in users.tolist()]
    for hist in (csr, (rows, cols)):
        result = evaluate_ranking(
            lambda pos: torch.from_numpy(scores)[users[pos]],
            users,
            torch.from_numpy(targets)[users],
            hist,
            candidates=torch.from_numpy(candidates),
            batch_size=2,
        )
        assert result.ranks.tolist() == expected


@pytest.mark.parametrize("k", [5, 10])
def test_matches_torchmetrics_without_ties(k):
    scores, candidates, history, targets = random_problem(3, decimals=12)
    result = evaluate_ranking(
        lambda pos: torch.from_numpy(scores)[pos],
        torch.arange(len(targets)),
        torch.from_numpy(targets),
        history_pairs(history),
        candidates=torch.from_numpy(candidates),
    )
    for u, target in enumerate(targets):
        keep = [i for i in range(scores.shape[1]) if candidates[i] and i not in history[u]]
        preds = torch.from_numpy(scores[u, keep])
        relevant = torch.tensor([i == target for i in keep])
        ndcg = retrieval_normalized_dcg(preds, relevant, top_k=k).item()
        hit = retrieval_hit_rate(preds, relevant, top_k=k).item()
        assert result.per_user[f"ndcg@{k}"][u] == pytest.approx(ndcg, abs=1e-6)
        assert result.per_user[f"hr@{k}"][u] == hit


# --- evaluate_ranking: top lists, summary, errors -------------------------------------------


def test_top_items_skip_history_and_non_candidates():
    scores = torch.arange(12, dtype=torch.float32).flip(0).repeat(2, 1)  # item 0 best
    candidates = torch.ones(12, dtype=torch.bool)
    candidates[1] = False
    history = (np.array([0, 1]), np.array([0, 2]))  # user 0 saw item 0, user 1 item 2
    result = evaluate_ranking(
        lambda pos: scores[pos], torch.tensor([0, 1]), torch.tensor([11, 3]), history, candidates
    )
    assert result.top_items[0].tolist() == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert result.top_items[1].tolist() == [0, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert result.ranks.tolist() == [10, 2]
    assert result.n_candidates == 11


def test_small_catalogue_pads_top_items():
    result = evaluate_ranking(
        lambda pos: torch.tensor([[0.3, 0.2, 0.1]]), torch.tensor([0]), torch.tensor([1]),
        (np.array([0]), np.array([2])),
    )  # fmt: skip
    assert result.top_items.tolist() == [[0, 1] + [-1] * 8]


def test_summary_keys_means_and_intervals():
    scores, candidates, history, targets = random_problem(5, n_users=200)
    result = evaluate_ranking(
        lambda pos: torch.from_numpy(scores)[pos],
        torch.arange(200),
        torch.from_numpy(targets),
        history_pairs(history),
        candidates=torch.from_numpy(candidates),
    )
    counts = np.arange(60)
    summary = result.summary(item_counts=counts)
    for key in ("hr@10", "ndcg@10", "mrr@10", "precision@10", "recall@10", "ndcg@20"):
        assert summary[key] == pytest.approx(result.per_user[key].mean())
        lo, hi = summary[f"{key}_ci"]
        assert lo <= summary[key] <= hi and lo < hi
    assert summary["coverage@10"] == coverage(result.top_items, int(candidates.sum()))
    assert summary["mean_popularity@10"] == mean_popularity(result.top_items, counts)
    assert "hr@10_ci" not in result.summary(ci=False)
    assert "mean_popularity@10" not in result.summary(ci=False)


def test_evaluation_error_names_the_batch():
    scores = torch.zeros(4, 5)
    scores[3, 1] = float("nan")
    with pytest.raises(ValueError, match=r"users\[2:4\].*non-finite.*\[1\]"):
        evaluate_ranking(
            lambda pos: scores[pos], torch.arange(4), torch.zeros(4, dtype=torch.long),
            (np.array([], dtype=np.int64), np.array([], dtype=np.int64)), batch_size=2,
        )  # fmt: skip


def test_target_in_history_raises():
    with pytest.raises(ValueError, match="not candidates"):
        evaluate_ranking(
            lambda pos: torch.rand(len(pos), 5), torch.arange(2), torch.tensor([1, 2]),
            (np.array([1]), np.array([2])),
        )  # fmt: skip


def test_coverage_and_popularity():
    top = np.array([[0, 1, -1], [1, 2, -1]])
    assert coverage(top, 10) == pytest.approx(0.3)
    assert mean_popularity(top, np.array([100, 10, 1])) == pytest.approx((100 + 10 + 10 + 1) / 4)


# --- protocol R -------------------------------------------------------------------------------


def test_rmse_clips_to_rating_range():
    assert rmse([6.0, 0.0, 3.0], [5.0, 1.0, 4.0], low=1.0, high=5.0) == pytest.approx(
        math.sqrt(1 / 3)
    )


def test_rmse_refuses_non_finite_and_mismatched():
    with pytest.raises(ValueError):
        rmse([float("nan")], [3.0], 1, 5)
    with pytest.raises(ValueError):
        rmse([3.0, 4.0], [3.0], 1, 5)
