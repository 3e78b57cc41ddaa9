"""Requests: what the scoring path scores, and the one place protocol S builds them.

A request is a history (chronological items with their ratings and contexts) plus the context
of the moment of the recommendation. Data-set users also carry their user index (the
collaborative model then uses its trained vector); new visitors carry -1 and are folded in
from their ratings. ``protocol_s_targets`` turns a data set's S split into requests and
targets for the hybrid's training and for the evaluation alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from contextflix.models.popularity import UNKNOWN


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

    def _map(self, function) -> Requests:
        return Requests(**{f.name: function(f.name, getattr(self, f.name)) for f in fields(self)})

    def slice(self, start: int, stop: int) -> Requests:
        return self._map(lambda _, t: t[start:stop])

    def take(self, rows: torch.Tensor) -> Requests:
        return self._map(lambda _, t: t[rows])

    def without_context(self) -> Requests:
        """The same requests with every context value replaced by "unknown"."""
        unknown = ("time_of_day", "device", "target_time_of_day", "target_device")
        return self._map(lambda name, t: torch.full_like(t, UNKNOWN) if name in unknown else t)

    def without_device(self) -> Requests:
        """The same requests with the (simulated) device unknown everywhere, time of day kept."""
        return self._map(lambda name, t: torch.full_like(t, UNKNOWN) if "device" in name else t)

    def padded(self, rows: int, width: int | None = None) -> Requests:
        """``rows`` requests: these, then empty visitor requests; histories ``width`` wide."""
        width = self.items.shape[1] if width is None else width
        extra = rows - len(self)
        if extra == 0 and width == self.items.shape[1]:
            return self

        def pad(name: str, t: torch.Tensor) -> torch.Tensor:
            fill = -1 if name == "user" else UNKNOWN if "time" in name or "device" in name else 0
            if t.ndim == 2:
                t = t[:, -width:] if t.shape[1] >= width else F.pad(t, (width - t.shape[1], 0))
            return torch.cat([t, torch.full((extra, *t.shape[1:]), fill, dtype=t.dtype)])

        return self._map(pad)

    @classmethod
    def concat(cls, parts: Sequence[Requests]) -> Requests:
        """One batch from several (histories left-padded to the widest)."""
        width = max(p.items.shape[1] for p in parts)
        padded = [p.padded(len(p), width) for p in parts]
        return cls(**{f.name: torch.cat([getattr(p, f.name) for p in padded]) for f in fields(cls)})

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
        column = length - 1 - (np.cumsum(counts)[row] - 1 - np.arange(len(row)))
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
            target_time_of_day=torch.tensor(np.asarray(target_time_of_day), dtype=torch.long),
            target_device=torch.tensor(np.asarray(target_device), dtype=torch.long),
        )


@dataclass
class Targets:
    """Protocol S targets of one part, one per user in user_idx order."""

    requests: Requests
    items: torch.Tensor  # [U] target item_idx
    ratings: torch.Tensor  # [U] the target's rating


def protocol_s_targets(dataset, part: str) -> Targets:
    """Requests and targets of protocol S's "val" or "test" part for every user.

    The history of a validation target is the train part; that of a test target is train
    plus the validation interaction (docs/protocols.md, S.6). The request's context is the
    target interaction's own context (S.5). This is the one place that builds them.
    """
    if part not in ("val", "test"):
        raise ValueError(f"part must be 'val' or 'test', not {part!r}")
    s = dataset.s
    history_rows = s.train if part == "val" else np.concatenate([s.train, s.valid])
    target = dataset.ratings.iloc[s.valid if part == "val" else s.test].sort_values("user_idx")
    requests = Requests.from_frames(
        dataset.ratings.iloc[history_rows],
        target["user_idx"].to_numpy(),
        target["time_of_day"].to_numpy(),
        target["device"].to_numpy(),
    )
    return Targets(
        requests=requests,
        items=torch.tensor(target["item_idx"].to_numpy(), dtype=torch.long),
        ratings=torch.tensor(target["rating"].to_numpy(), dtype=torch.float32),
    )
