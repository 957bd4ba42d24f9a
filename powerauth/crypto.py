"""Key derivation primitives of PowerAuth 3.x (SPEC 1.3).

Everything here is a pure function of its byte arguments. The ECDH step itself
happens elsewhere (in the token for server keys); this module starts from the
32-byte shared X coordinate.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from enum import IntEnum

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from powerauth._encoding import require_length
from powerauth.errors import InvalidParameterError

__all__ = [
    "FactorKeys",
    "KeyIndex",
    "advance_counter",
    "derive_factor_keys",
    "fold_32_to_16",
    "kdf",
    "kdf_internal",
    "master_secret_from_shared_x",
    "next_counter",
]


class KeyIndex(IntEnum):
    """KDF indexes of the derived keys (SPEC 1.3 table)."""

    POSSESSION = 1
    KNOWLEDGE = 2
    BIOMETRY = 3
    TRANSPORT = 1000
    VAULT = 2000
    # The next two are derived from the transport key, not the master secret.
    TRANSPORT_IV = 3000
    TRANSPORT_CTR = 4000


def fold_32_to_16(data: bytes) -> bytes:
    """XOR the two halves of a 32-byte value into 16 bytes."""
    require_length("value to fold", data, 32)
    # One integer XOR instead of 16 byte XORs: this runs once per counter
    # value of the verification window (SPEC 5.6).
    folded = int.from_bytes(data[:16], "big") ^ int.from_bytes(data[16:], "big")
    return folded.to_bytes(16, "big")


def kdf(key: bytes, index: int) -> bytes:
    """Derive a 16-byte key: one AES-128 block over ``be64(0) || be64(index)``.

    SPEC 11: the index goes in bytes 8..15, not at the start of the block.
    """
    require_length("KDF key", key, 16)
    if not 0 <= index < 2**63:
        raise InvalidParameterError("KDF index must fit a signed 64-bit integer")
    block = bytes(8) + index.to_bytes(8, "big")
    # A single block in ECB equals upstream's CBC with a zero IV, first block.
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305
    return encryptor.update(block) + encryptor.finalize()


def kdf_internal(key: bytes, message: bytes) -> bytes:
    """KDF_INTERNAL: fold of HMAC-SHA256 keyed with the secret (SPEC 1.3, 11)."""
    return fold_32_to_16(hmac.digest(key, message, "sha256"))


def next_counter(ctr_data: bytes) -> bytes:
    """One step of the hash-based counter CTR_DATA (SPEC 5.6)."""
    require_length("CTR_DATA", ctr_data, 16)
    return fold_32_to_16(hashlib.sha256(ctr_data).digest())


def advance_counter(ctr_data: bytes, steps: int) -> bytes:
    """Apply :func:`next_counter` ``steps`` times (``steps`` >= 0)."""
    if steps < 0:
        raise InvalidParameterError("counter steps must not be negative")
    require_length("CTR_DATA", ctr_data, 16)
    for _ in range(steps):
        ctr_data = next_counter(ctr_data)
    return ctr_data


def master_secret_from_shared_x(shared_x: bytes) -> bytes:
    """KEY_MASTER_SECRET: the folded 32-byte ECDH X coordinate (SPEC 1.3)."""
    require_length("ECDH shared X coordinate", shared_x, 32)
    return fold_32_to_16(shared_x)


@dataclass(frozen=True)
class FactorKeys:
    """The five keys derived from KEY_MASTER_SECRET, 16 bytes each.

    The representation hides the key bytes so the object can be logged.
    """

    possession: bytes = field(repr=False)
    knowledge: bytes = field(repr=False)
    biometry: bytes = field(repr=False)
    transport: bytes = field(repr=False)
    vault: bytes = field(repr=False)

    def __post_init__(self) -> None:
        for name in ("possession", "knowledge", "biometry", "transport", "vault"):
            require_length(f"{name} key", getattr(self, name), 16)


def derive_factor_keys(master_secret: bytes) -> FactorKeys:
    """Derive the signature, transport and vault keys (SPEC 1.3 table)."""
    require_length("master secret", master_secret, 16)
    return FactorKeys(
        possession=kdf(master_secret, KeyIndex.POSSESSION),
        knowledge=kdf(master_secret, KeyIndex.KNOWLEDGE),
        biometry=kdf(master_secret, KeyIndex.BIOMETRY),
        transport=kdf(master_secret, KeyIndex.TRANSPORT),
        vault=kdf(master_secret, KeyIndex.VAULT),
    )
