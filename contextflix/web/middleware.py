"""The HTTP layer every request crosses before it reaches a route: pure ASGI middlewares.

Pure ASGI (not Starlette's ``BaseHTTPMiddleware``) so streams such as Gradio's server-sent
events pass through untouched, and so a body limit can refuse a request before any route or
parser has seen, let alone buffered, its body.

- ``BodyLimit``: at most ``max_bytes`` of request body, counted as it arrives (so a chunked
  body without Content-Length is caught too); 413 at once when Content-Length says more. Gradio's
  routes get a smaller limit: Gradio keeps each session's last inputs in memory.
- ``ErrorShape``: every 4xx/5xx answer, from any route, Gradio's included, becomes
  ``{"error": message}`` with the message cut to a short length; every answer carries the API
  version header.
- ``ApiCors``: CORS for the REST routes under ``/api/`` only (Gradio keeps its own rules).
- ``HttpCaching``: ETag and Cache-Control on the GETs whose answers depend only on the bundle;
  ``If-None-Match`` answered with 304 without calling the service.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection
from http import HTTPStatus
from typing import Any

from starlette.middleware.cors import CORSMiddleware

API_VERSION = "1"
VERSION_HEADER = b"x-api-version"
MAX_ERROR_CHARS = 300  # a message longer than this is cut: a bad value is never echoed whole
MAX_ERROR_BODY = 64 * 1024  # error bodies longer than this are not even parsed
CACHED_ROUTES = frozenset(
    f"/api/{name}"
    for name in (
        "movies",
        "movie_genres",
        "similar_movies",
        "user_history",
        "user_preferences",
        "users",
    )
)
NO_STORE = b"no-store"
BUNDLE_MAX_AGE = 3600  # seconds: bundle-only answers change only with a new bundle (new ETag)

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict], Any]


def short(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def send_json(send: Send, status: int, body: dict, headers: list | None = None) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers") or []:
        if key == name:
            return value
    return None


class BodyTooLarge(Exception):
    """Raised inside the app when a streamed body passes the limit (the answer is still 413)."""


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413 before any parsing; paths under a
    prefix of ``smaller`` get that prefix's (smaller) limit."""

    def __init__(self, app: Any, max_bytes: int, smaller: dict[str, int] | None = None) -> None:
        self.app, self.max_bytes, self.smaller = app, max_bytes, smaller or {}

    def _limit(self, path: str) -> int:
        for prefix, limit in self.smaller.items():
            if path.startswith(prefix):
                return min(limit, self.max_bytes)
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self._limit(scope.get("path", ""))
        message = {"error": f"request body too large: at most {max_bytes} bytes"}
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
            await send_json(send, 413, message, [(b"connection", b"close")])
            return
        received, started, exceeded = 0, False, False

        async def counting_receive() -> dict:
            nonlocal received, exceeded
            event = await receive()
            if event["type"] == "http.request":
                received += len(event.get("body", b""))
                if received > max_bytes:
                    exceeded = True
                    raise BodyTooLarge
            return event

        async def tracking_send(event: dict) -> None:
            nonlocal started
            if exceeded:  # whatever the app makes of the cut-off body, the answer is 413
                return
            started = started or event["type"] == "http.response.start"
            await send(event)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except Exception:
            if not exceeded:  # a real failure; BodyTooLarge, however wrapped, is answered below
                raise
        if exceeded and not started:
            await send_json(send, 413, message, [(b"connection", b"close")])


def _error_message(status: int, body: bytes, content_type: bytes) -> str:
    """The one message of an error answer, whatever shape the code that made it chose."""
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    if len(body) > MAX_ERROR_BODY:
        return phrase
    if b"json" in content_type:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            return phrase
        if isinstance(data, dict):
            value = data.get("error", data.get("detail"))
            if isinstance(value, str) and value:
                return value
            if isinstance(value, list):  # FastAPI / pydantic validation errors
                parts = [
                    str(item.get("msg") or item.get("message") or "")
                    for item in value
                    if isinstance(item, dict)
                ]
                return "; ".join(p for p in parts if p) or phrase
        return phrase
    if b"text/plain" in content_type:
        text = body.decode("utf-8", "replace").strip()
        return text or phrase
    return phrase


