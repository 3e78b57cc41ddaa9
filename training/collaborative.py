"""Lightning training of :class:`MatrixFactorization` (protocol R for RMSE, protocol S to rank).

Loss per mini-batch of (user, item, rating):

    mean (r - r_hat)^2 + l2 * mean(|p_u|^2 + |q_i|^2) + l2_bias * mean(b_u^2 + b_i^2)
        + ranking_weight * CE(softmax over every item of scale * r_hat(u, .), i)

(with ``negatives > 0`` the CE is the sampled softmax of ``training.losses``, for large
catalogues).

The L2 term only touches the rows used in the batch (as in Funk/Koren SGD), so a frequently
rated item is regularised in proportion to its ratings, not once per step like weight decay on
the whole table (which crushes rare items and lets popular ones overfit).

The optional ranking term (protocol S, ``ranking_weight > 0``) is a full-catalogue softmax
cross-entropy of the predicted ratings of the user against every item, the rated item being
the class. Per user the softmax ignores ``mu + b_u``, so it only shapes ``b_i + p_u . q_i``:
rated items are pushed above unrated ones, which MSE alone never asks for (MSE only sees rated
pairs, and ranking by predicted rating favours obscure items with a few 5-star ratings). One
model then both predicts ratings (val/test RMSE) and ranks (val/test NDCG@10 on protocol S's
leave-one-out targets, history masked). ``scale`` (the inverse temperature) is learned.
"""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import torch
from scipy import sparse
from torch.nn import functional as F

from contextflix.evaluation.metrics import history_mask, target_ranks
from contextflix.models.collaborative import MatrixFactorization
from training.distributed import mean_over_processes, share_of_mean
from training.losses import popularity_log_q, sample_negatives, sampled_cross_entropy
from training.precision import in_float32


def protocol_s_history(data, part: str) -> sparse.csr_matrix:
    """Items each user has seen before the protocol-S target of ``part`` ("val" or "test")."""
    rows = data.s.train if part == "val" else np.concatenate([data.s.train, data.s.valid])
    frame = data.ratings.iloc[rows]
    ones = np.ones(len(frame), dtype=bool)
    return sparse.csr_matrix(
        (ones, (frame["user_idx"], frame["item_idx"])), shape=(data.n_users, data.n_items)
    )


class RankingEvaluation:
    """Shared protocol-S ranking evaluation for the Lightning modules (NDCG/HR@10).

    Sums per batch, one mean per epoch over the users of every process (training.distributed).
    """

    def _setup_ranking(self, datamodule) -> None:
        self._history: dict[str, sparse.csr_matrix] = {}
        self._candidates: torch.Tensor | None = None
        self._rank_sums: dict[str, float] = {"ndcg@10": 0.0, "hr@10": 0.0}
        self._rank_count = 0
        self._rank_enabled = getattr(datamodule, "protocol", "S") == "S"
        if self._rank_enabled:
            data = datamodule.data
            self._history = {p: protocol_s_history(data, p) for p in ("val", "test")}
            self._candidates = torch.as_tensor(data.candidates, dtype=torch.bool)

    def _add_ranking(self, prefix: str, scores: torch.Tensor, batch: dict) -> None:
        if not getattr(self, "_rank_enabled", False):
            return
        exclude = history_mask(
            self._history[prefix], batch["user"].cpu().numpy(), scores.shape[1], scores.device
        )
        ranks = target_ranks(scores, batch["item"], exclude, self._candidates.to(scores.device))
        ranks = ranks.double()
        ndcg = torch.where(ranks <= 10, 1.0 / torch.log2(ranks + 1.0), torch.zeros_like(ranks))
        self._rank_sums["ndcg@10"] += float(ndcg.sum())
        self._rank_sums["hr@10"] += float((ranks <= 10).sum())
        self._rank_count += len(ranks)

    def _log_ranking(self, prefix: str) -> None:
        if not getattr(self, "_rank_enabled", False):
            return
        means = mean_over_processes(self, self._rank_sums, self._rank_count)
        for name, value in means.items():
            self.log(f"{prefix}_{name}", value, prog_bar=name == "ndcg@10")
        self._rank_sums = dict.fromkeys(self._rank_sums, 0.0)
        self._rank_count = 0


