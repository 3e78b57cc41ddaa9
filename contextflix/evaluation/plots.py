"""PNG plots of the evaluation reports, drawn from the JSON-ready dicts the reports write.

Every function takes the same dict that lands in a report's JSON, so a plot can be redrawn
from a saved report without rerunning anything. The look is dark (the app's Netflix-like
theme shows them) with light text and strong colours, so the figures stay readable on a dark
page and on white paper. matplotlib runs headless (Agg); nothing here opens a window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

BACKGROUND = "#141414"
PANEL = "#1f1f1f"
TEXT = "#e8e8e8"
MUTED = "#9a9a9a"
ZERO_LINE = "#bbbbbb"
PALETTE = ("#e50914", "#f5c518", "#46d369", "#54b9ff", "#b388ff", "#ff8a65", "#4dd0e1")
HEATMAP = "magma"
DIVERGING = "RdBu_r"
DPI = 120

MODEL_LABELS = {
    "popularity": "Popularity",
    "collaborative": "Collaborative",
    "content": "Content",
    "sequential": "Sequential",
    "hybrid_no_context": "Hybrid (no context)",
    "hybrid": "Hybrid (context)",
}


def _style() -> dict[str, Any]:
    return {
        "figure.facecolor": BACKGROUND,
        "axes.facecolor": PANEL,
        "axes.edgecolor": MUTED,
        "axes.labelcolor": TEXT,
        "axes.titlecolor": TEXT,
        "text.color": TEXT,
        "xtick.color": TEXT,
        "ytick.color": TEXT,
        "grid.color": "#3a3a3a",
        "legend.facecolor": PANEL,
        "legend.edgecolor": MUTED,
        "font.size": 10,
        "axes.titlesize": 11,
        "figure.titlesize": 13,
    }


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, facecolor=fig.get_facecolor(), bbox_inches="tight")
    plt.close(fig)
    return path


def _label(model: str) -> str:
    return MODEL_LABELS.get(model, model)


def _error(values: Sequence[float], cis: Sequence[Sequence[float]]) -> np.ndarray:
    """[2, n] distances from each value to its interval ends (what ``errorbar`` wants)."""
    v = np.asarray(values, dtype=float)
    ci = np.asarray(cis, dtype=float).reshape(len(v), 2)
    return np.clip(np.stack([v - ci[:, 0], ci[:, 1] - v]), 0.0, None)


def plot_metric_bars(
    models: Mapping[str, Mapping[str, Any]],
    path: Path,
    metrics: Sequence[str] = ("hr@10", "ndcg@10", "mrr@10"),
    title: str = "Protocol S (leave-last-out, full ranking), test targets",
) -> Path:
    """Grouped bars: one group per metric, one bar per model, 95% bootstrap CI whiskers."""
    names = list(models)
    with plt.rc_context(_style()):
        fig, ax = plt.subplots(figsize=(max(7.0, 1.2 * len(metrics) * len(names) / 2), 4.2))
        width = 0.8 / max(len(names), 1)
        x = np.arange(len(metrics))
        for j, name in enumerate(names):
            values = [float(models[name][m]) for m in metrics]
            cis = [
                models[name].get(f"{m}_ci", [v, v]) for m, v in zip(metrics, values, strict=True)
            ]
            ax.bar(
                x + (j - (len(names) - 1) / 2) * width,
                values,
                width,
                label=_label(name),
                color=PALETTE[j % len(PALETTE)],
                yerr=_error(values, cis),
                error_kw={"ecolor": TEXT, "capsize": 3, "elinewidth": 1},
            )
        ax.set_xticks(x, [m.upper().replace("@", "@") for m in metrics])
        ax.set_ylabel("mean over users")
        ax.set_title(f"{title}\nwhiskers: 95% bootstrap interval over users")
        ax.grid(axis="y", alpha=0.6)
        ax.set_axisbelow(True)
        ax.legend(ncols=min(3, len(names)), fontsize=9, loc="upper left")
        ax.set_ylim(0, ax.get_ylim()[1] * 1.25)
        return _save(fig, path)


def plot_context_breakdown(
    by_context: Mapping[str, Mapping[str, Mapping[str, Mapping[str, Any]]]],
    path: Path,
    metric: str = "ndcg@10",
) -> Path:
    """NDCG@10 of each model per target time of day (real) and per device (SIMULATED)."""
    dimensions = (
        ("time_of_day", "by local time of day (real)"),
        ("device", "by device (SIMULATED)"),
    )
    models = list(by_context)
    with plt.rc_context(_style()):
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.4), sharey=True)
        for ax, (dimension, title) in zip(axes, dimensions, strict=True):
            levels = list(by_context[models[0]][dimension]) if models else []
            x = np.arange(len(levels))
            width = 0.8 / max(len(models), 1)
            for j, name in enumerate(models):
                cells = by_context[name][dimension]
                values = [float(cells[level][metric]) for level in levels]
                cis = [cells[level]["ci"] for level in levels]
                ax.bar(
                    x + (j - (len(models) - 1) / 2) * width,
                    values,
                    width,
                    label=_label(name),
                    color=PALETTE[j % len(PALETTE)],
                    yerr=_error(values, cis),
                    error_kw={"ecolor": MUTED, "capsize": 2, "elinewidth": 0.8},
                )
            counts = [by_context[models[0]][dimension][level]["n"] for level in levels]
            ax.set_xticks(x, [f"{level}\n(n={n})" for level, n in zip(levels, counts, strict=True)])
            ax.set_title(f"{metric.upper()} {title}")
            ax.grid(axis="y", alpha=0.6)
            ax.set_axisbelow(True)
        axes[0].set_ylabel(f"mean {metric.upper()} (95% CI)")
        axes[1].legend(fontsize=8, loc="upper right", ncols=2)
        fig.suptitle("Test targets grouped by the context of the target interaction")
        return _save(fig, path)


def plot_hybrid_weights(weights: Mapping[str, Any], path: Path) -> Path:
    """One heatmap per base model: the hybrid's trust in it per (time of day x device)."""
    sources = list(weights["sources"])
    times, devices = list(weights["times_of_day"]), list(weights["devices"])
    grid = np.asarray(weights["grid"], dtype=float)  # [time, device, source]
    with plt.rc_context(_style()):
        fig, axes = plt.subplots(
            1,
            len(sources),
            figsize=(3.0 * len(sources) + 1.6, 4.4),
            squeeze=False,
            sharey=True,
            layout="constrained",
        )
        image = None
        for ax, s in zip(axes[0], range(len(sources)), strict=True):
            image = ax.imshow(grid[:, :, s], cmap=HEATMAP, vmin=0.0, vmax=1.0, aspect="auto")
            for (i, j), value in np.ndenumerate(grid[:, :, s]):
                ax.text(
                    j,
                    i,
                    f"{value:.2f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="black" if value > 0.6 else "white",
                )
            ax.set_xticks(range(len(devices)), devices, rotation=30)
            ax.set_yticks(range(len(times)), times)
            ax.set_title(f"trust in {sources[s]}")
            ax.set_xlabel("device (SIMULATED)")
        axes[0][0].set_ylabel("local time of day")
        if image is not None:
            fig.colorbar(image, ax=axes[0].tolist(), shrink=0.85, label="softmax weight")
        no_context = ", ".join(
            f"{s} {w:.2f}" for s, w in zip(sources, weights.get("no_context") or [], strict=False)
        )
        subtitle = f"\nfor comparison, the no-context hybrid: {no_context}" if no_context else ""
        fig.suptitle(
            "Hybrid (context): weight of each base model per context\nat history length "
            f"{weights['history_length']} ({weights['history_length_note']}){subtitle}",
            fontsize=10,
        )
        return _save(fig, path)