class ErrorShape:
    """One error shape for every route: ``{"error": message}``; plus the API version header.

    Error answers are small, so they are buffered, parsed once and rewritten; successful
    answers (pages, streams) pass through with only the version header added.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        version = (VERSION_HEADER, API_VERSION.encode())
        start: dict | None = None
        chunks: list[bytes] = []
        size = 0

        async def shaping_send(event: dict) -> None:
            nonlocal start, size
            if event["type"] == "http.response.start":
                if event["status"] < 400:
                    await send({**event, "headers": [*event.get("headers", []), version]})
                    return
                start = event
                return
            if start is None or event["type"] != "http.response.body":
                await send(event)
                return
            if size <= MAX_ERROR_BODY:
                chunks.append(event.get("body", b""))
                size += len(chunks[-1])
            if event.get("more_body"):
                return
            headers = [
                (k, v)
                for k, v in start.get("headers", [])
                if k not in (b"content-type", b"content-length")
            ]
            content_type = dict(start.get("headers", [])).get(b"content-type", b"")
            body = b"".join(chunks)
            message = _error_message(start["status"], body, content_type)
            await send_json(send, start["status"], {"error": short(message)}, [*headers, version])

        await self.app(scope, receive, shaping_send)


class ApiCors:
    """CORS for ``/api/`` (the REST routes; no cookies or credentials are ever needed there).

    ``origins`` ``["*"]`` (the default) lets any page read the answers; an explicit list allows
    only those origins. Preflights are answered by Starlette's ``CORSMiddleware``.
    """

    def __init__(self, app: Any, origins: Collection[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=list(origins),
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["content-type", "if-none-match"],
            allow_credentials=False,
            expose_headers=["etag", "x-api-version"],
            max_age=3600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path", "").startswith("/api/"):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


class HttpCaching:
    """ETag + Cache-Control on bundle-only GETs; ``no-store`` on every other REST answer.

    The ETag hashes the bundle's identity, the API version, the path and the query string, so
    it is known before the service runs (a matching ``If-None-Match`` costs nothing) and a new
    bundle invalidates every cached answer. ``bundle_identity`` is called per request because
    the app may swap its bundle while running.
    """

    def __init__(self, app: Any, bundle_identity: Callable[[], str]) -> None:
        self.app, self.bundle_identity = app, bundle_identity

    def _etag(self, scope: Scope) -> bytes:
        digest = hashlib.sha256(
            b"\0".join(
                [
                    self.bundle_identity().encode(),
                    API_VERSION.encode(),
                    scope["path"].encode(),
                    scope.get("query_string", b""),
                ]
            )
        ).hexdigest()[:32]
        return f'"{digest}"'.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith("/api/") or path in ("/api/docs", "/api/openapi.json"):
            await self.app(scope, receive, send)
            return
        cacheable = scope["method"] in ("GET", "HEAD") and path in CACHED_ROUTES
        headers = [(b"cache-control", NO_STORE)]
        if cacheable:
            etag = self._etag(scope)
            headers = [
                (b"etag", etag),
                (b"cache-control", f"public, max-age={BUNDLE_MAX_AGE}".encode()),
            ]
            wanted = _header(scope, b"if-none-match") or b""
            if etag in [tag.strip().removeprefix(b"W/") for tag in wanted.split(b",")]:
                await send({"type": "http.response.start", "status": 304, "headers": headers})
                await send({"type": "http.response.body", "body": b""})
                return

        async def caching_send(event: dict) -> None:
            if event["type"] == "http.response.start":
                extra = headers if event["status"] == 200 else [(b"cache-control", NO_STORE)]
                event = {**event, "headers": [*event.get("headers", []), *extra]}
            await send(event)

        await self.app(scope, receive, caching_send)
