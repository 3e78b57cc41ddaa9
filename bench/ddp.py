"""N processes (Lightning DDP, CPU/gloo) against one: the same models, within the paired interval?

    CONTEXTFLIX_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python bench/ddp.py --dataset ml-100k

Fits every pipeline step twice from the same configs (configs/pipeline.yaml, full profile):
once as one process, once with ``--trainer.strategy=ddp --trainer.devices=N
--trainer.accelerator=cpu``; each hybrid mixes the base models of its own arm. Every fit is
the ``python -m training fit`` a person would type, in its own process. Then each checkpoint
pair is scored on the protocol S VALIDATION targets through the one scoring path (``Scorer``,
full catalogue, history masked; the hybrid on its held-out validation users, the ones its
early stopping watches) and compared user by user: mean NDCG@10 of each arm, the difference
N - 1 with its paired bootstrap 95% interval and sign-flip p (``evaluation.stats.paired_test``).
The rating model (protocol R) is compared on its held-out ratings' squared errors (MSE).
Also printed: each fit's wall time. ``--reuse`` keeps checkpoints already there (e.g. the
one-process arm of an earlier run). A config's batch size is per process, so N processes
take N times fewer, N times larger steps per epoch; ``--global-batch`` gives each process
1/N of the batch instead, so a step over all processes is one process's step.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from contextflix.data import load_dataset  # noqa: E402
from contextflix.data.context import load_context_config  # noqa: E402
from contextflix.evaluation.metrics import ranking_metrics, target_ranks  # noqa: E402
from contextflix.evaluation.stats import paired_test  # noqa: E402
from contextflix.models.scoring import Scorer, protocol_s_targets  # noqa: E402
from training.collaborative import CollaborativeModule  # noqa: E402
from training.hybrid import HybridDataModule, HybridModule, load_base_models  # noqa: E402
from training.pipeline import BASE_STEPS, plan_configs  # noqa: E402

HYBRID_BASES = {
    "collaborative": "collaborative_s",
    "content": "content",
    "sequential": "sequential",
}


def fit(config: str, args: list[str], folder: Path, devices: int, reuse: bool) -> float | None:
    """Wall seconds of one ``python -m training fit`` writing ``folder/best.ckpt``; None when
    ``reuse`` finds that checkpoint already there."""
    if reuse and (folder / "best.ckpt").exists():
        return None
    parallel = ["--trainer.strategy=ddp", f"--trainer.devices={devices}"] if devices > 1 else []
    command = [
        sys.executable, "-m", "training", "fit", "--config", config, *args, *parallel,
        "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false",
        f"--trainer.logger.init_args.save_dir={folder}", f"--trainer.callbacks.dirpath={folder}",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"fit failed: {' '.join(command)}\n{result.stderr[-3000:]}")
    return time.perf_counter() - start


def fit_arm(
    configs: dict, common: dict, root: Path, devices: int, global_batch: bool, reuse: bool
) -> dict[str, float | None]:
    """Every step of one arm, the hybrid on this arm's base checkpoints.

    ``global_batch``: each process takes 1/N of the config's batch, so the batch of a step
    over all processes (and the steps per epoch) are those of one process.
    """
    seconds = {}
    for step in (*BASE_STEPS, "hybrid"):
        args = list(common[step])
        if step == "hybrid":
            args += [
                f"--model.init_args.{name}_checkpoint={root / base / 'best.ckpt'}"
                for name, base in HYBRID_BASES.items()
            ]
        if global_batch and devices > 1:
            batch = yaml.safe_load((ROOT / configs[step]).read_text())["data"]["init_args"]
            args.append(f"--data.init_args.batch_size={batch['batch_size'] // devices}")
        seconds[step] = fit(configs[step], args, root / step, devices, reuse)
    return seconds


@torch.inference_mode()
def per_user_ndcg(root: Path, dataset, hybrid_users: torch.Tensor) -> dict[str, np.ndarray]:
    """Validation NDCG@10 per user of each ranking model of one arm (Scorer, full ranking)."""
    models = load_base_models(
        dataset, *(str(root / step / "best.ckpt") for step in HYBRID_BASES.values())
    )
    hybrid = HybridModule.load_from_checkpoint(root / "hybrid" / "best.ckpt", map_location="cpu")
    scorer = Scorer(models, hybrid.model.eval(), candidates=dataset.candidates)
    targets = protocol_s_targets(dataset, "val")
    names = {"collaborative_s": "collaborative", "content": "content", "sequential": "sequential"}
    per_user: dict[str, list[np.ndarray]] = {step: [] for step in (*names, "hybrid")}
    keep = torch.zeros(len(targets.items), dtype=torch.bool)
    keep[hybrid_users] = True  # rows are in user order: row u is user u's target
    for start in range(0, len(targets.items), 256):
        requests = targets.requests.slice(start, start + 256)
        items = targets.items[start : start + 256]
        scores = scorer.scores(requests, [*names.values(), "hybrid"])
        seen = requests.seen(scorer.n_items)
        for step, model in [*names.items(), ("hybrid", "hybrid")]:
            rows = keep[start : start + 256] if step == "hybrid" else slice(None)
            ranks = target_ranks(
                scorer.ranking_key(scores[model])[rows], items[rows], seen[rows], scorer.candidates
            )
            per_user[step].append(ranking_metrics(ranks.numpy(), ks=(10,))["ndcg@10"])
    return {step: np.concatenate(parts) for step, parts in per_user.items()}


@torch.inference_mode()
def squared_errors(checkpoint: Path, config: str, args: list[str]) -> np.ndarray:
    """Squared errors of the rating model on its held-out validation ratings, in data order."""
    from training.cli import fit_cli

    cli = fit_cli(["--config", config, *args, "--trainer.logger=false"], run=False)
    module = CollaborativeModule.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    data = cli.datamodule
    module.rating_range = data.rating_range
    return torch.cat([module._squared_error(b) for b in data.val_dataloader()]).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--plan", default="configs/pipeline.yaml")
    parser.add_argument("--runs", default="runs/ddp", help="folder for both arms' checkpoints")
    parser.add_argument("--reuse", action="store_true", help="keep checkpoints already there")
    parser.add_argument(
        "--global-batch", action="store_true", help="per-process batch = config batch / N"
    )
    parser.add_argument("--max-epochs", type=int, help="cap every fit (a smoke run)")
    args = parser.parse_args()
    plan = yaml.safe_load((ROOT / args.plan).read_text())
    configs, retarget = plan_configs(plan, args.dataset, args.plan)
    context = plan.get("context")
    common = {
        step: [
            *retarget(step),
            *([f"--data.init_args.context_config={context}"] if context else []),
            *([f"--trainer.max_epochs={args.max_epochs}"] if args.max_epochs else []),
        ]
        for step in (*BASE_STEPS, "hybrid")
    }
    runs = ROOT / args.runs / args.dataset
    name = f"n{args.devices}" + ("-global-batch" if args.global_batch else "")
    arms = {1: runs / "n1", args.devices: runs / name}
    seconds = {}
    for devices, root in arms.items():
        seconds[devices] = fit_arm(configs, common, root, devices, args.global_batch, args.reuse)
        print(f"{devices} process(es): {seconds[devices]}", flush=True)
    dataset = load_dataset(args.dataset, device_simulation=load_context_config(context))
    hybrid_data = HybridDataModule(args.dataset)
    hybrid_data._data = dataset
    hybrid_users = hybrid_data.user_rows()["val"]
    ndcg = {devices: per_user_ndcg(root, dataset, hybrid_users) for devices, root in arms.items()}
    one, many = arms
    batch = "config batch / N per process" if args.global_batch else "config batch per process"
    print(
        f"\n{args.dataset}: {many} DDP processes (gloo, CPU; {batch}) vs 1, validation,"
        " paired per user"
    )
    print(
        "| model | metric | users | 1 process | N processes | N - 1 [95% CI] | p | fit s (1 / N) |"
    )
    print("|---|---|---:|---:|---:|---|---:|---|")

    def row(step: str, metric: str, a: np.ndarray, b: np.ndarray) -> None:
        r = paired_test(a, b)
        wall = " / ".join(
            "-" if t is None else f"{t:.0f}" for t in (seconds[one][step], seconds[many][step])
        )
        print(
            f"| {step} | {metric} | {r.n} | {r.mean_a:.4f} | {r.mean_b:.4f} | "
            f"{r.mean_diff:+.4f} [{r.ci[0]:+.4f}, {r.ci[1]:+.4f}] | {r.p_value:.3f} | {wall} |"
        )

    mse = {
        d: squared_errors(root / "collaborative" / "best.ckpt", configs["collaborative"],
                          common["collaborative"])
        for d, root in arms.items()
    }  # fmt: skip
    row("collaborative", "MSE", mse[one], mse[many])
    for step in ("collaborative_s", "content", "sequential", "hybrid"):
        row(step, "NDCG@10", ndcg[one][step], ndcg[many][step])


if __name__ == "__main__":
    main()
