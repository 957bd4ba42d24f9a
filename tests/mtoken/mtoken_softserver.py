"""A small software server for device tests that need no database or token.

It is built only from :mod:`powerauth` functions with software keys, and
speaks the same REST envelope as the web app, so the device's own code runs
unchanged. The tests against the real web app (with SoftHSM) are in
``test_mtoken_server.py``.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from powerauth.activation import generate_activation_code, public_key_fingerprint
from powerauth.crypto import (
    FactorKeys,
    derive_factor_keys,
    master_secret_from_shared_x,
)
from powerauth.keys import (
    ecdh_shared_x,
    public_key_from_private,
    sign_ecdsa_der,
)
from powerauth.payload import KeyIndicator, build_offline_payload
from powerauth.signature import SignatureType, verify_offline_code

APPLICATION_ID = "demo-app"
PIN = "4711"


def new_scalar() -> int:
    return ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass
class ServerActivation:
    activation_id: str
    code: str
    server_scalar: int
    status: str = "CREATED"
    device_public_key: bytes | None = None
    keys: FactorKeys | None = None
    ctr_data: bytes | None = None
    fingerprint: str | None = None

    @property
    def server_public_key(self) -> bytes:
        return public_key_from_private(self.server_scalar)


class SoftwareServer:
    """prepare, commit, status and application detail, in memory."""

    def __init__(self) -> None:
        self.master_scalar = new_scalar()
        self.activations: dict[str, ServerActivation] = {}
        self.calls: list[str] = []

    @property
    def master_public_key(self) -> bytes:
        return public_key_from_private(self.master_scalar)

    def init(self) -> tuple[ServerActivation, str]:
        """A new activation and the Base64 signature of its code."""
        activation = ServerActivation(
            activation_id=str(uuid.uuid4()),
            code=generate_activation_code(secrets.token_bytes(10)),
            server_scalar=new_scalar(),
        )
        self.activations[activation.activation_id] = activation
        signature = sign_ecdsa_der(self.master_scalar, activation.code.encode())
        return activation, b64(signature)

    def handle(self, path: str, envelope: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(path)
        request = envelope["requestObject"]
        handler = getattr(
            self, "_" + path.rsplit("/", 2)[-2] + "_" + path.rsplit("/", 1)[-1]
        )
        try:
            return {"status": "OK", "responseObject": handler(request)}
        except LookupError as exc:
            return {
                "status": "ERROR",
                "responseObject": {"code": "ERR0009", "message": str(exc)},
            }

    def _activation_prepare(self, request: dict[str, Any]) -> dict[str, Any]:
        matches = [
            a
            for a in self.activations.values()
            if a.code == request["activationCode"] and a.status == "CREATED"
        ]
        if not matches:
            raise LookupError("activation code not found")
        activation = matches[0]
        device_public = base64.b64decode(request["devicePublicKey"])
        shared = ecdh_shared_x(activation.server_scalar, device_public)
        activation.keys = derive_factor_keys(master_secret_from_shared_x(shared))
        activation.device_public_key = device_public
        activation.ctr_data = secrets.token_bytes(16)
        activation.status = "PENDING_COMMIT"
        activation.fingerprint = public_key_fingerprint(
            device_public, activation.activation_id, activation.server_public_key
        )
        return {
            "activationId": activation.activation_id,
            "serverPublicKey": b64(activation.server_public_key),
            "ctrData": b64(activation.ctr_data),
            "activationStatus": activation.status,
        }

    def _activation_commit(self, request: dict[str, Any]) -> dict[str, Any]:
        activation = self.activations[request["activationId"]]
        activation.status = "ACTIVE"
        return {"activationId": activation.activation_id, "activationStatus": "ACTIVE"}

    def _activation_status(self, request: dict[str, Any]) -> dict[str, Any]:
        activation = self.activations[request["activationId"]]
        return {
            "activationId": activation.activation_id,
            "activationStatus": activation.status,
        }

    def _application_detail(self, request: dict[str, Any]) -> dict[str, Any]:
        if request["applicationId"] != APPLICATION_ID:
            raise LookupError("application not found")
        return {
            "applicationId": APPLICATION_ID,
            "masterPublicKey": b64(self.master_public_key),
        }

    # -- what the bank's back end would do -----------------------------------

    def qr(
        self,
        data: str,
        activation_id: str | None = None,
        *,
        totp: str | None = None,
        signer: int | None = None,
        indicator: KeyIndicator | None = None,
    ) -> tuple[str, str]:
        """A signed payload and its nonce: personalized when given an activation."""
        nonce = b64(secrets.token_bytes(16))
        if indicator is None:
            indicator = (
                KeyIndicator.PERSONALIZED if activation_id else KeyIndicator.MASTER
            )
        if signer is None:
            signer = (
                self.activations[activation_id].server_scalar
                if activation_id
                else self.master_scalar
            )
        draft = build_offline_payload(data, nonce, indicator, totp)
        return draft.finish(sign_ecdsa_der(signer, draft.signed_bytes)), nonce

    def verify(
        self, activation_id: str, base_string: str, code: str, allow_biometry: bool
    ) -> SignatureType:
        """Check a code; raises SignatureMismatchError; moves CTR_DATA on success."""
        activation = self.activations[activation_id]
        assert activation.keys is not None and activation.ctr_data is not None
        types = [SignatureType.POSSESSION_KNOWLEDGE]
        if allow_biometry:
            types.append(SignatureType.POSSESSION_BIOMETRY)
        match = verify_offline_code(
            activation.keys, activation.ctr_data, base_string, code, types, 20
        )
        activation.ctr_data = match.next_ctr_data
        return match.signature_type
