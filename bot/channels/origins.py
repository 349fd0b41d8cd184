"""Which web pages may use the customer-facing APIs from a browser (`KEFU_CORS_ORIGINS`).

CORS covers the REST webhook and `/api/v1` (`ScopedCors`); the operator console and the admin API never answer
another site. Browsers do not apply CORS to WebSockets, so the widget's `/ws` checks the `Origin` header itself
(`AllowedOrigins.allows`): a socket from a page of another site could otherwise talk to the bot as that page.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

CORS_PREFIXES = ("/webhooks/rest/", "/api/v1/")
_WARNED_KEPT = 1000  # refused origins remembered for the once-per-origin log line


class AllowedOrigins:
    """Origins allowed besides the server's own; `*` allows any."""

    def __init__(self, origins: Iterable[str] = ()) -> None:
        listed = {origin.rstrip("/").lower() for origin in origins}
        self.any = "*" in listed
        self.origins = frozenset(listed - {"*"})
        self._warned: set[str] = set()

    def allows(self, origin: str | None, host: str | None) -> bool:
        """Whether a socket opened by a page of `origin` may talk to this server, reached as `host` (its Host
        header). No Origin is a client that is not a browser, which CORS would not restrain either."""
        if not origin or self.any:
            return True
        origin = origin.rstrip("/").lower()
        return origin in self.origins or (host is not None and urlsplit(origin).netloc == host.lower())

    def refused(self, origin: str) -> None:
        """Log the fix once per origin (the widget reconnects with backoff: one line per attempt would flood)."""
        if origin in self._warned or len(self._warned) >= _WARNED_KEPT:
            return
        self._warned.add(origin)
        log.warning(
            "refused a widget connection from %r: add it to KEFU_CORS_ORIGINS (comma-separated, e.g. "
            "https://shop.example.com) if the widget is embedded there",
            origin[:200],
        )


class ScopedCors:
    """Starlette's CORSMiddleware for the paths under `prefixes` only; every other path stays same-origin."""

    def __init__(self, app: ASGIApp, origins: AllowedOrigins, prefixes: tuple[str, ...] = CORS_PREFIXES) -> None:
        self.app = app
        self.prefixes = prefixes
        self.cors = CORSMiddleware(
            app,
            allow_origins=["*"] if origins.any else sorted(origins.origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key"],
            expose_headers=["Retry-After"],
            max_age=600,
        )  # no credentials: these APIs authenticate with keys in headers, never with cookies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope["path"]).startswith(self.prefixes):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
