"""Errors of the service layer, each with its PowerAuth server error code (SPEC 7).

Messages name what is wrong and never carry a key, a PIN or a code. The REST
layer turns them into HTTP 400 ``{"status": "ERROR", ...}`` responses.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from hsm import HSM
from hsm.errors import ConfigurationError, HSMError

logger = logging.getLogger(__name__)


class ServiceError(Exception):
    """Base class: ``code`` is the upstream error code, ``message`` the reason."""

    code = "ERR0000"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequestError(ServiceError):
    """A field is missing, has the wrong type or a malformed value."""

    code = "ERR0024"


class ApplicationNotFoundError(ServiceError):
    code = "ERR0015"


class NoMasterKeyPairError(ServiceError):
    code = "ERR0003"


class ActivationNotFoundError(ServiceError):
    code = "ERR0009"


class ActivationStateError(ServiceError):
    """The activation is not in a state that allows the operation."""

    code = "ERR0008"


class ActivationExpiredError(ServiceError):
    code = "ERR0007"


class InvalidKeyFormatError(ServiceError):
    code = "ERR0010"


class ActivationCodeGenerationError(ServiceError):
    code = "ERR0006"


class SignatureComputationError(ServiceError):
    """The token failed to sign or to run ECDH."""

    code = "ERR0013"


class CryptoProviderError(ServiceError):
    """The token is unavailable: module, token label or PIN settings are wrong."""

    code = "ERR0023"


@contextlib.contextmanager
def token_operation(action: str) -> Iterator[None]:
    """Translate an HSM failure during ``action`` into a service error.

    The HSM's messages name settings and key labels, never secrets, so they
    are passed on.
    """
    try:
        yield
    except ConfigurationError as exc:
        logger.warning("token unavailable during %s: %s", action, exc)
        raise CryptoProviderError(f"the HSM is unavailable ({exc})") from exc
    except HSMError as exc:
        logger.warning("token operation failed during %s: %s", action, exc)
        raise SignatureComputationError(f"the HSM failed to {action} ({exc})") from exc


def discard_key(hsm: HSM, label: str) -> None:
    """Best-effort removal of a key pair made for a transaction that failed."""
    try:
        hsm.delete_keypair(label)
    except Exception:
        logger.exception("could not delete orphan key pair %s from the token", label)
