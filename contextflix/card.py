"""The model card (a bundle's README.md), built with ``huggingface_hub.ModelCard``.

The front matter is ``ModelCardData``: licence, tags, data set and, as ``eval_results``, every
number metrics.json holds (nothing else), so the Hub shows the same figures as the reports.
The body says what the bundle is, its metrics, how it was evaluated, what is simulated, which
licence the data falls under and whether this repository holds a copy of it.
"""

from __future__ import annotations

import json

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from contextflix.data.context import DeviceSimulation
from contextflix.evaluation.tables import metrics_table

PROTOCOLS_DOC = "docs/protocols.md"  # copied into the bundle, so these links work on the Hub
ARCHITECTURE_DOC = "docs/architecture.md"
GROUPLENS_CITATION = """@article{harper2015movielens,
  author  = {Harper, F. Maxwell and Konstan, Joseph A.},
  title   = {The MovieLens Datasets: History and Context},
  journal = {ACM Transactions on Interactive Intelligent Systems (TiiS)},
  volume  = {5},
  number  = {4},
  pages   = {19:1--19:19},
  year    = {2015},
  doi     = {10.1145/2827872}
}"""
METRIC_ORDER = ("hr@10", "ndcg@10", "mrr@10", "precision@10", "recall@10", "rmse")
TAGS = ["recommender-system", "movielens", "context-aware", "pytorch-lightning"]


def model_card(
    config: dict, metrics: dict | None, withheld: list[str], extra: dict | None = None
) -> ModelCard:
    """The card of a bundle whose full config.json is ``config``.

    ``withheld`` names the data files a published copy leaves out (the licence forbids
    redistributing them); ``extra`` entries are merged into the front matter.
    """
    dataset = config.get("dataset") or "MovieLens"
    licence = config["data_licence"]
    data = ModelCardData(
        model_name=config["name"],
        library_name="pytorch",
        tags=TAGS,
        datasets=[dataset],
        license="other",
        license_name="grouplens-movielens" if "MovieLens" in licence["name"] else "other",
        license_link=licence["url"] or None,
        eval_results=eval_results(dataset, metrics) or None,
        **(extra or {}),
    )
    body = "\n\n".join(
        [
            f"# {config['name']}",
            "## What it is",
            _what_it_is(config, dataset),
            "## Metrics",
            _metrics_section(metrics),
            "## Protocols",
            _protocols(),
            "## What is simulated",
            _simulated(config["context"]["device_simulation"]),
            "## Data licence",
            _licence(licence, dataset, withheld),
            "## Citation",
            f"```bibtex\n{GROUPLENS_CITATION}\n```",
            "## How to load",
            _how_to_load(),
        ]
    )
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}\n")


def eval_results(dataset: str, metrics: dict | None) -> list[EvalResult]:
    """The headline metrics (METRIC_ORDER) per model and protocol, as metrics.json holds them.

    Only numbers metrics.json holds; the card's table and the reports have the rest.
    """
    results = []
    for protocol, block in ((metrics or {}).get("protocols") or {}).items():
        task = "top-n recommendation" if protocol == "S" else "rating prediction"
        for model, values in (block.get("models") or {}).items():
            for key in METRIC_ORDER:
                value = values.get(key)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    results.append(
                        EvalResult(
                            task_type="recommendation",
                            task_name=f"{task} ({model})",
                            dataset_type=dataset,
                            dataset_name=f"MovieLens {dataset}",
                            metric_type=key,
                            metric_name=f"{key} (protocol {protocol}, {model})",
                            metric_value=value,
                        )
                    )
    return results


