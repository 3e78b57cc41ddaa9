"""Biased matrix factorisation: rating prediction, full-catalogue scores, fold-in, neighbours.

``r_hat(u, i) = mu + b_u + b_i + p_u . q_i``. A plain ``nn.Module`` whose constructor takes
plain values only, so a bundle stores the config as JSON and the weights (global mean
included, as a buffer) as safetensors. Training lives in ``training/collaborative.py``.

Neighbours are cosine similarities of the learned factors (``q_i`` for items, ``p_u`` for
users), not co-rating counts: the factors already summarise every co-rating path (two films
that no user rated together can still be close), a neighbour query is one ``[k, F] x [F, N]``
product over L2-normalised rows (ml-100k's 1,682 items in well under a millisecond), and it
needs nothing beyond the weights the bundle already ships. The biases (popularity, average
rating level) are deliberately left out, so "similar" means "liked by the same kind of
viewer", not "also popular".
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from contextflix.models.exact import columns_of, in_fours


class MatrixFactorization(nn.Module):
    def __init__(
        self, n_users: int, n_items: int, n_factors: int = 64, global_mean: float = 0.0
    ) -> None:
        super().__init__()
        if n_users < 1 or n_items < 1 or n_factors < 1:
            raise ValueError(
                f"need positive sizes: n_users={n_users}, n_items={n_items}, n_factors={n_factors}"
            )
        self.n_users, self.n_items, self.n_factors = n_users, n_items, n_factors
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        self.user_factors = nn.Embedding(n_users, n_factors)
        self.item_factors = nn.Embedding(n_items, n_factors)
        self.register_buffer("global_mean", torch.tensor(float(global_mean)))
        self.reset_parameters()

    def reset_parameters(self, std: float = 0.1) -> None:
        """Zero biases, small Gaussian factors (std / sqrt(F) keeps p.q near 0 at start)."""
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)
        scale = std / self.n_factors**0.25
        nn.init.normal_(self.user_factors.weight, 0.0, scale)
        nn.init.normal_(self.item_factors.weight, 0.0, scale)

    def config(self) -> dict:
        """Constructor arguments as JSON-able values (the global mean travels in the weights)."""
        return {"n_users": self.n_users, "n_items": self.n_items, "n_factors": self.n_factors}

    # --- prediction ---------------------------------------------------------------------

    def forward(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        """Predicted rating of each (user, item) pair, unclipped."""
        dot = (self.user_factors(user) * self.item_factors(item)).sum(-1)
        return (
            self.global_mean
            + self.user_bias(user).squeeze(-1)
            + self.item_bias(item).squeeze(-1)
            + dot
        )

    def score_all(self, user: torch.Tensor) -> torch.Tensor:
        """[B, n_items] predicted ratings of every item for each user (unclipped).

        Per user the ranking is that of ``b_i + p_u . q_i``; ``mu + b_u`` only shifts a row.
        """
        return self.score_vectors(self.user_bias(user).squeeze(-1), self.user_factors(user))

    def score_vectors(
        self, bias: torch.Tensor, vector: torch.Tensor, columns: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Scores of every item for users given by (bias [B] or scalar, vector [B, F] or [F]).

        The entry point for visitors folded in with :meth:`fold_in` (no user index).
        ``columns``: the item factors as ``columns_of`` lays them out, where a caller keeps
        them (a copy of the table otherwise).
        """
        vector = torch.as_tensor(vector, dtype=self.item_factors.weight.dtype)
        bias = torch.as_tensor(bias, dtype=vector.dtype)
        single = vector.ndim == 1
        vector = vector.reshape(-1, self.n_factors)
        bias = bias.reshape(-1, 1)
        columns = columns_of(self.item_factors.weight) if columns is None else columns
        products = in_fours(vector, columns)  # exact.py: batch-free bits
        scores = self.global_mean + bias + self.item_bias.weight.T + products
        return scores[0] if single else scores

    # --- new visitors -------------------------------------------------------------------

    @torch.no_grad()
    def fold_in(
        self, item_idx: torch.Tensor, ratings: torch.Tensor, reg: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(bias, vector) of a new user from a few ratings, items' parameters held fixed.

        Closed-form ridge regression: with x_i = [1, q_i] and y_i = r_i - mu - b_i, solve
        ``(X^T X + reg I) w = X^T y``; w = [b_u, p_u]. No retraining, one (F+1)^2 solve.
        With no ratings the result is the prior (0, 0): a visitor gets the item biases.
        """
        item_idx = torch.as_tensor(item_idx, dtype=torch.long).reshape(-1)
        ratings = torch.as_tensor(ratings, dtype=torch.float32).reshape(-1)
        if item_idx.shape != ratings.shape:
            raise ValueError(f"{item_idx.numel()} items but {ratings.numel()} ratings")
        if reg <= 0:
            raise ValueError(f"reg must be positive, got {reg}")
        dtype = self.item_factors.weight.dtype
        if item_idx.numel() == 0:
            return torch.zeros((), dtype=dtype), torch.zeros(self.n_factors, dtype=dtype)
        if item_idx.min() < 0 or item_idx.max() >= self.n_items:
            raise ValueError(f"item indices must be in [0, {self.n_items})")
        q = self.item_factors.weight[item_idx].double()
        x = torch.cat([torch.ones(len(q), 1, dtype=q.dtype), q], dim=1)
        y = ratings.double() - self.global_mean.double() - self.item_bias.weight[item_idx, 0]
        gram = x.T @ x + reg * torch.eye(x.shape[1], dtype=q.dtype)
        w = torch.linalg.solve(gram, x.T @ y)
        return w[0].to(dtype), w[1:].to(dtype)

    # --- neighbours ---------------------------------------------------------------------

    @staticmethod
    def _neighbours(
        table: torch.Tensor, query: torch.Tensor, k: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        query = torch.as_tensor(query, dtype=torch.long)
        single = query.ndim == 0
        query = query.reshape(-1)
        k = min(k, table.shape[0] - 1)
        unit = F.normalize(table, dim=1)
        sims = unit[query] @ unit.T
        sims[torch.arange(len(query)), query] = float("-inf")  # never one's own neighbour
        values, index = sims.topk(k, dim=1)
        return (index[0], values[0]) if single else (index, values)

    @torch.no_grad()
    def item_neighbours(
        self, item: int | torch.Tensor, k: int = 10
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(indices, cosine similarities) of the k items whose factors are closest, best first.

        ``item`` may be an int ([k] results) or a 1-d tensor ([len, k] results).
        """
        return self._neighbours(self.item_factors.weight, item, k)

    @torch.no_grad()
    def user_neighbours(
        self, user: int | torch.Tensor, k: int = 10
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(indices, cosine similarities) of the k users with the closest factors."""
        return self._neighbours(self.user_factors.weight, user, k)
