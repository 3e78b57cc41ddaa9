"""Bootstrap intervals, paired tests and Wilson intervals behave as statistics should."""

import numpy as np
import pytest
from scipy.stats import ttest_rel

from contextflix.evaluation import stats
from contextflix.evaluation.stats import (
    bootstrap_ci,
    bootstrap_cis,
    bootstrap_ratio_samples,
    paired_test,
    wilson_interval,
)


def test_bootstrap_ci_is_the_documented_percentile_bootstrap():
    values = np.random.default_rng(1).exponential(size=300)
    draws = np.random.default_rng(7).integers(0, 300, size=(1000, 300))
    expected = np.quantile(values[draws].mean(axis=1), [0.025, 0.975])
    assert bootstrap_ci(values, seed=7) == pytest.approx(tuple(expected))


def test_bootstrap_chunking_does_not_change_the_result(monkeypatch):
    values = np.random.default_rng(2).normal(size=500)
    whole = bootstrap_ci(values, n_resamples=300)
    monkeypatch.setattr(stats, "_CHUNK_ELEMENTS", 1234)  # several rows per chunk, ragged end
    # Same resamples; only the floating-point summation order of the BLAS product may differ.
    assert bootstrap_ci(values, n_resamples=300) == pytest.approx(whole, rel=1e-12)


def test_bootstrap_coverage_is_near_nominal():
    # 400 independent samples of 200 from Exp(1) (true mean 1). The share of 95% intervals
    # containing 1 is Binomial(400, c) / 400 with sd ~0.011. The percentile bootstrap may run a
    # little low on a skewed law at n=200 (c ~ 0.93-0.95), so 0.91..0.98 spans c -+ ~2.5 sd;
    # a too-narrow interval (the 80% level gives 0.80 here) or a too-wide one (99%: 0.99)
    # falls outside.
    rng = np.random.default_rng(12345)
    hits = 0
    for i in range(400):
        lo, hi = bootstrap_ci(rng.exponential(1.0, size=200), seed=i)
        hits += lo <= 1.0 <= hi
    assert 0.91 <= hits / 400 <= 0.98


def test_bootstrap_cis_equal_separate_intervals():
    rng = np.random.default_rng(4)
    columns = {"hr": (rng.random(250) < 0.2).astype(float), "ndcg": rng.random(250) * 0.3}
    joint = bootstrap_cis(columns, seed=3)
    for name, values in columns.items():
        assert joint[name] == pytest.approx(bootstrap_ci(values, seed=3), rel=1e-12)


def test_bootstrap_ci_refuses_bad_input():
    with pytest.raises(ValueError, match="non-finite"):
        bootstrap_ci([1.0, float("nan")])
    with pytest.raises(ValueError):
        bootstrap_ci([])
    with pytest.raises(ValueError):
        bootstrap_ci([1.0, 2.0], level=1.5)


def test_paired_test_detects_planted_difference():
    rng = np.random.default_rng(0)
    a = rng.normal(size=400)
    b = a + 0.2 + rng.normal(scale=0.5, size=400)
    result = paired_test(a, b)
    assert result.p_value < 0.01
    assert not result.includes_zero and result.ci[0] > 0
    assert result.mean_diff == pytest.approx(b.mean() - a.mean())
    assert result.ci[0] < 0.2 < result.ci[1]
    assert result.n == 400


def test_paired_test_identical_arms_include_zero():
    a = np.random.default_rng(1).random(300)
    result = paired_test(a, a.copy())
    assert result.includes_zero and result.p_value == 1.0 and result.ci == (0.0, 0.0)


def test_paired_test_direction_is_b_minus_a():
    a = np.zeros(50)
    b = np.ones(50)
    assert paired_test(a, b, n_resamples=500).mean_diff == 1.0
    assert paired_test(b, a, n_resamples=500).ci[1] < 0


def test_sign_flip_p_value_agrees_with_t_test_on_normal_data():
    # On normal differences the permutation test and the t-test estimate the same p-value
    # (Monte Carlo sd of the permutation p ~0.004 at 10,000 resamples).
    rng = np.random.default_rng(3)
    a = rng.normal(size=200)
    b = a + 0.15 + rng.normal(size=200)
    expected = ttest_rel(b, a).pvalue
    assert 0.005 < expected < 0.5  # a p-value in the interesting range
    assert paired_test(a, b).p_value == pytest.approx(expected, abs=0.02)


def test_sign_flip_p_value_matches_exact_enumeration():
    # Five users, all differences +1: of the 2^5 sign patterns, 2 reach |sum| >= 5, so the exact
    # two-sided p is 2/32; ties with the observed value count as extreme.
    result = paired_test(np.zeros(5), np.ones(5))
    assert result.p_value == pytest.approx(2 / 32, abs=0.01)


def test_paired_test_on_hit_differences():
    # Zero-inflated 0/1 data: B hits 60 more users of 1,000 than A, A hits 10 users B misses.
    a = np.zeros(1000)
    b = np.zeros(1000)
    a[:100] = b[:100] = 1
    b[100:160] = 1
    a[160:170] = 1
    result = paired_test(a, b)
    assert result.mean_diff == pytest.approx(0.05)
    assert result.p_value < 0.001 and not result.includes_zero
    assert result.to_dict()["ci"] == list(result.ci)


def test_paired_test_needs_same_users():
    with pytest.raises(ValueError, match="same users"):
        paired_test([1.0, 2.0], [1.0])


def test_wilson_interval_known_value():
    # 10 successes in 100 trials: Wilson 95% interval (0.0552, 0.1744) (Newcombe 1998).
    lo, hi = wilson_interval(10, 100)
    assert (lo, hi) == pytest.approx((0.0552, 0.1744), abs=1e-4)
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == 1.0


def test_bootstrap_ratio_keeps_units_together():
    # Two visitors: one with 10 clicks of 10, one with 0 of 10; resampled CTRs are 0, .5 or 1.
    ratios = bootstrap_ratio_samples(
        np.array([10, 0]), np.array([10, 10]), 200, np.random.default_rng(0)
    )
    assert set(np.round(ratios, 6)) == {0.0, 0.5, 1.0}
