"""Lightning wrapper of ``contextflix.models.sequential.SequentialRecommender`` (protocol S).

Training: every valid position of each window (input and target both present) is one
example, all positions in one forward pass. The loss is the softmax cross-entropy over the
whole catalogue (``negatives=0``), or, where the catalogue is large, the sampled softmax of
``training.losses`` (``negatives`` shared draws from training popularity to the power
``sample_power``, log-Q corrected), or with ``loss: gbce`` gSASRec's gBCE against ``negatives``
uniform draws; neither's cost per step grows with the catalogue. ``loss: sce`` is SCE
(``training.losses.scalable_cross_entropy``): the full softmax's target against the hardest
negatives of ``buckets`` random-projection buckets (0: twice the square root of the step's
predictions, the paper's rule) of ``bucket_items`` items each.
With ``schedule: onecycle`` the learning rate follows a one-cycle schedule (linear warm-up,
cosine decay) over ``trainer.max_epochs``, so a few epochs at a higher peak rate replace many
at a fixed one (``constant``, the default).

Validation/test: the last position of each user's sequence is scored, the user's history is
masked, and the target is ranked among all catalogue items (pessimistic ties) with
``contextflix.evaluation.metrics``; each user counts once across processes
(``training.distributed``).
"""

from __future__ import annotations

import math
import time

import lightning as L
import torch
import torch.nn.functional as F

from contextflix.evaluation.metrics import history_mask, ranking_metrics, target_ranks
from contextflix.models.sequential import UNKNOWN, SequentialRecommender
from training.distributed import mean_over_processes, share_of_mean
from training.losses import (
    gbce,
    popularity_log_q,
    sample_negatives,
    sampled_cross_entropy,
    scalable_cross_entropy,
)
from training.precision import in_float32


