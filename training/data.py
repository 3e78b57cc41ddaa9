"""LightningDataModules: rating triples (protocol R or S) and context-tagged sequences (protocol S).

Every batch is a slice of pre-built tensors (a BatchSampler hands the dataset whole index
lists), so no Python code runs per rating while training.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from scipy import sparse
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
)

from contextflix.data import Dataset as MovieLensDataset
from contextflix.data import load_dataset
from contextflix.data.context import load_context_config
from training.distributed import process_shard


class TensorBatches(Dataset):
    """A dict of equally long tensors, indexed by a list of rows at once."""

    def __init__(self, **tensors: torch.Tensor) -> None:
        lengths = {len(t) for t in tensors.values()}
        if len(lengths) != 1:
            raise ValueError(f"tensors differ in length: {lengths}")
        self.tensors = tensors
        self.length = lengths.pop()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, rows: list[int]) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(rows)
        return {name: t[index] for name, t in self.tensors.items()}


class ShardedBatches(Sampler[list[int]]):
    """Every ``world``-th batch from ``rank`` on, the same number on every process."""

    def __init__(self, batch_sampler: BatchSampler, rank: int, world: int) -> None:
        self.batch_sampler, self.rank, self.world = batch_sampler, rank, world

    def __len__(self) -> int:
        return len(self.batch_sampler) // self.world

    def __iter__(self) -> Iterator[list[int]]:
        for i, batch in enumerate(self.batch_sampler):
            if i // self.world == len(self):
                return
            if i % self.world == self.rank:
                yield batch


def batches(
    data: TensorBatches,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    shard: tuple[int, int] = (0, 1),
) -> DataLoader:
    """Batches of whole index lists. ``shard`` = (rank, processes) of a distributed fit
    (see training.distributed): training batches are dealt out, evaluation rows split."""
    rank, world = shard
    if not shuffle and world > 1:  # evaluation: each row on exactly one process
        data = TensorBatches(**{k: t[rank::world] for k, t in data.tensors.items()})
    generator = torch.Generator().manual_seed(seed)
    order = RandomSampler(data, generator=generator) if shuffle else SequentialSampler(data)
    sampler = BatchSampler(order, batch_size, drop_last=False)
    if shuffle and world > 1:
        sampler = ShardedBatches(sampler, rank, world)
    return DataLoader(data, sampler=sampler, batch_size=None)


class _MovieLensDataModule(L.LightningDataModule):
    """One MovieLens release, loaded once, with the context of ``context_config``.

    ``context_config`` is a context config file (configs/context.yaml); None means its
    defaults. The pipeline passes the file its plan names to every step.
    """

    def __init__(self, dataset: str, data_dir: str | None, context_config: str | None) -> None:
        super().__init__()
        self.dataset_name = dataset
        self.data_dir = data_dir
        self.context_config = context_config
        self._data: MovieLensDataset | None = None

    @property
    def data(self) -> MovieLensDataset:
        if self._data is None:
            context = load_context_config(self.context_config)
            self._data = load_dataset(self.dataset_name, self.data_dir, context)
        return self._data

    @property
    def n_users(self) -> int:
        return self.data.n_users

    def shard(self) -> tuple[int, int]:
        """(rank, processes) of the fit this data module serves (see training.distributed)."""
        return process_shard(self.trainer)

    @property
    def n_items(self) -> int:
        return self.data.n_items


class RatingsDataModule(_MovieLensDataModule):
    """(user, item, rating) triples.

    protocol "R": train = R's train part less a random ``val_fraction`` held out for early
    stopping, test = R's test part. protocol "S": train = S's train part, validation = the
    validation targets, test = the test targets (the ranking models' fit).
    """

    def __init__(
        self,
        dataset: str = "ml-latest-small",
        data_dir: str | None = None,
        protocol: str = "R",
        batch_size: int = 4096,
        val_fraction: float = 0.05,
        seed: int = 0,
        context_config: str | None = None,
    ) -> None:
        super().__init__(dataset, data_dir, context_config)
        if protocol not in ("R", "S"):
            raise ValueError(f"protocol must be 'R' or 'S', not {protocol!r}")
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), not {val_fraction}")
        self.protocol = protocol
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.seed = seed

    @property
    def global_mean(self) -> float:
        return float(self.data.ratings["rating"].to_numpy()[self.rows()["train"]].mean())

    @property
    def rating_range(self) -> tuple[float, float]:
        return self.data.rating_range

    def rows(self) -> dict[str, np.ndarray]:
        data = self.data
        if self.protocol == "S":
            return {"train": data.s.train, "val": data.s.valid, "test": data.s.test}
        shuffled = np.random.default_rng(self.seed).permutation(data.r.train)
        n_val = max(1, int(len(shuffled) * self.val_fraction))
        return {
            "train": np.sort(shuffled[n_val:]),
            "val": np.sort(shuffled[:n_val]),
            "test": data.r.test,
        }

    def triples(self, part: str) -> TensorBatches:
        frame = self.data.ratings.iloc[self.rows()[part]]
        return TensorBatches(
            user=torch.tensor(frame["user_idx"].to_numpy(), dtype=torch.long),
            item=torch.tensor(frame["item_idx"].to_numpy(), dtype=torch.long),
            rating=torch.tensor(frame["rating"].to_numpy(), dtype=torch.float32),
        )

    def train_dataloader(self) -> DataLoader:
        return batches(self.triples("train"), self.batch_size, True, self.seed, shard=self.shard())

    def val_dataloader(self) -> DataLoader:
        return batches(self.triples("val"), self.batch_size * 4, False, shard=self.shard())

    def test_dataloader(self) -> DataLoader:
        return batches(self.triples("test"), self.batch_size * 4, False, shard=self.shard())


@dataclass(frozen=True)
class Sequences:
    """Windows of ``max_len + 1`` interactions, right-aligned, 0 = padding.

    items hold item_idx + 1; position t's input is items[:, t] with the context of the
    interaction at t + 1 (time_of_day, device), and its target is items[:, t + 1]. A position
    is a training example only where both its input and its target are present (non-zero).
    """

    user: torch.Tensor
    items: torch.Tensor
    time_of_day: torch.Tensor
    device: torch.Tensor

    def as_batches(self) -> TensorBatches:
        return TensorBatches(
            user=self.user, items=self.items, time_of_day=self.time_of_day, device=self.device
        )


def windows(
    users: np.ndarray,
    items: np.ndarray,
    tod: np.ndarray,
    device: np.ndarray,
    ends: np.ndarray,
    starts: np.ndarray,
    length: int,
) -> Sequences:
    """Cut ``[max(start, end - length), end)`` from the flat chronological arrays, right-aligned."""
    index = ends[:, None] - length + np.arange(length)[None, :]
    present = index >= starts[:, None]
    index = np.where(present, index, 0)

    def take(values: np.ndarray, shift: int = 0) -> torch.Tensor:
        return torch.as_tensor(np.where(present, values[index] + shift, 0), dtype=torch.long)

    return Sequences(
        user=torch.as_tensor(users[ends - 1], dtype=torch.long),
        items=take(items, shift=1),
        time_of_day=take(tod),
        device=take(device),
    )


class SequenceDataModule(_MovieLensDataModule):
    """Per-user chronological sequences of protocol S with their context.

    train: every user's train part cut into windows that together predict each train
    interaction (after the first) exactly once; val: the train part followed by the
    validation target; test: train + validation followed by the test target. For val and
    test only the last position is scored; ``history(part)`` gives what to mask.
    """

    def __init__(
        self,
        dataset: str = "ml-latest-small",
        data_dir: str | None = None,
        max_len: int = 50,
        batch_size: int = 128,
        seed: int = 0,
        context_config: str | None = None,
    ) -> None:
        super().__init__(dataset, data_dir, context_config)
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, not {max_len}")
        self.max_len = max_len
        self.batch_size = batch_size
        self.seed = seed
        self._parts: dict[str, Sequences] = {}

    def _chronological(self, parts: tuple[str, ...]) -> tuple[np.ndarray, ...]:
        data = self.data
        rows = np.concatenate([getattr(data.s, p) for p in parts])
        frame = data.ratings.iloc[rows]
        order = np.lexsort(
            (np.arange(len(rows)), frame["timestamp"].to_numpy(), frame["user_idx"].to_numpy())
        )
        frame = frame.iloc[order]
        users = frame["user_idx"].to_numpy()
        starts_of_user = np.r_[0, np.flatnonzero(users[1:] != users[:-1]) + 1]
        ends_of_user = np.r_[starts_of_user[1:], len(users)]
        return (
            users,
            frame["item_idx"].to_numpy(),
            frame["time_of_day"].to_numpy(),
            frame["device"].to_numpy(),
            starts_of_user,
            ends_of_user,
        )

    def sequences(self, part: str) -> Sequences:
        if part not in self._parts:
            length = self.max_len + 1
            if part == "train":
                users, items, tod, dev, starts, ends = self._chronological(("train",))
                counts = ends - starts
                n_windows = np.maximum(1, np.ceil((counts - 1) / self.max_len).astype(int))
                user_of_window = np.repeat(np.arange(len(starts)), n_windows)
                k = np.arange(n_windows.sum()) - np.repeat(
                    np.cumsum(n_windows) - n_windows, n_windows
                )
                window_ends = ends[user_of_window] - k * self.max_len
                window_starts = starts[user_of_window]
            else:
                parts = ("train", "valid") if part == "val" else ("train", "valid", "test")
                users, items, tod, dev, window_starts, window_ends = self._chronological(parts)
            self._parts[part] = windows(users, items, tod, dev, window_ends, window_starts, length)
        return self._parts[part]

    def history(self, part: str) -> sparse.csr_matrix:
        """Items each user has seen before the target of ``part`` ("val" or "test")."""
        data = self.data
        rows = data.s.train if part == "val" else np.concatenate([data.s.train, data.s.valid])
        frame = data.ratings.iloc[rows]
        ones = np.ones(len(frame), dtype=bool)
        shape = (data.n_users, data.n_items)
        return sparse.csr_matrix((ones, (frame["user_idx"], frame["item_idx"])), shape=shape)

    def train_dataloader(self) -> DataLoader:
        train = self.sequences("train").as_batches()
        return batches(train, self.batch_size, True, self.seed, shard=self.shard())

    def val_dataloader(self) -> DataLoader:
        val = self.sequences("val").as_batches()
        return batches(val, self.batch_size * 4, False, shard=self.shard())

    def test_dataloader(self) -> DataLoader:
        test = self.sequences("test").as_batches()
        return batches(test, self.batch_size * 4, False, shard=self.shard())
