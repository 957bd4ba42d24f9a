"""Arbitrary request objects never crash the API: 200 or a coded 400, never 500."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.softhsm

FIELDS = [
    "activationId",
    "applicationId",
    "userId",
    "data",
    "signature",
    "nonce",
    "allowBiometry",
    "componentLength",
    "activationCode",
    "devicePublicKey",
    "maxFailureCount",
    "timestampActivationExpire",
]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)
request_objects = st.dictionaries(
    st.sampled_from(FIELDS) | st.text(max_size=8), json_values, max_size=6
) | st.fixed_dictionaries(
    # Known fields, mostly strings: gets past the type checks to the rules.
    {},
    optional={name: st.text(max_size=60) | json_values for name in FIELDS},
)
PATHS = [
    "/rest/v3/signature/offline/verify",
    "/rest/v3/signature/offline/personalized/create",
    "/rest/v3/signature/offline/non-personalized/create",
    "/rest/v3/activation/init",
    "/rest/v3/activation/prepare",
    "/rest/v3/activation/status",
]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(path=st.sampled_from(PATHS), request_object=request_objects)
def test_no_request_object_makes_a_server_error(
    client: FlaskClient, path: str, request_object: dict[str, Any]
) -> None:
    response = client.post(path, json={"requestObject": request_object})

    body = response.get_json()
    assert response.status_code in (200, 400), body
    if response.status_code == 400:
        assert body["status"] == "ERROR"
        assert body["responseObject"]["code"].startswith("ERR00")
        assert body["responseObject"]["code"] != "ERR0000"
