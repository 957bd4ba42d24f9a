"""Activation status blob for counter synchronisation (SPEC 8.6, protocol 3.1+).

The blob is 32 bytes, AES-128-CBC without padding under KEY_TRANSPORT, with an
IV derived from the client's challenge and the server's nonce.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from powerauth._encoding import require_length
from powerauth.crypto import KeyIndex, kdf, kdf_internal, next_counter
from powerauth.errors import InvalidParameterError, StatusBlobError

__all__ = [
    "STATUS_BLOB_MAGIC",
    "ActivationStatusCode",
    "StatusBlob",
    "counter_distance",
    "ctr_data_hash",
    "decrypt_status_blob",
    "encrypt_status_blob",
    "status_blob_iv",
]

STATUS_BLOB_MAGIC = bytes.fromhex("DEC0DED1")
_BLOB_LENGTH = 32


class ActivationStatusCode:
    """Status byte values of the blob."""

    CREATED = 1
    PENDING_COMMIT = 2
    ACTIVE = 3
    BLOCKED = 4
    REMOVED = 5


def status_blob_iv(transport_key: bytes, challenge: bytes, nonce: bytes) -> bytes:
    """``KDF_INTERNAL(KDF(KEY_TRANSPORT, 3000), challenge || nonce)``."""
    require_length("transport key", transport_key, 16)
    require_length("challenge", challenge, 16)
    require_length("nonce", nonce, 16)
    return kdf_internal(kdf(transport_key, KeyIndex.TRANSPORT_IV), challenge + nonce)


def ctr_data_hash(transport_key: bytes, ctr_data: bytes) -> bytes:
    """``KDF_INTERNAL(KDF(KEY_TRANSPORT, 4000), CTR_DATA)``."""
    require_length("transport key", transport_key, 16)
    require_length("CTR_DATA", ctr_data, 16)
    return kdf_internal(kdf(transport_key, KeyIndex.TRANSPORT_CTR), ctr_data)


@dataclass(frozen=True)
class StatusBlob:
    """The plaintext fields of a status blob."""

    status: int
    current_version: int
    upgrade_version: int
    ctr_byte: int
    failed_attempts: int
    max_failed_attempts: int
    ctr_look_ahead: int
    ctr_data_hash: bytes = field(repr=False)
    # Upstream servers fill these five bytes with random data; pass them in.
    reserved: bytes = field(default=bytes(5), repr=False)

    def to_bytes(self) -> bytes:
        """The 32-byte plaintext layout (SPEC 8.6)."""
        require_length("CTR_DATA hash", self.ctr_data_hash, 16)
        require_length("reserved bytes", self.reserved, 5)
        small = (
            self.status,
            self.current_version,
            self.upgrade_version,
            self.ctr_byte,
            self.failed_attempts,
            self.max_failed_attempts,
            self.ctr_look_ahead,
        )
        if not all(0 <= value <= 255 for value in small):
            raise InvalidParameterError("status blob fields must fit one byte")
        return (
            STATUS_BLOB_MAGIC
            + bytes(small[:3])
            + self.reserved
            + bytes(small[3:])
            + self.ctr_data_hash
        )

    @classmethod
    def from_bytes(cls, plain: bytes) -> StatusBlob:
        """Parse the 32-byte plaintext; the magic must match."""
        if len(plain) != _BLOB_LENGTH or plain[:4] != STATUS_BLOB_MAGIC:
            raise StatusBlobError("status blob does not start with its magic value")
        return cls(
            status=plain[4],
            current_version=plain[5],
            upgrade_version=plain[6],
            ctr_byte=plain[12],
            failed_attempts=plain[13],
            max_failed_attempts=plain[14],
            ctr_look_ahead=plain[15],
            ctr_data_hash=plain[16:32],
            reserved=plain[7:12],
        )


def _cipher(transport_key: bytes, iv: bytes) -> Cipher[modes.CBC]:
    require_length("transport key", transport_key, 16)
    return Cipher(algorithms.AES(transport_key), modes.CBC(iv))


def encrypt_status_blob(
    transport_key: bytes, challenge: bytes, nonce: bytes, blob: StatusBlob
) -> bytes:
    """Encrypt a status blob for one challenge and nonce (server side)."""
    iv = status_blob_iv(transport_key, challenge, nonce)
    encryptor = _cipher(transport_key, iv).encryptor()
    return encryptor.update(blob.to_bytes()) + encryptor.finalize()


def decrypt_status_blob(
    transport_key: bytes, challenge: bytes, nonce: bytes, encrypted: bytes
) -> StatusBlob:
    """Decrypt and parse a status blob (client side).

    :raises StatusBlobError: wrong length, or the magic does not match (which
        is what a wrong key, challenge or nonce looks like).
    """
    if len(encrypted) != _BLOB_LENGTH:
        raise StatusBlobError(f"status blob must be {_BLOB_LENGTH} bytes")
    iv = status_blob_iv(transport_key, challenge, nonce)
    decryptor = _cipher(transport_key, iv).decryptor()
    return StatusBlob.from_bytes(decryptor.update(encrypted) + decryptor.finalize())


def counter_distance(
    transport_key: bytes, ctr_data: bytes, server_hash: bytes, look_ahead: int
) -> int | None:
    """How many steps ahead of ``ctr_data`` the server's CTR_DATA is.

    Walks the local counter forward up to ``look_ahead`` steps (SPEC 8.6) and
    returns the first distance whose hash matches, or None.
    """
    if look_ahead < 0:
        raise InvalidParameterError("look-ahead must not be negative")
    require_length("CTR_DATA hash", server_hash, 16)
    for distance in range(look_ahead + 1):
        if hmac.compare_digest(ctr_data_hash(transport_key, ctr_data), server_hash):
            return distance
        ctr_data = next_counter(ctr_data)
    return None
