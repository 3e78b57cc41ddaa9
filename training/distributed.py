"""What a fit needs to run as N processes (Lightning DDP): an explicit shard per process.

Lightning's automatic DistributedSampler pads the last shard with repeated rows, so a
validation user would be counted twice; ContextFlix turns it off (``use_distributed_sampler``
False, set by ``training.cli``) and shards instead:

- training: every process walks the same shuffled batch order and takes every N-th batch,
  cut to the same count on every process (DDP needs equal steps; at most N-1 batches of an
  epoch are left out, different ones each epoch);
- validation and test: every process takes every N-th row, nothing repeated, and metrics are
  sums and counts reduced over processes once per epoch, so each user counts exactly once;
- randomness: LightningCLI seeds every process alike, which gives them the same initial
  weights, but also the same random stream, so each process would drop the same units of its
  share of a step's batch and sample the same negatives as the others. ``OwnRandomStream``
  (in every fit, training.cli) reseeds each process with seed + rank once the fit is set up.

With one process all of it is the identity.
"""

from __future__ import annotations

import os

import lightning as L
import torch


def process_shard(trainer: L.Trainer | None) -> tuple[int, int]:
    """(rank, number of processes) of this process; (0, 1) outside a distributed fit."""
    if trainer is None:
        return 0, 1
    return trainer.global_rank, trainer.world_size


def mean_over_processes(
    module: L.LightningModule, sums: dict[str, float], count: int
) -> dict[str, float]:
    """Means of per-row sums accumulated on each process, over the rows of all processes."""
    names = sorted(sums)
    values = torch.tensor([*(sums[n] for n in names), float(count)], dtype=torch.float64)
    trainer = module._trainer
    if trainer is not None and trainer.world_size > 1:
        values = trainer.strategy.reduce(values.to(module.device), reduce_op="sum").cpu()
    total = max(float(values[-1]), 1.0)
    return {name: float(values[i]) / total for i, name in enumerate(names)}


def share_of_mean(module: L.LightningModule, count: int) -> float:
    """The factor that turns this process's mean loss over its ``count`` rows into its share of
    the mean over every process's rows.

    DDP averages the processes' gradients, which weighs a row of a process with few rows (a
    step's batch of short histories) more than one of a process with many. Scaled by this, the
    averaged gradient is the gradient of the mean over all the step's rows, as one process
    with the whole batch would take it. 1.0 outside a distributed fit.
    """
    trainer = module._trainer
    if trainer is None or trainer.world_size == 1:
        return 1.0
    counts = torch.tensor(float(count), dtype=torch.float64, device=module.device)
    total = float(trainer.strategy.reduce(counts, reduce_op="sum"))
    return count * trainer.world_size / max(total, 1.0)


class OwnRandomStream(L.Callback):
    """A distributed fit's processes draw dropout masks and negatives of their own (module
    docstring); a one-process fit keeps its stream, and so its bits."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.world_size > 1:
            torch.manual_seed(int(os.environ.get("PL_GLOBAL_SEED", "0")) + trainer.global_rank)
