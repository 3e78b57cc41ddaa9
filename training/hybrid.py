"""Training the context-aware hybrid on protocol S's validation targets.

The hybrid's input comes from the one scoring path (``Scorer.standardised``, the same z-scores
evaluation and serving mix) and its loss is the ranking cross-entropy of the validation target
over the candidates, nothing else. The base models (frozen, loaded from their checkpoints)
never trained on the validation targets, so those targets show how far each base model can be
trusted in each context. A fixed share of the validation users is held out of the hybrid's fit for its early stopping;
test targets are scored once at the end.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader

from contextflix.evaluation.metrics import ranking_metrics, target_ranks
from contextflix.models.hybrid import ContextHybrid
from contextflix.models.popularity import UNKNOWN
from contextflix.models.scoring import (
    SOURCES,
    BaseModels,
    Scorer,
    fit_popularity,
    protocol_s_targets,
)
from training.collaborative import CollaborativeModule
from training.content import ContentModule
from training.data import SequenceDataModule, TensorBatches, batches
from training.distributed import mean_over_processes, share_of_mean
from training.precision import in_float32
from training.sequential import SequentialModule

RANKING_METRICS = ("ndcg@10", "hr@10", "mrr@10")


def load_base_models(
    dataset,
    collaborative: str | None = None,
    content: str | None = None,
    sequential: str | None = None,
) -> BaseModels:
    """Plain base models from Lightning checkpoints (any may be None), in eval mode."""

    def load(module_class, path):
        if not path:
            return None
        return module_class.load_from_checkpoint(path, map_location="cpu").model.eval()

    return BaseModels(
        popularity=fit_popularity(dataset),
        collaborative=load(CollaborativeModule, collaborative),
        content=load(ContentModule, content),
        sequential=load(SequentialModule, sequential),
    )


class HybridDataModule(SequenceDataModule):
    """Validation users split into the hybrid's fit and holdout; test = every user's test target."""

    def __init__(
        self,
        dataset: str = "ml-latest-small",
        data_dir: str | None = None,
        holdout_fraction: float = 0.2,
        batch_size: int = 64,
        seed: int = 0,
        context_config: str | None = None,
    ) -> None:
        super().__init__(
            dataset, data_dir, batch_size=batch_size, seed=seed, context_config=context_config
        )
        if not 0 < holdout_fraction < 1:
            raise ValueError(f"holdout_fraction must be in (0, 1), not {holdout_fraction}")
        self.holdout_fraction = holdout_fraction

    def user_rows(self) -> dict[str, torch.Tensor]:
        order = torch.as_tensor(np.random.default_rng(self.seed).permutation(self.n_users))
        n_holdout = max(1, int(self.n_users * self.holdout_fraction))
        return {
            "train": order[n_holdout:],
            "val": order[:n_holdout],
            "test": torch.arange(self.n_users),
        }

    def _loader(self, part: str, shuffle: bool) -> DataLoader:
        rows = TensorBatches(row=self.user_rows()[part])
        return batches(rows, self.batch_size, shuffle, self.seed, shard=self.shard())

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


class HybridModule(L.LightningModule):
    def __init__(
        self,
        n_users: int = 0,
        n_items: int = 0,
        collaborative_checkpoint: str | None = None,
        content_checkpoint: str | None = None,
        sequential_checkpoint: str | None = None,
        use_context: bool = True,
        hidden: int = 16,
        lr: float = 0.01,
        weight_decay: float = 1e-4,
        context_dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        given = {
            "collaborative": collaborative_checkpoint,
            "content": content_checkpoint,
            "sequential": sequential_checkpoint,
            "popularity": "counted from the data",
        }
        self.model = ContextHybrid([s for s in SOURCES if given[s]], hidden, use_context)
        self.base: BaseModels | None = None
        self.parts: dict[str, dict[str, torch.Tensor]] = {}
        self._sums: dict[str, float] = dict.fromkeys(RANKING_METRICS, 0.0)
        self._count = 0

    def setup(self, stage: str) -> None:
        if self.base is not None:
            return
        data = self.trainer.datamodule.data
        hp = self.hparams
        self.base = load_base_models(
            data, hp.collaborative_checkpoint, hp.content_checkpoint, hp.sequential_checkpoint
        )
        scorer = Scorer(self.base, candidates=data.candidates)
        for part in ("val", "test"):
            targets = protocol_s_targets(data, part)
            requests = targets.requests if hp.use_context else targets.requests.without_context()
            scores, excluded = scorer.standardised(requests, self.model.sources)
            self.parts[part] = {
                "scores": scores,
                "excluded": excluded,
                "items": targets.items,
                "time_of_day": targets.requests.target_time_of_day,
                "device": targets.requests.target_device,
                "history_length": targets.requests.history_length,
            }

    def _mix(self, part: str, rows: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        p = {name: t[rows] for name, t in self.parts[part].items()}
        if self.training and self.hparams.context_dropout > 0:
            # the gate also learns what to do when a visitor's context is unknown
            for name in ("time_of_day", "device"):
                drop = torch.rand(len(rows)) < self.hparams.context_dropout
                p[name] = p[name].masked_fill(drop, UNKNOWN)
        mixed, _ = self.model(p["scores"], p["time_of_day"], p["device"], p["history_length"])
        return mixed.masked_fill(p["excluded"], float("-inf")), p

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        mixed, p = self._mix("val", batch["row"])
        loss = F.cross_entropy(mixed, p["items"])
        self.log("train_loss", loss, prog_bar=True, batch_size=len(batch["row"]))
        return loss * share_of_mean(self, len(batch["row"]))

    def _add_ranking(self, part: str, rows: torch.Tensor) -> None:
        """Sums over this process's users; reduced once per epoch, so each user counts once."""
        mixed, p = self._mix(part, rows)
        ranks = target_ranks(
            mixed.masked_fill(p["excluded"], 0.0), p["items"], exclude=p["excluded"]
        )
        metrics = ranking_metrics(ranks.numpy(), ks=(10,))
        for name in RANKING_METRICS:
            self._sums[name] += float(np.sum(metrics[name]))
        self._count += len(rows)

    def _log_ranking(self, prefix: str) -> None:
        means = mean_over_processes(self, self._sums, self._count)
        for name, value in means.items():
            self.log(f"{prefix}_{name}", value, prog_bar=name == "ndcg@10")
        self._sums = dict.fromkeys(RANKING_METRICS, 0.0)
        self._count = 0

    @in_float32
    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._add_ranking("val", batch["row"])

    def on_validation_epoch_end(self) -> None:
        self._log_ranking("val")

    @in_float32
    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._add_ranking("test", batch["row"])

    def on_test_epoch_end(self) -> None:
        self._log_ranking("test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            self.model.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