class SequentialModule(L.LightningModule):
    def __init__(
        self,
        n_users: int = 0,
        n_items: int = 0,
        dim: int = 64,
        heads: int = 4,
        layers: int = 2,
        max_len: int = 50,
        dropout: float = 0.2,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        context_dropout: float = 0.1,
        negatives: int = 0,
        sample_power: float = 1.0,
        loss: str = "softmax",
        gbce_t: float = 0.75,
        buckets: int = 0,
        bucket_items: int = 256,
        schedule: str = "constant",
        warmup_fraction: float = 0.1,
        item_bias: bool = False,
        attention_dropout: float | None = None,
    ) -> None:
        super().__init__()
        if schedule not in ("onecycle", "constant"):
            raise ValueError(f"schedule must be 'onecycle' or 'constant', not {schedule!r}")
        if negatives < 0:
            raise ValueError(f"negatives must be >= 0, not {negatives}")
        if loss not in ("softmax", "gbce", "sce"):
            raise ValueError(f"loss must be 'softmax', 'gbce' or 'sce', not {loss!r}")
        if loss == "sce" and (buckets < 0 or bucket_items < 1):
            raise ValueError("loss 'sce' needs buckets >= 0 and bucket_items >= 1")
        if loss == "gbce" and not negatives:
            raise ValueError("loss 'gbce' needs negatives > 0")
        if loss == "sce" and item_bias:
            raise ValueError("loss 'sce' buckets the item embeddings only: use item_bias: false")
        self.save_hyperparameters()
        self.model = SequentialRecommender(
            n_items, dim, heads, layers, max_len, dropout, item_bias, attention_dropout
        )
        self._ranks: list[torch.Tensor] = []
        self._eval: dict[str, object] = {}
        self._epoch_start = 0.0
        self._log_q: torch.Tensor | None = None

    def setup(self, stage: str) -> None:
        """From training popularity: the item biases' start (centred log counts) and the
        proposal of the sampled softmax's negatives."""
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        if stage != "fit" or datamodule is None:
            return
        data = datamodule.data
        items = data.ratings["item_idx"].to_numpy()[data.s.train]
        if self.model.item_bias is not None:
            log_q = popularity_log_q(items, self.model.n_items)
            with torch.no_grad():
                self.model.item_bias.copy_(log_q - log_q.mean())
        if not self.hparams.negatives:
            return
        power = 0.0 if self.hparams.loss == "gbce" else self.hparams.sample_power  # gBCE: uniform
        self._log_q = popularity_log_q(items, self.model.n_items, power)

    # ----- training ---------------------------------------------------------------------

    def _drop_context(self, context: torch.Tensor) -> torch.Tensor:
        """Replace each position's context by "unknown" with probability context_dropout."""
        p = self.hparams.context_dropout
        if not self.training or p <= 0:
            return context
        return context.masked_fill(torch.rand(context.shape, device=context.device) < p, UNKNOWN)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        items = batch["items"][:, -(self.model.max_len + 1) :]
        inputs, targets = items[:, :-1], items[:, 1:]
        tod = self._drop_context(batch["time_of_day"][:, -self.model.max_len :])
        dev = self._drop_context(batch["device"][:, -self.model.max_len :])
        valid = (inputs > 0) & (targets > 0)
        hidden, _ = self.model.hidden(inputs, tod, dev)
        count = int(valid.sum())
        loss = self.loss(hidden[valid], targets[valid] - 1)
        self.log("train_loss", loss, prog_bar=True, batch_size=count)
        return loss * share_of_mean(self, count)

    def loss(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Loss of ``targets`` (item_idx) given hidden states [N, D]: full, sampled, gBCE, SCE."""
        table = self.model.item_emb.weight[1:]
        if self.hparams.loss == "sce":
            buckets = self.hparams.buckets or max(1, int(2 * math.sqrt(len(hidden))))
            items = self.hparams.bucket_items
            return scalable_cross_entropy(hidden, table, targets, buckets, buckets, items)
        if not self.hparams.negatives:
            return F.cross_entropy(self.model.logits(hidden), targets)
        log_q = self._log_q.to(hidden.device)
        negatives = sample_negatives(log_q, self.hparams.negatives)
        positive = (hidden * table[targets]).sum(-1)
        negative = hidden @ table[negatives].T
        bias = self.model.item_bias
        if bias is not None:
            positive, negative = positive + bias[targets], negative + bias[negatives]
        if self.hparams.loss == "gbce":
            return gbce(
                positive, negative, targets, negatives, self.model.n_items, self.hparams.gbce_t
            )
        return sampled_cross_entropy(positive, negative, targets, negatives, log_q)

    def on_train_epoch_start(self) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self) -> None:
        seconds = time.perf_counter() - self._epoch_start
        self.log("epoch_seconds", seconds)
        print(f"epoch {self.current_epoch}: {seconds:.2f} s", flush=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        decay, no_decay = [], []
        for name, parameter in self.model.named_parameters():
            is_matrix = parameter.ndim >= 2 and "emb" not in name
            (decay if is_matrix else no_decay).append(parameter)
        groups = [
            {"params": decay, "weight_decay": self.hparams.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(groups, lr=self.hparams.lr)
        if self.hparams.schedule == "constant":
            return optimizer
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=self.hparams.lr,
            total_steps=max(1, self.trainer.estimated_stepping_batches),
            pct_start=self.hparams.warmup_fraction,
            anneal_strategy="cos",
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    # ----- evaluation -------------------------------------------------------------------

    def score_batch(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores [B, n_items] of each row's last target, and the targets (item_idx)."""
        items = batch["items"]
        scores = self.model.score_last(
            items[:, :-1], batch["time_of_day"][:, 1:], batch["device"][:, 1:]
        )
        return scores, items[:, -1] - 1

    def _start_eval(self, part: str) -> None:
        data = self.trainer.datamodule
        self._eval = {
            "history": data.history(part),
            "candidates": torch.as_tensor(data.data.candidates, device=self.device),
        }
        self._ranks = []

    def _eval_step(self, batch: dict[str, torch.Tensor]) -> None:
        scores, targets = self.score_batch(batch)
        exclude = history_mask(
            self._eval["history"],
            batch["user"].cpu().numpy(),
            self.model.n_items,
            batch["user"].device,
        )
        self._ranks.append(target_ranks(scores, targets, exclude, self._eval["candidates"]).cpu())

    def _end_eval(self, prefix: str) -> dict[str, float]:
        ranks = torch.cat(self._ranks) if self._ranks else torch.ones(0)
        per_user = ranking_metrics(ranks, ks=(5, 10, 20))
        sums = {f"{prefix}_{name}": float(v.sum()) for name, v in per_user.items()}
        means = mean_over_processes(self, sums, len(ranks))
        shown = ("hr@10", "ndcg@10", "mrr@10", "hr@20", "ndcg@20", "ndcg@5")
        for name in shown:
            self.log(f"{prefix}_{name}", means[f"{prefix}_{name}"], prog_bar=name == "ndcg@10")
        self._ranks = []
        return means

    def on_validation_epoch_start(self) -> None:
        self._start_eval("val")

    @in_float32
    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch)

    def on_validation_epoch_end(self) -> None:
        self._end_eval("val")

    def on_test_epoch_start(self) -> None:
        self._start_eval("test")

    @in_float32
    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch)

    def on_test_epoch_end(self) -> None:
        self._end_eval("test")