class CollaborativeModule(RankingEvaluation, L.LightningModule):
    def __init__(
        self,
        n_users: int = 0,
        n_items: int = 0,
        n_factors: int = 64,
        lr: float = 0.005,
        l2: float = 0.05,
        l2_bias: float = 0.005,
        weight_decay: float = 0.0,
        ranking_weight: float = 0.0,
        ranking_scale: float = 2.0,
        init_std: float = 0.1,
        negatives: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = MatrixFactorization(max(n_users, 1), max(n_items, 1), n_factors)
        self.model.reset_parameters(init_std)
        self.log_scale = torch.nn.Parameter(torch.tensor(math.log(ranking_scale)))
        self.log_scale.requires_grad_(ranking_weight > 0)  # unused otherwise: DDP refuses those
        self.rating_range = (1.0, 5.0)
        self._rank_enabled = False
        self._reset_rmse()

    def setup(self, stage: str) -> None:
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        if datamodule is None:
            return
        if stage == "fit":  # a reloaded checkpoint brings its own global mean
            self.model.global_mean.fill_(datamodule.global_mean)
        self.rating_range = datamodule.rating_range
        self._setup_ranking(datamodule)
        if stage == "fit" and self.hparams.negatives:
            rows = datamodule.rows()["train"]
            items = datamodule.data.ratings["item_idx"].to_numpy()[rows]
            self._log_q = popularity_log_q(items, self.model.item_bias.num_embeddings)

    def loss(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        user, item, rating = batch["user"], batch["item"], batch["rating"]
        m = self.model
        p, q = m.user_factors(user), m.item_factors(item)
        bu, bi = m.user_bias(user).squeeze(-1), m.item_bias(item).squeeze(-1)
        pred = m.global_mean + bu + bi + (p * q).sum(-1)
        mse = F.mse_loss(pred, rating)
        reg = self.hparams.l2 * (p.pow(2).sum(-1) + q.pow(2).sum(-1)).mean()
        reg = reg + self.hparams.l2_bias * (bu.pow(2) + bi.pow(2)).mean()
        loss = mse + reg
        if self.hparams.ranking_weight > 0:
            loss = loss + self.hparams.ranking_weight * self._ranking_loss(p, item)
        return loss, mse

    def _ranking_loss(self, p: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        """Softmax CE of the rated item among all items (mu + b_u cancel), or sampled."""
        m, scale = self.model, self.log_scale.exp()
        if not self.hparams.negatives:
            logits = m.item_bias.weight.T + p @ m.item_factors.weight.T
            return F.cross_entropy(scale * logits, item)
        log_q = self._log_q.to(p.device)
        negatives = sample_negatives(log_q, self.hparams.negatives)
        positive = m.item_bias(item).squeeze(-1) + (p * m.item_factors(item)).sum(-1)
        negative = m.item_bias(negatives).T + p @ m.item_factors(negatives).T
        return sampled_cross_entropy(scale * positive, scale * negative, item, negatives, log_q)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, mse = self.loss(batch)
        n = len(batch["rating"])
        self.log("train_loss", loss, batch_size=n)
        self.log("train_mse", mse, batch_size=n, on_step=False, on_epoch=True)
        return loss * share_of_mean(self, n)

    def _squared_error(self, batch: dict) -> torch.Tensor:
        low, high = self.rating_range
        pred = self.model(batch["user"], batch["item"]).clamp(low, high)
        return (pred - batch["rating"]).pow(2)

    def _evaluate(self, prefix: str, batch: dict) -> None:
        squared = self._squared_error(batch).double()
        self._sse += float(squared.sum())
        self._n += len(squared)
        if self._rank_enabled:
            self._add_ranking(prefix, self.model.score_all(batch["user"]), batch)

    @in_float32
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate("val", batch)

    @in_float32
    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate("test", batch)

    def _reset_rmse(self) -> None:
        self._sse, self._n = 0.0, 0

    def _log_rmse(self, prefix: str) -> None:
        mean = mean_over_processes(self, {"se": self._sse}, self._n)["se"]
        self.log(f"{prefix}_rmse", math.sqrt(mean), prog_bar=True)

    def on_validation_epoch_start(self) -> None:
        self._reset_rmse()

    def on_test_epoch_start(self) -> None:
        self._reset_rmse()

    def on_validation_epoch_end(self) -> None:
        self._log_rmse("val")
        self._log_ranking("val")

    def on_test_epoch_end(self) -> None:
        self._log_rmse("test")
        self._log_ranking("test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam as one fused kernel: a step updates every row of both tables, whatever the
        batch touched, so at ML-25M's 14M parameters the default implementation's separate
        passes took 91-97 ms of a 148 ms step, the fused kernel 9-10 (bench/optimizer.py)."""
        return torch.optim.Adam(
            self.parameters(),
            lr=self.hparams.lr,
            weight_decay=self.hparams.weight_decay,
            fused=True,
        )
