"""A mobile device simulated with ``cryptography`` and the protocol core.

It holds a software device key pair (the server's keys are in the token), runs
the client side of the simplified activation, and computes offline codes the
way a PowerAuth mobile SDK does (SPEC 5).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from powerauth.crypto import (
    FactorKeys,
    derive_factor_keys,
    master_secret_from_shared_x,
    next_counter,
)
from powerauth.signature import SignatureType, compute_offline_code

OPERATION_DATA = "A1*A100CZK*ICZ2730300000001165254011*D20180425"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def public_bytes(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def payload_data(
    operation_id: str = "5ff1b1ed-a3cc-45a3-8ab0-ed60950312b6",
    operation_data: str = OPERATION_DATA,
    flags: str = "B",
    title: str = "Payment",
    message: str = "Please confirm this payment",
) -> str:
    """The ``data`` a backend sends to create a QR (SPEC 3.1 lines 1-5)."""
    return "\n".join((operation_id, title, message, operation_data, flags))


@dataclass
class SimulatedDevice:
    """The client side of one activation."""

    private_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    keys: FactorKeys | None = None
    ctr_data: bytes | None = None

    @property
    def public_key(self) -> bytes:
        return public_bytes(self.private_key)

    def activate(self, server_public_key: bytes, ctr_data: bytes) -> None:
        """Compute KEY_MASTER_SECRET and the factor keys (SPEC 8.3 step 2)."""
        peer = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), server_public_key
        )
        shared_x = self.private_key.exchange(ec.ECDH(), peer)
        self.keys = derive_factor_keys(master_secret_from_shared_x(shared_x))
        self.ctr_data = ctr_data

    def code(
        self,
        base_string: str,
        signature_type: SignatureType = SignatureType.POSSESSION_KNOWLEDGE,
        *,
        ahead: int = 0,
        component_length: int = 8,
    ) -> str:
        """The code for ``base_string``, ``ahead`` counter steps past the current.

        Like the SDK, the device moves its counter one past the value it used.
        """
        assert self.keys is not None and self.ctr_data is not None
        ctr = self.ctr_data
        for _ in range(ahead):
            ctr = next_counter(ctr)
        code = compute_offline_code(
            self.keys, ctr, base_string, signature_type, component_length
        )
        self.ctr_data = next_counter(ctr)
        return code
