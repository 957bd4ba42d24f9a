"""Unknown paths and methods under /rest/ answer in the JSON envelope.

A REST client parses every answer as the envelope (SPEC 7); Werkzeug's HTML
404 and 405 pages would break it. Elsewhere the HTML error page stays.
"""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

pytestmark = pytest.mark.softhsm


@pytest.mark.parametrize(
    "path", ["/rest/v3/no/such/endpoint", "/rest/v2/activation/init", "/rest/"]
)
def test_unknown_rest_path_is_a_json_404(client: FlaskClient, path: str) -> None:
    response = client.post(path, json={"requestObject": {}})

    assert response.status_code == 404
    body = response.get_json()
    assert body["status"] == "ERROR"
    assert body["responseObject"]["code"] == "ERR0024"
    assert path in body["responseObject"]["message"]


def test_wrong_method_on_a_rest_endpoint_is_a_json_405(client: FlaskClient) -> None:
    response = client.get("/rest/v3/activation/init")

    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    body = response.get_json()
    assert body["status"] == "ERROR"
    assert body["responseObject"]["code"] == "ERR0024"
    assert "GET" in body["responseObject"]["message"]


def test_known_rest_endpoint_and_html_404_are_unchanged(client: FlaskClient) -> None:
    listed = client.post("/rest/v3/application/list", json={"requestObject": {}})
    assert listed.status_code == 200 and listed.get_json()["status"] == "OK"
    page = client.get("/no/such/page")
    assert page.status_code == 404
    assert page.mimetype == "text/html"
    # A service error keeps its own envelope and status.
    missing = client.post(
        "/rest/v3/application/detail",
        json={"requestObject": {"applicationId": "no-such-application"}},
    )
    assert missing.status_code == 400
    assert missing.get_json()["responseObject"]["code"] == "ERR0015"
