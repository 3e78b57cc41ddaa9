"""Evaluate a bundle: protocol S for every model, protocol R figures, the offline A/B test.

``evaluate_bundle`` scores the protocol S test targets of every model a bundle holds through
the one scoring path (``contextflix.models.scoring.Scorer``, the service's too), in one pass
over users (each batch's context-free base scores are shared by the single models and both
hybrids), and writes ``metrics.json`` (the shape docs/architecture.md describes, plus the
per-context breakdown, the hybrid's weights and the A/B summary), ``metrics.md``,
``ab_test.md/.json`` and the PNG plots. The pipeline and ``python -m training evaluate`` call
it; ``print_table`` prints what a person wants to see at the end of a run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from contextflix.data import DEVICES, TIMES_OF_DAY
from contextflix.data.synthetic import oracle_figures
from contextflix.evaluation.ab import AB_RESAMPLES, AB_SEED, ab_markdown, ab_section
from contextflix.evaluation.metrics import (
    CI_RESAMPLES,
    CI_SEED,
    EvaluationResult,
    evaluate_ranking,
    ranking_metrics,
)
from contextflix.evaluation.plots import (
    plot_ab,
    plot_context_breakdown,
    plot_hybrid_weights,
    plot_metric_bars,
)
from contextflix.evaluation.stats import bootstrap_ci, paired_test
from contextflix.evaluation.tables import metrics_table, text_table
from contextflix.models.hybrid import ContextHybrid
from contextflix.models.popularity import UNKNOWN
from contextflix.models.scoring import BaseModels, Scorer, Targets, protocol_s_targets

if TYPE_CHECKING:
    from contextflix.bundle import Bundle
    from contextflix.data import Dataset

MODELS = ("popularity", "collaborative", "content", "sequential", "hybrid_no_context", "hybrid")
"""Every model key of metrics.json, in report order."""


# --- scoring ------------------------------------------------------------------------------


@dataclass
class ProtocolSRun:
    """Per-user outcome of every evaluated model on the protocol S test targets.

    ``real_only`` is arm B of the A/B test scored with the device replaced by "unknown" (time
    of day kept): the hybrid as it would run on real context alone.
    """

    targets: Targets
    results: dict[str, EvaluationResult]
    real_only: EvaluationResult | None
    skipped: dict[str, str] = field(default_factory=dict)


def _usable_hybrid(hybrid: ContextHybrid | None, models: BaseModels, name: str) -> str | None:
    """Why a hybrid cannot be scored, or None when it can."""
    if hybrid is None:
        return f"{name}: not in the bundle"
    missing = sorted(set(hybrid.sources) - set(models.available))
    return f"{name}: base models {missing} missing" if missing else None


def _concat(parts: list[EvaluationResult], n_candidates: int) -> EvaluationResult:
    ranks = np.concatenate([p.ranks for p in parts])
    tops = np.concatenate([p.top_items for p in parts])
    return EvaluationResult(ranking_metrics(ranks), ranks, tops, n_candidates)


def _evaluate_batch(
    key: torch.Tensor, targets: torch.Tensor, seen: torch.Tensor, candidates: torch.Tensor
) -> EvaluationResult:
    rows, cols = (part.numpy() for part in torch.nonzero(seen, as_tuple=True))
    return evaluate_ranking(
        lambda positions: key[positions],
        torch.arange(len(targets)),
        targets,
        (rows, cols),
        candidates,
        batch_size=len(targets),
    )


@torch.inference_mode()
def run_protocol_s(
    models: BaseModels,
    hybrid: ContextHybrid | None,
    hybrid_no_context: ContextHybrid | None,
    dataset: Dataset,
    batch_size: int = 256,
    only: tuple[str, ...] | None = None,
) -> ProtocolSRun:
    """Rank every user's test target among all unseen catalogue items, for every model.

    Scores come from the one scoring path (``Scorer``), ranked by its ``ranking_key``: the
    order the service shows. Single models get the target's context where they use one
    (popularity and sequential); hybrid_no_context gets requests without context, hybrid gets
    them with context. ``only`` restricts the run to some models (the benchmark times one).
    """
    wanted = set(only or MODELS)
    for module in (models.popularity, models.collaborative, models.content, models.sequential):
        if module is not None:
            module.eval()
    skipped = {
        name: f"{name}: not in the bundle"
        for name in MODELS[:4]
        if name in wanted and getattr(models, name) is None
    }
    hybrids = {"hybrid_no_context": hybrid_no_context, "hybrid": hybrid}
    for name, model in hybrids.items():
        reason = _usable_hybrid(model, models, name)
        if name in wanted and reason:
            skipped[name] = reason
        elif model is not None:
            model.eval()
    names = [name for name in MODELS if name in wanted and name not in skipped]
    scorer = Scorer(models, hybrid, hybrid_no_context, dataset.candidates)
    targets = protocol_s_targets(dataset, "test")
    candidates = scorer.candidates
    parts: dict[str, list[EvaluationResult]] = {}
    for start in range(0, len(targets.items), batch_size):
        full = targets.requests.slice(start, start + batch_size)
        scores = scorer.scores(full, names)
        if "hybrid" in names:
            scores["hybrid_real_only"] = scorer.scores(full.without_device(), ["hybrid"])["hybrid"]
        seen = full.seen(scorer.n_items)
        batch_targets = targets.items[start : start + batch_size]
        for name, values in scores.items():
            key = scorer.ranking_key(values)
            parts.setdefault(name, []).append(_evaluate_batch(key, batch_targets, seen, candidates))
    n_candidates = int(candidates.sum())
    results = {name: _concat(p, n_candidates) for name, p in parts.items()}
    real_only = results.pop("hybrid_real_only", None)
    return ProtocolSRun(targets, results, real_only, skipped)


# --- summaries ----------------------------------------------------------------------------


def context_breakdown(
    values: np.ndarray, time_of_day: np.ndarray, device: np.ndarray, metric: str = "ndcg@10"
) -> dict[str, dict[str, dict[str, Any]]]:
    """Mean of a per-user metric per target context level, with its 95% bootstrap interval."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for dimension, codes, levels in (
        ("time_of_day", time_of_day, TIMES_OF_DAY),
        ("device", device, DEVICES),
    ):
        cells = {}
        for index, level in enumerate(levels):
            group = values[codes == index]
            if group.size:
                ci = list(bootstrap_ci(group, CI_RESAMPLES, CI_SEED))
                cells[level] = {metric: float(group.mean()), "ci": ci, "n": int(group.size)}
            else:
                cells[level] = {metric: 0.0, "ci": [0.0, 0.0], "n": 0}
        out[dimension] = cells
    return out


