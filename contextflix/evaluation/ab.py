"""A/B testing: the offline paired comparison of protocol S and the online pieces the app uses.

Offline, arm A (hybrid without context) and arm B (hybrid with context) are scored on the same
users and targets, so the comparison is paired per user. Online, visitors are split by a stable
hash of their id and every impression and reaction is logged as an ``Event``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from contextflix.evaluation.metrics import EvaluationResult
from contextflix.evaluation.stats import (
    PairedResult,
    bootstrap_ratio_samples,
    paired_test,
    wilson_interval,
)

ARMS = ("A", "B")
EVENT_KINDS = ("impression", "click", "like", "dismiss")
POSITIVE_KINDS = frozenset({"click", "like"})
TIMES_OF_DAY = ("morning", "afternoon", "evening", "night")
DEVICES = ("mobile", "tablet", "desktop", "tv")
if TYPE_CHECKING:
    from contextflix.evaluation.report import ProtocolSRun

DEFAULT_SALT = "contextflix-ab-v1"
AB_METRICS = ("ndcg@10", "hr@10", "engagement")
AB_RESAMPLES = 10_000
AB_SEED = 0


def engagement(ranks: ArrayLike, target_ratings: ArrayLike, k: int = 10) -> np.ndarray:
    """Per-user "rated value of hits": the target's rating when it ranks in the top k, else 0.

    HR counts a hit on a disliked movie like one on a favourite; this weights hits by how much
    the user actually liked the target.
    """
    r = np.asarray(ranks)
    ratings = np.asarray(target_ratings, dtype=np.float64)
    if r.shape != ratings.shape:
        raise ValueError(f"one rating per rank needed: {r.shape} vs {ratings.shape}")
    return np.where(r <= k, ratings, 0.0)


def _fmt(value: float) -> str:
    """Three significant digits: small differences stay visible instead of rounding to 0.000."""
    return f"{value:.3g}"


def verdict(metric: str, result: PairedResult) -> str:
    """One plain sentence on whether B differs from A on ``metric``."""
    lo, hi = result.ci
    interval = f"the {result.level:.0%} interval [{_fmt(lo)}, {_fmt(hi)}]"
    if result.includes_zero:
        return (
            f"{metric}: no significant difference: {interval} includes zero"
            f" (p = {_fmt(result.p_value)})."
        )
    direction = "higher" if result.mean_diff > 0 else "lower"
    return (
        f"{metric}: B is {direction} than A by {_fmt(abs(result.mean_diff))};"
        f" {interval} excludes zero (p = {_fmt(result.p_value)})."
    )


def offline_ab(
    per_user_a: Mapping[str, ArrayLike],
    per_user_b: Mapping[str, ArrayLike],
    metrics: Iterable[str] = ("ndcg@10", "hr@10", "engagement"),
    n_resamples: int = 10_000,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Paired comparison per metric (B - A): PairedResult fields plus a "verdict" sentence.

    Both mappings hold per-user arrays in the same user order (same users, same targets).
    Defaults follow the protocol: 10,000 paired bootstrap resamples, seed 0.
    """
    out: dict[str, dict[str, Any]] = {}
    for metric in metrics:
        arms = {"A": per_user_a, "B": per_user_b}
        missing = [arm for arm, values in arms.items() if metric not in values]
        if missing:
            raise ValueError(f"metric {metric!r} missing from arm(s) {missing}")
        result = paired_test(per_user_a[metric], per_user_b[metric], n_resamples, seed)
        out[metric] = {**result.to_dict(), "verdict": verdict(metric, result)}
    return out


def assign_arm(visitor_id: str, split: float = 0.5, salt: str = DEFAULT_SALT) -> str:
    """Arm of a visitor: "B" for a ``split`` share of visitors, "A" for the rest.

    SHA-256 of salt and id, so the arm is the same in every process and on every machine
    (Python's ``hash()`` of a str is salted per process). Changing ``salt`` reshuffles everyone,
    which is how a new experiment starts from fresh assignments.
    """
    if not isinstance(visitor_id, str) or not visitor_id:
        raise ValueError("visitor_id must be a non-empty string")
    if not 0.0 <= split <= 1.0:
        raise ValueError(f"split must lie in [0, 1], got {split}")
    digest = hashlib.sha256(f"{salt}:{visitor_id}".encode()).digest()
    uniform = int.from_bytes(digest[:8], "big") / 2**64
    return "B" if uniform < split else "A"


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


