"""The served app end to end: ``python app.py`` on a free port with a demo bundle (real
ml-latest-small catalogue and histories, untrained models), then every Gradio endpoint through
gradio_client and every REST route through httpx, with good and bad input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client  # noqa: E402

from contextflix.web.context import device_from_user_agent, time_of_day_from_hour  # noqa: E402

ROUTES = (
    "health",
    "users",
    "movies",
    "recommend",
    "movie_genres",
    "user_history",
    "similar_movies",
    "user_preferences",
    "ab_test_results",
)
ITEM_KEYS = {"rank", "item_id", "title", "year", "genres", "score", "explanation", "reasons"}


@pytest.fixture(scope="session")
def client(app_url: str) -> Client:
    return Client(app_url, verbose=False)


@pytest.fixture(scope="session")
def http(app_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app_url, timeout=60) as session:
        yield session


# --- pure helpers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agent", "device"),
    [
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148", "mobile"),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 8) Chrome/120 Mobile Safari/537.36", "mobile"),
        ("Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X)", "tablet"),
        ("Mozilla/5.0 (Linux; Android 13; SM-X700) Chrome/120 Safari/537.36", "tablet"),
        ("Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) SamsungBrowser/4.0 TV Safari", "tv"),
        ("Mozilla/5.0 (X11; Linux x86_64) Chrome/120 Safari/537.36", "desktop"),
        ("", "desktop"),
        (None, "desktop"),
    ],
)
def test_device_from_user_agent(agent: str | None, device: str) -> None:
    assert device_from_user_agent(agent) == device


def test_time_of_day_buckets() -> None:
    got = [time_of_day_from_hour(h) for h in (4, 5, 11, 12, 16, 17, 21, 22, 0)]
    assert got == [
        "night",
        "morning",
        "morning",
        "afternoon",
        "afternoon",
        "evening",
        "evening",
        "night",
        "night",
    ]


# --- Gradio endpoints ------------------------------------------------------------------------


def test_every_endpoint_is_documented(client: Client) -> None:
    info = client.view_api(print_info=False, return_format="dict")
    named = set(info["named_endpoints"])
    assert {f"/{name}" for name in ROUTES} <= named


def test_gradio_recommend_user(client: Client) -> None:
    out = client.predict(user_id=1, time_of_day="evening", device="tv", k=5, api_name="/recommend")
    assert out["user_id"] == 1
    assert out["context"]["time_of_day"] == "evening" and out["context"]["device"] == "tv"
    assert len(out["items"]) == 5
    assert set(out["items"][0]) >= ITEM_KEYS
    assert [it["rank"] for it in out["items"]] == [1, 2, 3, 4, 5]
    assert all(
        {"source", "text", "weight", "evidence"} <= set(r) for r in out["items"][0]["reasons"]
    )


def test_gradio_recommend_new_visitor(client: Client) -> None:
    out = client.predict(
        history=[1, 260, 1196], ratings={"1": 4.5}, time_of_day="night", k=3, api_name="/recommend"
    )
    assert len(out["items"]) == 3
    assert not {1, 260, 1196} & {it["item_id"] for it in out["items"]}


def test_gradio_endpoints_match_rest(client: Client, http: httpx.Client) -> None:
    calls = {
        "health": {},
        "users": {"limit": 3},
        "movies": {"query": "matrix", "limit": 3},
        "movie_genres": {},
        "user_history": {"user_id": 1, "limit": 3},
        "similar_movies": {"item_id": 1, "k": 3},
        "user_preferences": {"user_id": 1},
        "recommend": {"user_id": 2, "time_of_day": "morning", "device": "mobile", "k": 4},
    }
    for name, params in calls.items():
        via_gradio = client.predict(**params, api_name=f"/{name}")
        via_rest = http.get(f"/api/{name}", params=params).json()
        assert via_gradio == via_rest, name


def test_gradio_shapes(client: Client) -> None:
    users = client.predict(limit=5, api_name="/users")
    assert len(users["users"]) == 5 and users["total"] == 610
    movies = client.predict(query="toy story", api_name="/movies")
    assert any(m["item_id"] == 1 for m in movies["movies"])
    assert "Comedy" in client.predict(api_name="/movie_genres")["genres"]
    history = client.predict(user_id=1, limit=2, api_name="/user_history")["items"]
    assert {"item_id", "title", "rating", "timestamp", "time_of_day", "device"} <= set(history[0])
    similar = client.predict(item_id=1, k=2, api_name="/similar_movies")["items"]
    assert {"item_id", "title", "similarity", "explanation"} <= set(similar[0])
    prefs = client.predict(user_id=1, api_name="/user_preferences")["genres"]
    assert {"genre", "share", "count", "mean_rating"} <= set(prefs[0])
    ab = client.predict(api_name="/ab_test_results")
    assert set(ab) == {"offline", "online"} and {"A", "B", "difference"} <= set(ab["online"])


@pytest.mark.parametrize(
    ("params", "endpoint", "message"),
    [
        ({"user_id": 999_999}, "/recommend", "Unknown user"),
        ({"user_id": 1, "time_of_day": "brunch"}, "/recommend", "time_of_day"),
        ({"user_id": 1, "device": "fridge"}, "/recommend", "device"),
        ({"user_id": 1, "k": 0}, "/recommend", "k"),
        ({"user_id": 1, "model": "magic"}, "/recommend", "model"),
        ({"user_id": 1, "history": [1]}, "/recommend", "either"),
        ({"history": [-5]}, "/recommend", "-5"),
        ({"item_id": -1}, "/similar_movies", "-1"),
        ({"user_id": 0}, "/user_history", "Unknown user"),
        ({"user_id": 0}, "/user_preferences", "Unknown user"),
        ({"limit": 0}, "/users", "limit"),
        ({"genre": "Polka"}, "/movies", "genre"),
    ],
)
def test_gradio_bad_input_is_a_message(
    client: Client, params: dict, endpoint: str, message: str
) -> None:
    with pytest.raises(Exception) as caught:
        client.predict(**params, api_name=endpoint)
    text = str(caught.value)
    assert message.lower() in text.lower()
    assert "Traceback" not in text


# --- REST ------------------------------------------------------------------------------------


def test_openapi_lists_every_route(http: httpx.Client) -> None:
    schema = http.get("/api/openapi.json").json()
    paths = schema["paths"]
    for name in ROUTES:
        assert f"/api/{name}" in paths and "get" in paths[f"/api/{name}"], name
    assert "post" in paths["/api/recommend"]
    assert http.get("/api/docs").status_code == 200


def test_rest_recommend_get_and_post(http: httpx.Client) -> None:
    got = http.get("/api/recommend", params={"user_id": 1, "k": 3, "time_of_day": "evening"})
    assert got.status_code == 200 and len(got.json()["items"]) == 3
    posted = http.post(
        "/api/recommend",
        json={
            "history": [1, 260],
            "ratings": {"1": 5},
            "time_of_day": "night",
            "device": "tv",
            "k": 4,
        },
    )
    assert posted.status_code == 200
    body = posted.json()
    assert body["context"] == {**body["context"], "time_of_day": "night", "device": "tv"}
    assert len(body["items"]) == 4 and set(body["items"][0]) >= ITEM_KEYS
    popular = http.get("/api/recommend", params={"k": 2})  # nobody: context-aware popularity
    assert popular.status_code == 200 and len(popular.json()["items"]) == 2


def test_rest_context_changes_the_ranking(http: httpx.Client) -> None:
    def top(tod: str, device: str) -> list[int]:
        params = {"user_id": 5, "k": 10, "time_of_day": tod, "device": device}
        return [it["item_id"] for it in http.get("/api/recommend", params=params).json()["items"]]

    assert top("morning", "mobile") != top("night", "tv")


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/api/recommend", {"params": {"user_id": "abc"}}),
        ("GET", "/api/recommend", {"params": {"user_id": 999_999}}),
        ("GET", "/api/recommend", {"params": {"user_id": 1, "device": "fridge"}}),
        ("GET", "/api/recommend", {"params": {"user_id": 1, "k": 1000}}),
        ("POST", "/api/recommend", {"json": {"history": "not a list"}}),
        ("POST", "/api/recommend", {"json": {"history": [1], "ratings": {"2": 4}}}),
        (
            "POST",
            "/api/recommend",
            {"content": b"{broken", "headers": {"content-type": "application/json"}},
        ),
        ("GET", "/api/user_history", {"params": {}}),
        ("GET", "/api/user_history", {"params": {"user_id": 0}}),
        ("GET", "/api/similar_movies", {"params": {"item_id": 10**9}}),
        ("GET", "/api/user_preferences", {"params": {"user_id": -3}}),
        ("GET", "/api/users", {"params": {"limit": -1}}),
        ("GET", "/api/movies", {"params": {"genre": "Polka"}}),
    ],
)
def test_rest_bad_input_is_4xx_json(
    http: httpx.Client, method: str, path: str, kwargs: dict
) -> None:
    response = http.request(method, path, **kwargs)
    assert 400 <= response.status_code < 500, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]
    assert "Traceback" not in body["error"]


def test_rest_pages(http: httpx.Client) -> None:
    users = http.get("/api/users", params={"limit": 2, "offset": 3}).json()
    assert [u["user_id"] for u in users["users"]] == [4, 5]
    movies = http.get("/api/movies", params={"genre": "Animation", "limit": 5}).json()
    assert len(movies["movies"]) == 5 and all("Animation" in m["genres"] for m in movies["movies"])
    assert http.get("/api/health").json()["status"] in ("ok", "degraded")


def test_page_is_served(http: httpx.Client) -> None:
    page = http.get("/")
    assert page.status_code == 200 and "ContextFlix" in page.text


def test_event_log_feeds_ab_results(tmp_path: Path) -> None:
    from contextflix.web.events import EventLog

    log = EventLog(tmp_path / "events.sqlite")
    log.record("impression", "A", "v1", [(1, 1), (2, 2)], "evening", "tv")
    log.record("impression", "B", "v2", [(1, 1), (3, 2)], "evening", "tv")
    log.record("click", "B", "v2", [(3, 2)], "evening", "tv")
    assert log.record("click", "B", "v2", [(3, 2)], "brunch", "tv") == 0  # invalid: not logged
    online = log.summary()
    assert online["A"]["impressions"] == 2 and online["A"]["clicks"] == 0
    assert online["B"]["ctr"] == pytest.approx(0.5)
