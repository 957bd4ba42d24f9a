"""Security of the web pages: CSRF tokens, response headers, cookie settings
and per-client rate limits.

The rate limiter keeps its counters in this process's memory: each worker
process of a WSGI server counts on its own, and a restart forgets them.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable

from flask import Flask, abort, request, session

CSRF_FIELD = "csrf_token"
_CSRF_SESSION_KEY = "csrf"

# No inline script or style anywhere: the pages load /static files only.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; form-action 'self'; base-uri 'none'; "
    "object-src 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def csrf_token() -> str:
    """The session's CSRF token (made on first use); forms carry it back."""
    token = session.get(_CSRF_SESSION_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[_CSRF_SESSION_KEY] = token
    return token


def check_csrf() -> None:
    """Refuse a form POST whose token is missing or differs from the session's.

    The session cookie is signed with SECRET_KEY, so a page of another site
    can neither read nor forge the token.
    """
    expected = session.get(_CSRF_SESSION_KEY)
    given = request.form.get(CSRF_FIELD, "")
    if not isinstance(expected, str) or not hmac.compare_digest(
        expected.encode(), given.encode()
    ):
        abort(400, description="csrf")


class RateLimiter:
    """At most ``limit`` hits per ``window`` seconds for each key (sliding window).

    In-process only: with several worker processes each one has its own
    counters, so the effective limit is multiplied by their number.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000
    ) -> None:
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._max_keys = max_keys

    def hit(self, key: str, limit: int, window: float) -> bool:
        """Count one hit; False when ``key`` is over its limit (not counted)."""
        now = self._clock()
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                if len(self._hits) >= self._max_keys:
                    self._forget_idle(now, window)
                hits = self._hits[key] = deque()
            while hits and hits[0] <= now - window:
                hits.popleft()
            if len(hits) >= limit:
                return False
            hits.append(now)
            return True

    def _forget_idle(self, now: float, window: float) -> None:
        for key in [k for k, v in self._hits.items() if not v or v[-1] <= now - window]:
            del self._hits[key]
        if len(self._hits) >= self._max_keys:
            # Under a flood of distinct clients drop everything rather than
            # grow without bound.
            self._hits.clear()


_LIMITER_KEY = "powerauth.pages_limiter"


def limit(app: Flask, bucket: str, per_minute: int) -> None:
    """Abort with 429 when this client has used its ``bucket`` quota."""
    limiter: RateLimiter = app.extensions[_LIMITER_KEY]
    client = request.remote_addr or "unknown"
    if not limiter.hit(f"{bucket}:{client}", per_minute, 60.0):
        abort(429)


def init_security(app: Flask) -> None:
    """Cookie flags, security headers, CSRF on form posts, the limiter."""
    # Flask's defaults carry these names already, so setdefault would not act.
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    if not app.config.get("SESSION_COOKIE_SAMESITE"):
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    # Secure cookies need HTTPS, which local development does not have.
    if app.config["ENVIRONMENT"] == "production":
        app.config["SESSION_COOKIE_SECURE"] = True
    app.extensions[_LIMITER_KEY] = RateLimiter()

    @app.after_request
    def _headers(response):  # type: ignore[no-untyped-def]
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    app.jinja_env.globals["csrf_token"] = csrf_token
