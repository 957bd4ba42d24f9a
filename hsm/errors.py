"""The errors of the HSM layer, and the one place that translates PKCS#11 errors.

Callers catch these classes only; ``pkcs11`` exceptions never leave ``hsm/``.
Messages name the setting or the key label that is wrong and never carry a PIN
or key material.
"""

from __future__ import annotations

from pkcs11 import exceptions as p11


class HSMError(Exception):
    """Base class of every error raised by the HSM layer."""


class ConfigurationError(HSMError):
    """A setting (PKCS11_MODULE, PKCS11_TOKEN_LABEL, PKCS11_USER_PIN) is wrong."""


class ModuleLoadError(ConfigurationError):
    """The PKCS#11 library named by PKCS11_MODULE cannot be loaded."""


class TokenNotFoundError(ConfigurationError):
    """No token carries the label given in PKCS11_TOKEN_LABEL."""


class LoginError(ConfigurationError):
    """The token refused to log the user in."""


class PinIncorrectError(LoginError):
    """The token rejected PKCS11_USER_PIN."""


class PinLockedError(LoginError):
    """The user PIN is locked on the token; a security officer must unlock it."""


class KeyNotFoundError(HSMError):
    """No key pair carries the requested label."""


class DuplicateKeyError(HSMError):
    """Several objects of one kind carry the same label; the adapter will not guess."""


class KeyExistsError(HSMError):
    """A key object already carries the label a new key pair was to get."""


class InvalidLabelError(HSMError, ValueError):
    """A key label is empty, too long or not text."""


class InvalidPublicKeyError(HSMError, ValueError):
    """A peer public key is not a valid P-256 point."""


class InvalidPrivateKeyError(HSMError, ValueError):
    """A private key to import is not a valid P-256 scalar."""


class MechanismNotSupportedError(HSMError):
    """The token does not offer a mechanism the operation needs."""


class DeviceError(HSMError):
    """The token or its library failed while doing an operation."""


class SessionLostError(DeviceError):
    """The token session could not be re-established within the retry budget."""


# Return codes after which the session is gone while the token may be fine:
# a new session, a new login and a new key lookup can succeed.
_SESSION_LOST = (
    p11.SessionHandleInvalid,
    p11.SessionClosed,
    p11.TokenNotPresent,
    p11.TokenNotRecognised,
    p11.DeviceRemoved,
    p11.UserNotLoggedIn,
)

# Return codes after which the library's state in this process is suspect, so
# it is finalized and initialized again before a new session. SoftHSM answers
# CKR_GENERAL_ERROR, or drops the token from its slot list, when another
# process rewrote the token file while this one read it (every C_Login
# rewrites it); a new C_Initialize reads the token again in most such cases.
_LIBRARY_SUSPECT = (p11.GeneralError, p11.DeviceError, p11.NoSuchToken)

# A cached object handle went stale: the object was deleted (maybe by another
# process) or belonged to a session that is gone.
_HANDLE_STALE = (p11.ObjectHandleInvalid, p11.KeyHandleInvalid)


def is_library_uninitialized(exc: BaseException) -> bool:
    """Whether ``exc`` is CKR_CRYPTOKI_NOT_INITIALIZED.

    python-pkcs11 0.10 has no class for this return code: it raises a bare
    ``PKCS11Error`` whose message is the only distinguishing mark.
    """
    return type(exc) is p11.PKCS11Error and "(not initialized)" in str(exc)


def is_library_already_initialized(exc: BaseException) -> bool:
    """Whether ``exc`` is CKR_CRYPTOKI_ALREADY_INITIALIZED (see above)."""
    return type(exc) is p11.PKCS11Error and "(already initialized)" in str(exc)


def is_module_load_failure(exc: BaseException) -> bool:
    """Whether ``exc`` says the shared library itself could not be loaded."""
    return type(exc) is p11.PKCS11Error and "while loading" in str(exc)


def is_session_lost(exc: BaseException) -> bool:
    """Whether a new session (after re-initializing if needed) may cure ``exc``."""
    return isinstance(exc, _SESSION_LOST) or is_library_uninitialized(exc)


