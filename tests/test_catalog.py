"""The catalogue's prepared histories: who liked what, sorted in linear time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from contextflix.service.catalog import Catalog, _stable_order


@pytest.mark.parametrize("n_keys", [300, 87_585, 1 << 20])
def test_stable_order_is_numpys_stable_sort(n_keys: int) -> None:
    keys = np.random.default_rng(n_keys).integers(0, n_keys, 50_000).astype(np.int32)
    assert np.array_equal(_stable_order(keys, n_keys), np.argsort(keys, kind="stable"))


def test_liked_ratings_are_the_likers_own_and_nan_elsewhere() -> None:
    movies = pd.DataFrame(
        {
            "item_idx": [0, 1],
            "item_id": [10, 20],
            "title": ["A (1999)", "B (2001)"],
            "year": [1999, 2001],
            "genres": [["Drama"], ["Comedy"]],
            "n_ratings": [3, 1],
        }
    )
    users = pd.DataFrame({"user_idx": [0, 1, 2], "user_id": [7, 8, 9]})
    interactions = pd.DataFrame(
        {
            "user_idx": [2, 0, 1, 0],
            "item_idx": [0, 0, 0, 1],
            "rating": [4.5, 5.0, 3.0, 4.0],
            "timestamp": [3, 1, 2, 4],
            "time_of_day": [0, 1, 2, 3],
            "device": [0, 1, 2, 0],
        }
    )
    catalog = Catalog(movies, users, interactions)
    found = catalog.liked_ratings(0, np.array([0, 1, 2]))
    assert found[0] == 5.0 and np.isnan(found[1]) and found[2] == 4.5  # user 1 gave 3 stars
    assert catalog.liked_ratings(1, np.array([2, 0]))[1] == 4.0
    assert np.isnan(catalog.liked_ratings(1, np.array([2]))).all()
    assert catalog.history(7)["items"][0]["title"] == "B (2001)"  # newest first
