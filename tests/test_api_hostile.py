"""The served app against a hostile client: size limits, one error shape everywhere, short
error messages, Gradio type discipline, and an event log that a client cannot fill."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client  # noqa: E402


@pytest.fixture(scope="module")
def http(app_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app_url, timeout=60) as session:
        yield session


@pytest.fixture(scope="module")
def client(app_url: str) -> Client:
    return Client(app_url, verbose=False)


def is_error(response: httpx.Response) -> str:
    """The message of a well-formed error answer (fails the test otherwise)."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:200])
    assert response.headers["x-api-version"]
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in body["error"] and "object at 0x" not in body["error"]
    return body["error"]


def gradio_call(url: str, name: str, data: list) -> str:
    """One raw call of a Gradio endpoint over HTTP; returns the event stream's text."""
    posted = httpx.post(f"{url}/gradio_api/call/{name}", json={"data": data}, timeout=60)
    posted.raise_for_status()
    event = posted.json()["event_id"]
    return httpx.get(f"{url}/gradio_api/call/{name}/{event}", timeout=60).text


# --- size limits -------------------------------------------------------------------------


def test_an_oversized_body_is_refused_before_it_is_read(http: httpx.Client) -> None:
    body = b"[" + b"1," * 2_500_000 + b"1]"  # 5 MB
    start = time.perf_counter()
    response = http.post(
        "/api/recommend", content=body, headers={"content-type": "application/json"}
    )
    elapsed = time.perf_counter() - start
    assert response.status_code == 413 and "too large" in is_error_413(response)
    assert elapsed < 1.0


def test_an_oversized_chunked_body_is_refused(http: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the server must count
        yield b'{"history": ['
        for _ in range(500):
            yield b"1," * 5000
        yield b"1]}"

    start = time.perf_counter()
    response = http.post(
        "/api/recommend", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413 and "too large" in is_error_413(response)
    assert time.perf_counter() - start < 2.0


def is_error_413(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}
    return body["error"]


def test_a_long_search_query_is_refused_at_once(http: httpx.Client) -> None:
    start = time.perf_counter()
    message = is_error(http.get("/api/movies", params={"query": "matrix " * 1500}))
    assert "query" in message and time.perf_counter() - start < 1.0


# --- one error shape ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/no/such/page", {}, 404),
        ("GET", "/api/no_such_route", {}, 404),
        ("DELETE", "/api/recommend", {}, 405),
        ("GET", "/gradio_api/queue/join", {}, 405),
        ("POST", "/api/recommend", {"content": b"[" * 100_000 + b"]" * 100_000}, 400),
        ("POST", "/api/recommend", {"content": b'{"model": "\xff\xfe"}'}, 400),
        ("POST", "/api/recommend", {"content": b"{broken"}, 422),
        ("POST", "/api/recommend", {"json": {"userid": 1}}, 422),
        ("POST", "/api/recommend_batch", {"json": {"requests": [{}] * 101}}, 422),
    ],
)
def test_every_failure_answers_one_shape(
    http: httpx.Client, method: str, path: str, kwargs: dict, status: int
) -> None:
    headers = {"content-type": "application/json"}
    response = http.request(method, path, headers=headers, **kwargs)
    assert response.status_code == status
    is_error(response)
    if status == 405 and path.startswith("/api/"):
        assert response.headers["allow"] == "GET, POST"


def test_a_bad_megabyte_value_gets_a_short_error(http: httpx.Client, app_url: str) -> None:
    huge = "x" * 1_000_000
    response = http.post("/api/recommend", json={"history": [1], "model": huge})
    assert response.status_code == 422 and len(response.content) < 1000
    assert "model" in is_error(response)
    under_gradio_limit = "x" * 30_000
    answer = gradio_call(
        app_url, "recommend", [None, [1], None, None, None, 5, None, True, under_gradio_limit]
    )
    assert len(answer) < 1000 and "model" in answer


def test_no_object_addresses_in_config_or_argument_errors(http: httpx.Client, app_url: str) -> None:
    assert "object at 0x" not in http.get("/config").text
    answer = gradio_call(app_url, "recommend", [1])
    assert "takes 9 values" in answer and "object at 0x" not in answer


# --- the same types through Gradio as through REST ----------------------------------------


def test_gradio_reads_false_as_false(client: Client, http: httpx.Client) -> None:
    params = {"user_id": 1, "k": 5, "time_of_day": "evening"}
    rest = http.get("/api/recommend", params={**params, "exclude_seen": "false"}).json()
    seen = {
        item["item_id"]
        for item in http.get("/api/user_history", params={"user_id": 1, "limit": 1000}).json()[
            "items"
        ]
    }
    via_gradio = client.predict(**params, exclude_seen="false", api_name="/recommend")
    assert via_gradio == rest
    assert via_gradio != client.predict(**params, exclude_seen=True, api_name="/recommend")
    assert seen & {item["item_id"] for item in rest["items"]} or rest["items"]


