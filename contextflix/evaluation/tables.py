"""The metrics table, rendered once: the report, the model card and the page all show this one.

``metrics_table`` takes a metrics.json dict (``evaluate_bundle``'s result) and returns
markdown: protocol S with one row per model (NDCG@10 with its 95% bootstrap interval), then
protocol R's RMSE where measured. ``text_table`` is the same protocol S table as aligned plain
text, for a terminal.
"""

from __future__ import annotations

from typing import Any

MODEL_ORDER = (
    "popularity",
    "collaborative",
    "content",
    "sequential",
    "hybrid_no_context",
    "hybrid",
)
COLUMNS = (
    ("hr@10", "HR@10"),
    ("ndcg@10", "NDCG@10 [95% CI]"),
    ("mrr@10", "MRR@10"),
    ("precision@10", "Precision@10"),
    ("recall@10", "Recall@10"),
    ("coverage@10", "Coverage@10"),
    ("mean_popularity@10", "Mean popularity@10"),
)


def _ordered(models: dict[str, Any]) -> list[str]:
    return [m for m in MODEL_ORDER if m in models] + sorted(set(models) - set(MODEL_ORDER))


def _cell(values: dict[str, Any], key: str, interval: bool = True) -> str:
    value = values.get(key)
    if not isinstance(value, int | float):
        return "-"
    digits = 1 if key.startswith("mean_popularity") else 4
    ci = values.get(f"{key}_ci") if interval else None
    if isinstance(ci, list | tuple) and len(ci) == 2:
        return f"{value:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"
    return f"{value:.{digits}f}"


def metrics_table(metrics: dict) -> str:
    """Markdown tables of a metrics.json dict; a sentence when it holds no figures."""
    protocols = (metrics or {}).get("protocols") or {}
    s = protocols.get("S") or {}
    if not s.get("models"):
        return "Not evaluated: no protocol S figures."
    lines = [
        f"Protocol S (top-N): {s.get('n_users', '?')} users, last interaction by time, full"
        f" ranking over {s.get('n_candidates', '?')} items; 95% bootstrap interval over users.",
        "",
        "| model | " + " | ".join(label for _, label in COLUMNS) + " |",
        "|---" * (len(COLUMNS) + 1) + "|",
    ]
    for name in _ordered(s["models"]):
        values = s["models"][name]
        cells = [_cell(values, key, interval=key == "ndcg@10") for key, _ in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += popularity_lines(s)
    lines += oracle_lines(metrics)
    r = protocols.get("R") or {}
    if r.get("models"):
        lines += ["", f"Protocol R (rating prediction): {r.get('n_test', '?')} test ratings.", ""]
        lines += ["| model | RMSE |", "|---|---|"]
        lines += [f"| {name} | {_cell(v, 'rmse')} |" for name, v in r["models"].items()]
    return "\n".join(lines)


def popularity_lines(s: dict) -> list[str]:
    """Each model's paired difference from popularity (report.versus_popularity)."""
    versus = s.get("vs_popularity")
    if not versus:
        return []
    lines = [
        "",
        "Against popularity, paired on the same users (the model minus popularity, mean per-user"
        " NDCG@10, 95% bootstrap interval, sign-flip p):",
        "",
        "| model | difference [95% CI] | p | ratio |",
        "|---|---|---|---|",
    ]
    for name in _ordered(versus):
        v = versus[name]
        ratio = "-" if v.get("ratio") is None else f"{v['ratio']:.2f}x"
        lines.append(
            f"| {name} | {v['mean_diff']:+.4f} [{v['ci'][0]:+.4f}, {v['ci'][1]:+.4f}]"
            f" | {v['p_value']:.4f} | {ratio} |"
        )
    return lines


def oracle_lines(metrics: dict) -> list[str]:
    """On SYNTHETIC data, each model's NDCG@10 as a fraction of the generator's oracle."""
    oracle = metrics.get("oracle")
    if not oracle:
        return []
    best, taste = oracle["ndcg@10"], oracle.get("genre_taste_ndcg@10")
    lines = [
        "",
        f"SYNTHETIC data: the generating model's own ranking (the oracle) reaches NDCG@10"
        f" {best:.4f}"
        + (
            f"; ranking by exact genre taste times the popularity genres and year tell,"
            f" as a content model must, {taste:.4f}."
            if taste
            else "."
        ),
        "",
        "| model | NDCG@10 / oracle |",
        "|---|---|",
    ]
    models = metrics["protocols"]["S"]["models"]
    for name in _ordered(models):
        lines.append(f"| {name} | {models[name]['ndcg@10'] / best:.1%} |")
    return lines


def text_table(metrics: dict) -> str:
    """The protocol S table as aligned plain text (the end of a pipeline run)."""
    s = metrics["protocols"]["S"]
    header = f"{'model':<18}" + "".join(f"{label.split(' [')[0]:>20}" for _, label in COLUMNS)
    lines = [header, "-" * len(header)]
    for name in _ordered(s["models"]):
        cells = "".join(f"{_cell(s['models'][name], key, False):>20}" for key, _ in COLUMNS)
        lines.append(f"{name:<18}{cells}")
    return "\n".join(lines + popularity_lines(s) + oracle_lines(metrics))
