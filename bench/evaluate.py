"""Evaluation time on ml-100k: the whole ``evaluate_bundle`` and one model's full ranking.

    CONTEXTFLIX_DATA_DIR=../shared/data python bench/evaluate.py [BUNDLE_DIR]

BUNDLE_DIR defaults to artifacts/ml-100k; when it is absent an in-memory bundle of untrained
models of the pipeline's sizes is built instead (evaluation cost does not depend on training).
Targets: evaluate_bundle < 60 s; one model's metrics for all 943 users < 1 s.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from contextflix.bundle import Bundle, load_bundle
from contextflix.data import load_dataset
from contextflix.evaluation.context_impact import context_impact
from contextflix.evaluation.metrics import evaluate_ranking
from contextflix.evaluation.report import evaluate_bundle, run_protocol_s
from contextflix.models.collaborative import MatrixFactorization
from contextflix.models.content import ContentModel
from contextflix.models.hybrid import ContextHybrid
from contextflix.models.scoring import BaseModels, fit_popularity, protocol_s_targets
from contextflix.models.sequential import SequentialRecommender

SHARED_DATA = "/work/shared/data"


def _untrained_bundle(dataset) -> Bundle:
    torch.manual_seed(0)
    models = BaseModels(
        popularity=fit_popularity(dataset),
        collaborative=MatrixFactorization(dataset.n_users, dataset.n_items, 64),
        content=ContentModel.from_movies(dataset.movies),
        sequential=SequentialRecommender(dataset.n_items),
    )
    history = np.concatenate([dataset.s.train, dataset.s.valid])
    return Bundle(
        config={"name": "bench", "dataset": dataset.name},
        models=models,
        hybrid=ContextHybrid(models.available, use_context=True),
        hybrid_no_context=ContextHybrid(models.available, use_context=False),
        catalog=dataset.movies,
        interactions=dataset.ratings.iloc[history],
        users=dataset.users,
        metrics=None,
    )


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main(path: str = "artifacts/ml-100k") -> None:
    os.environ.setdefault("CONTEXTFLIX_DATA_DIR", SHARED_DATA)
    if Path(path).is_dir():
        bundle, source = load_bundle(path), path
        dataset = load_dataset(bundle.config["dataset"])
    else:
        dataset = load_dataset("ml-100k")
        bundle, source = _untrained_bundle(dataset), "untrained in-memory bundle"
    rows = []
    with tempfile.TemporaryDirectory() as out:
        _, seconds = _timed(lambda: evaluate_bundle(bundle, dataset, Path(out)))
        rows.append(("evaluate_bundle (6 models, A/B, plots)", seconds, 60.0))
        _, seconds = _timed(lambda: context_impact(dataset, Path(out)))
        rows.append(("context_impact (off + on, 499 perms)", seconds, None))

    model = bundle.models.collaborative
    run, seconds = _timed(
        lambda: run_protocol_s(bundle.models, None, None, dataset, only=("collaborative",))
    )
    rows.append(("collaborative: score + rank all users", seconds, 1.0))
    result = run.results["collaborative"]
    _, seconds = _timed(lambda: result.summary(ci=True))
    rows.append(("collaborative: metrics + 1,000-resample CIs", seconds, 1.0))

    targets = protocol_s_targets(dataset, "test")
    with torch.inference_mode():
        scores = model.score_all(targets.requests.user)
    seen = targets.requests.seen(dataset.n_items)
    rows_, cols = (t.numpy() for t in torch.nonzero(seen, as_tuple=True))
    candidates = torch.as_tensor(dataset.candidates)
    _, seconds = _timed(
        lambda: evaluate_ranking(
            lambda p: scores[p], torch.arange(len(scores)), targets.items, (rows_, cols), candidates
        )
    )
    rows.append(("evaluate_ranking alone (precomputed scores)", seconds, 1.0))

    print(
        f"{dataset.name}: {dataset.n_users} users x {int(dataset.candidates.sum())} items;"
        f" {source}; torch threads {torch.get_num_threads()}"
    )
    print("| step | seconds | target | ok |\n|---|---:|---:|---|")
    for name, seconds, target in rows:
        ok = "-" if target is None else ("yes" if seconds < target else "NO")
        print(f"| {name} | {seconds:.2f} | {'-' if target is None else f'< {target:g}'} | {ok} |")


if __name__ == "__main__":
    main(*sys.argv[1:2])
