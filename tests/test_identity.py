"""Visitor identities: issued and signed by the server, fixed size, not forgeable."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from contextflix.web.identity import COOKIE, TOKEN_LENGTH, VisitorCookieMiddleware, VisitorIds


@pytest.fixture
def ids() -> VisitorIds:
    return VisitorIds(b"a test secret of enough bytes")


def test_issued_tokens_verify_and_are_fixed_size(ids: VisitorIds) -> None:
    tokens = {ids.issue() for _ in range(50)}
    assert len(tokens) == 50
    for token in tokens:
        assert len(token) == TOKEN_LENGTH
        assert ids.verify(token) == token.split(".")[0]


def test_forged_tampered_oversized_and_foreign_tokens_are_anonymous(ids: VisitorIds) -> None:
    token = ids.issue()
    flipped = token[:-1] + ("0" if token[-1] != "0" else "1")
    other = VisitorIds(b"another secret of enough bytes").issue()
    for bad in (None, "", "x" * TOKEN_LENGTH, flipped, other, token + "0", "a" * 1_000_000):
        assert ids.verify(bad) is None


def test_secret_persists_in_the_app_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("CONTEXTFLIX_SECRET", raising=False)
    token = VisitorIds.from_folder(tmp_path).issue()
    assert VisitorIds.from_folder(tmp_path).verify(token)
    assert (tmp_path / "visitor.secret").stat().st_mode & 0o077 == 0


def test_middleware_sets_the_cookie_once(ids: VisitorIds) -> None:
    app = FastAPI()
    app.add_middleware(VisitorCookieMiddleware, ids=ids)

    @app.get("/who")
    def who(request: Request) -> dict:
        return {"visitor": ids.visitor(request)}

    client = TestClient(app)
    first = client.get("/who")
    assert first.json() == {"visitor": None}
    assert COOKIE in first.cookies
    token = first.cookies[COOKIE]
    assert ids.verify(token)
    client.cookies.clear()
    again = client.get("/who", cookies={COOKIE: token})
    assert "set-cookie" not in again.headers
    assert again.json() == {"visitor": token.split(".")[0]}
    client.cookies.clear()
    forged = client.get("/who", cookies={COOKIE: "f" * TOKEN_LENGTH})
    assert ids.verify(forged.cookies[COOKIE])


def test_the_app_issues_identities(app_url: str) -> None:
    assert "set-cookie" not in httpx.get(f"{app_url}/api/movies").headers  # cacheable answers
    response = httpx.get(f"{app_url}/")
    token = response.cookies.get(COOKIE)
    assert token and len(token) == TOKEN_LENGTH
    assert "HttpOnly" in response.headers["set-cookie"]
