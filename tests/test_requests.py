"""One request model: strict types, bounded sizes, short errors; batch answers equal single ones."""

from __future__ import annotations

import time

import pytest

from contextflix.service import RecommenderError
from contextflix.service.requests import (
    MAX_BATCH,
    MAX_HISTORY,
    MAX_QUERY_CHARS,
    MAX_QUERY_WORDS,
    QUOTE,
    parse_request,
)
from tests.conftest import requires_ml100k
from tests.test_service import bundle, service  # noqa: F401  (session fixtures)


def test_booleans_numbers_and_context_are_parsed_strictly() -> None:
    assert parse_request({"user_id": 1, "exclude_seen": "false"}).exclude_seen is False
    assert parse_request({"user_id": "7", "time_of_day": " Evening "}).time_of_day == "evening"
    assert parse_request({"user_id": 1, "genres": "Drama, Comedy"}).genres == ["Drama", "Comedy"]
    for bad in (
        {"user_id": True},
        {"user_id": float("inf")},
        {"history": [1], "ratings": {1: float("nan")}},
        {"user_id": 1, "exclude_seen": "maybe"},
        {"user_id": 1, "genres": 5},
        {"user_id": 1, "surprise": 1},
    ):
        with pytest.raises(RecommenderError):
            parse_request(bad)


def test_huge_values_are_refused_fast_and_quoted_short() -> None:
    start = time.perf_counter()
    with pytest.raises(RecommenderError, match=f"at most {MAX_HISTORY} movies") as error:
        parse_request({"history": list(range(2_000_000))})
    assert time.perf_counter() - start < 0.5 and len(str(error.value)) < 200
    with pytest.raises(RecommenderError) as error:
        parse_request({"user_id": 1, "model": "x" * 1_000_000})
    assert len(str(error.value)) < 250 and "x" * (QUOTE + 1) not in str(error.value)


def test_batch_answers_equal_single_calls_with_errors_in_place(service) -> None:  # noqa: F811
    asks = [
        {"user_id": 1, "time_of_day": "evening", "k": 5},
        {"user_id": 99999},
        {"history": [1, 2355, 3114], "model": "content", "k": 3},
        {"user_id": 3, "model": "sequential", "device": "tv"},
    ]
    service.clear_cache()
    answers = service.recommend_batch(asks)
    assert "Unknown user 99999" in answers[1]["error"]
    service.clear_cache()
    for ask, answer in zip(asks, answers, strict=True):
        if "error" not in answer:
            assert service.recommend(cache=False, **ask) == answer
    with pytest.raises(RecommenderError, match=f"at most {MAX_BATCH}"):
        service.recommend_batch([{"user_id": 1}] * (MAX_BATCH + 1))


def test_movie_search_is_bounded(service) -> None:  # noqa: F811
    with pytest.raises(RecommenderError, match="characters"):
        service.movies("a" * (MAX_QUERY_CHARS + 1))
    with pytest.raises(RecommenderError, match="distinct words"):
        service.movies(" ".join(f"w{n}" for n in range(MAX_QUERY_WORDS + 1)))
    repeated = service.movies(" ".join(["toy"] * 50))  # duplicates count once
    assert repeated == service.movies("toy")


@requires_ml100k
def test_users_publish_only_documented_fields() -> None:
    from contextflix.data import load_dataset
    from contextflix.service.catalog import Catalog

    data = load_dataset("ml-100k")
    assert "zip" in data.users.columns  # the demographics are there to leak
    catalog = Catalog(data.movies, data.users, data.ratings)
    users = catalog.users(limit=5)["users"]
    assert all(set(u) == {"user_id", "n_ratings"} for u in users)
    assert users[0]["n_ratings"] == int((data.ratings["user_id"] == users[0]["user_id"]).sum())
