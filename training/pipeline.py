"""``python -m training pipeline``: train the base models, then the hybrids, evaluate, export a bundle.

Each step is the same LightningCLI run a person would start by hand from the step's YAML
config (``configs/pipeline.yaml`` lists them per data set), so the pipeline adds no
training logic of its own: it passes each base model's best checkpoint to the hybrid, scores
the test sets once, and hands everything to the bundle export.

The base models do not depend on each other, nor do the two hybrids, so with ``workers: 2``
(the plan's) they are fitted by two worker processes at once, the thread budget split
between them: a one-thread process per core keeps both cores busy, where one process with two
threads gains little on these small models. ``workers: 1`` runs every step in this process,
one after the other.
"""

from __future__ import annotations

import multiprocessing
import shutil
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from pathlib import Path

import torch
import yaml

from contextflix.bundle import Bundle, export_bundle
from contextflix.data import load_dataset
from contextflix.data.context import load_context_config
from contextflix.data.synthetic import parse_name
from contextflix.evaluation.context_impact import context_impact
from contextflix.evaluation.report import evaluate_bundle, print_table
from training.cli import fit_cli
from training.hybrid import HybridModule, load_base_models

BASE_STEPS = ("collaborative", "collaborative_s", "content", "sequential")


def _fit(config: str, overrides: list[str], rating_test: bool = False) -> dict:
    """One LightningCLI fit: its best checkpoint, seconds, and (``rating_test``) test metrics."""
    start = time.perf_counter()
    cli = fit_cli(["fit", "--config", config, *overrides])
    seconds = time.perf_counter() - start
    path = cli.trainer.checkpoint_callback.best_model_path
    if not path:
        raise RuntimeError(f"{type(cli.model).__name__} saved no checkpoint; check its config")
    fit = {"checkpoint": path, "seconds": seconds}
    if rating_test:
        tested = cli.trainer.test(ckpt_path="best", datamodule=cli.datamodule, verbose=False)
        fit["test"] = tested[0]
    return fit


def _context_impact(dataset: str, context_config: str | None, reports: Path) -> None:
    """The context-impact report, from the data alone: a worker writes it while models train."""
    simulation = load_context_config(context_config)
    context_impact(load_dataset(dataset, device_simulation=simulation), reports)


class InProcess(Executor):
    """Runs each submitted call at once, in this process (``workers: 1``)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def _limit_threads(threads: int) -> None:
    torch.set_num_threads(threads)


def step_runner(workers: int, threads: int) -> Executor:
    """Where the steps run: here (1 worker) or in ``workers`` processes of ``threads`` each."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, not {workers}")
    if workers == 1:
        return InProcess()
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_limit_threads,
        initargs=(threads,),
    )


def plan_configs(plan: dict, dataset: str, config: str) -> tuple[dict, Callable[[str], list]]:
    """The step configs for ``dataset``, and the overrides that point a step at it.

    A SYNTHETIC data set (``synthetic-ml-1m`` ...) runs its release's configs (the ML-1M
    ones where the plan has none for it), retargeted at the synthetic data and at its own run
    folders, so a real run is never overwritten.
    """
    if dataset in plan["configs"]:
        return plan["configs"][dataset], lambda step: []
    like = parse_name(dataset)
    if like is None:
        raise ValueError(f"no configs for {dataset!r} in {config}; have {sorted(plan['configs'])}")
    release = like[0] if like[0] in plan["configs"] else "ml-1m"  # the largest configured

    def retarget(step: str) -> list[str]:
        folder = f"runs/{dataset}/{step}"
        return [
            f"--data.init_args.dataset={dataset}",
            f"--trainer.logger.init_args.save_dir={folder}",
            f"--trainer.callbacks.dirpath={folder}",
        ]

    return plan["configs"][release], retarget


