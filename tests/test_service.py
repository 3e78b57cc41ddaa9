"""The service answers with true explanations, honest fallbacks and helpful errors.

One session-scoped bundle of real ml-latest-small data and briefly fitted models (see
bench/serve.py's quick_bundle: SVD factors, an untrained content encoder, a few sequential
steps, untrained hybrids): what is tested is that the service reports what the models
computed, not how good the models are.
"""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pytest
import torch

from bench.serve import quick_bundle
from contextflix.service import Recommender, RecommenderError, explain, reasons
from contextflix.service.recommender import CHUNK
from contextflix.service.requests import parse_request
from tests.support import sequential_occlusion

USER = 1  # MovieLens id of a data-set user with a long history


@pytest.fixture(scope="session")
def bundle():
    return quick_bundle(seq_steps=3, use_cache=False)


@pytest.fixture(scope="session")
def service(bundle) -> Recommender:
    return Recommender(bundle)


def user_history(service: Recommender, user_id: int) -> dict[int, float]:
    """{item_id: rating} of a data-set user's served history."""
    return {row["item_id"]: row["rating"] for row in service.history(user_id)["items"]}


def reason(item: dict, source: str) -> dict:
    return next(r for r in item["reasons"] if r["source"] == source)


def test_recommend_returns_the_api_shape_and_is_json(service: Recommender) -> None:
    out = service.recommend(user_id=USER, time_of_day="evening", device="tv", k=10)
    assert json.loads(json.dumps(out)) == out
    assert out["user_id"] == USER and out["model"] == "hybrid" and out["fallback"] is None
    assert out["context"]["time_of_day"] == "evening" and out["context"]["device"] == "tv"
    assert [i["rank"] for i in out["items"]] == list(range(1, 11))
    scores = [i["score"] for i in out["items"]]
    assert scores == sorted(scores, reverse=True)
    for item in out["items"]:
        assert set(item) >= {"item_id", "title", "year", "genres", "score", "explanation"}
        assert set(item["contributions"]) == {
            "collaborative",
            "content",
            "sequential",
            "popularity",
        }
        assert item["score"] == pytest.approx(sum(item["contributions"].values()), abs=1e-3)
        order = [item["contributions"][r["source"]] for r in item["reasons"]]
        assert order == sorted(order, reverse=True)
        assert item["explanation"] == item["reasons"][0]["text"]


def test_collaborative_evidence_names_true_neighbours(service: Recommender, bundle) -> None:
    out = service.recommend(user_id=USER, k=10, model="collaborative")
    nearest, _ = bundle.models.collaborative.user_neighbours(service.catalog.user_index[USER], 50)
    nearest_ids = {int(service.catalog.user_ids[u]) for u in nearest}
    named = 0
    for item in out["items"]:
        evidence = item["reasons"][0]["evidence"]
        for neighbour in evidence["neighbours"]:
            assert neighbour["user_id"] in nearest_ids
            assert (
                user_history(service, neighbour["user_id"])[item["item_id"]] == neighbour["rating"]
            )
            assert neighbour["rating"] >= 4
            named += 1
        liked = {u for u in nearest_ids if user_history(service, u).get(item["item_id"], 0) >= 4}
        assert {n["user_id"] for n in evidence["neighbours"]} == liked  # every one who liked it
        if evidence["neighbours"]:
            assert item["explanation"].startswith(f"{len(evidence['neighbours'])} of the 50 users")
        assert evidence["searched"] is None  # every user: fewer than NEIGHBOUR_POOL
    assert named > 0


def test_neighbours_are_searched_among_the_most_active_users(bundle, monkeypatch) -> None:
    """At ML-25M sizes the search covers the NEIGHBOUR_POOL most active users, and says so."""
    monkeypatch.setattr(explain, "NEIGHBOUR_POOL", 100)
    small = Recommender(bundle, cache_size=0)
    activity = np.diff(small.catalog.h_start)
    active = set(small.catalog.user_ids[np.argsort(-activity, kind="stable")[:100]].tolist())
    out = small.recommend(user_id=USER, k=10, model="collaborative")
    named = [n for item in out["items"] for n in item["reasons"][0]["evidence"]["neighbours"]]
    assert named and {n["user_id"] for n in named} <= active
    evidence = out["items"][0]["reasons"][0]["evidence"]
    assert evidence["searched"] == 100 and evidence["n_neighbours"] == 50
    if evidence["neighbours"]:
        assert "users most like you (of the 100 most active)" in out["items"][0]["explanation"]


