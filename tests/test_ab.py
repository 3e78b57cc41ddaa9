"""Offline paired A/B comparison and the online pieces: arm assignment, events, CTR."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from contextflix.evaluation.ab import (
    Event,
    assign_arm,
    ctr_by_arm,
    engagement,
    offline_ab,
)

REPO_ROOT = Path(__file__).resolve().parents[1]

# --- offline --------------------------------------------------------------------------------


def test_engagement_is_rating_of_hits():
    ranks = np.array([1, 10, 11, 3])
    ratings = np.array([5.0, 4.0, 5.0, 2.5])
    assert engagement(ranks, ratings).tolist() == [5.0, 4.0, 0.0, 2.5]
    assert engagement(ranks, ratings, k=5).tolist() == [5.0, 0.0, 0.0, 2.5]


def test_offline_ab_reports_no_difference_plainly():
    rng = np.random.default_rng(0)
    a = {"ndcg@10": rng.random(500), "hr@10": (rng.random(500) < 0.3).astype(float)}
    b = {"ndcg@10": rng.permutation(a["ndcg@10"]), "hr@10": rng.permutation(a["hr@10"])}
    out = offline_ab(a, b, metrics=("ndcg@10", "hr@10"), n_resamples=2000)
    for metric in ("ndcg@10", "hr@10"):
        assert out[metric]["includes_zero"] is True
        lo, hi = out[metric]["ci"]
        assert out[metric]["verdict"].startswith(f"{metric}: no significant difference: the 95%")
        assert f"[{lo:.3g}, {hi:.3g}] includes zero" in out[metric]["verdict"]


def test_offline_ab_detects_planted_lift():
    rng = np.random.default_rng(1)
    a = {"engagement": np.where(rng.random(2000) < 0.3, 4.0, 0.0)}
    b = {"engagement": np.where(rng.random(2000) < 0.2, 4.0, a["engagement"])}  # more hits
    out = offline_ab(a, b, metrics=("engagement",))["engagement"]
    assert out["mean_diff"] > 0 and out["ci"][0] > 0 and out["p_value"] < 0.01
    assert "B is higher than A" in out["verdict"] and "excludes zero" in out["verdict"]
    assert set(out) >= {"mean_a", "mean_b", "mean_diff", "ci", "p_value", "n", "includes_zero"}


def test_offline_ab_missing_metric():
    full = {"ndcg@10": np.ones(3), "hr@10": np.ones(3), "engagement": np.ones(3)}
    with pytest.raises(ValueError, match=r"'engagement' missing from arm\(s\) \['B'\]"):
        offline_ab(full, {"ndcg@10": np.ones(3), "hr@10": np.ones(3)})


# --- arm assignment ---------------------------------------------------------------------------


def test_assign_arm_is_stable_across_processes():
    # Hard-coded: SHA-256 of "contextflix-ab-v1:<id>"; a changed hash or salt breaks this.
    expected = {"alice": "B", "0": "B", "1": "A"}
    assert {v: assign_arm(v) for v in expected} == expected
    assert assign_arm("0", split=0.3) == "A"
    code = "from contextflix.evaluation.ab import assign_arm; print(assign_arm('1'))"
    for hash_seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={"PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(REPO_ROOT)},
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.strip() == "A"


def test_assign_arm_split_ratio():
    arms = [assign_arm(f"visitor-{i}", split=0.3) for i in range(10_000)]
    # Binomial sd of the share at n=10,000: 0.0046; +-0.02 is > 4 sd.
    assert arms.count("B") / len(arms) == pytest.approx(0.3, abs=0.02)
    assert {assign_arm(f"v{i}", split=0.0) for i in range(100)} == {"A"}
    assert {assign_arm(f"v{i}", split=1.0) for i in range(100)} == {"B"}


def test_salt_reshuffles():
    ids = [f"v{i}" for i in range(200)]
    same = sum(assign_arm(v) == assign_arm(v, salt="other") for v in ids)
    assert 60 < same < 140


# --- events ---------------------------------------------------------------------------------


def event(kind="impression", arm="A", visitor="v1", item=1, rank=1):
    return Event(kind, arm, visitor, item, rank, "evening", "tv", 1_700_000_000.0)


def test_event_round_trip_and_validation():
    e = event(kind="like", arm="B")
    data = e.to_dict()
    assert Event.from_dict(data) == e
    assert Event.from_dict({**data, "item_id": "1", "rank": "1"}) == e
    with pytest.raises(ValueError, match="kind"):
        event(kind="purchase")
    with pytest.raises(ValueError, match="arm"):
        event(arm="C")
    with pytest.raises(ValueError, match="rank"):
        event(rank=0)
    with pytest.raises(ValueError, match="unknown"):
        Event.from_dict({**data, "extra": 1})


# --- online CTR -----------------------------------------------------------------------------


def simulated_log(rng, ctr, arm, n_visitors, per_visitor=20):
    """Impressions of distinct movies; a click (or a like, sometimes after a click) per hit."""
    events = []
    for v in range(n_visitors):
        visitor = f"{arm}-{v}"
        for item in range(per_visitor):
            events.append(event("impression", arm, visitor, item, item + 1))
            if rng.random() < ctr:
                events.append(event(rng.choice(["click", "like"]), arm, visitor, item, item + 1))
                if rng.random() < 0.5:  # a like after the click: still one positive pair
                    events.append(event("like", arm, visitor, item, item + 1))
            elif rng.random() < 0.1:
                events.append(event("dismiss", arm, visitor, item, item + 1))
    return events


def test_ctr_by_arm_recovers_planted_lift():
    rng = np.random.default_rng(0)
    log = simulated_log(rng, 0.10, "A", 1500) + simulated_log(rng, 0.13, "B", 1500)
    out = ctr_by_arm(log, n_resamples=2000)
    assert out["A"]["impressions"] == out["B"]["impressions"] == 30_000
    assert out["A"]["ctr"] == pytest.approx(0.10, abs=0.006)
    lo, hi = out["B"]["ctr_ci"]
    assert lo < 0.13 < hi
    diff = out["difference"]
    assert diff["ci"][0] < 0.03 < diff["ci"][1]
    assert diff["includes_zero"] is False and diff["ci"][0] > 0


def test_ctr_by_arm_without_lift_includes_zero():
    rng = np.random.default_rng(1)
    log = simulated_log(rng, 0.1, "A", 300) + simulated_log(rng, 0.1, "B", 300)
    assert ctr_by_arm(log, n_resamples=2000)["difference"]["includes_zero"] is True


def test_ctr_counts_pairs_and_ignores_unshown_reactions():
    log = [
        event("impression", "A", "v1", 1),
        event("impression", "A", "v1", 1),  # shown again: same pair
        event("click", "A", "v1", 1),
        event("like", "A", "v1", 1),  # same pair, counted once
        event("impression", "A", "v1", 2),
        event("click", "A", "v1", 3),  # never shown: ignored
    ]
    out = ctr_by_arm(log, n_resamples=100)
    assert (out["A"]["impressions"], out["A"]["clicks"], out["A"]["ctr"]) == (2, 1, 0.5)
    assert out["B"]["ctr"] is None and out["difference"]["ci"] is None
