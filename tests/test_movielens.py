"""Parsers: each release format, written small by the test, plus the real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from contextflix.data import MalformedFileError, load_movielens
from contextflix.data.fetch import dataset_path
from contextflix.data.movielens import read_ratings_dat
from tests.conftest import SHARED_DATA, requires_ml100k


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture
def ml1m_folder(tmp_path: Path) -> Path:
    write(
        tmp_path / "ratings.dat", "1::10::5::978300760\n1::20::3::978302109\n2::10::4::978301968\n"
    )
    write(
        tmp_path / "movies.dat",
        "10::Café Society (1999)::Comedy|Romance\n20::Alien (1979)::Horror|Sci-Fi\n",
        encoding="latin-1",
    )
    write(tmp_path / "users.dat", "1::F::1::10::48067\n2::M::56::16::70072-1234\n")
    return tmp_path


def test_1m_format_keeps_order_and_decodes_latin1(ml1m_folder: Path) -> None:
    data = load_movielens(ml1m_folder, "ml-1m", "dat")
    assert data.ratings.columns.tolist() == ["user_id", "item_id", "rating", "timestamp"]
    assert data.ratings["item_id"].tolist() == [10, 20, 10]
    assert data.ratings["rating"].dtype == np.float32
    assert data.movies["title"].tolist() == ["Café Society", "Alien"]
    assert data.movies["year"].tolist() == [1999, 1979]
    assert data.movies["genres"].tolist() == [["Comedy", "Romance"], ["Horror", "Sci-Fi"]]
    assert data.users["zip"].tolist() == ["48067", "70072-1234"]


def test_1m_malformed_line_names_file_and_line(ml1m_folder: Path) -> None:
    write(ml1m_folder / "ratings.dat", "1::10::5::978300760\n1::20::3\n")
    with pytest.raises(MalformedFileError, match=r"ratings\.dat: line 2"):
        load_movielens(ml1m_folder, "ml-1m", "dat")
    write(ml1m_folder / "ratings.dat", "1::10::5::978300760\n1::20::3::9::9\n")
    with pytest.raises(MalformedFileError, match=r"ratings\.dat: line 2"):
        load_movielens(ml1m_folder, "ml-1m", "dat")
    write(ml1m_folder / "ratings.dat", "1::10::5::978300760\n2::10::4::1\nx::20::3::978302109\n")
    with pytest.raises(MalformedFileError, match=r"ratings\.dat: line 3: .*'user_id'"):
        load_movielens(ml1m_folder, "ml-1m", "dat")


def test_dat_parser_matches_python_engine(ml1m_folder: Path) -> None:
    path = ml1m_folder / "ratings.dat"
    fast = read_ratings_dat(path)
    slow = pd.read_csv(path, sep="::", engine="python", names=fast.columns.tolist())
    pd.testing.assert_frame_equal(fast, slow.astype(fast.dtypes.to_dict()))


def test_100k_format(tmp_path: Path) -> None:
    write(tmp_path / "u.data", "1\t2\t5\t881250949\n2\t1\t3\t891717742\n")
    write(tmp_path / "u.genre", "unknown|0\nAction|1\nComedy|2\n\n")
    write(
        tmp_path / "u.item",
        "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|1\n2|Que Sera (1996)|01-Jan-1996||http://y|1|1|0\n",
    )
    (tmp_path / "u.item").write_bytes(
        (tmp_path / "u.item").read_bytes().replace(b"Que", "Qué".encode("latin-1"))
    )
    write(tmp_path / "u.user", "1|24|M|technician|85711\n2|53|F|other|L9G2B\n")
    data = load_movielens(tmp_path, "ml-100k", "100k")
    assert data.movies["title"].tolist() == ["Toy Story", "Qué Sera"]
    assert data.movies["genres"].tolist() == [["Comedy"], ["Action"]]  # "unknown" is no genre
    assert data.users.columns.tolist() == ["user_id", "gender", "age", "occupation", "zip"]
    write(tmp_path / "u.data", "1\t2\t5\t881250949\n2\tone\t3\t891717742\n")
    with pytest.raises(MalformedFileError, match=r"u\.data: line 2"):
        load_movielens(tmp_path, "ml-100k", "100k")


def test_csv_format_with_tags_links_and_quoted_titles(tmp_path: Path) -> None:
    write(
        tmp_path / "ratings.csv",
        "userId,movieId,rating,timestamp\n1,1,4.5,964982703\n1,2,3.0,964981247\n",
    )
    write(
        tmp_path / "movies.csv",
        'movieId,title,genres\n1,"American President, The (1995)",Comedy|Drama|Romance\n'
        "2,Untitled,(no genres listed)\n",
    )
    write(
        tmp_path / "tags.csv",
        "userId,movieId,tag,timestamp\n1,1,Funny,1\n2,1,funny,2\n2,1,politics,3\n",
    )
    write(tmp_path / "links.csv", "movieId,imdbId,tmdbId\n1,0112346,9087\n2,0000002,\n")
    data = load_movielens(tmp_path, "ml-latest-small", "csv")
    movies = data.movies.set_index("item_id")
    assert movies.loc[1, "title"] == "American President, The"
    assert movies.loc[2, "genres"] == [] and pd.isna(movies.loc[2, "year"])
    assert movies.loc[1, "tags"] == ["funny", "politics"]
    assert movies.loc[1, "imdb_id"] == "0112346" and pd.isna(movies.loc[2, "tmdb_id"])
    write(
        tmp_path / "ratings.csv",
        "userId,movieId,rating,timestamp\n1,1,4.5,964982703\n1,2,,964981247\n",
    )
    with pytest.raises(MalformedFileError, match=r"ratings\.csv: line 3: .*'rating'"):
        load_movielens(tmp_path, "ml-latest-small", "csv")


def test_real_ml_latest_small() -> None:
    data = load_movielens(dataset_path("ml-latest-small"), "ml-latest-small", "csv")
    assert len(data.ratings) == 100_836
    assert data.ratings["user_id"].nunique() == 610
    assert len(data.movies) == 9_742
    assert data.ratings["item_id"].nunique() == 9_724
    assert data.ratings.iloc[0].tolist() == [1, 1, 4.0, 964982703]


@requires_ml100k
def test_real_ml100k() -> None:
    data = load_movielens(dataset_path("ml-100k", SHARED_DATA), "ml-100k", "100k")
    assert len(data.ratings) == 100_000
    assert data.ratings["user_id"].nunique() == 943
    assert len(data.movies) == 1_682
    assert data.ratings.iloc[0].tolist() == [196, 242, 3.0, 881250949]
    assert "Misérables, Les" in set(data.movies["title"])  # latin-1 decoded