def test_sequential_evidence_is_in_the_history(service: Recommender) -> None:
    out = service.recommend(user_id=USER, k=5)
    history = user_history(service, USER)
    for item in out["items"]:
        evidence = reason(item, "sequential")["evidence"]
        if evidence["item_id"] is None:
            assert evidence["log_prob_drop"] == 0
            continue
        assert evidence["item_id"] in history and evidence["log_prob_drop"] > 0
        assert reason(item, "sequential")["text"] == f"because you watched {evidence['title']}"


def test_sequential_reasons_are_the_occlusion_of_each_item(service: Recommender) -> None:
    """The served reason (scored in the Scorer's shared passes) is a standalone occlusion's."""
    out = service.recommend(user_id=USER, k=10, model="sequential", time_of_day="night")
    query = service._resolve(parse_request({"user_id": USER, "time_of_day": "night"}))
    top = [service.catalog.item_index[item["item_id"]] for item in out["items"]]
    expected = sequential_occlusion(service.models.sequential, service._request(query), top)
    named = [item["reasons"][0]["evidence"] for item in out["items"]]
    assert len({e["item_id"] for e in named}) > 1  # not one reason for every item
    for evidence, (because, drop) in zip(named, expected, strict=True):
        expected_id = None if because is None else int(service.catalog.item_ids[because])
        assert evidence["item_id"] == expected_id
        assert evidence["log_prob_drop"] == pytest.approx(drop, abs=1e-3)


def test_content_evidence_genres_are_the_items_and_the_users(service: Recommender, bundle) -> None:
    visitor = [1, 2355, 3114, 4886, 6377]  # Toy Story 1-3, Monsters Inc, Finding Nemo
    out = service.recommend(history=visitor, k=20, model="content")
    content = bundle.models.content
    taste = content.genre_profile([service.catalog.item_index[i] for i in visitor], [5.0] * 5)
    quoted = 0
    for item in out["items"]:
        for genre, delta in item["reasons"][0]["evidence"]["genres"].items():
            assert genre in item["genres"] and taste[genre] > 0 and delta > 0
            quoted += 1
    assert quoted > 0
    # the batched occlusion is ContentModel.genre_contributions' own number
    first = out["items"][0]
    direct = content.genre_contributions(
        [service.catalog.item_index[i] for i in visitor],
        [5.0] * 5,
        service.catalog.item_index[first["item_id"]],
    )
    for genre, delta in first["reasons"][0]["evidence"]["genres"].items():
        assert delta == pytest.approx(direct[genre], abs=1e-3)


def test_context_lift_is_quoted_only_with_support() -> None:
    quoted = reasons.popularity_reason(2.14, 12, 50, "evening", "tv")
    assert quoted["text"] == "2.1x more popular in the evening on TV (device simulated)"
    assert reasons.popularity_reason(3.0, 4, 50, "evening", None)["text"].startswith("widely")
    assert reasons.popularity_reason(1.05, 99, 50, "evening", None)["text"].startswith("widely")


def test_exclude_seen_and_genre_filter(service: Recommender) -> None:
    seen = set(user_history(service, USER))
    out = service.recommend(user_id=USER, k=50, genres=["Horror"], cache=False)
    assert out["items"] and all("Horror" in i["genres"] for i in out["items"])
    assert not seen & {i["item_id"] for i in out["items"]}
    both = service.recommend(user_id=USER, k=30, genres="Animation,Western", exclude_seen=False)
    assert all({"Animation", "Western"} & set(i["genres"]) for i in both["items"])


def test_recommendations_are_deterministic(service: Recommender) -> None:
    first = service.recommend(user_id=7, time_of_day="night", device="mobile", cache=False)
    again = service.recommend(user_id=7, time_of_day="night", device="mobile", cache=False)
    assert first == again


