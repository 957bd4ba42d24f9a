"""A PowerAuth mobile token simulator: library and the ``mtoken`` command.

The device side of offline signatures, as strict as the PowerAuth mobile SDK:
activation by key exchange with the server, QR payload verification, the
operation display, and offline codes (see ``README.md`` in this folder).
All protocol math comes from :mod:`powerauth`.
"""

from __future__ import annotations

from mtoken.device import ActivationResult, Device, OfflineCode, VerifiedPayload
from mtoken.qr import decode_qr_image, read_payload_source
from mtoken.state import DeviceState, StateStore
from mtoken.transport import (
    CallableTransport,
    FlaskClientTransport,
    HttpTransport,
    Transport,
)

__all__ = [
    "ActivationResult",
    "CallableTransport",
    "Device",
    "DeviceState",
    "FlaskClientTransport",
    "HttpTransport",
    "OfflineCode",
    "StateStore",
    "Transport",
    "VerifiedPayload",
    "decode_qr_image",
    "read_payload_source",
]
