"""Settings of the HSM layer: which PKCS#11 library, which token, which PIN."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from hsm.errors import ConfigurationError

#: Debian's SoftHSM 2 library, the development default of PKCS11_MODULE.
DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"

#: How many times an operation is retried after the token session was lost.
DEFAULT_MAX_RETRIES = 2

EcdhPeerEncoding = Literal["der", "raw"]


@dataclass(frozen=True)
class HSMConfig:
    """Where the keys live.

    :param module: path of the PKCS#11 shared library (PKCS11_MODULE).
    :param token_label: label of the token; tokens are never chosen by slot
        number, which changes when tokens are added (PKCS11_TOKEN_LABEL).
    :param user_pin: the token's user PIN (PKCS11_USER_PIN); left out of
        ``repr``.
    :param ecdh_peer_encoding: how the peer point is passed to
        CKM_ECDH1_DERIVE (PKCS11_ECDH_PEER_ENCODING). ``"der"`` wraps the
        uncompressed point in a DER OCTET STRING, which no token can mistake
        for anything else; ``"raw"`` passes ``04||X||Y`` as PKCS#11 v2.30+
        requires tokens to accept, for tokens that refuse the DER form.
    :param max_retries: how many times an operation is retried with a new
        session when the token session was lost.
    """

    token_label: str
    user_pin: str = field(repr=False)
    module: str = DEFAULT_MODULE
    ecdh_peer_encoding: EcdhPeerEncoding = "der"
    max_retries: int = DEFAULT_MAX_RETRIES

    def __post_init__(self) -> None:
        if not isinstance(self.module, str) or not self.module:
            raise ConfigurationError("PKCS11_MODULE must be a library path")

        if not isinstance(self.token_label, str) or not self.token_label:
            raise ConfigurationError("PKCS11_TOKEN_LABEL must not be empty")

        # CK_TOKEN_INFO.label is 32 bytes, blank padded (PKCS#11 v2.40 3.2).
        if len(self.token_label.encode("utf-8")) > 32:
            raise ConfigurationError(
                "PKCS11_TOKEN_LABEL is longer than the 32 bytes a token label holds"
            )

        if not isinstance(self.user_pin, str) or not self.user_pin:
            raise ConfigurationError("PKCS11_USER_PIN must not be empty")

        if self.ecdh_peer_encoding not in ("der", "raw"):
            raise ConfigurationError("PKCS11_ECDH_PEER_ENCODING must be 'der' or 'raw'")

        if (
            not isinstance(self.max_retries, int)
            or isinstance(self.max_retries, bool)
            or not 0 <= self.max_retries <= 10
        ):
            raise ConfigurationError("max_retries must be an integer from 0 to 10")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HSMConfig:
        """Read the settings from the environment.

        PKCS11_MODULE defaults to :data:`DEFAULT_MODULE`; PKCS11_TOKEN_LABEL
        and PKCS11_USER_PIN are required; PKCS11_ECDH_PEER_ENCODING defaults
        to ``der``.

        :raises ConfigurationError: a required variable is missing or a value
            is malformed; the message names the variable.
        """
        env = os.environ if environ is None else environ

        token_label = env.get("PKCS11_TOKEN_LABEL", "")
        if not token_label:
            raise ConfigurationError("PKCS11_TOKEN_LABEL is not set")

        user_pin = env.get("PKCS11_USER_PIN", "")
        if not user_pin:
            raise ConfigurationError("PKCS11_USER_PIN is not set")

        encoding: EcdhPeerEncoding
        match env.get("PKCS11_ECDH_PEER_ENCODING", "der"):
            case "der":
                encoding = "der"
            case "raw":
                encoding = "raw"
            case _:
                raise ConfigurationError(
                    "PKCS11_ECDH_PEER_ENCODING must be 'der' or 'raw'"
                )

        return cls(
            token_label=token_label,
            user_pin=user_pin,
            module=env.get("PKCS11_MODULE") or DEFAULT_MODULE,
            ecdh_peer_encoding=encoding,
        )