def test_visitors_get_every_model_and_move_toward_their_genres(service: Recommender) -> None:
    kids = [1, 2355, 3114, 4886, 6377, 588, 364]  # Pixar and Disney animation
    horror = [1258, 1387, 1997, 2710, 1350, 1974, 1982]  # Shining, Jaws, Exorcist, ...

    def animation_share(history: list[int], model: str) -> float:
        out = service.recommend(history=history, k=20, model=model)
        assert out["user_id"] is None and out["fallback"] is None and len(out["items"]) == 20
        return np.mean(["Animation" in i["genres"] for i in out["items"]])

    for model in ("collaborative", "content", "sequential", "popularity"):
        animation_share(kids, model)
    assert animation_share(kids, "hybrid") > animation_share(horror, "hybrid")
    assert animation_share(kids, "content") > animation_share(horror, "content")
    rated = service.recommend(history=[1, 1258], ratings={"1": 5, 1258: 1}, k=5)
    assert rated["items"]


def test_empty_history_falls_back_to_context_popularity(service: Recommender) -> None:
    out = service.recommend(history=[], time_of_day="evening", device="tv", k=5)
    assert out["fallback"] == "popularity"
    assert out["items"][0]["explanation"] == (
        "popular in the evening on TV (device simulated) — we don't know your taste yet"
    )
    anonymous = service.recommend(k=3)
    assert anonymous["fallback"] == "popularity"
    assert "popular right now" in anonymous["items"][0]["explanation"]


def test_missing_model_degrades_the_hybrid(bundle) -> None:
    models = dataclasses.replace(bundle.models, content=None)
    degraded = Recommender(dataclasses.replace(bundle, models=models, hybrid_no_context=None))
    health = degraded.health()
    assert health["status"] == "degraded"
    assert set(health["degraded"]) == {"content", "hybrid_no_context"}
    out = degraded.recommend(user_id=USER, k=5)
    assert len(out["items"]) == 5
    assert set(out["items"][0]["contributions"]) == {"collaborative", "sequential", "popularity"}
    assert sum(r["weight"] for r in out["items"][0]["reasons"]) == pytest.approx(1, abs=1e-3)
    with pytest.raises(RecommenderError, match="not available"):
        degraded.recommend(user_id=USER, model="content")
    assert degraded.similar(1, k=3)["items"]


def test_a_popularity_only_bundle_still_answers_the_default_request(bundle) -> None:
    """The first start serves popularity alone: asking for the hybrid is no dead end."""
    only = dataclasses.replace(
        bundle,
        models=dataclasses.replace(
            bundle.models, collaborative=None, content=None, sequential=None
        ),
        hybrid=None,
        hybrid_no_context=None,
    )
    out = Recommender(only).recommend(user_id=USER, k=5)
    assert out["model"] == "popularity" and out["fallback"] == "popularity"
    assert len(out["items"]) == 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"user_id": 99999}, "Unknown user 99999: user ids run from 1 to 610"),
        ({"user_id": "abc"}, "user_id: Input should be a valid integer"),
        ({"history": [1, 10**9]}, "Unknown movie 1000000000"),
        ({"user_id": 1, "k": 0}, "k: Input should be greater than or equal to 1"),
        ({"user_id": 1, "k": 101}, "k: Input should be less than or equal to 100"),
        (
            {"user_id": 1, "k": 2.5},
            "k: Input should be a valid integer, got a number with a fractional part",
        ),
        (
            {"user_id": 1, "time_of_day": "noon"},
            "time_of_day: Input should be 'morning', 'afternoon', 'evening' or 'night' (got 'noon'",
        ),
        ({"user_id": 1, "device": "car"}, "device: Input should be 'mobile', 'tablet'"),
        ({"user_id": 1, "model": "magic"}, "model: Input should be 'hybrid', 'hybrid_no_context'"),
        ({"user_id": 1, "genres": ["Cartoons"]}, "Unknown genre 'Cartoons'"),
        ({"history": [1], "ratings": {1: 9}}, "outside this data set's range 0.5 to 5"),
        ({"history": [1], "ratings": {2: 4}}, "not in history"),
        ({"user_id": 1, "history": [1]}, "either user_id"),
    ],
)
def test_invalid_arguments_raise_one_helpful_error(
    service: Recommender, kwargs: dict, message: str
) -> None:
    with pytest.raises(RecommenderError, match=message.replace("(", r"\(")) as error:
        service.recommend(**kwargs)
    assert isinstance(error.value, ValueError)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.similar(10**9),
        lambda s: s.similar(1, k=0),
        lambda s: s.history(0),
        lambda s: s.preferences(99999),
        lambda s: s.users(limit=0),
        lambda s: s.movies(genre="Nope"),
    ],
)
def test_other_methods_validate_too(service: Recommender, call) -> None:
    with pytest.raises(RecommenderError):
        call(service)


