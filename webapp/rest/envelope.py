"""The PowerAuth server's REST envelope (SPEC 7.1) and strict request parsing.

In: ``{"requestObject": {...}}``. Out: ``{"status": "OK", "responseObject": ...}``,
or HTTP 400 ``{"status": "ERROR", "responseObject": {"code", "message",
"localizedMessage"}}``. A request with malformed JSON, a wrong type, a missing
or unknown field is refused before any service runs, with the field named.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Response, current_app, jsonify, request

from webapp.services.errors import InvalidRequestError, ServiceError
from webapp.services.fields import Field, check_fields


def ok(response_object: Any) -> Response:
    return jsonify({"status": "OK", "responseObject": response_object})


def error(code: str, message: str, status: int = 400) -> tuple[Response, int]:
    body = {
        "status": "ERROR",
        "responseObject": {
            "code": code,
            "message": message,
            "localizedMessage": message,
        },
    }
    return jsonify(body), status


def service_error(exc: ServiceError) -> tuple[Response, int]:
    return error(exc.code, exc.message)


def _reject_constant(name: str) -> Any:
    raise InvalidRequestError(f"request body: {name} is not a JSON number")


_MEMBER_SHOWN = 64  # characters of a member name quoted in an error


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object's members; a name given twice is refused.

    ``json.loads`` keeps the last of two equal names, while a proxy or a WAF
    in front may read the first: the two would check different requests.
    """
    members: dict[str, Any] = {}
    for name, value in pairs:
        if name in members:
            raise InvalidRequestError(
                f"request body: member {name[:_MEMBER_SHOWN]} appears twice "
                "in one object"
            )
        members[name] = value
    return members


def request_object() -> dict[str, Any]:
    mimetype = request.mimetype
    if mimetype != "application/json":
        raise InvalidRequestError(
            f"Content-Type must be application/json, got {mimetype or 'none'}"
        )
    raw = request.get_data(cache=False)
    try:
        document = json.loads(
            raw.decode("utf-8"),
            parse_constant=_reject_constant,
            object_pairs_hook=_unique_members,
        )
    except UnicodeDecodeError as exc:
        raise InvalidRequestError("request body is not UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(
            f"request body is not valid JSON (line {exc.lineno}, column {exc.colno})"
        ) from exc
    except ValueError as exc:
        # Python refuses to convert integers of more than 4300 digits
        # (sys.get_int_max_str_digits); JSONDecodeError is caught above.
        raise InvalidRequestError(
            "request body holds a number with too many digits"
        ) from exc
    except RecursionError as exc:
        raise InvalidRequestError("request body is nested too deeply") from exc
    if not isinstance(document, dict):
        raise InvalidRequestError("request body must be a JSON object")
    extra = sorted(set(document) - {"requestObject"})
    if extra:
        raise InvalidRequestError(f"unknown field {extra[0]} next to requestObject")
    if "requestObject" not in document:
        raise InvalidRequestError("requestObject is required")
    payload = document["requestObject"]
    if not isinstance(payload, dict):
        raise InvalidRequestError("requestObject must be a JSON object")
    return payload


def parse_request(
    fields: Mapping[str, Field], unsupported: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Read and check the request's ``requestObject`` (see ``check_fields``).

    :param fields: the accepted fields; absent optional ones (or ``null``) are
        left out of the result.
    :param unsupported: upstream fields this server does not implement, with
        the reason given to the caller.
    :raises InvalidRequestError: naming the first wrong field.
    """
    return check_fields(request_object(), fields, unsupported)


def authenticate() -> str | None:
    """Check HTTP basic auth when it is on; return the caller's name.

    :returns: the user name, ``"rest"`` with auth off, ``None`` when refused.
    """
    if not current_app.config["REST_BASIC_AUTH"]:
        return "rest"
    auth = request.authorization
    if auth is None or auth.type != "basic":
        return None
    users: Mapping[str, str] = current_app.config["REST_BASIC_AUTH_USERS"]
    given_user = (auth.username or "").encode()
    given_password = (auth.password or "").encode()
    accepted = None
    # Compare against every user, so timing does not reveal which names exist.
    for user, password in users.items():
        user_ok = hmac.compare_digest(user.encode(), given_user)
        password_ok = hmac.compare_digest(password.encode(), given_password)
        if user_ok and password_ok:
            accepted = user
    return accepted


def iso(moment: datetime | None) -> str | None:
    """A timestamp as ISO 8601 UTC with milliseconds and ``Z``."""
    if moment is None:
        return None
    return (
        moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )
