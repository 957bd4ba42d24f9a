"""Activation status blob vectors (SPEC 8.6)."""

from __future__ import annotations

from typing import Any

import pytest

from powerauth.errors import InvalidParameterError, StatusBlobError
from powerauth.status import (
    StatusBlob,
    counter_distance,
    ctr_data_hash,
    decrypt_status_blob,
    encrypt_status_blob,
    status_blob_iv,
)
from tests.protocol.protocol_vectors import b64, data_cases

IVS = data_cases("activation-status-blob-iv.json")
BLOBS = data_cases("activation-status-blob-data.json")


@pytest.mark.parametrize("case", IVS, ids=lambda c: c["output"]["iv"])
def test_status_blob_iv(case: dict[str, Any]) -> None:
    given = case["input"]
    iv = status_blob_iv(
        b64(given["transportKey"]), b64(given["challenge"]), b64(given["nonce"])
    )
    assert iv == b64(case["output"]["iv"])


@pytest.mark.parametrize("case", BLOBS, ids=lambda c: c["output"]["ctrDataHash"])
def test_status_blob_data(case: dict[str, Any]) -> None:
    given, expected = case["input"], case["output"]
    key = b64(given["transportKey"])
    challenge, nonce = b64(given["challenge"]), b64(given["nonce"])
    encrypted = b64(given["encryptedStatusBlob"])
    blob = decrypt_status_blob(key, challenge, nonce, encrypted)
    assert blob.status == int(expected["activationStatus"])
    assert blob.current_version == int(expected["currentVersion"])
    assert blob.upgrade_version == int(expected["upgradeVersion"])
    assert blob.failed_attempts == int(expected["failedAttempts"])
    assert blob.max_failed_attempts == int(expected["maxFailedAttempts"])
    assert blob.ctr_look_ahead == int(expected["ctrLookAhead"])
    assert blob.ctr_byte == int(expected["ctrByte"])
    assert blob.ctr_data_hash == b64(expected["ctrDataHash"])
    distance = counter_distance(
        key, b64(given["ctrData"]), blob.ctr_data_hash, blob.ctr_look_ahead
    )
    assert distance == int(expected["counterDistance"])
    # The server side re-encrypts the same plaintext to the same bytes.
    assert encrypt_status_blob(key, challenge, nonce, blob) == encrypted


def test_wrong_key_shows_as_bad_magic() -> None:
    given = BLOBS[0]["input"]
    with pytest.raises(StatusBlobError, match="magic"):
        decrypt_status_blob(
            bytes(16),
            b64(given["challenge"]),
            b64(given["nonce"]),
            b64(given["encryptedStatusBlob"]),
        )


def test_blob_length_and_field_ranges() -> None:
    with pytest.raises(StatusBlobError, match="32 bytes"):
        decrypt_status_blob(bytes(16), bytes(16), bytes(16), bytes(31))
    blob = StatusBlob(3, 3, 3, 256, 0, 5, 20, bytes(16))
    with pytest.raises(InvalidParameterError, match="one byte"):
        blob.to_bytes()
    with pytest.raises(InvalidParameterError, match="challenge"):
        status_blob_iv(bytes(16), bytes(15), bytes(16))


def test_counter_distance_none_outside_window() -> None:
    key, ctr = bytes(range(16)), bytes(16)
    far = ctr_data_hash(key, bytes([1]) * 16)
    assert counter_distance(key, ctr, far, 20) is None
    assert counter_distance(key, ctr, ctr_data_hash(key, ctr), 0) == 0