def _what_it_is(config: dict, dataset: str) -> str:
    models = ", ".join(config["models"])
    return (
        f"A context-aware movie recommender trained on MovieLens `{dataset}` by ContextFlix: "
        "context-aware popularity, biased matrix factorisation, a content model over genres, "
        "year and tags, and a SASRec-style sequential Transformer, mixed by a hybrid whose "
        "weights depend on the time of day, the device and the history length "
        f"(`hybrid_no_context` is the same hybrid blind to context). Models in this bundle: "
        f"{models}. How the pieces fit: [{ARCHITECTURE_DOC}]({ARCHITECTURE_DOC})."
    )


def _protocols() -> str:
    return (
        f"Defined precisely in [{PROTOCOLS_DOC}]({PROTOCOLS_DOC}).\n\n"
        "- **S (top-N):** per user, ratings sorted by time; the last is the test target, the "
        "second-last the validation target, earlier ones train. Full ranking over every rated "
        "item minus the user's history, no sampled negatives, pessimistic ties; HR, NDCG, MRR, "
        "precision and recall at 10 with 95% bootstrap intervals over users (1,000 resamples, "
        "seed 0). The models here are the ones trained on S's train part; serving a data-set "
        "user sees the train and validation interactions, so it reproduces the test ranking.\n"
        "- **R (rating prediction):** a seeded 90/10 random split of the ratings "
        "(`default_rng(42)`), RMSE on the test part with predictions clipped to the rating "
        "range; its figures come from a separate fit on R's train part."
    )


def _simulated(simulation: dict) -> str:
    default_effect = DeviceSimulation().genre_effect
    return (
        "Time of day is real (each rating's timestamp in the user's time zone). **The device "
        "is simulated** (MovieLens records none): each user gets a device mix from a Dirichlet "
        "prior seeded by the user id, each session (ratings < 30 minutes apart) draws one "
        f"device. Parameters used (the context config): `{json.dumps(simulation)}`. "
        "`genre_effect` (how much a session's first movie tilts the device) defaults to "
        f"{default_effect} (off: the device then carries no information about what is "
        f"watched); this bundle used {simulation.get('genre_effect')}."
    )


def _licence(licence: dict, dataset: str, withheld: list[str]) -> str:
    link = f" ({licence['url']})" if licence["url"] else ""
    text = (
        f"**{licence['name']}**{link}. {licence['terms']} This bundle is derived from "
        f"`{dataset}` (its catalogue, and weights fitted to its ratings) and falls under the "
        "same terms."
    )
    if licence["redistributable"]:
        return text + " The licence allows redistribution: the bundle ships its data files."
    files = ", ".join(f"`{name}`" for name in withheld)
    return text + (
        f" **The licence forbids redistribution**, so a published copy of this bundle leaves "
        f"out {files}. `load_bundle` rebuilds them from your own copy of `{dataset}` (put its "
        f"files in `$CONTEXTFLIX_DATA_DIR/{dataset}/`, or let ContextFlix download it from "
        "GroupLens with checksums) and checks that they match what the models were trained on."
    )


def _how_to_load() -> str:
    return (
        "```python\nfrom contextflix.bundle import load_bundle\nfrom contextflix.hub import pull_bundle\n\n"
        'bundle = load_bundle("path/to/bundle")  # verifies checksums and tensor shapes\n'
        'bundle = load_bundle(pull_bundle("OWNER/NAME"))  # or "OWNER/NAME@revision"\n```\n\n'
        "or run the app on it: `CONTEXTFLIX_BUNDLE=OWNER/NAME python app.py`."
    )


def _cell(values: dict, key: str) -> str:
    value = values.get(key)
    if not isinstance(value, int | float):
        return "-"
    interval = values.get(f"{key}_ci")
    if isinstance(interval, list | tuple) and len(interval) == 2:
        return f"{value:.4f} [{interval[0]:.4f}, {interval[1]:.4f}]"
    return f"{value:.4f}"


def _metrics_section(metrics: dict | None) -> str:
    """The project's one metrics table (the reports and the page show the same)."""
    if not (metrics or {}).get("protocols"):
        return "Not evaluated: this bundle has no metrics.json yet."
    return metrics_table(metrics)
