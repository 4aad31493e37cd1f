"""The review app's gate: every request is checked here before any route sees it.

- Host must be `127.0.0.1:PORT` or `localhost:PORT` (a DNS-rebinding page reaches the server under
  its own name and is refused).
- A secret token is required on every request. The URL printed at start carries it once: the first
  visit of `/?token=...` sets it as an HttpOnly, SameSite=Strict cookie and redirects to `/`, so
  it leaves the address bar and the history. Every other request must carry the cookie.
- State-changing requests (anything but GET and HEAD) need an `Origin` equal to the app's own and a
  JSON body: another site's page cannot post to it, not even a form.
- Every response carries a Content-Security-Policy of `default-src 'self'` (no inline script or
  style, nothing from elsewhere), `nosniff`, no referrer, no framing, and `no-store`: pictures of
  faces are not kept in the browser's cache.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)

SAFE_METHODS = frozenset({"GET", "HEAD"})


def new_token() -> str:
    """A fresh secret for one run of the app."""
    return secrets.token_urlsafe(32)


class Guard:
    """ASGI middleware: host, token (cookie), origin and content type checks, and the security headers."""

    def __init__(self, app: ASGIApp, *, token: str, port: int) -> None:
        self.app = app
        self.token = token
        self.hosts = (f"127.0.0.1:{port}", f"localhost:{port}")
        self.cookie = f"blur_review_{port}"
        """Named by port: cookies do not tell ports apart, two review apps must not share one."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # no websockets, no lifespan: nothing else is served
        refusal = self._check(scope)
        if refusal is not None:
            status, text = refusal
            await _plain(send, status, text)
            return
        if self._token_visit(scope):
            await _redirect_setting_cookie(send, self.cookie, self.token)
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, secured)

    def _check(self, scope: Scope) -> tuple[int, str] | None:
        headers = _headers(scope)
        host = headers.get("host", "")
        if host not in self.hosts:
            return 421, "this server only answers as 127.0.0.1 or localhost on its own port"
        if not self._has_cookie(headers) and not self._token_visit(scope):
            return 403, "forbidden: open the address blur review printed (it carries the access token)"
        if scope["method"] not in SAFE_METHODS:
            if headers.get("origin", "") != f"http://{host}":
                return 403, "forbidden: a change must come from the review page itself"
            if headers.get("content-type", "").split(";")[0].strip() != "application/json":
                return 415, "a change must be sent as application/json"
        return None

    def _has_cookie(self, headers: dict[str, str]) -> bool:
        try:
            jar = SimpleCookie(headers.get("cookie", ""))
        except CookieError:
            return False
        morsel = jar.get(self.cookie)
        return morsel is not None and secrets.compare_digest(morsel.value.encode(), self.token.encode())

    def _token_visit(self, scope: Scope) -> bool:
        """A GET of `/` carrying the right `?token=`."""
        if scope["method"] != "GET" or scope["path"] != "/":
            return False
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given = query.get("token", [])
        return len(given) == 1 and secrets.compare_digest(given[0].encode(), self.token.encode())


def _headers(scope: Scope) -> dict[str, str]:
    """Request headers, lower-case names; a repeated header counts as missing (no smuggling by duplicates)."""
    seen: dict[str, str] = {}
    repeated: set[str] = set()
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin-1").lower()
        if name in seen:
            repeated.add(name)
        seen[name] = raw_value.decode("latin-1")
    return {k: v for k, v in seen.items() if k not in repeated}


async def _plain(send: Send, status: int, text: str) -> None:
    body = (text + "\n").encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*headers, *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})


async def _redirect_setting_cookie(send: Send, name: str, token: str) -> None:
    cookie = f"{name}={token}; HttpOnly; SameSite=Strict; Path=/".encode()
    headers = [(b"location", b"/"), (b"set-cookie", cookie), (b"content-length", b"0")]
    await send({"type": "http.response.start", "status": 303, "headers": [*headers, *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": b""})
