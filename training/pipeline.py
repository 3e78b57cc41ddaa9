"""``python -m training pipeline``: train the four models in order, evaluate, export a bundle.

Each step is the same LightningCLI run a person would start by hand from the step's YAML
config (``configs/pipeline.yaml`` lists them per data set), so the pipeline adds no
training logic of its own: it passes each base model's best checkpoint to the hybrid, scores
the test sets once, and hands everything to the bundle export.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
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


def _fit(config: str, overrides: list[str]) -> tuple[object, float]:
    start = time.perf_counter()
    cli = fit_cli(["fit", "--config", config, *overrides])
    return cli, time.perf_counter() - start


def _best(cli) -> str:
    path = cli.trainer.checkpoint_callback.best_model_path
    if not path:
        raise RuntimeError(f"{type(cli.model).__name__} saved no checkpoint; check its config")
    return path


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
        profile: "quick" (few epochs, for a first run) or "full" (the configs as written).
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
    timings, checkpoints = {}, {}
    stages = (*BASE_STEPS, "hybrid", "hybrid_no_context", "evaluate and export")

    def stage(name: str) -> None:  # the one progress line per stage the app's first start reads
        print(f"stage {stages.index(name) + 1}/{len(stages)}: {name}", flush=True)

    for step in BASE_STEPS:
        stage(step)
        cli, timings[step] = _fit(configs[step], [*context, *overrides.get(step, [])])
        checkpoints[step] = _best(cli)
        if step == "collaborative":
            rating_test = cli.trainer.test(
                ckpt_path="best", datamodule=cli.datamodule, verbose=False
            )[0]

    hybrids = {}
    for name, use_context in (("hybrid", True), ("hybrid_no_context", False)):
        args = [
            f"--model.init_args.collaborative_checkpoint={checkpoints['collaborative_s']}",
            f"--model.init_args.content_checkpoint={checkpoints['content']}",
            f"--model.init_args.sequential_checkpoint={checkpoints['sequential']}",
            f"--model.init_args.use_context={str(use_context).lower()}",
            *context,
            *overrides.get("hybrid", []),
        ]
        stage(name)
        if not use_context:
            args.append(f"--trainer.callbacks.dirpath=runs/{dataset}/hybrid_no_context")
        cli, timings[name] = _fit(configs["hybrid"], args)
        hybrids[name] = HybridModule.load_from_checkpoint(
            _best(cli), map_location="cpu"
        ).model.eval()

    stage("evaluate and export")
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
    target = Path(output or f"artifacts/{dataset}")
    reports = target.parent / f".{target.name}-reports"
    shutil.rmtree(reports, ignore_errors=True)
    bundle.metrics = evaluate_bundle(bundle, data, reports, rating={"collaborative": rating_test})
    context_impact(data, reports)
    export_bundle(bundle, target, reports_dir=reports)
    shutil.rmtree(reports, ignore_errors=True)
    print_table(bundle.metrics)
    print(f"bundle written to {target}")
    return target
