"""Typed field checks for JSON objects (REST requests and CLI import files)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from webapp.services.errors import InvalidRequestError


@dataclass(frozen=True)
class Field:
    """One field: its JSON type and whether it is required.

    ``kind`` is ``str``, ``int``, ``bool``, ``list`` (of strings) or
    ``"timestamp"`` (ISO 8601 text with a zone, or epoch milliseconds).
    """

    kind: Any
    required: bool = False


def _timestamp(name: str, value: Any) -> datetime:
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise InvalidRequestError(f"{name} is out of range") from exc
    if isinstance(value, str):
        _text(name, value)
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidRequestError(f"{name} must be an ISO 8601 timestamp") from exc
        if parsed.tzinfo is None:
            raise InvalidRequestError(f"{name} must carry a time zone")
        return parsed.astimezone(UTC)
    raise InvalidRequestError(
        f"{name} must be an ISO 8601 string or epoch milliseconds"
    )


def _text(name: str, value: str) -> str:
    # JSON's \ud800-style escapes can carry lone surrogates, which Python
    # keeps in a str but which have no UTF-8 form: refuse them here, before a
    # service encodes the text (after a token call, in the worst case).
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequestError(
            f"{name} is not valid Unicode text (it holds a lone surrogate)"
        ) from None
    return value


def _typed(name: str, field: Field, value: Any) -> Any:
    kind = field.kind
    if kind == "timestamp":
        return _timestamp(name, value)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidRequestError(f"{name} must be an integer")
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise InvalidRequestError(f"{name} must be true or false")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise InvalidRequestError(f"{name} must be a string")
        return _text(name, value)
    if kind is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidRequestError(f"{name} must be a list of strings")
        return [_text(name, v) for v in value]
    raise TypeError(f"unknown field kind {kind!r}")


def check_fields(
    payload: Mapping[str, Any],
    fields: Mapping[str, Field],
    unsupported: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Check a JSON object against ``fields``; return the typed values.

    Absent optional fields (or ``null``) are left out of the result.

    :param unsupported: upstream fields this server does not implement, with
        the reason given to the caller.
    :raises InvalidRequestError: naming the first wrong field.
    """
    for name in payload:
        if unsupported and name in unsupported:
            raise InvalidRequestError(
                f"{name} is not supported by this server: {unsupported[name]}"
            )
        if name not in fields:
            raise InvalidRequestError(f"unknown field {name}")
    values: dict[str, Any] = {}
    for name, field in fields.items():
        value = payload.get(name)
        if value is None:
            if field.required:
                raise InvalidRequestError(f"{name} is required")
            continue
        values[name] = _typed(name, field, value)
    return values