def needs_reinitialize(exc: BaseException) -> bool:
    """Whether the library must be initialized again before a new session."""
    return is_library_uninitialized(exc) or isinstance(exc, _LIBRARY_SUSPECT)


def is_recoverable(exc: BaseException) -> bool:
    """Whether running the operation again on a new session may succeed."""
    return is_session_lost(exc) or needs_reinitialize(exc)


def is_handle_stale(exc: BaseException) -> bool:
    """Whether a cached key handle is no longer valid."""
    return isinstance(exc, _HANDLE_STALE)


def from_pkcs11(
    exc: BaseException,
    *,
    module: str,
    token_label: str,
    key_label: str | None = None,
    recoveries: int = 0,
) -> HSMError:
    """Translate a ``pkcs11`` exception into this layer's error.

    The caller raises the result ``from exc`` so the return code stays visible
    in the traceback.

    :param exc: the exception python-pkcs11 raised.
    :param module: the PKCS11_MODULE path in use.
    :param token_label: the PKCS11_TOKEN_LABEL in use.
    :param key_label: the key label of the operation, when there is one.
    :param recoveries: how many new sessions were tried before ``exc``.
    """
    token = f"token {token_label!r}"
    key = f"key {key_label!r}" if key_label is not None else "the key"
    code = type(exc).__name__

    if recoveries and (is_session_lost(exc) or isinstance(exc, p11.NoSuchToken)):
        return SessionLostError(
            f"{token} could not be reached again after {recoveries} new "
            f"session(s) ({code})"
        )
    if is_module_load_failure(exc):
        return ModuleLoadError(
            f"PKCS11_MODULE: cannot load the PKCS#11 library {module} ({exc})"
        )
    if isinstance(exc, p11.NoSuchToken):
        return TokenNotFoundError(
            f"PKCS11_TOKEN_LABEL: no token labelled {token_label!r} "
            f"in PKCS11_MODULE {module}"
        )
    if isinstance(exc, p11.MultipleTokensReturned):
        return ConfigurationError(
            f"PKCS11_TOKEN_LABEL: more than one token is labelled {token_label!r} "
            f"in PKCS11_MODULE {module}; token labels must be unique"
        )
    if isinstance(exc, p11.PinIncorrect | p11.PinInvalid | p11.PinLenRange):
        return PinIncorrectError(f"PKCS11_USER_PIN: the {token} rejected the PIN")
    if isinstance(exc, p11.PinLocked):
        return PinLockedError(
            f"PKCS11_USER_PIN: the user PIN of {token} is locked; "
            "a security officer must unlock it"
        )
    if isinstance(exc, p11.PinExpired):
        return LoginError(f"PKCS11_USER_PIN: the user PIN of {token} has expired")
    if isinstance(exc, p11.UserPinNotInitialized):
        return LoginError(f"PKCS11_USER_PIN: {token} has no user PIN set")
    if isinstance(exc, p11.NoSuchKey):
        return KeyNotFoundError(f"no {key} in {token}")
    if isinstance(exc, p11.MultipleObjectsReturned):
        return DuplicateKeyError(f"more than one object for {key} in {token}")
    if isinstance(
        exc, p11.MechanismInvalid | p11.MechanismParamInvalid | p11.FunctionNotSupported
    ):
        return MechanismNotSupportedError(
            f"{token} does not support the mechanism or its parameters ({code})"
        )
    if isinstance(exc, p11.PublicKeyInvalid | p11.DomainParamsInvalid):
        return InvalidPublicKeyError(f"{token} rejected the public key ({code})")
    if isinstance(exc, _HANDLE_STALE):
        return KeyNotFoundError(f"{key} disappeared from {token} ({code})")
    if is_session_lost(exc):
        return SessionLostError(
            f"the session with {token} is lost and could not be re-established "
            f"({code}: {exc})"
        )
    if isinstance(
        exc,
        p11.DeviceError
        | p11.DeviceMemory
        | p11.GeneralError
        | p11.FunctionFailed
        | p11.HostMemory,
    ):
        return DeviceError(f"{token} failed ({code})")
    return HSMError(f"{token}: PKCS#11 error {code}: {exc}")
