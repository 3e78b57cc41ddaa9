"""One batch of requests, scored by every base model the same way in evaluation and serving.

A request is a user's history (chronological items with their ratings and contexts) plus
the context of the moment of the recommendation. Data-set users also carry their user index
(the collaborative model then uses its trained vector); new visitors carry -1 and are
folded in from their ratings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from contextflix.models.collaborative import MatrixFactorization
from contextflix.models.content import ContentModel, profile_weights
from contextflix.models.popularity import UNKNOWN, ContextPopularity
from contextflix.models.sequential import SequentialRecommender

SOURCES = ("collaborative", "content", "sequential", "popularity")


@dataclass
class Requests:
    """A padded batch: histories right-aligned in [B, L], item 0 = padding (items are idx + 1)."""

    user: torch.Tensor  # [B] user index, -1 for a new visitor
    items: torch.Tensor  # [B, L] item_idx + 1, 0 = padding
    ratings: torch.Tensor  # [B, L]
    time_of_day: torch.Tensor  # [B, L] context of each history interaction
    device: torch.Tensor  # [B, L]
    target_time_of_day: torch.Tensor  # [B] context of the recommendation
    target_device: torch.Tensor  # [B]

    def __len__(self) -> int:
        return len(self.user)

    @property
    def history_length(self) -> torch.Tensor:
        return (self.items > 0).sum(1)

    def without_context(self) -> Requests:
        """The same requests with every context value replaced by "unknown"."""
        return Requests(
            self.user,
            self.items,
            self.ratings,
            torch.full_like(self.time_of_day, UNKNOWN),
            torch.full_like(self.device, UNKNOWN),
            torch.full_like(self.target_time_of_day, UNKNOWN),
            torch.full_like(self.target_device, UNKNOWN),
        )

    def seen(self, n_items: int) -> torch.Tensor:
        """[B, n_items] True where the item is in the history."""
        mask = torch.zeros(len(self), n_items + 1, dtype=torch.bool)
        mask.scatter_(1, self.items, True)
        return mask[:, 1:]

    @classmethod
    def from_frames(
        cls,
        histories: pd.DataFrame,
        users: np.ndarray,
        target_time_of_day: np.ndarray,
        target_device: np.ndarray,
    ) -> Requests:
        """Build from interactions (user_idx, item_idx, rating, time_of_day, device, timestamp).

        ``users`` lists the requests' user indices in order; each user's history is their
        rows of ``histories`` sorted by time (ties in row order).
        """
        frame = histories[histories["user_idx"].isin(users)]
        request_of_user = pd.Series(np.arange(len(users)), index=users)
        row = request_of_user.loc[frame["user_idx"].to_numpy()].to_numpy()
        order = np.lexsort((np.arange(len(frame)), frame["timestamp"].to_numpy(), row))
        frame, row = frame.iloc[order], row[order]
        counts = np.bincount(row, minlength=len(users))
        length = max(int(counts.max()) if len(counts) else 0, 1)
        rank_from_end = _rank_from_end(row, counts)
        column = length - 1 - rank_from_end
        shape = (len(users), length)

        def grid(values: np.ndarray, dtype: torch.dtype, shift: int = 0) -> torch.Tensor:
            out = torch.zeros(shape, dtype=dtype)
            out[row, column] = torch.tensor(values + shift, dtype=dtype)
            return out

        return cls(
            user=torch.tensor(users, dtype=torch.long),
            items=grid(frame["item_idx"].to_numpy(), torch.long, shift=1),
            ratings=grid(frame["rating"].to_numpy(), torch.float32),
            time_of_day=grid(frame["time_of_day"].to_numpy(), torch.long),
            device=grid(frame["device"].to_numpy(), torch.long),
            target_time_of_day=torch.tensor(target_time_of_day, dtype=torch.long),
            target_device=torch.tensor(target_device, dtype=torch.long),
        )


def _rank_from_end(row: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """For rows grouped by request (in time order), 0 for each request's last, 1 before..."""
    ends = np.cumsum(counts)
    return ends[row] - 1 - np.arange(len(row))


