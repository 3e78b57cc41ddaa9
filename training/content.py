"""Lightning training of :class:`ContentModel` on protocol S's train part.

Objective (leave-one-out within train): every train rating (u, i, r) of a batch is a target;
the profile is built from u's other train ratings (``W[u] - W[u, i] e_i``), and a full-catalogue
softmax cross-entropy over ``scale * cos(profile, e) + prior`` asks for i to come first among
every item u has not rated (u's other train items are masked, exactly as evaluation masks
history). Validation: NDCG@10 of the protocol-S validation targets with the train profile,
history masked (``val_ndcg@10``); test: profile from train + validation (``test_ndcg@10``).

With ``negatives > 0`` the softmax is the sampled one of ``training.losses`` (the target
against ``negatives`` shared draws from training popularity, log-Q corrected, u's other train
items among them masked), for catalogues where the full softmax is the cost of a step. It is
computed sparsely: its cost follows the batch's histories, not the catalogue.

Uses ``RatingsDataModule(protocol="S")``; the item features come from the data module's movie
table in ``setup`` (so the config needs no feature count), and travel in the checkpoint. With
``popularity_feature`` they also hold each movie's standardised log count of train ratings:
genres and year cannot say which movie of a genre people pick, and without it the model ranks
below popularity on synthetic-ml-1m.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from scipy import sparse
from torch.nn import functional as F

from contextflix.models.content import ContentModel
from training.collaborative import RankingEvaluation
from training.distributed import share_of_mean
from training.losses import popularity_log_q, sample_negatives, sampled_cross_entropy
from training.precision import in_float32

EVAL_CHUNK = 1024  # users scored at once in validation and test ([chunk, n_items] floats)


class UserWeights:
    """Every user's profile weights ``offset + (r - user mean)`` as sparse rows (CSR).

    Memory grows with the ratings, not with users x items (a dense matrix would take 38 GB at
    ML-25M's 162,541 users x 59,047 movies); a batch's rows are made dense only for the step
    that needs them.
    """

    def __init__(
        self,
        users: np.ndarray,
        items: np.ndarray,
        ratings: np.ndarray,
        n_users: int,
        n_items: int,
        offset: float,
    ) -> None:
        users = np.asarray(users, dtype=np.int64)
        ratings = np.asarray(ratings, dtype=np.float64)
        counts = np.bincount(users, minlength=n_users)
        means = np.bincount(users, weights=ratings, minlength=n_users) / np.maximum(counts, 1)
        w = offset + ratings - means[users]
        w = np.where(w == 0, 1e-6, w)  # keep "rated" distinguishable from "not rated"
        self.matrix = sparse.csr_matrix(
            (w.astype(np.float32), (users, np.asarray(items, dtype=np.int64))),
            shape=(n_users, n_items),
        )

    def dense(self, users: torch.Tensor) -> torch.Tensor:
        """[len(users), n_items] weights of these users; 0 = not rated."""
        return torch.from_numpy(self.matrix[users.cpu().numpy()].toarray())


class ContentModule(RankingEvaluation, L.LightningModule):
    def __init__(
        self,
        n_users: int = 0,
        n_items: int = 0,
        n_tags: int = 200,
        dim: int = 64,
        hidden: int = 256,
        dropout: float = 0.1,
        use_prior: bool = True,
        weight_offset: float = 1.0,
        lr: float = 0.002,
        weight_decay: float = 1e-5,
        negatives: int = 0,
        popularity_feature: bool = False,
        feature_names: list[str] | None = None,
    ) -> None:
        super().__init__()
        if negatives < 0:
            raise ValueError(f"negatives must be >= 0, not {negatives}")
        self.save_hyperparameters()
        self.model: ContentModel | None = None
        if feature_names:  # reloading a checkpoint: the features come with the weights
            self.model = ContentModel(
                n_items, feature_names, dim, hidden, dropout, use_prior, weight_offset
            )
        self._weights: dict[str, UserWeights] = {}
        self._log_q: torch.Tensor | None = None
        self._rank_enabled = False

    # --- data ---------------------------------------------------------------------------

    def build(self, movies, weights: dict[str, UserWeights]) -> None:
        """Create the model from the movie table and set the per-part profile weights.

        ``weights``: "train" (targets' profiles while training and for validation) and
        "test" (train + validation, for test targets). With ``negatives``, the proposal of the
        sampled softmax is the popularity of the train ratings (the columns of "train"); with
        ``popularity_feature`` the same counts become an item feature.
        """
        hp = self.hparams
        if self.model is None:
            train = weights["train"].matrix
            self.model = ContentModel.from_movies(
                movies,
                n_tags=hp.n_tags,
                train_counts=train.getnnz(axis=0) if hp.popularity_feature else None,
                dim=hp.dim,
                hidden=hp.hidden,
                dropout=hp.dropout,
                use_prior=hp.use_prior,
                weight_offset=hp.weight_offset,
            )
            self.hparams.feature_names = self.model.feature_names
        self._weights = weights
        if hp.negatives:
            self._log_q = popularity_log_q(weights["train"].matrix.indices, self.model.n_items)

    def setup(self, stage: str) -> None:
        datamodule = self.trainer.datamodule
        if getattr(datamodule, "protocol", "S") != "S":
            raise ValueError("ContentModule trains on protocol S (data.init_args.protocol: S)")
        data = datamodule.data
        r = data.ratings

        def weights(rows: np.ndarray) -> UserWeights:
            part = r.iloc[rows]
            return UserWeights(
                part["user_idx"].to_numpy(),
                part["item_idx"].to_numpy(),
                part["rating"].to_numpy(),
                data.n_users,
                data.n_items,
                self.hparams.weight_offset,
            )

        self.build(
            data.movies,
            {
                "train": weights(data.s.train),
                "test": weights(np.concatenate([data.s.train, data.s.valid])),
            },
        )
        self._setup_ranking(datamodule)

    # --- steps --------------------------------------------------------------------------

    def _held_out(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(user weights [B, I], item encodings [I, D], profiles [B, D]): each rating's profile
        from its user's other train ratings, the target left out."""
        user, item = batch["user"], batch["item"]
        w = self._weights["train"].dense(user).to(user.device)
        enc = self.model.encode_items()
        own = w[torch.arange(len(item)), item]
        return w, enc, w @ enc - own[:, None] * enc[item]

    def loss(self, batch: dict) -> torch.Tensor:
        if self.hparams.negatives:
            return self.sampled_loss(batch)
        item = batch["item"]
        w, enc, profile = self._held_out(batch)
        logits = self.model.score_profiles(profile, enc)
        seen = w != 0
        seen[torch.arange(len(item)), item] = False
        logits = logits.masked_fill(seen, float("-inf"))
        return F.cross_entropy(logits, item)

    def sampled_loss(self, batch: dict) -> torch.Tensor:
        """The same objective, the target against sampled negatives (log-Q corrected)."""
        item, model = batch["item"], self.model
        log_q = self._log_q.to(item.device)
        negatives = sample_negatives(log_q, self.hparams.negatives)
        profile, enc, prior, rated = self._sparse_held_out(batch, negatives)
        profile, scale, n = F.normalize(profile, dim=-1), model.log_scale.exp(), len(item)
        positive = scale * (profile * enc[:n]).sum(-1) + prior[:n]
        negative = scale * profile @ enc[n:].T + prior[n:]
        negative = negative.masked_fill(rated, float("-inf"))  # u's other items
        return sampled_cross_entropy(positive, negative, item, negatives, log_q)

    def _sparse_held_out(
        self, batch: dict, negatives: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(profiles [B, D] as ``_held_out``'s, encodings [B + K, D] and priors [B + K] of the
        targets then the negatives, [B, K] whether each user rated each negative).

        Sparse, so a step costs what the batch's histories hold, not batch x catalogue: a
        profile is a sparse row times the encodings, and only the movies a step reads
        (histories, targets, negatives) are encoded. At ML-25M a batch of 2,048 ratings as
        dense weights was [2,048, 59,047] floats, most of a 1.2 s step.
        """
        model, device = self.model, batch["item"].device
        rows = self._weights["train"].matrix[batch["user"].cpu().numpy()]
        items, drawn = batch["item"].cpu().numpy(), negatives.cpu().numpy()
        read = np.zeros(model.n_items, dtype=bool)
        read[rows.indices] = read[items] = read[drawn] = True
        local = np.cumsum(read) - 1  # movie -> its row among the movies read
        features = model.features[torch.as_tensor(np.flatnonzero(read), device=device)]
        enc_read = model.encode(features)
        row_of = np.repeat(np.arange(len(items)), np.diff(rows.indptr))
        weights = torch.sparse_coo_tensor(
            torch.as_tensor(np.stack([row_of, local[rows.indices]])),
            torch.as_tensor(rows.data),
            (len(items), len(enc_read)),
            check_invariants=False,
        ).to(device)
        own = np.where(rows.indices == items[row_of], rows.data, 0)  # the target's own weight
        own = torch.as_tensor(np.bincount(row_of, own, len(items)), dtype=torch.float32)
        wanted = torch.as_tensor(local[np.concatenate([items, drawn])], device=device)
        enc, prior = enc_read[wanted], model.item_prior(features)[wanted]
        profile = torch.sparse.mm(weights, enc_read) - own.to(device)[:, None] * enc[: len(items)]
        rated = torch.as_tensor(rows[:, drawn].toarray() != 0, device=device)
        return profile, enc, prior, rated

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, n = self.loss(batch), len(batch["item"])
        self.log("train_loss", loss, batch_size=n, prog_bar=True)
        return loss * share_of_mean(self, n)

    def scores(self, user: torch.Tensor, part: str) -> torch.Tensor:
        """[B, n_items] scores of known users with the profile of ``part`` ("train"/"test")."""
        w = self._weights[part].dense(user).to(user.device)
        enc = self.model.encode_items()
        return self.model.score_profiles(self.model.profiles(w, enc), enc)

    def _rank_in_chunks(self, prefix: str, part: str, batch: dict) -> None:
        """Full-catalogue ranking a chunk of users at a time: memory bounded by the chunk."""
        for start in range(0, len(batch["user"]), EVAL_CHUNK):
            chunk = {k: v[start : start + EVAL_CHUNK] for k, v in batch.items()}
            self._add_ranking(prefix, self.scores(chunk["user"], part), chunk)

    @in_float32
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._rank_in_chunks("val", "train", batch)

    @in_float32
    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._rank_in_chunks("test", "test", batch)

    def on_validation_epoch_end(self) -> None:
        self._log_ranking("val")

    def on_test_epoch_end(self) -> None:
        self._log_ranking("test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
