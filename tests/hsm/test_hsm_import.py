"""Importing PowerAuth private keys into the token (SPEC 1.2 and 1.3)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from hsm import HSM, HSMConfig
from hsm.adapter import P256_ORDER
from hsm.errors import InvalidPrivateKeyError
from powerauth.crypto import fold_32_to_16

pytestmark = pytest.mark.softhsm

VECTORS = Path(__file__).parents[1] / "vectors"


def _cases(name: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((VECTORS / name).read_text())["data"]
    return data


MASTER_SECRET_CASES = _cases("compute-master-secret-key.json")
ACTIVATION_SIGNATURE_CASES = _cases("verify-activation-data-signature-v3.json")


def _b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


@pytest.mark.parametrize(
    "case", MASTER_SECRET_CASES, ids=lambda c: c["output"]["masterSecretKey"]
)
@pytest.mark.parametrize("side", ["server", "device"])
def test_imported_key_gives_the_master_secret(
    hsm: HSM, new_label: Callable[[], str], case: dict[str, Any], side: str
) -> None:
    inputs = case["input"]
    other = "device" if side == "server" else "server"
    label = new_label()

    point = hsm.import_private_key(label, _b64(inputs[f"{side}PrivateKey"]))

    assert point == _b64(inputs[f"{side}PublicKey"])
    assert hsm.public_key(label) == point
    shared_x = hsm.ecdh(label, _b64(inputs[f"{other}PublicKey"]))
    master = fold_32_to_16(shared_x)
    assert master == _b64(case["output"]["masterSecretKey"])


def test_import_reads_the_base64_text_a_server_database_keeps(
    hsm: HSM, new_label: Callable[[], str]
) -> None:
    case = MASTER_SECRET_CASES[0]["input"]
    label = new_label()

    point = hsm.import_private_key(label, case["serverPrivateKey"])

    assert point == _b64(case["serverPublicKey"])


@pytest.mark.parametrize("case", ACTIVATION_SIGNATURE_CASES[:3])
def test_imported_master_key_signs_activation_data(
    hsm: HSM, new_label: Callable[[], str], case: dict[str, Any]
) -> None:
    inputs = case["input"]
    label = new_label()
    hsm.import_private_key(label, _b64(inputs["masterPrivateKey"]))
    public = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), _b64(inputs["masterPublicKey"])
    )
    message = inputs["activationCode"].encode("ascii")

    der = hsm.sign(label, message)

    public.verify(der, message, ec.ECDSA(hashes.SHA256()))
    # The published signature verifies against the same key, so both agree.
    public.verify(
        _b64(case["output"]["activationSignature"]),
        message,
        ec.ECDSA(hashes.SHA256()),
    )


def test_imported_key_is_sensitive_but_not_never_extractable(
    hsm: HSM, new_label: Callable[[], str]
) -> None:
    label = new_label()
    hsm.import_private_key(
        label, _b64(MASTER_SECRET_CASES[0]["input"]["serverPrivateKey"])
    )

    props = hsm.private_key_properties(label)

    assert props.token
    assert props.private
    assert props.sensitive
    assert not props.extractable
    assert not props.value_readable
    assert props.sign
    assert props.derive
    # PKCS#11 v2.40 base, 4.9 (private key objects): the value existed outside
    # the token before the import, so the token cannot claim it was always
    # sensitive or never extractable.
    assert not props.always_sensitive
    assert not props.never_extractable


def _java_bytes(value: int) -> bytes:
    """``BigInteger.toByteArray()`` of a non-negative value (SPEC 1.2)."""
    return value.to_bytes(value.bit_length() // 8 + 1, "big")


@pytest.mark.parametrize(
    "value", [1, 0x7F, 0x80, 2**255 + 12345, P256_ORDER - 1], ids=hex
)
def test_short_and_padded_java_integers_import(
    hsm: HSM, new_label: Callable[[], str], value: int
) -> None:
    label = new_label()
    expected = (
        ec.derive_private_key(value, ec.SECP256R1()).public_key().public_numbers()
    )

    point = hsm.import_private_key(label, _java_bytes(value))

    assert point == b"\x04" + expected.x.to_bytes(32, "big") + expected.y.to_bytes(
        32, "big"
    )


BAD_PRIVATE_KEYS = {
    "zero": b"\x00",
    "group order": _java_bytes(P256_ORDER),
    "above the order": _java_bytes(P256_ORDER + 5),
    "negative (sign bit set)": b"\x80" + b"\x01" * 31,
    "34 bytes": b"\x00\x00" + b"\x01" * 32,
    "empty": b"",
    "not Base64": "not base64!",
    "wrong type": 12345,
}


@pytest.mark.parametrize(
    "value", BAD_PRIVATE_KEYS.values(), ids=BAD_PRIVATE_KEYS.keys()
)
def test_bad_private_key_is_refused_before_the_token(value: object) -> None:
    # This adapter cannot reach any token: the check must come first.
    unreachable = HSM(
        HSMConfig(token_label="never", user_pin="unused", module="/nonexistent.so")
    )

    with pytest.raises(InvalidPrivateKeyError, match="private key"):
        unreachable.import_private_key("k", value)  # type: ignore[arg-type]
