"""Uncertainty for evaluation numbers: bootstrap intervals, paired tests, binomial intervals.

Every mean we report is a mean over users, and users differ far more than models do, so a
number without an interval cannot tell a real improvement from the luck of the split. All
resampling here is seeded (numpy ``default_rng(seed)``) so a report is reproducible bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import binomtest

# Upper bound on the elements of one resampling matrix (int64 indices: 32 MiB), so the
# 10,000 x 162,000-user case of ml-25m runs in chunks instead of needing 13 GB at once.
_CHUNK_ELEMENTS = 4_000_000


def _as_finite_1d(values: ArrayLike, name: str) -> np.ndarray:
    """Float64 copy of a 1-d sample; refuse empty or non-finite input (a NaN poisons a mean)."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-d array, got shape {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(f"{name} has {bad.size} non-finite values (first at {bad[:5].tolist()})")
    return array


def _chunks(n_resamples: int, n: int) -> Iterator[tuple[int, int]]:
    """(first row, row count) of resampling chunks of at most _CHUNK_ELEMENTS elements each."""
    step = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n_resamples, step):
        yield start, min(step, n_resamples - start)


def _resample_sums(columns: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """[n_resamples, m] column sums of resamples (with replacement) of the rows of [n, m] data.

    Each resample is drawn as n row indices, turned into per-row counts, and all columns are
    summed at once by one matrix product, so ten metrics cost about as much as one. Chunks are
    drawn from one generator in the order of a single ``rng.integers(0, n, (n_resamples, n))``
    call, so the chunk size never changes the resamples (only float summation order).
    """
    n = columns.shape[0]
    sums = np.empty((n_resamples, columns.shape[1]))
    for start, rows in _chunks(n_resamples, n):
        index = rng.integers(0, n, size=(rows, n)) + n * np.arange(rows)[:, None]
        counts = np.bincount(index.ravel(), minlength=rows * n).reshape(rows, n)
        sums[start : start + rows] = counts @ columns
    return sums


def bootstrap_ratio_samples(
    numerators: np.ndarray, denominators: np.ndarray, n_resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """Ratios of sums, sum(num) / sum(den), over resamples of units drawn with replacement.

    For rates whose unit of randomisation (a visitor) holds several trials (impressions): the
    resampling keeps each visitor's trials together, so their correlation widens the interval.
    """
    if numerators.shape != denominators.shape or numerators.ndim != 1 or numerators.size == 0:
        raise ValueError("numerators and denominators must be non-empty 1-d arrays of one shape")
    sums = _resample_sums(np.column_stack([numerators, denominators]), n_resamples, rng)
    return sums[:, 0] / sums[:, 1]


def _percentile_interval(estimates: np.ndarray, level: float) -> tuple[float, float]:
    alpha = 1.0 - level
    lo, hi = np.quantile(estimates, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")


def bootstrap_cis(
    columns: Mapping[str, ArrayLike], n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of the means of several per-user metrics at once.

    All metrics share the same resampled users (same seed), so each interval equals what
    ``bootstrap_ci`` gives for that metric alone, at the cost of one.
    """
    _check_level(level)
    names = list(columns)
    data = np.column_stack([_as_finite_1d(columns[name], name) for name in names])
    means = _resample_sums(data, n_resamples, np.random.default_rng(seed)) / data.shape[0]
    return {name: _percentile_interval(means[:, j], level) for j, name in enumerate(names)}


def bootstrap_ci(
    values: ArrayLike, n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (one value per user).

    Protocol S: 1,000 resamples, seed 0. The percentile method needs no normality, which matters
    for hit rates (0/1 per user) and NDCG (mostly zeros).
    """
    return bootstrap_cis({"values": values}, n_resamples, seed, level)["values"]


@dataclass(frozen=True)
class PairedResult:
    """Comparison of two arms measured on the same users; ``mean_diff`` is B minus A."""

    mean_a: float
    mean_b: float
    mean_diff: float
    ci: tuple[float, float]
    p_value: float
    n: int
    includes_zero: bool
    level: float

    def to_dict(self) -> dict[str, float | int | bool | list[float]]:
        """JSON-ready form (the interval as a list, as in metrics.json)."""
        out = asdict(self)
        out["ci"] = list(self.ci)
        return out


def _sign_flip_p_value(diff: np.ndarray, n_resamples: int, rng: np.random.Generator) -> float:
    """Two-sided p-value of a paired sign-flip permutation test of mean(diff) == 0.

    Under the null the arms are exchangeable within a user, so each difference is as likely to
    have the opposite sign. Users with a zero difference contribute nothing to any flipped mean
    and are dropped from the random part (most users have identical HR in both arms), which makes
    the test cheap without changing it. The +1 correction keeps p >= 1 / (n_resamples + 1).
    """
    nonzero = diff[diff != 0.0]
    if nonzero.size == 0:
        return 1.0
    observed = abs(nonzero.sum())
    # Sums instead of means (same n) so the comparison is exact; tolerance absorbs fp rounding.
    tolerance = 1e-9 * np.abs(nonzero).sum()
    extreme = 0
    for _, rows in _chunks(n_resamples, nonzero.size):
        signs = rng.integers(0, 2, size=(rows, nonzero.size), dtype=np.int8) * 2 - 1
        extreme += int(np.count_nonzero(np.abs(signs @ nonzero) >= observed - tolerance))
    return (extreme + 1) / (n_resamples + 1)


def paired_test(
    a: ArrayLike, b: ArrayLike, n_resamples: int = 10_000, seed: int = 0, level: float = 0.95
) -> PairedResult:
    """Paired comparison of per-user values of arm A and arm B (same users, same order).

    Interval: percentile bootstrap of the mean per-user difference (b - a), ``default_rng(seed)``.
    p-value: two-sided paired sign-flip permutation test with its own ``default_rng(seed)``. We
    use it rather than ``scipy.stats.ttest_rel`` because per-user differences of HR and NDCG are
    discrete and zero-inflated (mostly 0, some +-1), far from the normality a t-test leans on;
    the permutation test only assumes the arms are exchangeable within a user under the null.
    """
    _check_level(level)
    arm_a, arm_b = _as_finite_1d(a, "a"), _as_finite_1d(b, "b")
    if arm_a.shape != arm_b.shape:
        raise ValueError(f"paired arms need the same users: {arm_a.size} vs {arm_b.size} values")
    diff = arm_b - arm_a
    lo, hi = bootstrap_ci(diff, n_resamples=n_resamples, seed=seed, level=level)
    p_value = _sign_flip_p_value(diff, n_resamples, np.random.default_rng(seed))
    return PairedResult(
        mean_a=float(arm_a.mean()),
        mean_b=float(arm_b.mean()),
        mean_diff=float(diff.mean()),
        ci=(lo, hi),
        p_value=float(p_value),
        n=int(diff.size),
        includes_zero=bool(lo <= 0.0 <= hi),
        level=level,
    )


def wilson_interval(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (scipy's ``binomtest``).

    Unlike the normal (Wald) interval it stays inside [0, 1] and keeps its coverage at the low
    click-through rates and small counts of a young online test.
    """
    _check_level(level)
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials and trials > 0, got {successes}/{trials}")
    interval = binomtest(successes, trials).proportion_ci(confidence_level=level, method="wilson")
    return float(interval.low), float(interval.high)
