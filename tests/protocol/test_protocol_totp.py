"""Proximity-check TOTP against totp-rfc6238-data.csv (SPEC 3.7)."""

from __future__ import annotations

import pytest

from powerauth.errors import InvalidParameterError
from powerauth.totp import totp, totp_candidates
from tests.protocol.protocol_vectors import totp_rows

ROWS = totp_rows()
HASHES = {"HmacSHA1": "sha1", "HmacSHA256": "sha256", "HmacSHA512": "sha512"}


@pytest.mark.parametrize(
    "row", ROWS, ids=lambda r: f"{r['Algorithm']}-{r['Time (sec)']}"
)
def test_rfc6238_row(row: dict[str, str]) -> None:
    seed = bytes.fromhex(row["Seed"])
    value = totp(
        seed, int(row["Time (sec)"]), 30, 8, hash_name=HASHES[row["Algorithm"]]
    )
    assert value == row["TOTP"]


def test_proximity_defaults_are_sha256_eight_digits() -> None:
    row = next(r for r in ROWS if r["Algorithm"] == "HmacSHA256")
    assert totp(bytes.fromhex(row["Seed"]), int(row["Time (sec)"])) == row["TOTP"]


def test_candidates_go_back_in_steps() -> None:
    seed = b"12345678901234567890123456789012"
    candidates = totp_candidates(seed, 1111111111, 30, 2)
    assert candidates == [totp(seed, 1111111111 - i * 30) for i in range(3)]
    assert totp_candidates(seed, 1111111111, 30, 0) == candidates[:1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seed": b""}, "seed"),
        ({"unix_time": -1}, "negative"),
        ({"step": 0}, "step"),
        ({"digits": 3}, "digits"),
        ({"digits": 11}, "digits"),
        ({"hash_name": "md5"}, "hash"),
    ],
)
def test_totp_refuses(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"seed": b"seed", "unix_time": 59, **kwargs}
    with pytest.raises(InvalidParameterError, match=message):
        totp(**arguments)  # type: ignore[arg-type]


def test_candidates_refuse_negative_count_and_pre_epoch() -> None:
    with pytest.raises(InvalidParameterError, match="negative"):
        totp_candidates(b"seed", 100, 30, -1)
    with pytest.raises(InvalidParameterError, match="1970"):
        totp_candidates(b"seed", 10, 30, 1)