@pytest.mark.parametrize(
    ("params", "endpoint", "words"),
    [
        ({"user_id": 1, "genres": 5}, "/recommend", ("genres", "string")),
        ({"query": 5}, "/movies", ("query", "string")),
        ({"user_id": 1, "k": "ten"}, "/recommend", ("k", "integer")),
        ({"history": [1, "two"]}, "/recommend", ("history.1", "integer")),
        ({"user_id": 1, "exclude_seen": "maybe"}, "/recommend", ("exclude_seen", "boolean")),
    ],
)
def test_gradio_refuses_wrong_types_with_a_message(
    client: Client, params: dict, endpoint: str, words: tuple[str, ...]
) -> None:
    with pytest.raises(Exception) as caught:
        client.predict(**params, api_name=endpoint)
    text = str(caught.value)
    assert all(word in text for word in words), text
    assert "Something went wrong" not in text


@pytest.mark.parametrize(
    ("name", "data", "field"),
    [
        ("recommend", '[Infinity, null, null, null, null, 5, null, true, "hybrid"]', "user_id"),
        ("similar_movies", "[NaN, 5]", "item_id"),
        (
            "recommend",
            '[null, [1], {"1": Infinity}, null, null, 5, null, true, "hybrid"]',
            "ratings",
        ),
    ],
)
def test_gradio_refuses_non_finite_numbers(app_url: str, name: str, data: str, field: str) -> None:
    """JSON has no Infinity, but Python's parser (and so Gradio's) accepts it."""
    posted = httpx.post(
        f"{app_url}/gradio_api/call/{name}",
        content=f'{{"data": {data}}}'.encode(),
        headers={"content-type": "application/json"},
    )
    event = posted.json()["event_id"]
    answer = httpx.get(f"{app_url}/gradio_api/call/{name}/{event}", timeout=60).text
    assert "event: error" in answer and field in answer and "finite" in answer, answer


def test_a_posted_user_id_is_used_not_ignored(http: httpx.Client) -> None:
    posted = http.post("/api/recommend", json={"user_id": 1, "k": 3, "time_of_day": "night"})
    got = http.get("/api/recommend", params={"user_id": 1, "k": 3, "time_of_day": "night"})
    assert posted.status_code == 200 and posted.json() == got.json()
    assert posted.json()["user_id"] == 1


# --- the event log ---------------------------------------------------------------------------


def test_a_megabyte_session_hash_does_not_grow_the_event_log(own_app: tuple[str, Path]) -> None:
    """A scripted page load (the UI's init call, as the browser makes it) with a 1 MB session
    hash is refused (413: Gradio's body limit); with a 30 KB one, rows carry the server-issued
    32-character visitor id, so the log grows by a few KB (page views), not by megabytes."""
    url, app_dir = own_app
    with httpx.Client(base_url=url, timeout=60) as http:
        http.get("/")  # the server issues the visitor cookie
        assert http.cookies.get("cf_visitor")
        config = http.get("/config").json()
        init = next(d for d in config["dependencies"] if d.get("api_name") == "init")
        values = {c["id"]: c.get("props", {}).get("value") for c in config["components"]}
        data = [values.get(i) for i in init["inputs"]]
        database = app_dir / "events.sqlite"
        before = database.stat().st_size
        for attempt, length, status in ((0, 1_000_000, 413), (1, 30_000, 200), (2, 30_000, 200)):
            joined = http.post(
                "/gradio_api/queue/join",
                json={"data": data, "fn_index": init["id"], "session_hash": f"{attempt}" * length,
                      "event_data": None, "trigger_id": None},
            )  # fmt: skip
            assert joined.status_code == status, joined.text[:200]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _rows(database) == 0:
        time.sleep(0.5)
    time.sleep(2)
    assert _rows(database) > 0, "the page view was not logged at all"
    assert database.stat().st_size - before < 256 * 1024
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT max(length(visitor_id)) FROM events").fetchone()[0] <= 64


def _rows(database: Path) -> int:
    with sqlite3.connect(database) as db:
        return db.execute("SELECT count(*) FROM events").fetchone()[0]


def test_ab_results_report_discounted_visitors(http: httpx.Client) -> None:
    online = http.get("/api/ab_test_results").json()["online"]
    assert {"visitors", "reaction_before_impression", "click_burst", "refused_writes"} <= set(
        online["discounted"]
    )
    json.dumps(online)
