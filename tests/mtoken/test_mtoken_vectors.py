"""The device's codes equal the protocol core's for the shared vector keys.

Each two-factor case of ``signatures-offline.json`` gives factor keys, a
CTR_DATA and a component length. A device holding exactly that key material
(the knowledge key sealed under a PIN, as it stores it) signs a payload, and
the code must be the one :func:`powerauth.signature.compute_offline_code`
gives for the same keys. The vector's own ``data`` is a raw HMAC input that no
QR payload produces, so the core's match with the published digits is
checked on that input alongside.
"""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from mtoken.device import Device
from mtoken.state import DeviceState, ProtectedKey, StateStore
from powerauth.crypto import FactorKeys, next_counter
from powerauth.keys import public_key_from_private, sign_ecdsa_der
from powerauth.payload import KeyIndicator, build_offline_payload
from powerauth.signature import (
    SignatureType,
    compute_offline_code,
    decimal_signature,
    keys_for_type,
)
from tests.mtoken.mtoken_softserver import PIN, b64, new_scalar

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
DATA = "op-42\nPayment\nPlease confirm\nA1*A100CZK*ICZ2730300000001165254011\nB"


def two_factor_cases() -> list[dict[str, Any]]:
    cases = json.loads((VECTORS / "signatures-offline.json").read_text())["data"]
    return [
        case["input"] | {"expected": case["output"]["signature"]}
        for case in cases
        if case["input"]["signatureType"] == "possession_knowledge"
    ]


CASES = two_factor_cases()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def test_the_vector_file_has_two_factor_cases() -> None:
    assert len(CASES) == 80
    assert {case["signatureComponentLength"] for case in CASES} == set("45678")


@pytest.mark.parametrize(
    "case",
    CASES,
    ids=[f"L{c['signatureComponentLength']}-{i}" for i, c in enumerate(CASES)],
)
def test_device_code_equals_core_code(case: dict[str, Any], tmp_path: Path) -> None:
    keys = FactorKeys(
        possession=unb64(case["signaturePossessionKey"]),
        knowledge=unb64(case["signatureKnowledgeKey"]),
        biometry=unb64(case["signatureBiometryKey"]),
        transport=bytes(16),
        vault=bytes(16),
    )
    ctr = unb64(case["counterData"])
    length = int(case["signatureComponentLength"])
    # The core reproduces the published digits on the vector's own input.
    core_on_vector = decimal_signature(
        keys_for_type(keys, SignatureType.POSSESSION_KNOWLEDGE),
        ctr,
        unb64(case["data"]),
        length,
    )
    assert core_on_vector == case["expected"]

    server_scalar = new_scalar()
    store = StateStore(tmp_path)
    store.save(
        DeviceState(
            activation_id="vector",
            activation_name=None,
            application_id=None,
            server_url=None,
            device_public_key=public_key_from_private(new_scalar()),
            server_public_key=public_key_from_private(server_scalar),
            master_public_key=None,
            fingerprint="00000000",
            ctr_data=ctr,
            possession_key=keys.possession,
            biometry_key=keys.biometry,
            transport_key=keys.transport,
            knowledge_key=ProtectedKey.seal(
                keys.knowledge, PIN, secrets.token_bytes(16)
            ),
            status="ACTIVE",
            created_at="2026-01-01T00:00:00Z",
        )
    )
    draft = build_offline_payload(
        DATA, b64(secrets.token_bytes(16)), KeyIndicator.PERSONALIZED
    )
    payload = draft.finish(sign_ecdsa_der(server_scalar, draft.signed_bytes))
    device = Device(store)
    verified = device.scan(payload)
    base = verified.payload.base_string()

    knowledge_code = device.sign(verified, pin=PIN, component_length=length)
    biometry_code = device.sign(verified, biometry=True, component_length=length)

    assert knowledge_code.code == compute_offline_code(
        keys, ctr, base, SignatureType.POSSESSION_KNOWLEDGE, length
    )
    assert biometry_code.code == compute_offline_code(
        keys, next_counter(ctr), base, SignatureType.POSSESSION_BIOMETRY, length
    )
    assert store.load("vector").ctr_data == next_counter(next_counter(ctr))
