"""The prepared dataset: id maps, context columns, cache keyed so it is never stale."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from contextflix.data import ChecksumError, DeviceSimulation, load_dataset
from contextflix.data.fetch import dataset_path
from training.data import RatingsDataModule, SequenceDataModule


def test_prepared_dataset_has_dense_ids_and_context() -> None:
    data = load_dataset("ml-latest-small")
    ratings = data.ratings
    assert data.n_users == 610 and data.n_items == 9_742 and data.candidates.sum() == 9_724
    assert np.array_equal(data.users["user_id"].to_numpy()[ratings["user_idx"]], ratings["user_id"])
    assert np.array_equal(
        data.movies["item_id"].to_numpy()[ratings["item_idx"]], ratings["item_id"]
    )
    assert set(ratings["time_of_day"].unique()) == {0, 1, 2, 3}
    assert set(ratings["device"].unique()) == {0, 1, 2, 3}
    assert (data.users["timezone"] == "America/Chicago").all()


def test_served_interactions_are_protocol_s_train_and_validation_only() -> None:
    data = load_dataset("ml-latest-small")
    served = data.served_interactions()
    assert len(served) == len(data.s.train) + len(data.s.valid)
    assert list(served.index) == list(range(len(served)))
    test_targets = set(
        zip(
            *(data.ratings.iloc[data.s.test][c] for c in ("user_idx", "timestamp", "item_idx")),
            strict=True,
        )
    )
    seen = set(zip(served["user_idx"], served["timestamp"], served["item_idx"], strict=True))
    assert not test_targets & seen
    last_served = served.groupby("user_idx")["timestamp"].max()
    test_time = data.ratings.iloc[data.s.test].set_index("user_idx")["timestamp"]
    assert (last_served <= test_time.loc[last_served.index]).all()


def test_cache_round_trip_is_identical() -> None:
    fresh = load_dataset("ml-latest-small", use_cache=False)
    load_dataset("ml-latest-small")  # writes the cache
    cached = load_dataset("ml-latest-small")
    assert fresh.ratings.equals(cached.ratings)
    assert fresh.movies["genres"].tolist() == cached.movies["genres"].tolist()
    assert np.array_equal(fresh.s.test, cached.s.test) and np.array_equal(
        fresh.r.train, cached.r.train
    )


def test_changed_parameters_or_files_never_reuse_the_cache(tmp_path: Path) -> None:
    base = load_dataset("ml-latest-small")
    tilted = load_dataset("ml-latest-small", device_simulation=DeviceSimulation(seed=3))
    assert not np.array_equal(base.ratings["device"], tilted.ratings["device"])
    assert len(load_dataset("ml-latest-small", r_train_fraction=0.8).r.test) > len(base.r.test)

    folder = tmp_path / "ml-latest-small"
    shutil.copytree(dataset_path("ml-latest-small"), folder)
    assert load_dataset("ml-latest-small", tmp_path).ratings["rating"].iloc[0] == 4.0
    ratings_file = folder / "ratings.csv"
    ratings_file.write_bytes(ratings_file.read_bytes().replace(b"1,1,4.0,", b"1,1,2.0,", 1))
    with pytest.raises(ChecksumError, match=r"ratings\.csv"):
        load_dataset("ml-latest-small", tmp_path)


def test_datamodules_build_batches_from_tensors() -> None:
    ratings = RatingsDataModule("ml-latest-small", protocol="R", batch_size=512)
    batch = next(iter(ratings.train_dataloader()))
    assert batch["user"].shape == batch["item"].shape == batch["rating"].shape == (512,)
    rows = ratings.rows()
    assert len(rows["train"]) + len(rows["val"]) == len(ratings.data.r.train)
    assert not set(rows["train"]) & set(rows["val"])

    sequences = SequenceDataModule("ml-latest-small", max_len=20)
    data = sequences.data
    train = sequences.sequences("train")
    targets = (train.items[:, :-1] > 0) & (train.items[:, 1:] > 0)
    assert targets.sum() == len(data.s.train) - data.n_users  # every train transition once
    test = sequences.sequences("test")
    test_rows = data.ratings.iloc[data.s.test].sort_values("user_idx")
    assert np.array_equal(test.items[:, -1].numpy() - 1, test_rows["item_idx"].to_numpy())
    assert np.array_equal(test.time_of_day[:, -1].numpy(), test_rows["time_of_day"].to_numpy())
    valid_rows = data.ratings.iloc[data.s.valid].sort_values("user_idx")
    assert np.array_equal(test.items[:, -2].numpy() - 1, valid_rows["item_idx"].to_numpy())
    history = sequences.history("test")
    assert history[test_rows["user_idx"].to_numpy(), valid_rows["item_idx"].to_numpy()].all()
    assert not history[test_rows["user_idx"].to_numpy(), test_rows["item_idx"].to_numpy()].any()
    batch = next(iter(sequences.train_dataloader()))
    assert batch["items"].shape[1] == 21