@torch.inference_mode()
def hybrid_weights(
    hybrid: ContextHybrid, history_length: int, hybrid_no_context: ContextHybrid | None = None
) -> dict[str, Any]:
    """The hybrid's softmax weights per (time of day x device, plus "unknown" device) cell."""
    hybrid.eval()
    devices = [*DEVICES, "unknown"]
    tod, dev = torch.meshgrid(
        torch.arange(len(TIMES_OF_DAY)), torch.arange(len(devices)), indexing="ij"
    )
    dev = torch.where(dev == len(DEVICES), UNKNOWN, dev)
    length = torch.full((tod.numel(),), history_length)
    grid = hybrid.weights(tod.reshape(-1), dev.reshape(-1), length)
    out: dict[str, Any] = {
        "sources": list(hybrid.sources),
        "times_of_day": list(TIMES_OF_DAY),
        "devices": devices,
        "history_length": int(history_length),
        "history_length_note": "median history length of the test users",
        "grid": grid.reshape(len(TIMES_OF_DAY), len(devices), -1).tolist(),
        "no_context": None,
    }
    if hybrid_no_context is not None and list(hybrid_no_context.sources) == out["sources"]:
        hybrid_no_context.eval()
        unknown = torch.tensor([UNKNOWN])
        weights = hybrid_no_context.weights(unknown, unknown, torch.tensor([history_length]))
        out["no_context"] = weights[0].tolist()
    return out


def rating_section(
    rating: dict[str, dict] | None, dataset: Dataset, previous: dict | None
) -> dict[str, Any] | None:
    """Protocol R block: {"n_test", "models": {name: {"rmse"}}} from what the caller measured.

    Accepts a model's "rmse" or Lightning's "test_rmse"; n_test defaults to the size of the
    data set's R test part. Without ``rating`` the bundle's earlier R block is kept.
    """
    if rating is None:
        return (previous or {}).get("protocols", {}).get("R")
    models = {}
    n_test = rating.get("n_test")
    for name, measured in rating.items():
        if name == "n_test":
            continue
        value = measured.get("rmse", measured.get("test_rmse"))
        if value is None:
            raise ValueError(f"rating[{name!r}] has no 'rmse' or 'test_rmse': {sorted(measured)}")
        models[name] = {"rmse": float(value)}
        n_test = measured.get("n_test", n_test)
    return {"n_test": int(n_test if n_test is not None else len(dataset.r.test)), "models": models}


def versus_popularity(run: ProtocolSRun, metric: str = "ndcg@10") -> dict[str, dict]:
    """Each model against popularity on the same users (B = the model, A = popularity).

    "Above popularity" is a claim about the same users' targets, so it is tested paired
    (stats.paired_test: bootstrap interval of the mean per-user difference, sign-flip p);
    two overlapping intervals from separate bootstraps can hide a clear paired difference.
    """
    if "popularity" not in run.results:
        return {}
    base = run.results["popularity"].per_user[metric]
    out = {}
    for name in MODELS:
        if name == "popularity" or name not in run.results:
            continue
        mine = run.results[name].per_user[metric]
        result = paired_test(base, mine, AB_RESAMPLES, AB_SEED).to_dict()
        ratio = float(mine.mean() / base.mean()) if base.mean() > 0 else None
        out[name] = {"metric": metric, **result, "ratio": ratio}
    return out


