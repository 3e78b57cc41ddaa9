"""What a fit needs to run as N processes (Lightning DDP): an explicit shard per process.

Lightning's automatic DistributedSampler pads the last shard with repeated rows, so a
validation user would be counted twice; ContextFlix turns it off (``use_distributed_sampler``
False, set by ``training.cli``) and shards instead:

- training: every process walks the same shuffled batch order and takes every N-th batch,
  cut to the same count on every process (DDP needs equal steps; at most N-1 batches of an
  epoch are left out, different ones each epoch);
- validation and test: every process takes every N-th row, nothing repeated, and metrics are
  sums and counts reduced over processes once per epoch, so each user counts exactly once.

With one process all of it is the identity.
"""

from __future__ import annotations

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
