"""The API as programs use it, on a started app: CORS, HTTP caching, the version header,
OpenAPI examples, batch calls, MCP tools and the README's own snippets."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from contextflix.web.api import GRADIO_ENDPOINTS
from contextflix.web.middleware import CACHED_ROUTES, ApiCors, HttpCaching

README = Path(__file__).resolve().parents[1] / "README.md"
CACHED_CALLS = {
    "/api/movies": {"query": "matrix"},
    "/api/movie_genres": {},
    "/api/similar_movies": {"item_id": 1, "k": 3},
    "/api/user_history": {"user_id": 1, "limit": 3},
    "/api/user_preferences": {"user_id": 1},
    "/api/users": {"limit": 3},
}


@pytest.fixture(scope="module")
def http(app_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app_url, timeout=60) as session:
        yield session


# --- CORS --------------------------------------------------------------------------------


def test_any_origin_may_read_the_api(http: httpx.Client) -> None:
    response = http.get("/api/recommend", params={"user_id": 1, "k": 2},
                        headers={"origin": "https://example.org"})  # fmt: skip
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers
    assert "x-api-version" in response.headers["access-control-expose-headers"].lower()


def test_a_preflight_is_answered(http: httpx.Client) -> None:
    response = http.options(
        "/api/recommend_batch",
        headers={
            "origin": "https://example.org",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "content-type" in response.headers["access-control-allow-headers"].lower()


def test_an_explicit_origin_list_admits_only_those() -> None:
    app = Starlette(routes=[Route("/api/x", lambda request: JSONResponse({"ok": True}))])
    client = TestClient(ApiCors(app, origins=["https://friend.example"]))
    friend = client.get("/api/x", headers={"origin": "https://friend.example"})
    assert friend.headers["access-control-allow-origin"] == "https://friend.example"
    stranger = client.get("/api/x", headers={"origin": "https://stranger.example"})
    assert "access-control-allow-origin" not in stranger.headers
    preflight = client.options("/api/x", headers={"origin": "https://stranger.example",
                                                  "access-control-request-method": "GET"})  # fmt: skip
    assert preflight.status_code == 400


# --- HTTP caching and the version header ------------------------------------------------


@pytest.mark.parametrize("path", sorted(CACHED_ROUTES))
def test_bundle_only_answers_carry_an_etag_and_revalidate(http: httpx.Client, path: str) -> None:
    first = http.get(path, params=CACHED_CALLS[path])
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert "max-age" in first.headers["cache-control"]
    again = http.get(path, params=CACHED_CALLS[path], headers={"if-none-match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    other = http.get(path, params={**CACHED_CALLS[path], "limit": 4})
    assert other.status_code != 200 or other.headers["etag"] != etag or path.endswith("genres")


def test_recommendations_are_not_stored(http: httpx.Client) -> None:
    for response in (
        http.get("/api/recommend", params={"user_id": 1, "k": 2}),
        http.post("/api/recommend", json={"history": [1], "k": 2}),
        http.get("/api/ab_test_results"),
        http.get("/api/users", params={"limit": -1}),  # an error is never cached
    ):
        assert response.headers["cache-control"] == "no-store"
        assert "etag" not in response.headers


def test_a_new_bundle_changes_every_etag() -> None:
    identity = ["bundle-1"]
    app = Starlette(routes=[Route("/api/movies", lambda request: JSONResponse({"movies": []}))])
    client = TestClient(HttpCaching(app, bundle_identity=lambda: identity[0]))
    before = client.get("/api/movies").headers["etag"]
    assert client.get("/api/movies", headers={"if-none-match": before}).status_code == 304
    identity[0] = "bundle-2"
    after = client.get("/api/movies", headers={"if-none-match": before})
    assert after.status_code == 200 and after.headers["etag"] != before


@pytest.mark.parametrize(
    "path", ["/", "/api/health", "/api/nothing", "/gradio_api/info", "/api/openapi.json"]
)
def test_every_answer_states_the_api_version(http: httpx.Client, path: str) -> None:
    assert http.get(path).headers["x-api-version"] == "1"


def test_openapi_has_an_example_for_every_route(http: httpx.Client) -> None:
    paths = http.get("/api/openapi.json").json()["paths"]
    assert set(paths) >= {f"/api/{name}" for name in GRADIO_ENDPOINTS}
    for path, operations in paths.items():
        for method, operation in operations.items():
            text = str(operation)
            assert "'example'" in text or "'examples'" in text, f"{method.upper()} {path}"


# --- batch -------------------------------------------------------------------------------


def test_a_batch_answers_like_single_calls(http: httpx.Client, app_url: str) -> None:
    requests = [
        {"user_id": 1, "time_of_day": "evening", "device": "tv", "k": 5},
        {"history": [1, 260, 1196], "ratings": {"1": 4.5}, "time_of_day": "night", "k": 4},
        {"user_id": 999_999},
        {"user_id": 2, "model": "popularity", "k": 3},
        {"user_id": 3, "k": "ten"},
        {"time_of_day": "morning", "k": 2},
    ]
    batch = http.post("/api/recommend_batch", json={"requests": requests})
    assert batch.status_code == 200
    results = batch.json()["results"]
    assert len(results) == len(requests)
    for request, result in zip(requests, results, strict=True):
        single = http.post("/api/recommend", json=request)
        if single.status_code == 200:
            assert result == single.json()
        else:
            assert set(result) == {"error"} and result["error"]
    from gradio_client import Client

    via_gradio = Client(app_url, verbose=False).predict(
        requests=requests, api_name="/recommend_batch"
    )
    assert via_gradio == batch.json()


def test_a_large_batch_is_shared_with_a_helper_and_answers_like_single_calls(
    http: httpx.Client,
) -> None:
    """From 8 requests on, a helper process answers a share (configs/app.yaml)."""
    start = [{"user_id": user, "time_of_day": "evening", "k": 3} for user in range(10, 22)]
    http.post("/api/recommend_batch", json={"requests": start}).raise_for_status()
    deadline = time.monotonic() + 120
    while http.get("/api/health").json()["batch_helpers"] != "ready":
        assert time.monotonic() < deadline, "the batch helper did not start"
        time.sleep(0.2)
    asks = [{"user_id": user, "time_of_day": "night", "k": 3} for user in range(30, 42)]
    results = http.post("/api/recommend_batch", json={"requests": asks}).json()["results"]
    assert results == [http.post("/api/recommend", json=ask).json() for ask in asks]


# --- MCP -----------------------------------------------------------------------------------


def test_mcp_client_lists_the_tools_and_calls_recommend(app_url: str) -> None:
    pytest.importorskip("mcp")
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async def session_calls() -> tuple[list, object]:
        async with (
            streamablehttp_client(f"{app_url}/gradio_api/mcp/") as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            tools = (await session.list_tools()).tools
            answer = await session.call_tool(
                "recommend", {"user_id": 1, "k": 3, "time_of_day": "evening"}
            )
            return tools, answer

    tools, answer = asyncio.run(session_calls())
    by_name = {tool.name: tool for tool in tools}
    assert set(by_name) == set(GRADIO_ENDPOINTS)  # the page's own callbacks are not tools
    recommend = by_name["recommend"]
    assert "recommendations" in recommend.description
    properties = recommend.inputSchema["properties"]
    assert properties["user_id"]["description"].startswith("a MovieLens user id")
    assert "evening" in str(properties["time_of_day"])
    assert "similar" in by_name["similar_movies"].description.lower()
    assert not answer.isError
    assert "'items'" in answer.content[0].text and "'rank': 3" in answer.content[0].text


# --- the README ----------------------------------------------------------------------------


def api_snippets(kind: str) -> list[str]:
    """The README API section's code blocks of one language."""
    text = README.read_text()
    section = text[text.index("### The API") : text.index("\n## ", text.index("### The API"))]
    return re.findall(rf"```{kind}\n(.*?)```", section, flags=re.S)


def test_the_readme_curl_snippets_run(app_url: str) -> None:
    (script,) = api_snippets("bash")
    script = script.replace("URL=http://localhost:7860", f"URL={app_url}")
    lines = [line for line in script.replace("\\\n", " ").splitlines() if line.startswith("curl")]
    for line in lines:
        out = subprocess.run(
            ["bash", "-c", script.splitlines()[0] + "\n" + line.replace("curl ", "curl -sS --fail-with-body ", 1)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert out.returncode == 0, (line, out.stdout[-500:], out.stderr[-500:])
        assert out.stdout.startswith("{") and '"error"' not in out.stdout[:20], line


def test_the_readme_python_snippets_run(app_url: str) -> None:
    snippets = api_snippets("python")
    assert len(snippets) == 3
    for code in snippets:
        code = code.replace("http://localhost:7860", app_url)
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert out.returncode == 0, (code[:200], out.stderr[-1500:])