@dataclass
class BaseModels:
    """The models a hybrid mixes; any of the learned ones may be missing (degraded)."""

    popularity: ContextPopularity
    collaborative: MatrixFactorization | None = None
    content: ContentModel | None = None
    sequential: SequentialRecommender | None = None

    @property
    def available(self) -> tuple[str, ...]:
        return tuple(name for name in SOURCES if getattr(self, name) is not None)

    @torch.inference_mode()
    def scores(self, requests: Requests) -> dict[str, torch.Tensor]:
        """{source: [B, n_items] raw scores} for every available source."""
        out = {
            "popularity": self.popularity.score(requests.target_time_of_day, requests.target_device)
        }
        if self.collaborative is not None:
            out["collaborative"] = collaborative_scores(self.collaborative, requests)
        if self.content is not None:
            out["content"] = content_scores(self.content, requests)
        if self.sequential is not None:
            out["sequential"] = sequential_scores(self.sequential, requests)
        return out


def collaborative_scores(model: MatrixFactorization, requests: Requests) -> torch.Tensor:
    known = requests.user >= 0
    scores = torch.empty(len(requests), model.n_items)
    if known.any():
        scores[known] = model.score_all(requests.user[known])
    for i in (~known).nonzero().flatten().tolist():
        present = requests.items[i] > 0
        bias, vector = model.fold_in(requests.items[i][present] - 1, requests.ratings[i][present])
        scores[i] = model.score_vectors(bias, vector)
    return scores


def content_scores(model: ContentModel, requests: Requests) -> torch.Tensor:
    weights = torch.zeros(len(requests), model.n_items + 1)
    for i in range(len(requests)):
        present = requests.items[i] > 0
        w = profile_weights(requests.ratings[i][present], model.weight_offset)
        weights[i, requests.items[i][present]] = w
    return model.score_profiles(model.profiles(weights[:, 1:]))


def sequential_scores(model: SequentialRecommender, requests: Requests) -> torch.Tensor:
    """Position t carries the context of interaction t+1; the last, the request's context."""
    items = requests.items[:, -model.max_len :]
    tod = torch.cat([requests.time_of_day[:, 1:], requests.target_time_of_day[:, None]], 1)
    dev = torch.cat([requests.device[:, 1:], requests.target_device[:, None]], 1)
    return model.score_last(items, tod[:, -model.max_len :], dev[:, -model.max_len :])


@dataclass
class Targets:
    """Protocol S targets of one part, one per user in user_idx order."""

    requests: Requests
    items: torch.Tensor  # [U] target item_idx
    ratings: torch.Tensor  # [U] the target's rating


def protocol_s_targets(dataset, part: str) -> Targets:
    """Requests and targets of protocol S's "val" or "test" part for every user.

    The history of a validation target is the train part; that of a test target is train
    plus the validation interaction (PROTOCOLS.md, S.6). The request's context is the
    target interaction's own context (S.5).
    """
    if part not in ("val", "test"):
        raise ValueError(f"part must be 'val' or 'test', not {part!r}")
    s = dataset.s
    history_rows = s.train if part == "val" else np.concatenate([s.train, s.valid])
    target = dataset.ratings.iloc[s.valid if part == "val" else s.test].sort_values("user_idx")
    users = target["user_idx"].to_numpy()
    requests = Requests.from_frames(
        dataset.ratings.iloc[history_rows],
        users,
        target["time_of_day"].to_numpy(),
        target["device"].to_numpy(),
    )
    return Targets(
        requests=requests,
        items=torch.as_tensor(target["item_idx"].to_numpy(), dtype=torch.long),
        ratings=torch.as_tensor(target["rating"].to_numpy(), dtype=torch.float32),
    )


def fit_popularity(dataset) -> ContextPopularity:
    """Context popularity of protocol S's train interactions."""
    train = dataset.ratings.iloc[dataset.s.train]
    return ContextPopularity.fit(
        torch.tensor(train["item_idx"].to_numpy()),
        torch.tensor(train["time_of_day"].to_numpy()),
        torch.tensor(train["device"].to_numpy()),
        dataset.n_items,
    )