def plot_ab(ab: Mapping[str, Any], path: Path) -> Path:
    """Mean per-user difference B - A with its paired 95% interval, one panel per metric."""
    comparisons = ab["comparisons"]
    names = list(comparisons)
    metrics = list(comparisons[names[0]]["metrics"])
    with plt.rc_context(_style()):
        fig, axes = plt.subplots(
            1,
            len(metrics),
            figsize=(3.6 * len(metrics) + 1.6, 3.4),
            squeeze=False,
            sharey=True,
            layout="constrained",
        )
        for ax, metric in zip(axes[0], metrics, strict=True):
            for i, name in enumerate(names):
                result = comparisons[name]["metrics"][metric]
                lo, hi = result["ci"]
                colour = MUTED if result["includes_zero"] else PALETTE[2 if hi > 0 else 0]
                ax.errorbar(
                    result["mean_diff"],
                    i,
                    xerr=[[result["mean_diff"] - lo], [hi - result["mean_diff"]]],
                    fmt="o",
                    color=colour,
                    ecolor=colour,
                    capsize=4,
                    markersize=7,
                )
                ax.annotate(
                    f"p = {result['p_value']:.3g}",
                    (result["mean_diff"], i),
                    textcoords="offset points",
                    xytext=(0, 9),
                    ha="center",
                    fontsize=8,
                    color=TEXT,
                )
            ax.axvline(0.0, color=ZERO_LINE, linestyle="--", linewidth=1)
            ax.xaxis.set_major_locator(MaxNLocator(5))
            ax.set_yticks(range(len(names)), [comparisons[n]["short_label"] for n in names])
            ax.set_ylim(len(names) - 0.3, -0.7)  # first comparison on top
            ax.set_title(f"{metric}: B - A")
            ax.grid(axis="x", alpha=0.6)
        fig.suptitle(
            f"Offline A/B: A = {ab['arms']['A']}, B = {ab['arms']['B']}, {ab['n_users']} users\n"
            "mean per-user difference, paired 95% bootstrap CI; grey = interval includes zero",
            fontsize=10,
        )
        return _save(fig, path)


