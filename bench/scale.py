"""How each stage grows with the number of ratings: prepare, train, evaluate, load, serve.

    CONTEXTFLIX_DATA_DIR=../shared/data python bench/scale.py [--quick] [--device cpu|cuda]
        [--datasets ml-100k synthetic-ml-1m ...] [--steps 30] [--plot docs/scale.png]
        [--stage sequential --train-arg=--model.init_args.negatives=1024 ...]

For ml-100k, ml-latest-small and SYNTHETIC data sets of 1M, 5M and 25M ratings (``--quick``:
the first three) every stage runs in its own child process, so each peak RSS is that stage's
alone, and prints one table row:

- prepare: ``load_dataset`` with a cold cache (parse, context, splits);
- seconds per epoch of each model (its pipeline config, synthetic sets the ML-1M configs):
  ``--steps`` training steps timed after a warm-up step, times the steps of one epoch
  (extrapolated: an epoch at 25M takes long on 2 cores, the cost per step is what grows);
- evaluate: one full-catalogue protocol-S validation pass of the sequential model over every
  user, in user batches (its time does not depend on how well the model is trained);
- load (and recommend p50): a bundle of real-shaped models (untrained: latency depends on sizes only)
  exported, loaded, then recommend+explain p50 over 200 users.

The last row is each stage's growth exponent b in time ~ ratings^b (least squares on logs).
Synthetic data sets are generated on first use (seed 0) into the data folder.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DATASETS = (
    "ml-100k",
    "ml-latest-small",
    "synthetic-ml-1m",
    "synthetic-ml-25m-x0.2",
    "synthetic-ml-25m",
)
MODELS = ("collaborative_s", "content", "sequential")
STAGES = ("prepare", *MODELS, "evaluate", "load")  # "load" also reports the serve p50


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _configs(dataset: str) -> tuple[dict, object]:
    import yaml

    from training.pipeline import plan_configs

    plan = yaml.safe_load((ROOT / "configs" / "pipeline.yaml").read_text())
    return plan_configs(plan, dataset, "configs/pipeline.yaml")


def stage_prepare(dataset: str, device: str, steps: int) -> dict:
    from contextflix.data import load_dataset
    from contextflix.data.fetch import cache_dir, dataset_path

    dataset_path(dataset)  # a synthetic set is generated here, outside the timing
    shutil.rmtree(cache_dir() / "prepared" / dataset, ignore_errors=True)
    start = time.perf_counter()
    data = load_dataset(dataset)  # cold: parse, context, splits, cache write
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "ratings": len(data.ratings), "items": data.n_items}


def _cli(dataset: str, model: str, device: str, extra: list[str]):
    from training.cli import fit_cli

    configs, retarget = _configs(dataset)
    scratch = tempfile.mkdtemp(prefix="contextflix-scale-")
    args = [
        "--config", str(ROOT / configs[model]), *retarget(model),
        f"--trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}", "--trainer.devices=1",
        f"--trainer.deterministic={str(device != 'cuda').lower()}",  # cuBLAS needs an env var
        "--trainer.max_epochs=1", "--trainer.enable_progress_bar=false",
        "--trainer.enable_checkpointing=false", "--trainer.logger=false",
        "--trainer.callbacks=null", f"--trainer.default_root_dir={scratch}", *extra,
    ]  # fmt: skip
    return fit_cli(args, run=False)


def stage_train(dataset: str, model: str, device: str, steps: int, train_args=()) -> dict:
    import lightning as L

    class StepTimer(L.Callback):
        def __init__(self) -> None:
            self.ends: list[float] = []

        def on_train_batch_end(self, *args) -> None:
            if device == "cuda":
                import torch

                torch.cuda.synchronize()
            self.ends.append(time.perf_counter())

    cli = _cli(dataset, model, device, [f"--trainer.limit_train_batches={steps + 1}",
                                         "--trainer.limit_val_batches=0", *train_args])  # fmt: skip
    timer = StepTimer()
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    per_step = statistics.median(np.diff(timer.ends))  # the first step (warm-up) is left out
    n_steps = len(cli.datamodule.train_dataloader())
    return {"seconds": per_step * n_steps, "per_step": per_step, "steps": n_steps}


def stage_evaluate(dataset: str, device: str, steps: int) -> dict:
    cli = _cli(dataset, "sequential", device, [])
    start = time.perf_counter()
    cli.trainer.validate(cli.model, datamodule=cli.datamodule, verbose=False)
    return {"seconds": time.perf_counter() - start, "users": cli.datamodule.n_users}


def _untrained_bundle(dataset: str, folder: Path) -> Path:
    """A bundle of real-shaped, untrained models: load time and latency depend on sizes only."""
    import torch

    from contextflix.bundle import Bundle, export_bundle
    from contextflix.data import load_dataset
    from contextflix.models.collaborative import MatrixFactorization
    from contextflix.models.content import ContentModel
    from contextflix.models.hybrid import ContextHybrid
    from contextflix.models.scoring import BaseModels, fit_popularity
    from contextflix.models.sequential import SequentialRecommender

    torch.manual_seed(0)
    data = load_dataset(dataset)
    models = BaseModels(
        popularity=fit_popularity(data),
        collaborative=MatrixFactorization(data.n_users, data.n_items, 64).eval(),
        content=ContentModel.from_movies(data.movies, n_tags=0, dim=64, hidden=256).eval(),
        sequential=SequentialRecommender(data.n_items, dim=64, max_len=200).eval(),
    )
    bundle = Bundle(
        config={"name": f"scale-{dataset}", "dataset": dataset},
        models=models,
        hybrid=ContextHybrid(list(models.available)).eval(),
        hybrid_no_context=ContextHybrid(list(models.available), use_context=False).eval(),
        catalog=data.movies,
        interactions=data.served_interactions(),
        users=data.users,
        metrics=None,
    )
    return export_bundle(bundle, folder)


def stage_load(dataset: str, device: str, steps: int) -> dict:
    import torch

    from contextflix.service import Recommender

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as scratch:
        folder = _untrained_bundle(dataset, Path(scratch) / "bundle")
        start = time.perf_counter()
        service = Recommender.from_bundle(folder)
        load = time.perf_counter() - start
        users = np.random.default_rng(0).choice(service.catalog.user_ids, 220)
        latencies = []
        for user in users:
            t = time.perf_counter()
            service.recommend(user_id=int(user), time_of_day="evening", k=10, cache=False)
            latencies.append((time.perf_counter() - t) * 1000)
    return {"seconds": load, "serve_p50_ms": statistics.median(latencies[20:])}


def run_stage(stage: str, dataset: str, device: str, steps: int) -> dict:
    """One stage in a child process: its seconds, its peak RSS, and what else it reports."""
    command = [sys.executable, __file__, "--stage", stage, "--datasets", dataset,
               "--device", device, "--steps", str(steps)]  # fmt: skip
    path = os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))
    env = {**os.environ, "PYTHONPATH": path}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode < 0:  # a signal: the kernel's OOM killer, most often
        return {"error": f"killed by signal {-done.returncode}"}
    if done.returncode or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1][:80]}
    return json.loads(lines[-1])


def _exponent(sizes: list[float], values: list[float]) -> float | None:
    points = [(s, v) for s, v in zip(sizes, values, strict=True) if v and v > 0]
    if len(points) < 2:
        return None
    x, y = np.log([p[0] for p in points]), np.log([p[1] for p in points])
    return float(np.polyfit(x, y, 1)[0])


def plot(rows: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for stage in STAGES:
        points = sorted(
            (r["prepare"]["ratings"], r[stage]["seconds"])
            for r in rows.values()
            if "ratings" in r["prepare"] and "seconds" in r[stage]
        )
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=stage)
    ax.set(xscale="log", yscale="log", xlabel="ratings", ylabel="seconds (train: per epoch)")
    ax.set_title("ContextFlix stages against data size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")


def table(rows: dict[str, dict]) -> str:
    def cell(result: dict) -> str:
        if "error" in result:
            return f"error: {result['error']}"
        return f"{result['seconds']:.2f} s / {result['peak_mb']:.0f} MB"

    header = "| data set | ratings | " + " | ".join(STAGES) + " | recommend p50 |"
    lines = [header, "|" + "---|" * (len(STAGES) + 3)]
    for name, r in rows.items():
        ratings = r["prepare"].get("ratings", 0)
        serve = r["load"].get("serve_p50_ms")
        lines.append(
            f"| {name} | {ratings:,} | " + " | ".join(cell(r[s]) for s in STAGES)
            + f" | {f'{serve:.1f} ms' if serve else '-'} |"
        )  # fmt: skip
    sizes = [r["prepare"].get("ratings", 0) for r in rows.values()]
    exps = [_exponent(sizes, [r[s].get("seconds") for r in rows.values()]) for s in STAGES]
    exps.append(_exponent(sizes, [r["load"].get("serve_p50_ms") for r in rows.values()]))
    lines.append(
        "| growth exponent b (time ~ ratings^b) | | "
        + " | ".join("-" if b is None else f"{b:.2f}" for b in exps)
        + " |"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=None)
    parser.add_argument("--quick", action="store_true", help="only the three smallest")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per model")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "scale.png")
    parser.add_argument("--stage", choices=STAGES)
    parser.add_argument(
        "--train-arg", action="append", default=[], help="a LightningCLI override, with --stage"
    )
    args = parser.parse_args()
    if args.stage:  # child process: one stage, one JSON line
        name = args.datasets[0]
        if args.stage in MODELS:
            result = stage_train(name, args.stage, args.device, args.steps, args.train_arg)
        else:
            stage = {"prepare": stage_prepare, "evaluate": stage_evaluate, "load": stage_load}
            result = stage[args.stage](name, args.device, args.steps)
        print(json.dumps({**result, "peak_mb": _peak_mb()}))
        return
    names = args.datasets or (DATASETS[:3] if args.quick else DATASETS)
    rows = {}
    for name in names:
        rows[name] = {s: run_stage(s, name, args.device, args.steps) for s in STAGES}
        print(f"{name}: {json.dumps(rows[name])}", file=sys.stderr, flush=True)
    print(f"device: {args.device}; load average {os.getloadavg()[0]:.1f}; SYNTHETIC data sets "
          f"are generated, see contextflix/data/synthetic.py")  # fmt: skip
    print(table(rows))
    plot(rows, args.plot)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
