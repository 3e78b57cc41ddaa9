"""Paired comparison of two checkpoints of one model on protocol S VALIDATION targets.

    CONTEXTFLIX_DATA_DIR=../shared/data python bench/paired.py --config configs/ml-100k/sequential.yaml \
        --a runs/before/best.ckpt --b runs/ml-100k/sequential/best.ckpt

Both checkpoints are validated through the same LightningCLI config (per-user NDCG@10 and
HR@10 of every validation target, full ranking, history masked); the table gives each mean,
the mean difference B - A with its paired bootstrap 95% interval (10,000 resamples, seed 0)
and the sign-flip p-value of ``contextflix.evaluation.stats.paired_test``. A speed change that
trades accuracy is accepted when the interval of B - A includes zero (or lies above it).
Validation only: test targets never steer a choice.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from contextflix.evaluation.metrics import ranking_metrics  # noqa: E402
from contextflix.evaluation.stats import paired_test  # noqa: E402
from training.cli import fit_cli  # noqa: E402


def per_user_validation(config: str, checkpoint: str) -> dict[str, torch.Tensor]:
    """Per-user validation metrics of a sequential checkpoint, in user order."""
    cli = fit_cli(["--config", config, "--trainer.logger=false"], run=False)
    module = type(cli.model).load_from_checkpoint(checkpoint, map_location="cpu").eval()
    data = cli.datamodule
    module._eval = {
        "history": data.history("val"),
        "candidates": torch.as_tensor(data.data.candidates),
    }
    module._ranks = []
    with torch.no_grad():
        for batch in data.val_dataloader():
            module._eval_step(batch)
    return ranking_metrics(torch.cat(module._ranks), ks=(10,))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--a", required=True, help="checkpoint of arm A (before)")
    parser.add_argument("--b", required=True, help="checkpoint of arm B (after)")
    args = parser.parse_args()
    a = per_user_validation(args.config, args.a)
    b = per_user_validation(args.config, args.b)
    print(f"A: {args.a}\nB: {args.b}")
    print("| metric | A | B | B - A [95% CI] | p |\n|---|---:|---:|---|---:|")
    for name in ("ndcg@10", "hr@10"):
        r = paired_test(a[name], b[name])
        print(
            f"| val {name} | {r.mean_a:.4f} | {r.mean_b:.4f} | {r.mean_diff:+.4f} "
            f"[{r.ci[0]:+.4f}, {r.ci[1]:+.4f}] | {r.p_value:.3f} |"
        )


if __name__ == "__main__":
    main()
