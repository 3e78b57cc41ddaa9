"""Protocol R and S splits on real data: sizes, order, no leakage, byte-identical files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from contextflix.data import load_dataset
from contextflix.data.__main__ import export_splits, main
from contextflix.data.splits import rating_split, sequence_split
from tests.conftest import SHARED_DATA, requires_ml100k

# ../shared/PEERS.md: the peers' split files; equal digests prove equal protocols.
PEER_SPLITS = {
    "ml-latest-small": {
        "R.test": "80734c0416cd99fd93bb359e09271fb2863dcdbed12dcd00056e6c6527cb224b",
        "R.train": "44dcdbf540c7d5128a123f7c1bce072087decaf9b2b172792663683828933f19",
        "S.test": "bee2047223d353a0a796b5c99b7c7161848c729471b0d72a97e13fc6d786e1e7",
        "S.train": "7ed45d0c098fb53e3599d43f330b7f5db6e160af37b4d97f559fced789b2b2fc",
        "S.valid": "1784874322afae6bb3b207417c7d6d7c8cb3c25632cbbfd4dc6b15728c220e56",
    },
    "ml-100k": {
        "R.test": "ce7215852b362738ed4c54140b462585e7c0d01beecfeef27dc46956cedbf375",
        "R.train": "b5d0091c3ab8d5628b586bccd7c7e7fa1908aa3f2b6f794adbe542ee43ce2a3a",
        "S.test": "df02fff75a68ff95419dacb692de0f11582c0958f0bfb4cda52dfe98622e0d5e",
        "S.train": "63480f64caea03aa1651ad252e0e243564d6df6633cfa01581ec8daad3f5e292",
        "S.valid": "0f5137842e078d5c67407a1e02d8061af1e7e7ace190de93cd0a38b2e28cb619",
    },
}


def digests(folder: Path) -> dict[str, str]:
    return {
        p.name.removesuffix(".tsv"): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.glob("*.tsv")
    }


def test_rating_split_sizes_and_determinism() -> None:
    split = rating_split(1001)
    assert len(split.train) == 900 and len(split.test) == 101
    assert np.array_equal(np.sort(np.r_[split.train, split.test]), np.arange(1001))
    assert np.array_equal(split.train, rating_split(1001).train)
    assert not np.array_equal(split.train, rating_split(1001, seed=7).train)


def test_sequence_split_targets_are_last_by_time_with_stable_ties() -> None:
    users = np.array([1, 2, 1, 1, 2, 2, 1, 3, 3])
    times = np.array([5, 1, 9, 9, 2, 3, 1, 1, 2])
    split = sequence_split(users, times)
    # user 1 by time (ties in file order): rows 6 (t1), 0 (t5), 2 (t9), 3 (t9)
    assert split.test.tolist() == [3, 5] and split.valid.tolist() == [2, 4]
    assert split.train.tolist() == [6, 0, 1, 7, 8]  # user 3 has < 3 ratings: all train


@pytest.mark.parametrize(
    "name",
    ["ml-latest-small", pytest.param("ml-100k", marks=requires_ml100k)],
)
def test_real_splits_match_the_peers_byte_for_byte(name: str, tmp_path: Path) -> None:
    dataset = load_dataset(name, SHARED_DATA if name == "ml-100k" else None)
    export_splits(dataset, tmp_path / "a")
    assert digests(tmp_path / "a") == PEER_SPLITS[name]
    ratings, s = dataset.ratings, dataset.s
    assert len(s.valid) == len(s.test) == dataset.n_users
    for part in (s.valid, s.test):
        assert ratings["user_idx"].iloc[part].is_unique
    train_last = ratings.iloc[s.train].groupby("user_idx")["timestamp"].max()
    valid_t = ratings.iloc[s.valid].set_index("user_idx")["timestamp"]
    test_t = ratings.iloc[s.test].set_index("user_idx")["timestamp"]
    assert (train_last <= valid_t.loc[train_last.index]).all()
    assert (valid_t <= test_t.loc[valid_t.index]).all()
    assert not set(s.train) & (set(s.valid) | set(s.test))
    assert len(s.train) + len(s.valid) + len(s.test) == len(ratings)
    assert len(dataset.r.train) == int(0.9 * len(ratings))


def test_prepare_command_prints_summary_and_exports_identical_files(tmp_path: Path, capsys) -> None:
    assert (
        main(["prepare", "--dataset", "ml-latest-small", "--export-splits", str(tmp_path / "a")])
        == 0
    )
    out = capsys.readouterr().out
    assert "610 users" in out and "9,742 movies" in out and "100,836 ratings" in out
    assert "America/Chicago 610" in out and "SIMULATED" in out
    assert (
        main(
            [
                "prepare",
                "--dataset",
                "ml-latest-small",
                "--no-cache",
                "--export-splits",
                str(tmp_path / "b"),
            ]
        )
        == 0
    )
    assert digests(tmp_path / "a") == digests(tmp_path / "b") == PEER_SPLITS["ml-latest-small"]


def test_prepare_reports_bad_input_without_a_traceback(tmp_path: Path, capsys) -> None:
    assert main(["prepare", "--dataset", "ml-latest-small", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "ratings.csv" in err and "Traceback" not in err
    assert main(["prepare", "--dataset", "ml-7m"]) == 1
    err = capsys.readouterr().err
    assert "ml-latest-small" in err and "synthetic-ml-1m" in err and "Traceback" not in err
