"""Loading of the known-answer files in ``tests/vectors/``."""

from __future__ import annotations

import base64
import csv
import json
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def load(name: str) -> Any:
    """The parsed JSON of one vector file."""
    with (VECTORS / name).open(encoding="utf-8") as handle:
        return json.load(handle)


def data_cases(name: str) -> list[dict[str, Any]]:
    """The ``data`` list of an upstream powerauth-crypto vector file."""
    cases: list[dict[str, Any]] = load(name)["data"]
    return cases


def totp_rows() -> list[dict[str, str]]:
    """The RFC 6238 table, with the padding spaces stripped."""
    with (VECTORS / "totp-rfc6238-data.csv").open(encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header = [cell.strip() for cell in rows[0]]
    return [
        dict(zip(header, (c.strip() for c in row), strict=True)) for row in rows[1:]
    ]


def b64(text: str) -> bytes:
    """Decode a Base64 vector value."""
    return base64.b64decode(text, validate=True)
