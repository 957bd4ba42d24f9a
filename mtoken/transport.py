"""How the simulator talks to the server's REST API (SPEC 7.1 envelope).

Every call is ``POST path`` with ``{"requestObject": {...}}`` and answers
``{"status": "OK", "responseObject": {...}}``; an ``ERROR`` answer becomes a
:class:`~mtoken.errors.ServerError` carrying the server's error code.

Three implementations share the :class:`Transport` interface:

- :class:`HttpTransport` speaks HTTP with httpx (the ``mtoken`` command);
- :class:`FlaskClientTransport` drives a Flask test client or app in-process;
- :class:`CallableTransport` hands the envelope to any Python callable,
  so tests and the web pages can run the device without a socket.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import httpx

from mtoken.errors import ServerError

JSONObject = dict[str, Any]


class Transport(Protocol):
    """Send one request object to a server path and return its response object."""

    def call(self, path: str, request_object: Mapping[str, Any]) -> JSONObject:
        """POST the envelope to ``path`` (for example ``/rest/v3/activation/prepare``).

        :raises ServerError: the server is unreachable or answered an error.
        """
        ...

    @property
    def location(self) -> str | None:
        """A human description of the server (its URL), stored with the state."""
        ...


def unwrap(status_code: int, body: object, path: str) -> JSONObject:
    """Check an envelope and return its ``responseObject``.

    :raises ServerError: an ``ERROR`` envelope, an HTTP error, or no envelope.
    """
    if isinstance(body, dict) and body.get("status") == "ERROR":
        detail = body.get("responseObject")
        code = message = None
        if isinstance(detail, dict):
            code = detail.get("code")
            message = detail.get("message")
        raise ServerError(
            f"the server refused {path}: {code or 'no code'}"
            f" {message or '(no message)'}",
            code=code if isinstance(code, str) else None,
        )
    if status_code >= 400:
        raise ServerError(f"the server answered HTTP {status_code} to {path}")
    if not isinstance(body, dict) or body.get("status") != "OK":
        raise ServerError(f"the answer to {path} is not an OK envelope")
    response = body.get("responseObject")
    if not isinstance(response, dict):
        raise ServerError(f"the answer to {path} has no responseObject")
    return response


def _envelope(request_object: Mapping[str, Any]) -> JSONObject:
    return {"requestObject": dict(request_object)}


class HttpTransport:
    """The server over HTTP(S), ``base_url`` + path."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 15.0,
        client: httpx.Client | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ServerError(
                f"server URL {base_url!r} must start with http:// or https://"
            )
        self.base_url = base_url.rstrip("/")
        self._client = client or httpx.Client(timeout=timeout)

    @property
    def location(self) -> str | None:
        return self.base_url

    def call(self, path: str, request_object: Mapping[str, Any]) -> JSONObject:
        url = self.base_url + path
        try:
            response = self._client.post(url, json=_envelope(request_object))
        except httpx.HTTPError as exc:
            raise ServerError(f"cannot reach {url}: {exc}") from exc
        try:
            body: object = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        return unwrap(response.status_code, body, path)

    def close(self) -> None:
        self._client.close()


class FlaskClientTransport:
    """A Flask app (or its test client) called in-process, without a socket."""

    def __init__(self, app_or_client: Any, *, prefix: str = "") -> None:
        # A Flask app has test_client(); a test client has post() already.
        client = app_or_client
        if hasattr(app_or_client, "test_client"):
            client = app_or_client.test_client()
        self._client = client
        self._prefix = prefix.rstrip("/")

    @property
    def location(self) -> str | None:
        return None

    def call(self, path: str, request_object: Mapping[str, Any]) -> JSONObject:
        response = self._client.post(
            self._prefix + path, json=_envelope(request_object)
        )
        return unwrap(response.status_code, response.get_json(silent=True), path)


class CallableTransport:
    """Any callable ``handler(path, envelope) -> envelope``: the lightest hook."""

    def __init__(
        self,
        handler: Callable[[str, JSONObject], object],
        *,
        location: str | None = None,
    ) -> None:
        self._handler = handler
        self._location = location

    @property
    def location(self) -> str | None:
        return self._location

    def call(self, path: str, request_object: Mapping[str, Any]) -> JSONObject:
        body = self._handler(path, _envelope(request_object))
        return unwrap(200, body, path)
