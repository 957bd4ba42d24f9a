"""The three transports agree on the REST envelope and on its errors."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from flask import Flask, request

from mtoken.errors import ServerError
from mtoken.transport import (
    CallableTransport,
    FlaskClientTransport,
    HttpTransport,
    Transport,
)

OK = {"status": "OK", "responseObject": {"echo": 1}}
REFUSED = {
    "status": "ERROR",
    "responseObject": {"code": "ERR0009", "message": "activation not found"},
}


def answer_for(path: str) -> tuple[int, Any]:
    """What the fake server answers on each path: (HTTP status, JSON or text)."""
    return {
        "/ok": (200, OK),
        "/refused": (400, REFUSED),
        "/html": (404, "<html>not found</html>"),
        "/no-object": (200, {"status": "OK"}),
        "/not-envelope": (200, [1, 2]),
    }[path]


def http_transport() -> HttpTransport:
    def handler(req: httpx.Request) -> httpx.Response:
        assert json.loads(req.content) == {"requestObject": {"a": "b"}}
        status, body = answer_for(req.url.path)
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    return HttpTransport("http://server.test", client=client)


def flask_transport() -> FlaskClientTransport:
    app = Flask(__name__)

    @app.post("/<name>")
    def view(name: str) -> Any:
        assert request.get_json() == {"requestObject": {"a": "b"}}
        status, body = answer_for("/" + name)
        if isinstance(body, str):
            return body, status
        return app.response_class(json.dumps(body), status, mimetype="application/json")

    return FlaskClientTransport(app)


def callable_transport() -> CallableTransport:
    def handler(path: str, envelope: dict[str, Any]) -> object:
        assert envelope == {"requestObject": {"a": "b"}}
        return answer_for(path)[1]

    return CallableTransport(handler)


TRANSPORTS = {
    "http": http_transport,
    "flask": flask_transport,
    "callable": callable_transport,
}


@pytest.fixture(params=sorted(TRANSPORTS))
def transport(request: pytest.FixtureRequest) -> Transport:
    made: Transport = TRANSPORTS[request.param]()
    return made


def test_ok_envelope(transport: Transport) -> None:
    assert transport.call("/ok", {"a": "b"}) == {"echo": 1}


def test_error_envelope_keeps_the_code(transport: Transport) -> None:
    with pytest.raises(ServerError, match="ERR0009 activation not found") as info:
        transport.call("/refused", {"a": "b"})
    assert info.value.code == "ERR0009"


@pytest.mark.parametrize("path", ["/no-object", "/not-envelope"])
def test_not_an_ok_envelope(transport: Transport, path: str) -> None:
    with pytest.raises(ServerError, match=path):
        transport.call(path, {"a": "b"})


def test_http_error_without_envelope() -> None:
    with pytest.raises(ServerError, match="HTTP 404"):
        http_transport().call("/html", {"a": "b"})
    with pytest.raises(ServerError, match="HTTP 404"):
        flask_transport().call("/html", {"a": "b"})


def test_url_must_be_http() -> None:
    with pytest.raises(ServerError, match="http:// or https://"):
        HttpTransport("ftp://server")


def test_unreachable_server() -> None:
    with pytest.raises(ServerError, match="cannot reach"):
        HttpTransport("http://127.0.0.1:9", timeout=5).call("/x", {})


def test_location() -> None:
    assert http_transport().location == "http://server.test"
    assert CallableTransport(lambda p, e: OK, location="mem").location == "mem"
    assert flask_transport().location is None