def test_cache_hits_are_equal_fast_and_safe_copies(service: Recommender) -> None:
    service.clear_cache()
    start = time.perf_counter()
    first = service.recommend(user_id=3, time_of_day="morning", device="desktop")
    miss = time.perf_counter() - start
    start = time.perf_counter()
    second = service.recommend(user_id=3, time_of_day="morning", device="desktop")
    hit = time.perf_counter() - start
    assert first == second and hit < miss and service.cache_hits == 1
    second["items"].clear()
    assert service.recommend(user_id=3, time_of_day="morning", device="desktop") == first
    other = service.recommend(user_id=3, time_of_day="morning", device="tablet")
    assert other["context"]["device"] == "tablet" and service.cache_hits == 2


def test_movie_search_folds_case_and_accents(service: Recommender) -> None:
    found = service.movies("d'amelie POULAIN")  # the title has "d'Amélie Poulain"
    assert [m["item_id"] for m in found["movies"]] == [4973]
    assert service.movies("AMÉLIE")["movies"] == service.movies("amelie")["movies"]
    animated = service.movies(genre="animation", limit=5, offset=5)
    assert len(animated["movies"]) == 5 and animated["total"] > 100
    assert all("Animation" in m["genres"] for m in animated["movies"])


def test_similar_history_preferences_users_genres(service: Recommender) -> None:
    similar = service.similar(1, k=5)
    assert similar["model"] == "collaborative" and len(similar["items"]) == 5
    assert all(i["item_id"] != 1 and i["explanation"] for i in similar["items"])
    history = service.history(USER, limit=3)["items"]
    assert [h["timestamp"] for h in history] == sorted(
        (h["timestamp"] for h in history), reverse=True
    )
    assert history[0]["time_of_day"] in ("morning", "afternoon", "evening", "night")
    prefs = service.preferences(USER)["genres"]
    assert sum(p["share"] for p in prefs) == pytest.approx(1, abs=1e-3)
    users = service.users(limit=5, offset=10)
    assert users["total"] == 610 and [u["user_id"] for u in users["users"]] == list(range(11, 16))
    assert "Horror" in service.genres()["genres"]
    assert service.health()["status"] == "ok"
    assert service.ab_results()["offline"] == {}


def test_a_saved_bundle_serves_the_same_answers(service: Recommender, bundle, tmp_path) -> None:
    from contextflix.bundle import export_bundle

    loaded = Recommender.from_bundle(export_bundle(bundle, tmp_path / "bundle"))
    ask = {"user_id": USER, "time_of_day": "afternoon", "device": "mobile", "k": 5}
    assert loaded.recommend(**ask) == service.recommend(**ask)
    assert loaded.health()["bundle"] == "quick-ml-latest-small"


def test_a_batch_scores_and_explains_like_lone_requests(service: Recommender) -> None:
    """Batched requests share passes (up to MAX_ROWS rows, explanations per chunk), a lone
    request's passes are padded: the answers are the same."""
    contexts = [("evening", "tv"), ("morning", None), (None, "mobile"), (None, None)]
    users = {"hybrid": range(1, 71), "hybrid_no_context": range(1, 15), "sequential": range(1, 15)}
    asks = [
        {"user_id": user, "model": model, "time_of_day": tod, "device": dev, "k": 10}
        for model, members in users.items()
        for user in members
        for tod, dev in contexts[user % 4 : user % 4 + 1]
    ]
    asks += [{"history": [1, 2355, 3114, 4886, 6377], "model": "hybrid", "device": "tv"}]
    answers = service.recommend_batch(asks, cache=False)
    assert sum(ask["model"] == "hybrid" for ask in asks) > CHUNK  # two chunks of one model
    for ask, answer in zip(asks, answers, strict=True):
        assert service.recommend(cache=False, **ask) == answer


def test_an_answer_is_computed_on_one_thread(service: Recommender, monkeypatch) -> None:
    """Explanations too: their small products, split over threads of a busy machine, made an
    answer ten times slower; the caller's thread setting is restored after."""
    seen = []
    explain_on = service.explainer.explain

    def recording(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return explain_on(*args, **kwargs)

    monkeypatch.setattr(service.explainer, "explain", recording)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        service.recommend(user_id=USER, cache=False)
        service.recommend_batch([{"user_id": USER}, {"history": [1, 2355]}], cache=False)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert seen and set(seen) == {1}
