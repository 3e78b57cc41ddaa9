"""SYNTHETIC data sets: release formats, sizes, shapes, the oracle, and the data set name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from contextflix.data import load_dataset
from contextflix.data.__main__ import main as data_main
from contextflix.data.errors import UnknownDatasetError
from contextflix.data.releases import get_release
from contextflix.data.synthetic import (
    GENERATOR_MARK,
    LIKE,
    oracle_figures,
    parse_name,
    scaled,
    synthetic_name,
    write_release,
)
from contextflix.evaluation.tables import metrics_table


def test_names_round_trip_and_never_collide_with_real_releases() -> None:
    assert synthetic_name("ml-1m") == "synthetic-ml-1m"
    assert synthetic_name("ml-25m", 0.2) == "synthetic-ml-25m-x0.2"
    assert parse_name("synthetic-ml-25m-x0.2") == ("ml-25m", 0.2)
    assert parse_name("ml-1m") is None
    assert parse_name("synthetic-ml-7m") is None
    real, fake = get_release("ml-1m"), get_release("synthetic-ml-1m")
    assert real.files["ratings.dat"] is not None  # the real release keeps its checksum
    assert fake.url == "" and set(fake.files.values()) == {None}
    with pytest.raises(UnknownDatasetError, match="synthetic-ml-1m"):
        get_release("synthetic-ml-2m")


def test_full_size_shapes_are_the_releases() -> None:
    assert (LIKE["ml-1m"].users, LIKE["ml-1m"].items, LIKE["ml-1m"].ratings) == (
        6_040,
        3_706,
        1_000_209,
    )
    assert LIKE["ml-25m"].ratings == 25_000_095 and LIKE["ml-32m"].items == 87_585
    small = scaled(LIKE["ml-25m"], 0.2)
    assert (small.users, small.items, small.ratings) == (32_508, 26_407, 5_000_019)


@pytest.fixture(scope="module")
def small_release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("syn") / "synthetic-ml-1m-x0.1"
    return folder, write_release(folder, "ml-1m", seed=3, scale=0.1)


def test_writes_ml1m_format_with_exact_counts_and_a_synthetic_label(small_release) -> None:
    folder, info = small_release
    shape = scaled(LIKE["ml-1m"], 0.1)
    lines = (folder / "ratings.dat").read_text().splitlines()
    assert len(lines) == shape.ratings == info["ratings"]
    rating, timestamp = lines[0].split("::")[2:]
    assert rating in {"1", "2", "3", "4", "5"} and int(timestamp) > 9e8
    assert len((folder / "users.dat").read_text().splitlines()) == shape.users
    assert "Synthetic movie" in (folder / "movies.dat").read_text().splitlines()[0]
    assert "SYNTHETIC" in (folder / "README.txt").read_text()
    assert json.loads((folder / "oracle.json").read_text())["SYNTHETIC"]


def test_same_seed_same_bytes(small_release, tmp_path: Path) -> None:
    folder, _ = small_release
    write_release(tmp_path / "again", "ml-1m", seed=3, scale=0.1)
    assert (tmp_path / "again" / "ratings.dat").read_bytes() == (
        folder / "ratings.dat"
    ).read_bytes()


def test_loads_as_a_data_set_with_heavy_tails_and_a_day_night_rhythm(small_release) -> None:
    folder, _ = small_release
    data = load_dataset("synthetic-ml-1m-x0.1", folder.parent, use_cache=False)
    per_user = np.bincount(data.ratings["user_idx"])
    per_item = np.bincount(data.ratings["item_idx"])
    assert per_user.min() >= 20 and per_user.max() > 2.5 * np.median(per_user)
    assert per_item.max() > 6 * np.median(per_item)  # 6.7 here; 20.4 at full size (ml-100k 21.6)
    hours = np.bincount(data.ratings["local_hour"], minlength=24)
    assert hours[19:22].sum() > 3 * hours[2:5].sum()  # evenings busy, small hours quiet
    assert data.users["timezone"].nunique() == 4


def test_oracle_beats_popularity_by_far(small_release) -> None:
    folder, info = small_release
    data = load_dataset("synthetic-ml-1m-x0.1", folder.parent, use_cache=False)
    ratings = data.ratings
    train = ratings.iloc[data.s.train]
    popularity = np.bincount(train["item_idx"], minlength=data.n_items).astype(float)
    seen = np.zeros((data.n_users, data.n_items), dtype=bool)
    history = ratings.iloc[np.concatenate([data.s.train, data.s.valid])]
    seen[history["user_idx"], history["item_idx"]] = True
    scores = np.where(seen, -np.inf, popularity)
    test = ratings.iloc[data.s.test]
    target = scores[test["user_idx"], test["item_idx"]]
    rank = (scores >= target[:, None]).sum(axis=1)
    popular_ndcg = np.where(rank <= 10, 1 / np.log2(rank + 1), 0).mean()
    assert info["oracle_test"]["ndcg@10"] > 3 * popular_ndcg
    # taste alone (no series) leaves a model of who likes what room above popularity, as
    # matrix factorisation has on real ml-100k (1.7x); measured here 3.9x
    assert info["oracle_test"]["taste_ndcg@10"] > 1.5 * popular_ndcg


def test_a_synthetic_name_is_generated_on_first_use(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CONTEXTFLIX_DATA_DIR", str(tmp_path))
    data = load_dataset("synthetic-ml-1m-x0.05", use_cache=False)
    assert data.name == "synthetic-ml-1m-x0.05"
    assert (tmp_path / "synthetic-ml-1m-x0.05" / "oracle.json").exists()


def test_synthesize_command_writes_csv_for_ml25m(tmp_path: Path, capsys) -> None:
    code = data_main(
        ["synthesize", "--like", "ml-25m", "--scale", "0.002", "--output", str(tmp_path)]
    )
    assert code == 0
    assert "SYNTHETIC synthetic-ml-25m-x0.002" in capsys.readouterr().out
    folder = tmp_path / "synthetic-ml-25m-x0.002"
    assert (folder / "ratings.csv").read_text().splitlines()[0] == "userId,movieId,rating,timestamp"
    data = load_dataset("synthetic-ml-25m-x0.002", tmp_path, use_cache=False)
    assert set(np.unique(data.ratings["rating"] * 2) % 1) == {0}  # half stars
    assert len(data.ratings) == scaled(LIKE["ml-25m"], 0.002).ratings


def test_reports_give_each_model_as_a_fraction_of_the_oracle(small_release, monkeypatch) -> None:
    folder, info = small_release
    monkeypatch.setenv("CONTEXTFLIX_DATA_DIR", str(folder.parent))
    oracle = oracle_figures("synthetic-ml-1m-x0.1")
    assert oracle == info["oracle_test"]
    assert 0 < oracle["genre_taste_ndcg@10"] < oracle["taste_ndcg@10"]  # less popularity
    assert oracle["taste_ndcg@10"] < oracle["ndcg@10"]  # no series
    assert oracle_figures("ml-100k") is None
    metrics = {
        "protocols": {"S": {"models": {"popularity": {"ndcg@10": oracle["ndcg@10"] / 4}}}},
        "oracle": oracle,
    }
    assert "| popularity | 25.0% |" in metrics_table(metrics)


def test_a_copy_from_an_earlier_generator_is_generated_again(tmp_path: Path) -> None:
    name = "synthetic-ml-1m-x0.02"
    stale = tmp_path / name
    write_release(stale, "ml-1m", seed=0, scale=0.02)
    (stale / GENERATOR_MARK).unlink()  # what a copy from before the mark looks like
    (stale / "ratings.dat").write_text("1::1::5::956703932\n")
    load_dataset(name, tmp_path, use_cache=False)
    assert (stale / GENERATOR_MARK).exists()
    assert len((stale / "ratings.dat").read_text().splitlines()) > 1


def test_a_linked_copy_from_an_earlier_generator_is_generated_again_where_it_lies(
    tmp_path: Path,
) -> None:
    name = "synthetic-ml-1m-x0.02"
    stale = tmp_path / "elsewhere" / name
    write_release(stale, "ml-1m", seed=0, scale=0.02)
    (stale / GENERATOR_MARK).unlink()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / name).symlink_to(stale)
    load_dataset(name, tmp_path / "data", use_cache=False)
    assert (tmp_path / "data" / name).is_symlink() and (stale / GENERATOR_MARK).exists()
