"""Visitor identities the server issues: a signed, fixed-size cookie, never a client-chosen id.

Gradio's session hash is chosen by the client (any length, any value), so it must not key the
event log or the A/B assignment: a script could fill the disk with megabyte ids or pick its own
arm. Instead every response to a request without a valid ``cf_visitor`` cookie sets one: a
random id and its HMAC under a server secret. Requests that do not send a valid cookie back are
anonymous: they are served, but nothing is logged under an identity for them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

COOKIE = "cf_visitor"
ID_HEX = 32  # 128 random bits
SIGNATURE_HEX = 32  # truncated HMAC-SHA256
TOKEN_LENGTH = ID_HEX + 1 + SIGNATURE_HEX
MAX_AGE = 365 * 24 * 3600
SECRET_ENV = "CONTEXTFLIX_SECRET"
NO_COOKIE_PREFIX = "/api/"


class VisitorIds:
    """Issues and verifies visitor tokens ``<id>.<signature>``."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the visitor-id secret needs at least 16 bytes")
        self._secret = secret

    @classmethod
    def from_folder(cls, folder: str | Path) -> VisitorIds:
        """The secret from $CONTEXTFLIX_SECRET, else a random one kept in ``folder`` (0600),
        so identities survive restarts of the app."""
        if os.environ.get(SECRET_ENV):
            return cls(os.environ[SECRET_ENV].encode())
        path = Path(folder) / "visitor.secret"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as file:
                file.write(secrets.token_hex(32))
        return cls(path.read_text().strip().encode())

    def _sign(self, visitor: str) -> str:
        return hmac.new(self._secret, visitor.encode(), hashlib.sha256).hexdigest()[:SIGNATURE_HEX]

    def issue(self) -> str:
        visitor = secrets.token_hex(ID_HEX // 2)
        return f"{visitor}.{self._sign(visitor)}"

    def verify(self, token: str | None) -> str | None:
        """The visitor id of a genuine token, else None (size is checked before anything else)."""
        if not isinstance(token, str) or len(token) != TOKEN_LENGTH or token[ID_HEX] != ".":
            return None
        visitor, signature = token[:ID_HEX], token[ID_HEX + 1 :]
        return visitor if hmac.compare_digest(signature, self._sign(visitor)) else None

    def visitor(self, request: Any) -> str | None:
        """The verified visitor id of a Starlette or Gradio request, or None (anonymous)."""
        cookies = getattr(request, "cookies", None) or {}
        return self.verify(cookies.get(COOKIE))


def _cookie_from_headers(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"cookie" and len(value) <= 8192:
            jar = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed Cookie header: treat as absent
                return None
            if COOKIE in jar:
                return jar[COOKIE].value
    return None


def _is_https(scope: dict) -> bool:
    if scope.get("scheme") == "https":
        return True
    forwarded = dict(scope.get("headers") or []).get(b"x-forwarded-proto", b"")
    return forwarded.split(b",")[0].strip() == b"https"


class VisitorCookieMiddleware:
    """Pure ASGI (streams pass through untouched): sets the cookie where a request lacks a
    valid one. Over HTTPS it is ``SameSite=None; Secure`` so it also works inside the Hugging
    Face Space's iframe; over plain HTTP (local runs) ``SameSite=Lax``."""

    def __init__(self, app: Any, ids: VisitorIds) -> None:
        self.app, self.ids = app, ids

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if (
            scope["type"] != "http"
            # REST answers never log events, and a cacheable answer must not carry one
            # visitor's cookie to everyone a shared cache serves it to
            or scope.get("path", "").startswith(NO_COOKIE_PREFIX)
            or self.ids.verify(_cookie_from_headers(scope.get("headers") or []))
        ):
            await self.app(scope, receive, send)
            return
        same_site = "None; Secure" if _is_https(scope) else "Lax"
        cookie = f"{COOKIE}={self.ids.issue()}; Path=/; Max-Age={MAX_AGE}; HttpOnly; SameSite={same_site}"

        async def send_with_cookie(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"set-cookie", cookie.encode())]}  # fmt: skip
            await send(message)

        await self.app(scope, receive, send_with_cookie)
