"""PowerAuth 3.x protocol core: offline signatures, QR payloads, operation data.

A pure package: bytes and text in, bytes and text out. No I/O, no clock, no
randomness of its own, no web framework, database or PKCS#11 (see README.md).
Import the submodules directly, for example ``powerauth.signature``.
"""

from __future__ import annotations

from powerauth.errors import ProtocolError

__all__ = ["ProtocolError"]