@dataclass(frozen=True)
class Event:
    """One logged interaction of the online test (an impression or a reaction to one)."""

    kind: str
    arm: str
    visitor_id: str
    item_id: int
    rank: int
    time_of_day: str
    device: str
    timestamp: float

    def __post_init__(self) -> None:
        _check_choice("kind", self.kind, EVENT_KINDS)
        _check_choice("arm", self.arm, ARMS)
        _check_choice("time_of_day", self.time_of_day, TIMES_OF_DAY)
        _check_choice("device", self.device, DEVICES)
        if not self.visitor_id:
            raise ValueError("visitor_id must be a non-empty string")
        if self.rank < 1:
            raise ValueError(f"rank is 1-based, got {self.rank}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        """Event from a logged dict; unknown or missing keys are errors, numbers are coerced."""
        names = [field.name for field in fields(cls)]
        unknown, missing = set(data) - set(names), set(names) - set(data)
        if unknown or missing:
            raise ValueError(f"event keys: unknown {sorted(unknown)}, missing {sorted(missing)}")
        return cls(
            kind=str(data["kind"]),
            arm=str(data["arm"]),
            visitor_id=str(data["visitor_id"]),
            item_id=int(data["item_id"]),
            rank=int(data["rank"]),
            time_of_day=str(data["time_of_day"]),
            device=str(data["device"]),
            timestamp=float(data["timestamp"]),
        )


def _visitor_counts(events: Iterable[Event]) -> dict[str, dict[str, np.ndarray]]:
    """Per arm, per visitor: shown (visitor, item) pairs and how many of them drew a reaction."""
    shown: dict[str, dict[str, set[int]]] = {arm: {} for arm in ARMS}
    positive: dict[str, dict[str, set[int]]] = {arm: {} for arm in ARMS}
    for event in events:
        if event.kind == "impression":
            shown[event.arm].setdefault(event.visitor_id, set()).add(event.item_id)
        elif event.kind in POSITIVE_KINDS:
            positive[event.arm].setdefault(event.visitor_id, set()).add(event.item_id)
    counts = {}
    for arm in ARMS:
        visitors = sorted(shown[arm])
        impressions = np.array([len(shown[arm][v]) for v in visitors], dtype=np.int64)
        clicks = np.array(
            [len(shown[arm][v] & positive[arm].get(v, set())) for v in visitors], dtype=np.int64
        )
        counts[arm] = {"impressions": impressions, "clicks": clicks}
    return counts


def arm_summary(clicks: np.ndarray, impressions: np.ndarray) -> dict[str, Any]:
    """One arm's live figures from per-visitor clicks and impressions (Wilson 95% interval)."""
    n_clicks, n_impressions = int(clicks.sum()), int(impressions.sum())
    has_data = n_impressions > 0
    return {
        "visitors": int(impressions.size),
        "impressions": n_impressions,
        "clicks": n_clicks,
        "ctr": n_clicks / n_impressions if has_data else None,
        "ctr_ci": list(wilson_interval(n_clicks, n_impressions)) if has_data else None,
    }


def ctr_by_arm(
    events: Iterable[Event], n_resamples: int = 10_000, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """Online click-through rate per arm and the B - A difference, JSON-ready.

    Unit: a shown (visitor, movie) pair. Impressions count distinct pairs shown (a refresh that
    shows the same movie again is not a new chance); a pair is positive when the visitor clicked
    or liked it (both are positive feedback, counted once per pair; a like without a click is
    still interest). Reactions to movies the arm never showed are ignored, so CTR <= 1.
    Per arm: Wilson 95% interval. Difference: percentile bootstrap over visitors (arms resampled
    independently, ``default_rng(seed)``), because visitors are the randomisation unit and one
    visitor's impressions are correlated; Newcombe's interval would treat them as independent
    and come out too narrow.
    """
    return summarise_arms(_visitor_counts(events), n_resamples, seed)


def summarise_arms(
    counts: dict[str, dict[str, np.ndarray]], n_resamples: int = 10_000, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """Per-arm figures and the B - A difference from per-visitor ``clicks`` and
    ``impressions`` arrays (what ctr_by_arm reports; the live event log keeps these counts)."""
    out = {arm: arm_summary(**counts[arm]) for arm in ARMS}
    difference: dict[str, Any] = {"b_minus_a": None, "ci": None, "includes_zero": None}
    if out["A"]["impressions"] and out["B"]["impressions"]:
        rng = np.random.default_rng(seed)
        a, b = (
            bootstrap_ratio_samples(
                counts[arm]["clicks"], counts[arm]["impressions"], n_resamples, rng
            )
            for arm in ARMS
        )
        lo, hi = np.quantile(b - a, [0.025, 0.975])
        difference = {
            "b_minus_a": out["B"]["ctr"] - out["A"]["ctr"],
            "ci": [float(lo), float(hi)],
            "includes_zero": bool(lo <= 0.0 <= hi),
        }
    out["difference"] = {**difference, "method": "percentile bootstrap over visitors, 95%"}
    return out


# --- the offline report -------------------------------------------------------------------


def _per_user_ab(result: EvaluationResult, target_ratings: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "ndcg@10": result.per_user["ndcg@10"],
        "hr@10": result.per_user["hr@10"],
        "engagement": engagement(result.ranks, target_ratings),
    }


def ab_section(run: ProtocolSRun) -> dict[str, Any]:
    """Offline A/B of docs/protocols.md: A = hybrid_no_context, B = hybrid, paired per user.

    Real-context-only (B with the device unknown) and simulated-device (B with both) results
    are kept apart, as the protocol demands: only the first says anything about the real world.
    """
    a, b = run.results.get("hybrid_no_context"), run.results.get("hybrid")
    base: dict[str, Any] = {
        "arms": {"A": "hybrid_no_context", "B": "hybrid"},
        "metrics": list(AB_METRICS),
        "method": (
            "paired per user on the protocol S test targets: mean difference B - A, percentile"
            f" bootstrap 95% interval ({AB_RESAMPLES} resamples, seed {AB_SEED}), two-sided"
            " paired sign-flip permutation p-value; engagement = rating of the target when it"
            " is in the top 10, else 0; HR@10 stands in for a click"
        ),
    }
    if a is None or b is None or run.real_only is None:
        return {**base, "available": False, "reason": "needs both hybrids", "comparisons": {}}
    ratings = run.targets.ratings.numpy()
    per_a = _per_user_ab(a, ratings)
    arms_b = {
        "real_context_only": (
            "real context only (B: real time of day, device unknown)",
            "real context only",
            run.real_only,
        ),
        "with_simulated_device": (
            "with simulated device (B: time of day + SIMULATED device)",
            "+ simulated device",
            b,
        ),
    }
    comparisons = {}
    verdicts = []
    for key, (label, short, result_b) in arms_b.items():
        tests = offline_ab(
            per_a, _per_user_ab(result_b, ratings), AB_METRICS, AB_RESAMPLES, AB_SEED
        )
        comparisons[key] = {"label": label, "short_label": short, "metrics": tests}
        verdicts += [f"{label}: {tests[m]['verdict']}" for m in AB_METRICS]
    return {
        **base,
        "available": True,
        "n_users": len(ratings),
        "n_resamples": AB_RESAMPLES,
        "seed": AB_SEED,
        "comparisons": comparisons,
        "verdicts": verdicts,
    }


def ab_markdown(ab: dict) -> str:
    """The offline A/B report: one table per comparison, with the plain-language verdicts."""
    lines = ["# Offline A/B test", "", f"A = {ab['arms']['A']}, B = {ab['arms']['B']}.", ""]
    lines += [ab["method"] + ".", ""]
    if not ab.get("available"):
        return "\n".join([*lines, f"Not run: {ab.get('reason')}."]) + "\n"
    lines.append(f"{ab['n_users']} users, same targets in both arms.")
    for comparison in ab["comparisons"].values():
        lines += [
            "",
            f"## {comparison['label']}",
            "",
            "| metric | A | B | B - A | 95% CI | p | interval includes zero |",
            "|---|---|---|---|---|---|---|",
        ]
        for metric, t in comparison["metrics"].items():
            lo, hi = t["ci"]
            lines.append(
                f"| {metric} | {t['mean_a']:.4f} | {t['mean_b']:.4f} | {t['mean_diff']:+.4f}"
                f" | [{lo:+.4f}, {hi:+.4f}] | {t['p_value']:.3g}"
                f" | {'yes' if t['includes_zero'] else 'no'} |"
            )
        lines += [""] + [f"- {t['verdict']}" for t in comparison["metrics"].values()]
    lines += [
        "",
        "Only the real-context-only comparison speaks to the real world: the device is"
        " SIMULATED, so any gain it brings measures the simulation, not viewers.",
    ]
    return "\n".join(lines) + "\n"
