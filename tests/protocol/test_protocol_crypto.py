"""KDF primitives against compute-derived-keys.json and compute-master-secret-key.json."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from powerauth.crypto import (
    FactorKeys,
    KeyIndex,
    advance_counter,
    derive_factor_keys,
    fold_32_to_16,
    kdf,
    kdf_internal,
    master_secret_from_shared_x,
    next_counter,
)
from powerauth.errors import InvalidParameterError
from powerauth.keys import (
    ecdh_shared_x,
    private_key_from_java_bytes,
    private_key_to_java_bytes,
    public_key_from_private,
)
from tests.protocol.protocol_vectors import b64, data_cases

DERIVED = data_cases("compute-derived-keys.json")
MASTER = data_cases("compute-master-secret-key.json")


@pytest.mark.parametrize("case", DERIVED, ids=lambda c: c["input"]["masterSecretKey"])
def test_derived_keys(case: dict[str, Any]) -> None:
    keys = derive_factor_keys(b64(case["input"]["masterSecretKey"]))
    expected = case["output"]
    assert keys.possession == b64(expected["signaturePossessionKey"])
    assert keys.knowledge == b64(expected["signatureKnowledgeKey"])
    assert keys.biometry == b64(expected["signatureBiometryKey"])
    assert keys.transport == b64(expected["transportKey"])
    assert keys.vault == b64(expected["vaultEncryptionKey"])


@pytest.mark.parametrize("case", MASTER, ids=lambda c: c["output"]["masterSecretKey"])
def test_master_secret_both_sides(case: dict[str, Any]) -> None:
    given = case["input"]
    expected = b64(case["output"]["masterSecretKey"])
    for own, peer in (("device", "server"), ("server", "device")):
        raw = b64(given[f"{own}PrivateKey"])
        scalar = private_key_from_java_bytes(raw)
        # The Java encoding round-trips byte for byte (32 or 33 bytes).
        assert private_key_to_java_bytes(scalar) == raw
        assert public_key_from_private(scalar) == b64(given[f"{own}PublicKey"])
        shared_x = ecdh_shared_x(scalar, b64(given[f"{peer}PublicKey"]))
        assert master_secret_from_shared_x(shared_x) == expected


def test_fold_xors_the_halves() -> None:
    value = bytes(range(32))
    assert fold_32_to_16(value) == bytes(i ^ (i + 16) for i in range(16))


def test_kdf_places_the_index_in_the_second_half() -> None:
    # SPEC 11: be64(0) || be64(index), so index 0 is the all-zero block.
    key = bytes(range(16))
    assert kdf(key, 0) != kdf(key, 1)
    assert kdf(key, KeyIndex.POSSESSION) == kdf(key, 1)


def test_kdf_internal_keys_hmac_with_the_secret() -> None:
    secret, message = b"k" * 16, b"m" * 32
    digest = hmac.digest(secret, message, "sha256")
    assert kdf_internal(secret, message) == fold_32_to_16(digest)


def test_next_counter_is_folded_sha256() -> None:
    ctr = bytes(16)
    assert next_counter(ctr) == fold_32_to_16(hashlib.sha256(ctr).digest())
    assert advance_counter(ctr, 2) == next_counter(next_counter(ctr))
    assert advance_counter(ctr, 0) == ctr


@pytest.mark.parametrize("length", [0, 15, 17, 31, 33])
def test_fold_refuses_other_lengths(length: int) -> None:
    with pytest.raises(InvalidParameterError, match="32 bytes"):
        fold_32_to_16(bytes(length))


@pytest.mark.parametrize("length", [15, 17, 32])
def test_kdf_refuses_key_lengths(length: int) -> None:
    with pytest.raises(InvalidParameterError, match="KDF key"):
        kdf(bytes(length), 1)


@pytest.mark.parametrize("index", [-1, 2**63])
def test_kdf_refuses_out_of_range_index(index: int) -> None:
    with pytest.raises(InvalidParameterError, match="64-bit"):
        kdf(bytes(16), index)


def test_counter_refuses_wrong_length_and_negative_steps() -> None:
    with pytest.raises(InvalidParameterError, match="CTR_DATA"):
        next_counter(bytes(15))
    with pytest.raises(InvalidParameterError, match="negative"):
        advance_counter(bytes(16), -1)


def test_master_secret_needs_32_bytes() -> None:
    with pytest.raises(InvalidParameterError, match="shared X"):
        master_secret_from_shared_x(bytes(31))


def test_factor_keys_check_lengths_and_hide_bytes() -> None:
    with pytest.raises(InvalidParameterError, match="knowledge key"):
        FactorKeys(bytes(16), bytes(15), bytes(16), bytes(16), bytes(16))
    keys = FactorKeys(*(bytes([i]) * 16 for i in range(5)))
    assert "\\x01" not in repr(keys)
    assert repr(keys) == "FactorKeys()"
