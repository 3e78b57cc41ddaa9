"""The catalogue's prepared histories: each user's in time order, each movie's likers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from contextflix.service.catalog import Catalog


@pytest.fixture
def catalog() -> Catalog:
    movies = pd.DataFrame(
        {
            "item_idx": [0, 1],
            "item_id": [10, 20],
            "title": ["A (1999)", "B (2001)"],
            "year": [1999, 2001],
            "genres": [["Drama"], ["Comedy"]],
            "n_ratings": [4, 1],
        }
    )
    users = pd.DataFrame({"user_idx": [0, 1, 2, 3], "user_id": [7, 8, 9, 6]})
    interactions = pd.DataFrame(
        {
            "user_idx": [2, 0, 1, 0, 3, 2],
            "item_idx": [0, 0, 0, 1, 0, 0],
            "rating": [4.5, 5.0, 3.0, 4.0, 2.0, 5.0],
            "timestamp": [3, 1, 2, 4, 5, 9],
            "time_of_day": [0, 1, 2, 3, 0, 1],
            "device": [0, 1, 2, 0, 1, 2],
        }
    )
    return Catalog(movies, users, interactions)


def test_likers_are_in_user_order_and_liked_it(catalog: Catalog) -> None:
    assert catalog.likers(0).tolist() == [0, 2, 2]  # user 2 liked it twice; 1 and 3 did not
    assert catalog.likers(1).tolist() == [0]


def test_liked_ratings_are_the_likers_first_and_nan_elsewhere(catalog: Catalog) -> None:
    found = catalog.liked_ratings(0, np.array([0, 1, 2, 3]))
    assert found[0] == 5.0 and found[2] == 4.5  # user 2's first liked rating, by time
    assert np.isnan(found[1]) and np.isnan(found[3])  # 3 and 2 stars
    assert catalog.liked_ratings(1, np.array([2, 0]))[1] == 4.0
    assert np.isnan(catalog.liked_ratings(1, np.array([2]))).all()


def test_history_is_newest_first_with_its_timestamps(catalog: Catalog) -> None:
    items = catalog.history(9)["items"]  # user_idx 2
    assert [(i["title"], i["timestamp"], i["rating"]) for i in items] == [
        ("A (1999)", 9, 5.0),
        ("A (1999)", 3, 4.5),
    ]
