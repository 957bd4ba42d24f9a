"""Errors of the mobile token simulator, each with its own CLI exit status.

Every error names what is wrong and never carries a PIN, a key or a code.
The exit statuses are part of the command's interface (see ``README.md``):
scripts tell the failures apart by them, so a number is never reused.
"""

from __future__ import annotations


class MTokenError(Exception):
    """Base of every simulator error; ``exit_code`` is the CLI's exit status."""

    exit_code = 20


class ImageUnreadableError(MTokenError):
    """The file is not a PNG or JPEG image that can be opened."""

    exit_code = 3


class NoQRCodeError(MTokenError):
    """The image holds no QR code that decodes."""

    exit_code = 4


class SeveralQRCodesError(MTokenError):
    """The image holds more than one QR code, so the operation is ambiguous."""

    exit_code = 5


class PayloadFormatError(MTokenError):
    """The QR text is not a well-formed offline signature payload."""

    exit_code = 6


class PayloadSignatureError(MTokenError):
    """The payload's ECDSA signature does not verify with the expected key."""

    exit_code = 7


class IndicatorMismatchError(MTokenError):
    """The payload's key indicator does not fit this device's activation."""

    exit_code = 8


class UnknownActivationError(MTokenError):
    """No stored activation has the requested id (or none is stored)."""

    exit_code = 9


class AmbiguousActivationError(MTokenError):
    """Several activations are stored and the command does not say which one."""

    exit_code = 10


class BiometryNotAllowedError(MTokenError):
    """Biometry was asked for but the payload lacks the ``B`` flag."""

    exit_code = 11


class ActivationCodeError(MTokenError):
    """The activation code or its signature is wrong."""

    exit_code = 12


class ServerError(MTokenError):
    """The server could not be reached or answered with an error."""

    exit_code = 13

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class StateError(MTokenError):
    """A device state file cannot be read or written."""

    exit_code = 14


class PinFormatError(MTokenError):
    """The PIN given at activation does not meet the device's PIN rules."""

    exit_code = 15


class ActivationStateError(MTokenError):
    """The activation is not in a state that allows the action."""

    exit_code = 16


class NoTerminalError(MTokenError):
    """A PIN is needed but there is no terminal to ask for it (give ``--pin``)."""

    exit_code = 17
