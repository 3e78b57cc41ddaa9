"""LightningCLI for every model: ``python -m training fit --config configs/<model>.yaml``.

The config names a LightningModule and a DataModule by class path; the CLI links the data
set's sizes into the model so a config never repeats them, and trains a bf16 config in float32
on a CPU that would only emulate bf16 (training/precision.py).
"""

from __future__ import annotations

from lightning.pytorch.cli import LightningCLI

from training.distributed import OwnRandomStream
from training.memory import ReleaseFreedMemory, keep_freed_memory
from training.precision import fitting_precision


class ContextFlixCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.n_users", "model.init_args.n_users", apply_on="instantiate")
        parser.link_arguments("data.n_items", "model.init_args.n_items", apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        trainer = config.trainer
        trainer.precision = fitting_precision(trainer.precision, trainer.accelerator)


def fit_cli(args: list[str] | None = None, run: bool = True) -> ContextFlixCLI:
    """The LightningCLI with ContextFlix defaults: fixed seed (each process of a distributed
    fit then its own stream, training/distributed.py), any module and data module, and freed
    tensor memory reused from step to step, its free pages released once an epoch
    (training/memory.py; the callbacks come after a config's own)."""
    keep_freed_memory()
    return ContextFlixCLI(
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        args=args,
        run=run,
        save_config_kwargs={"overwrite": True},
        # the data modules shard for DDP themselves, without repeated rows (training.distributed)
        trainer_defaults={
            "use_distributed_sampler": False,
            "callbacks": [ReleaseFreedMemory(), OwnRandomStream()],
        },
    )