# --- evaluate a bundle --------------------------------------------------------------------


def evaluate_bundle(
    bundle: Bundle,
    dataset: Dataset,
    reports_dir: Path,
    rating: dict[str, dict] | None = None,
) -> dict:
    """metrics.json (docs/architecture.md) for ``bundle`` on ``dataset``; writes every report file.

    Writes metrics.json/.md, ab_test.json/.md and metrics.png, ndcg_by_context.png,
    hybrid_weights.png (when the bundle has a context hybrid) and ab_test.png into
    ``reports_dir``. Returns the metrics dict.
    """
    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    run = run_protocol_s(bundle.models, bundle.hybrid, bundle.hybrid_no_context, dataset)
    train = dataset.ratings.iloc[dataset.s.train]["item_idx"].to_numpy()
    item_counts = np.bincount(train, minlength=dataset.n_items)
    requests = run.targets.requests
    tod, dev = requests.target_time_of_day.numpy(), requests.target_device.numpy()
    ordered = [name for name in MODELS if name in run.results]
    models = {name: run.results[name].summary(ci=True, item_counts=item_counts) for name in ordered}
    by_context = {
        name: context_breakdown(run.results[name].per_user["ndcg@10"], tod, dev) for name in ordered
    }
    ab = ab_section(run)
    metrics: dict[str, Any] = {
        "dataset": dataset.name,
        "protocols": {
            "S": {
                "n_users": len(run.targets.items),
                "n_candidates": int(dataset.candidates.sum()),
                "split": "test",
                "models": models,
                "skipped": run.skipped,
                "by_context": by_context,
                "vs_popularity": versus_popularity(run),
                "notes": (
                    "leave-last-out by time, full ranking over every unseen catalogue item;"
                    " equal scores ordered as the service shows them (training popularity,"
                    " then item id), any tie left counting against the target; 95% bootstrap"
                    " intervals over users (1,000 resamples,"
                    " seed 0); mean_popularity@10 counts protocol S train interactions;"
                    " device is SIMULATED"
                ),
            },
        },
        "device_simulation": dataset.device_simulation.as_dict(),
        "ab_test": ab,
    }
    oracle = oracle_figures(dataset.name)
    if oracle is not None:  # SYNTHETIC data: what the generating model itself achieves
        metrics["oracle"] = oracle
    r_block = rating_section(rating, dataset, bundle.metrics)
    if r_block is not None:
        metrics["protocols"]["R"] = r_block
    if bundle.hybrid is not None and "hybrid" in run.results:
        median_length = int(np.median(requests.history_length.numpy()))
        metrics["hybrid_weights"] = hybrid_weights(
            bundle.hybrid, median_length, bundle.hybrid_no_context
        )

    _write_json(reports_dir / "metrics.json", metrics)
    (reports_dir / "metrics.md").write_text(metrics_markdown(metrics))
    _write_json(reports_dir / "ab_test.json", ab)
    (reports_dir / "ab_test.md").write_text(ab_markdown(ab))
    if models:
        plot_metric_bars(models, reports_dir / "metrics.png")
        plot_context_breakdown(by_context, reports_dir / "ndcg_by_context.png")
    if "hybrid_weights" in metrics:
        plot_hybrid_weights(metrics["hybrid_weights"], reports_dir / "hybrid_weights.png")
    if ab["available"]:
        plot_ab(ab, reports_dir / "ab_test.png")
    return metrics


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")


# --- text output --------------------------------------------------------------------------


def metrics_markdown(metrics: dict) -> str:
    """metrics.md: the metrics table (evaluation.tables) with the run's notes."""
    s = metrics["protocols"]["S"]
    lines = [f"# Evaluation: {metrics['dataset']}", "", metrics_table(metrics)]
    for reason in (s.get("skipped") or {}).values():
        lines.append(f"\nSkipped: {reason}")
    lines += ["", s.get("notes", "")]
    weights = metrics.get("hybrid_weights")
    if weights:
        lines += [
            "",
            f"Hybrid weights per context: hybrid_weights.png (history length"
            f" {weights['history_length']}, the median of the test users).",
        ]
    lines += ["", "Device context is SIMULATED (MovieLens records none)."]
    return "\n".join(lines) + "\n"


def print_table(metrics: dict) -> None:
    """Print the protocol S table, the RMSE table and the A/B verdicts (the end of a run)."""
    s = metrics["protocols"]["S"]
    print(f"Protocol S on {metrics['dataset']}: {s['n_users']} users, full ranking")
    print(text_table(metrics))
    r = metrics["protocols"].get("R")
    if r and r.get("models"):
        print(f"\nProtocol R: {r['n_test']} test ratings")
        for name, v in r["models"].items():
            print(f"{name:<18}{'RMSE':>12}{v['rmse']:>12.4f}")
    ab = metrics.get("ab_test") or {}
    for verdict in ab.get("verdicts", []):
        print(f"A/B {verdict}")