def plot_genre_heatmap(analysis: Mapping[str, Any], path: Path, title: str) -> Path:
    """Genre x context-level heatmap of lifts (share in level / overall share), log colour scale."""
    levels = list(analysis["levels"])
    genres = list(analysis["genres"])
    lift = np.array([[analysis["lift"][level][g] for level in levels] for g in genres])
    share = np.array([[analysis["share"][level][g] for level in levels] for g in genres])
    log_lift = np.log2(np.clip(lift, 1e-6, None))
    # Colour range from the 95th percentile, so one rare genre's extreme lift (a handful of
    # Documentary ratings) does not wash out every other cell.
    bound = max(float(np.quantile(np.abs(log_lift), 0.95)), np.log2(1.1))
    with plt.rc_context(_style()):
        fig, ax = plt.subplots(figsize=(1.4 * len(levels) + 3.2, 0.36 * len(genres) + 1.8))
        image = ax.imshow(
            np.clip(log_lift, -bound, bound), cmap=DIVERGING, vmin=-bound, vmax=bound, aspect="auto"
        )
        for (i, j), value in np.ndenumerate(lift):
            ax.text(
                j,
                i,
                f"{value:.2f}  ({share[i, j]:.1%})",
                ha="center",
                va="center",
                fontsize=7,
                color="black" if abs(log_lift[i, j]) < 0.7 * bound else "white",
            )
        ax.set_xticks(range(len(levels)), levels)
        ax.set_yticks(range(len(genres)), genres)
        bar = fig.colorbar(image, ax=ax, shrink=0.8)
        bar.set_label("log2 lift (0 = as often as overall)")
        chi2 = analysis["test"]
        ax.set_title(
            f"{title}\nlift (share of the genre in that context)  ·  within-user permutation"
            f" p = {chi2['permutation_p_value']:.3g}, Cramér's V = {chi2['cramers_v']:.3f}",
            fontsize=10,
        )
        return _save(fig, path)
