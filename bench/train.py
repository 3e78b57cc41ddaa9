"""Training cost per model: epochs, seconds per epoch, total time and peak memory.

    CONTEXTFLIX_DATA_DIR=../shared/data python bench/train.py [--dataset ml-100k] [--profile full|quick]

Runs each step of the pipeline plan (configs/pipeline.yaml) as its own ``python -m training
fit`` process, exactly as a person would, into a scratch run folder, then reads the epochs from
the step's CSV log. Peak memory is the child process's maximum resident set size.
"""

from __future__ import annotations

import argparse
import csv
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

STEPS = ("collaborative", "collaborative_s", "content", "sequential")


def epochs_logged(log_dir: Path) -> int:
    """Number of distinct epochs with a validation metric in the step's CSV log."""
    epochs = set()
    for path in log_dir.rglob("metrics.csv"):
        with path.open() as handle:
            for row in csv.DictReader(handle):
                if any(k.startswith("val_") and v for k, v in row.items()):
                    epochs.add(row["epoch"])
    return len(epochs)


def run_step(config: str, overrides: list[str], scratch: Path) -> tuple[float, int, float]:
    """(wall seconds, epochs, peak RSS in MB) of one fit in a child process."""
    log_dir = scratch / Path(config).stem
    args = [
        sys.executable, "-m", "training", "fit", "--config", config, *overrides,
        "--trainer.enable_progress_bar=false",
        f"--trainer.logger.init_args.save_dir={log_dir}",
        f"--trainer.callbacks.dirpath={log_dir}",
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return seconds, epochs_logged(log_dir), peak_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--profile", default="full", choices=("full", "quick"))
    parser.add_argument("--plan", default="configs/pipeline.yaml")
    args = parser.parse_args()
    plan = yaml.safe_load(Path(args.plan).read_text())
    configs, overrides = plan["configs"][args.dataset], plan["profiles"][args.profile] or {}
    print(
        f"{args.dataset}, profile {args.profile} (each step a separate process, incl. ~6 s start-up)"
    )
    print(
        "| step | epochs | s/epoch | total s | peak RSS MB (max so far) |\n|---|---:|---:|---:|---:|"
    )
    total = 0.0
    with tempfile.TemporaryDirectory() as scratch:
        for step in (*STEPS, "hybrid"):
            extra = list(overrides.get(step, []))
            if step == "hybrid":  # mix the checkpoints just trained
                extra += [
                    f"--model.init_args.{name}_checkpoint={Path(scratch) / Path(configs[key]).stem / 'best.ckpt'}"
                    for name, key in (
                        ("collaborative", "collaborative_s"),
                        ("content", "content"),
                        ("sequential", "sequential"),
                    )
                ]
            seconds, epochs, peak = run_step(configs[step], extra, Path(scratch))
            total += seconds
            per_epoch = f"{seconds / epochs:.1f}" if epochs else "-"
            print(f"| {step} | {epochs} | {per_epoch} | {seconds:.1f} | {peak:.0f} |", flush=True)
    print(f"| all steps | | | {total:.1f} | |")


if __name__ == "__main__":
    main()