def pipeline(
    config: str = "configs/pipeline.yaml",
    dataset: str | None = None,
    profile: str = "full",
    output: str | None = None,
) -> Path:
    """Train collaborative (R and S fits), content, sequential and both hybrids; evaluate; export.

    Args:
        config: the pipeline plan (per data set: one LightningCLI config per step; profiles;
            ``context``: the context config every step and the bundle use).
        dataset: data set to train on (default: the plan's).
        profile: "quick" (few epochs, for a first run), "large" (few epochs of catalogue-free
            losses, for a million ratings and more) or "full" (the configs as written).
        output: bundle folder (default ``artifacts/<dataset>``).
    """
    plan = yaml.safe_load(Path(config).read_text())
    dataset = dataset or plan["dataset"]
    configs, retarget = plan_configs(plan, dataset, config)
    if profile not in plan["profiles"]:
        raise ValueError(f"unknown profile {profile!r}; use one of {sorted(plan['profiles'])}")
    overrides = plan["profiles"][profile] or {}
    overrides = {
        step: [*retarget(step), *overrides.get(step, [])] for step in (*BASE_STEPS, "hybrid")
    }
    context_config = plan.get("context")  # every step builds the same context from this file
    context = [f"--data.init_args.context_config={context_config}"] if context_config else []
    data = load_dataset(dataset, device_simulation=load_context_config(context_config))
    target = Path(output or f"artifacts/{dataset}")
    reports = target.parent / f".{target.name}-reports"
    shutil.rmtree(reports, ignore_errors=True)
    timings, checkpoints = {}, {}
    stages = (*BASE_STEPS, "hybrid", "hybrid_no_context", "evaluate and export")
    finished = 0

    def stage_done() -> None:
        """The one progress line per stage the app's first start reads: the next stage awaited.

        Steps may run at once, so a line is printed each time one finishes (plan order)."""
        nonlocal finished
        finished += 1
        print(f"stage {finished + 1}/{len(stages)}: {stages[finished]}", flush=True)

    # One thread budget: each process of the run, this one included, gets its share. More
    # threads than cores left free make torch's threads spin-wait for each other: the
    # ml-latest-small evaluation took 199 s with 2 threads beside other work, 4.6 s with 1.
    workers = int(plan.get("workers", 1))
    torch.set_num_threads(max(1, torch.get_num_threads() // workers))
    print(f"stage 1/{len(stages)}: {stages[0]}", flush=True)
    with step_runner(workers, torch.get_num_threads()) as runner:
        # the slowest step first, so it starts at once
        order = sorted(BASE_STEPS, key=lambda step: step != "sequential")
        fits = {
            step: runner.submit(
                _fit,
                configs[step],
                [*context, *overrides.get(step, [])],
                rating_test=step == "collaborative",
            )
            for step in order
        }
        impact = runner.submit(_context_impact, dataset, context_config, reports)
        for step in BASE_STEPS:
            fit = fits[step].result()
            timings[step], checkpoints[step] = fit["seconds"], fit["checkpoint"]
            if step == "collaborative":
                rating_test = fit["test"]
            stage_done()

        fits = {}
        for name, use_context in (("hybrid", True), ("hybrid_no_context", False)):
            args = [
                f"--model.init_args.collaborative_checkpoint={checkpoints['collaborative_s']}",
                f"--model.init_args.content_checkpoint={checkpoints['content']}",
                f"--model.init_args.sequential_checkpoint={checkpoints['sequential']}",
                f"--model.init_args.use_context={str(use_context).lower()}",
                *context,
                *overrides.get("hybrid", []),
            ]
            if not use_context:
                folder = f"runs/{dataset}/hybrid_no_context"
                args += [
                    f"--trainer.callbacks.dirpath={folder}",
                    f"--trainer.logger.init_args.save_dir={folder}",
                ]
            fits[name] = runner.submit(_fit, configs["hybrid"], args)
        hybrids = {}
        for name, future in fits.items():
            fit = future.result()
            timings[name] = fit["seconds"]
            hybrids[name] = HybridModule.load_from_checkpoint(
                fit["checkpoint"], map_location="cpu"
            ).model.eval()
            stage_done()
        impact.result()

    base = load_base_models(
        data, checkpoints["collaborative_s"], checkpoints["content"], checkpoints["sequential"]
    )
    bundle = Bundle(
        config={
            "name": f"contextflix-{dataset}",
            "dataset": dataset,
            "context": {
                "config": context_config,
                "device_simulation": data.device_simulation.as_dict(),
            },
            "training": {
                "profile": profile,
                "seconds": {k: round(v, 1) for k, v in timings.items()},
                "configs": {step: configs[step] for step in (*BASE_STEPS, "hybrid")},
                "torch_threads": torch.get_num_threads(),
                "workers": workers,
            },
        },
        models=base,
        hybrid=hybrids["hybrid"],
        hybrid_no_context=hybrids["hybrid_no_context"],
        catalog=data.movies,
        interactions=data.served_interactions(),
        users=data.users,
        metrics=None,
    )
    bundle.metrics = evaluate_bundle(bundle, data, reports, rating={"collaborative": rating_test})
    export_bundle(bundle, target, reports_dir=reports)
    shutil.rmtree(reports, ignore_errors=True)
    print_table(bundle.metrics)
    print(f"bundle written to {target}")
    return target
