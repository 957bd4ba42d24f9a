"""P-256 key pairs held in a PKCS#11 token: generate, sign, derive, import.

Rules this module keeps (SPEC section 1.1: ECDSA and ECDH on P-256):

* Every PKCS#11 call of the process runs under one re-entrant lock, held for a
  whole operation (key lookup and attribute reads included). python-pkcs11
  calls ``C_Initialize`` without OS locking, so the library itself does not
  serialise threads, and SoftHSM corrupts its memory when two threads call it
  at once.
* The process owns one library object per module path and one logged-in
  session per token. A forked child never touches what its parent opened: it
  keeps those Python objects alive (so no destructor calls into the library)
  and initializes the library again on its first call.
* A lost session (closed, library finalized, token re-inserted) is replaced by
  a new one, logged in, with keys found again by label, a bounded number of
  times; then :class:`~hsm.errors.SessionLostError`. There is never a software
  fallback.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pkcs11
from asn1crypto.core import OctetString
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import (
    KDF,
    Attribute,
    KeyType,
    Mechanism,
    MechanismFlag,
    ObjectClass,
    PKCS11Error,
    _pkcs11,
)
from pkcs11.util.ec import encode_named_curve_parameters

from hsm.config import HSMConfig
from hsm.errors import (
    DeviceError,
    DuplicateKeyError,
    InvalidLabelError,
    InvalidPrivateKeyError,
    InvalidPublicKeyError,
    KeyExistsError,
    KeyNotFoundError,
    MechanismNotSupportedError,
    ModuleLoadError,
    PinIncorrectError,
    from_pkcs11,
    is_handle_stale,
    is_library_already_initialized,
    is_library_uninitialized,
    is_recoverable,
    needs_reinitialize,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Order of the P-256 group (SEC 2, section 2.4.2).
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

_P256 = ec.SECP256R1()
_P256_PARAMS = encode_named_curve_parameters("secp256r1")
_MAX_LABEL_BYTES = 128


# --------------------------------------------------------------------------
# Process-wide state. Only touched with _LOCK held.

_LOCK = threading.RLock()
_PID = os.getpid()
_LIBRARIES: dict[str, Any] = {}
_OWNERS: dict[tuple[str, str], _TokenOwner] = {}
# Library objects a forked child inherited, per module path: kept alive so
# that their destructors never call C_Finalize, and used only to finalize the
# inherited library state when the library did not reset itself on fork.
_INHERITED_LIBRARIES: dict[str, list[Any]] = {}
_INHERITED: list[object] = []


def _hold_lock_for_fork() -> None:
    # No PKCS#11 call may be half-done when the process forks: the child would
    # inherit the library in the middle of it.
    _LOCK.acquire()


def _release_lock_after_fork() -> None:
    _LOCK.release()


def _new_lock_in_child() -> None:
    global _LOCK
    _LOCK = threading.RLock()


os.register_at_fork(
    before=_hold_lock_for_fork,
    after_in_parent=_release_lock_after_fork,
    after_in_child=_new_lock_in_child,
)


def _adopt_process() -> None:
    """Forget, without calling into them, the objects a parent process made."""
    global _PID
    pid = os.getpid()
    if pid == _PID:
        return

    # PKCS#11 v2.40 base, section 5.5.1: a child is a separate application
    # that must call C_Initialize and log in itself.
    for path, lib in _LIBRARIES.items():
        _INHERITED_LIBRARIES.setdefault(path, []).append(lib)
    _INHERITED.append(dict(_OWNERS))
    _LIBRARIES.clear()
    _OWNERS.clear()
    _PID = pid
    logger.debug("process %d was forked; PKCS#11 state starts afresh", pid)


def _library(path: str) -> Any:
    """The process's initialized library object for ``path``."""
    lib = _LIBRARIES.get(path)
    if lib is not None:
        return lib

    if not os.path.isfile(path):
        raise ModuleLoadError(f"PKCS11_MODULE: no file at {path}")

    # The class itself, not the pkcs11.lib() helper: that helper keeps one
    # object per path in a module-level cache and, in a forked child, would
    # hand back the parent's object without calling C_Initialize. Building a
    # second object calls C_Initialize again, which a library still holding
    # state answers with CKR_CRYPTOKI_ALREADY_INITIALIZED.
    try:
        lib = _pkcs11.lib(path)
    except PKCS11Error as exc:
        if not is_library_already_initialized(exc):
            raise
        lib = _restart_inherited_library(path, exc)

    _LIBRARIES[path] = lib
    logger.debug("initialized PKCS#11 library %s", path)
    return lib


def _restart_inherited_library(path: str, exc: PKCS11Error) -> Any:
    inherited = _INHERITED_LIBRARIES.get(path)
    if not inherited:
        raise ModuleLoadError(
            f"PKCS11_MODULE: {path} was initialized by other code in this "
            "process; the HSM layer must be its only user"
        ) from exc

    # The library kept its parent's state across fork (SoftHSM does unless
    # library.reset_on_fork is set) and refuses a second C_Initialize. Finalize
    # that inherited state in this process only, then start again.
    inherited[-1].finalize()
    return _pkcs11.lib(path)


def _reinitialize_library(path: str) -> None:
    """C_Finalize and C_Initialize ``path``: it was finalized or is suspect."""
    lib = _LIBRARIES.get(path)
    if lib is None:
        return

    # Every session and object handle of this library is void now, and new
    # handles may reuse their numbers: no owner may keep an old one.
    for owner in _OWNERS.values():
        if owner.module == path:
            owner.drop()

    try:
        lib.finalize()
    except PKCS11Error as exc:
        if not is_library_uninitialized(exc):
            raise
    try:
        lib.initialize()
    except PKCS11Error as exc:
        if not is_library_already_initialized(exc):
            raise
    logger.warning("re-initialized PKCS#11 library %s", path)


def _owner(config: HSMConfig) -> _TokenOwner:
    _adopt_process()
    key = (config.module, config.token_label)
    owner = _OWNERS.get(key)
    if owner is None:
        owner = _OWNERS[key] = _TokenOwner(config.module, config.token_label)
    return owner


def _pin_digest(pin: str) -> bytes:
    return hashlib.sha256(pin.encode("utf-8")).digest()


class _TokenOwner:
    """The process's logged-in session with one token, and its key handles."""

    def __init__(self, module: str, token_label: str) -> None:
        self.module = module
        self.token_label = token_label
        self.session: Any = None
        self.token: Any = None
        self.was_open = False
        self.mechanisms: frozenset[Mechanism] = frozenset()
        self._pin_digest = b""
        self._rejected_pins: set[bytes] = set()
        self._objects: dict[tuple[ObjectClass, str], Any] = {}

    def ensure_session(self, config: HSMConfig) -> Any:
        """Open and log in a session unless one is open already."""
        digest = _pin_digest(config.user_pin)
        if self.session is not None:
            # The token keeps one login state per application and token, so a
            # second login cannot check another PIN; compare on the host.
            if not hmac.compare_digest(self._pin_digest, digest):
                raise PinIncorrectError(
                    "PKCS11_USER_PIN differs from the PIN this process logged in "
                    f"to token {self.token_label!r} with"
                )
            return self.session

        # A real HSM locks the user PIN after a few failures: a PIN the token
        # refused is not offered again by this process.
        if digest in self._rejected_pins:
            raise PinIncorrectError(
                f"PKCS11_USER_PIN: token {self.token_label!r} refused this PIN "
                "before; it is not tried again, to spare the token's retry counter"
            )

        lib = _library(self.module)
        token = lib.get_token(token_label=self.token_label)
        mechanisms = frozenset(token.slot.get_mechanisms())
        try:
            self.session = token.open(rw=True, user_pin=config.user_pin)
        except (pkcs11.PinIncorrect, pkcs11.PinInvalid, pkcs11.PinLocked):
            self._rejected_pins.add(digest)
            raise
        self.token = token
        self.mechanisms = mechanisms
        self._pin_digest = digest
        self._objects.clear()
        self.was_open = True
        logger.debug("logged in to token %r", self.token_label)
        return self.session

    def drop(self) -> None:
        """Forget the session and handles without calling the library."""
        self.session = None
        self.token = None
        self._objects.clear()

    def close(self) -> None:
        """Log out and close the session; errors of a dead session are moot."""
        session = self.session
        self.drop()
        if session is not None:
            try:
                session.close()
            except PKCS11Error:
                logger.debug("closing the session of %r failed", self.token_label)

    def forget_objects(self) -> None:
        self._objects.clear()

    def find(
        self, object_class: ObjectClass, label: str, *, fresh: bool = False
    ) -> Any | None:
        """The single EC key of ``object_class`` labelled ``label``, or None.

        A remembered handle is used unless ``fresh``: an operation on a key
        another process deleted fails on the stale handle and looks again,
        but a plain existence check must ask the token.
        """
        cached = None if fresh else self._objects.get((object_class, label))
        if cached is not None:
            return cached
        self._objects.pop((object_class, label), None)

        found = list(
            self.session.get_objects(
                {
                    Attribute.CLASS: object_class,
                    Attribute.KEY_TYPE: KeyType.EC,
                    Attribute.LABEL: label,
                }
            )
        )
        if not found:
            return None
        if len(found) > 1:
            kind = "private" if object_class == ObjectClass.PRIVATE_KEY else "public"
            raise DuplicateKeyError(
                f"{len(found)} {kind} keys are labelled {label!r} in token "
                f"{self.token_label!r}; remove the extra ones"
            )
        if found[0][Attribute.EC_PARAMS] != _P256_PARAMS:
            raise KeyNotFoundError(
                f"key {label!r} in token {self.token_label!r} is not on P-256"
            )
        self._objects[(object_class, label)] = found[0]
        return found[0]

    def require(self, object_class: ObjectClass, label: str) -> Any:
        key = self.find(object_class, label)
        if key is None:
            kind = "private" if object_class == ObjectClass.PRIVATE_KEY else "public"
            raise KeyNotFoundError(
                f"no {kind} key labelled {label!r} in token {self.token_label!r}"
            )
        return key

    def labelled_objects(self, label: str) -> list[Any]:
        return list(self.session.get_objects({Attribute.LABEL: label}))

    def require_mechanism(self, *candidates: Mechanism) -> Mechanism:
        """The first of ``candidates`` the token offers."""
        for mechanism in candidates:
            if mechanism in self.mechanisms:
                return mechanism
        names = " or ".join(_mechanism_name(m) for m in candidates)
        raise MechanismNotSupportedError(
            f"token {self.token_label!r} does not offer {names}"
        )


# --------------------------------------------------------------------------
# Encodings and checks done on the host, before any token call.


def _mechanism_name(mechanism: Mechanism) -> str:
    return f"CKM_{mechanism.name}"


def _check_label(label: str) -> None:
    if not isinstance(label, str):
        raise InvalidLabelError("key label must be a str")

    if not label:
        raise InvalidLabelError("key label must not be empty")

    if len(label.encode("utf-8")) > _MAX_LABEL_BYTES:
        raise InvalidLabelError(
            f"key label must be at most {_MAX_LABEL_BYTES} bytes of UTF-8"
        )


def _uncompressed_peer(peer_public_key: bytes) -> bytes:
    """Validate a P-256 point (SPEC 1.2) and return it uncompressed."""
    if not isinstance(peer_public_key, bytes | bytearray | memoryview):
        raise InvalidPublicKeyError("peer public key must be bytes")
    peer = bytes(peer_public_key)

    if not (len(peer) == 65 and peer[0] == 0x04) and not (
        len(peer) == 33 and peer[0] in (0x02, 0x03)
    ):
        raise InvalidPublicKeyError(
            "peer public key must be a 65-byte uncompressed or 33-byte "
            f"compressed P-256 point, got {len(peer)} bytes"
        )

    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(_P256, peer)
    except ValueError as exc:
        raise InvalidPublicKeyError("peer public key is not a point on P-256") from exc

    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _scalar_from_java(private_key: bytes | str) -> int:
    """Read a private scalar stored as a Java signed big-endian integer.

    PowerAuth stores ``BigInteger.toByteArray()`` (SPEC 1.2): usually 32
    bytes, 33 with a leading zero when the top bit is set, or fewer. A ``str``
    is taken as the Base64 text a PowerAuth server database keeps.
    """
    if isinstance(private_key, str):
        try:
            data = base64.b64decode(private_key, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidPrivateKeyError("private key text is not Base64") from exc
    elif isinstance(private_key, bytes | bytearray | memoryview):
        data = bytes(private_key)
    else:
        raise InvalidPrivateKeyError("private key must be bytes or Base64 text")

    if not 1 <= len(data) <= 33:
        raise InvalidPrivateKeyError(
            "private key must be 1 to 33 bytes of a signed big-endian integer, "
            f"got {len(data)} bytes"
        )

    if data[0] & 0x80:
        raise InvalidPrivateKeyError("private key is negative (its sign bit is set)")

    scalar = int.from_bytes(data, "big")
    if not 1 <= scalar < P256_ORDER:
        raise InvalidPrivateKeyError("private key is outside 1..n-1 of P-256")

    return scalar


def _point_from_attribute(value: bytes, label: str) -> bytes:
    """The 65-byte point from CKA_EC_POINT, which PKCS#11 defines as DER.

    Some tokens store the bare point; for P-256 the two forms differ in length
    (67 against 65 bytes), so telling them apart is unambiguous.
    """
    if len(value) == 65 and value[0] == 0x04:
        point = value
    elif len(value) == 67 and value[:2] == b"\x04\x41":
        point = OctetString.load(value).native
    else:
        raise DeviceError(f"public key {label!r} has a malformed CKA_EC_POINT")

    if len(point) != 65 or point[0] != 0x04:
        raise DeviceError(f"public key {label!r} is not an uncompressed P-256 point")
    return bytes(point)


def _der_signature(raw: bytes, label: str) -> bytes:
    """Minimal DER ``SEQUENCE{r, s}`` from the token's ``r||s`` (SPEC 1.1)."""
    if len(raw) != 64:
        raise DeviceError(
            f"signature by key {label!r} has {len(raw)} bytes, expected 64 (r||s)"
        )

    r = int.from_bytes(raw[:32], "big")
    s = int.from_bytes(raw[32:], "big")
    if not (0 < r < P256_ORDER and 0 < s < P256_ORDER):
        raise DeviceError(f"signature by key {label!r} is out of range")

    return encode_dss_signature(r, s)


# --------------------------------------------------------------------------
# Public API


@dataclass(frozen=True)
class KeyProperties:
    """What the token says about a private key (a conformance check)."""

    token: bool
    private: bool
    sensitive: bool
    extractable: bool
    always_sensitive: bool
    never_extractable: bool
    sign: bool
    derive: bool
    value_readable: bool


@dataclass(frozen=True)
class TokenInfo:
    """Identity of the token in use and the mechanisms the adapter picked."""

    library: str
    label: str
    manufacturer: str
    model: str
    serial: str
    sign_mechanism: str
    mechanisms: frozenset[str]


class HSM:
    """P-256 key pairs in a PKCS#11 token, addressed by label.

    Nothing is opened until the first call. Instances are cheap: the process
    shares one library object and one logged-in session per token between all
    of them, and every call is thread-safe and fork-safe.

    :param config: where the keys live; :meth:`HSMConfig.from_env` when None.
    """

    def __init__(self, config: HSMConfig | None = None) -> None:
        self._config = config if config is not None else HSMConfig.from_env()

    def __repr__(self) -> str:
        return f"HSM({self._config!r})"

    def __enter__(self) -> HSM:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def config(self) -> HSMConfig:
        return self._config

    def _call(self, key_label: str | None, operation: Callable[[_TokenOwner], T]) -> T:
        """Run ``operation`` with a logged-in session, under the process lock.

        A lost session is replaced and the operation run again, at most
        ``max_retries`` times; a stale key handle is looked up again once.
        """
        config = self._config
        with _LOCK:
            recoveries = 0
            refound = False
            while True:
                owner = _owner(config)
                try:
                    owner.ensure_session(config)
                    return operation(owner)
                except PKCS11Error as exc:
                    # A search whose C_FindObjectsInit failed stays active in
                    # python-pkcs11, holding its session's lock, until it is
                    # collected; its destructor then calls C_FindObjectsFinal.
                    # Free it now, under the process lock, not whenever the
                    # exception chain happens to be dropped.
                    traceback.clear_frames(exc.__traceback__)

                    if is_handle_stale(exc) and not refound:
                        refound = True
                        owner.forget_objects()
                        continue

                    if is_recoverable(exc) and recoveries < config.max_retries:
                        recoveries += 1
                        logger.warning(
                            "token %r: %s; opening a new session (attempt %d of %d)",
                            config.token_label,
                            type(exc).__name__,
                            recoveries,
                            config.max_retries,
                        )
                        self._recover(owner, reinitialize=needs_reinitialize(exc))
                        continue

                    # A token that never answered in this process is a setting
                    # error, not a lost session.
                    raise from_pkcs11(
                        exc,
                        module=config.module,
                        token_label=config.token_label,
                        key_label=key_label,
                        recoveries=recoveries if owner.was_open else 0,
                    ) from exc

    def _recover(self, owner: _TokenOwner, *, reinitialize: bool) -> None:
        try:
            if reinitialize:
                _reinitialize_library(owner.module)
            else:
                owner.close()
        except PKCS11Error as exc:
            raise from_pkcs11(
                exc, module=owner.module, token_label=owner.token_label
            ) from exc

    # -- key pairs ---------------------------------------------------------

    def generate_keypair(self, label: str) -> bytes:
        """Generate a P-256 key pair in the token.

        The private key is a token object, sensitive, never extractable, able
        to sign and derive; the public key is a token object too. Both carry
        ``label`` and one random CKA_ID.

        :returns: the public key as a 65-byte uncompressed point.
        :raises KeyExistsError: an object already carries ``label``.
        """
        _check_label(label)
        key_id = secrets.token_bytes(16)

        def generate(owner: _TokenOwner) -> bytes:
            mechanism = owner.require_mechanism(Mechanism.EC_KEY_PAIR_GEN)
            self._refuse_existing(owner, label)

            params = owner.session.create_domain_parameters(
                KeyType.EC, {Attribute.EC_PARAMS: _P256_PARAMS}, local=True
            )
            public, _private = params.generate_keypair(
                id=key_id,
                label=label,
                store=True,
                capabilities=MechanismFlag.SIGN
                | MechanismFlag.VERIFY
                | MechanismFlag.DERIVE,
                mechanism=mechanism,
                public_template=_public_template(),
                private_template=_private_template(),
            )
            return _point_from_attribute(public[Attribute.EC_POINT], label)

        point = self._call(label, generate)
        logger.info("generated P-256 key pair %r", label)
        return point

    def import_private_key(self, label: str, private_key: bytes | str) -> bytes:
        """Store an existing P-256 private key in the token, non-extractable.

        The token creates the private key object sensitive and
        non-extractable, with its public key object beside it. PKCS#11 marks an
        imported key CKA_ALWAYS_SENSITIVE and CKA_NEVER_EXTRACTABLE false: its
        value existed outside the token once, and no token can undo that.

        :param private_key: the scalar as a Java signed big-endian integer
            (``BigInteger.toByteArray()``, 32 or 33 bytes, or fewer), or the
            Base64 text of it that a PowerAuth server database stores.
        :returns: the public key as a 65-byte uncompressed point.
        :raises InvalidPrivateKeyError: the value is not a P-256 scalar.
        :raises KeyExistsError: an object already carries ``label``.
        """
        _check_label(label)
        scalar = _scalar_from_java(private_key)
        point = (
            ec.derive_private_key(scalar, _P256)
            .public_key()
            .public_bytes(
                serialization.Encoding.X962,
                serialization.PublicFormat.UncompressedPoint,
            )
        )
        key_id = secrets.token_bytes(16)

        def store(owner: _TokenOwner) -> bytes:
            self._refuse_existing(owner, label)

            private = owner.session.create_object(
                {
                    Attribute.CLASS: ObjectClass.PRIVATE_KEY,
                    Attribute.KEY_TYPE: KeyType.EC,
                    Attribute.EC_PARAMS: _P256_PARAMS,
                    Attribute.VALUE: scalar.to_bytes(32, "big"),
                    Attribute.ID: key_id,
                    Attribute.LABEL: label,
                    **_private_template(),
                }
            )
            try:
                owner.session.create_object(
                    {
                        Attribute.CLASS: ObjectClass.PUBLIC_KEY,
                        Attribute.KEY_TYPE: KeyType.EC,
                        Attribute.EC_PARAMS: _P256_PARAMS,
                        Attribute.EC_POINT: OctetString(point).dump(),
                        Attribute.ID: key_id,
                        Attribute.LABEL: label,
                        **_public_template(),
                    }
                )
            except BaseException:
                # Leave no half pair behind.
                private.destroy()
                raise
            return point

        result = self._call(label, store)
        logger.info("imported P-256 private key %r", label)
        return result

    def delete_keypair(self, label: str) -> None:
        """Destroy the private and public key labelled ``label``.

        :raises KeyNotFoundError: neither key exists.
        :raises DuplicateKeyError: more than one key of a kind carries the label.
        """
        _check_label(label)

        def delete(owner: _TokenOwner) -> None:
            private = owner.find(ObjectClass.PRIVATE_KEY, label)
            public = owner.find(ObjectClass.PUBLIC_KEY, label)
            if private is None and public is None:
                raise KeyNotFoundError(
                    f"no key labelled {label!r} in token {owner.token_label!r}"
                )
            owner.forget_objects()
            for key in (private, public):
                if key is not None:
                    key.destroy()

        self._call(label, delete)
        logger.info("deleted P-256 key pair %r", label)

    def has_keypair(self, label: str) -> bool:
        """Whether the private key labelled ``label`` exists.

        :raises DuplicateKeyError: more than one private key carries the label.
        """
        _check_label(label)
        return self._call(
            label,
            lambda owner: (
                owner.find(ObjectClass.PRIVATE_KEY, label, fresh=True) is not None
            ),
        )

    def public_key(self, label: str) -> bytes:
        """The public key labelled ``label`` as a 65-byte uncompressed point."""
        _check_label(label)

        def read(owner: _TokenOwner) -> bytes:
            key = owner.require(ObjectClass.PUBLIC_KEY, label)
            return _point_from_attribute(key[Attribute.EC_POINT], label)

        return self._call(label, read)

    # -- cryptography ------------------------------------------------------

    def sign(self, label: str, message: bytes) -> bytes:
        """ECDSA P-256 with SHA-256 over ``message``, as minimal DER (SPEC 1.1).

        Uses CKM_ECDSA_SHA256 when the token offers it, else hashes on the
        host and uses CKM_ECDSA.
        """
        _check_label(label)
        if not isinstance(message, bytes | bytearray | memoryview):
            raise TypeError("message must be bytes")
        data = bytes(message)

        def sign(owner: _TokenOwner) -> bytes:
            mechanism = owner.require_mechanism(Mechanism.ECDSA_SHA256, Mechanism.ECDSA)
            key = owner.require(ObjectClass.PRIVATE_KEY, label)
            if mechanism == Mechanism.ECDSA_SHA256:
                return bytes(key.sign(data, mechanism=mechanism))
            digest = hashlib.sha256(data).digest()
            return bytes(key.sign(digest, mechanism=mechanism))

        return _der_signature(self._call(label, sign), label)

    def ecdh(self, label: str, peer_public_key: bytes) -> bytes:
        """ECDH on P-256 in the token: the 32-byte X of the shared point.

        The peer point (uncompressed or compressed) is checked on the host
        before any token call. The token derives a session object that is
        read and destroyed at once (CKM_ECDH1_DERIVE with CKD_NULL).

        :raises InvalidPublicKeyError: the peer is not a valid P-256 point.
        """
        _check_label(label)
        peer = _uncompressed_peer(peer_public_key)
        if self._config.ecdh_peer_encoding == "der":
            peer = OctetString(peer).dump()

        def derive(owner: _TokenOwner) -> bytes:
            mechanism = owner.require_mechanism(Mechanism.ECDH1_DERIVE)
            key = owner.require(ObjectClass.PRIVATE_KEY, label)
            secret = key.derive_key(
                KeyType.GENERIC_SECRET,
                256,
                mechanism=mechanism,
                mechanism_param=(KDF.NULL, None, peer),
                template={
                    Attribute.TOKEN: False,
                    Attribute.PRIVATE: True,
                    Attribute.SENSITIVE: False,
                    Attribute.EXTRACTABLE: True,
                },
            )
            try:
                return bytes(secret[Attribute.VALUE])
            finally:
                secret.destroy()

        shared = self._call(label, derive)
        if len(shared) != 32:
            raise DeviceError(
                f"ECDH with key {label!r} gave {len(shared)} bytes, expected 32"
            )
        return shared

    # -- diagnostics -------------------------------------------------------

    def private_key_properties(self, label: str) -> KeyProperties:
        """The protection attributes of the private key labelled ``label``.

        ``value_readable`` is True when the token handed out CKA_VALUE, which a
        sensitive key must refuse; the value itself is dropped at once.
        """
        _check_label(label)

        def inspect(owner: _TokenOwner) -> KeyProperties:
            key = owner.require(ObjectClass.PRIVATE_KEY, label)
            attrs = key.get_attributes(
                [
                    Attribute.TOKEN,
                    Attribute.PRIVATE,
                    Attribute.SENSITIVE,
                    Attribute.EXTRACTABLE,
                    Attribute.ALWAYS_SENSITIVE,
                    Attribute.NEVER_EXTRACTABLE,
                    Attribute.SIGN,
                    Attribute.DERIVE,
                ]
            )
            try:
                key[Attribute.VALUE]
                readable = True
            except (pkcs11.AttributeSensitive, pkcs11.AttributeTypeInvalid):
                readable = False
            return KeyProperties(
                token=bool(attrs[Attribute.TOKEN]),
                private=bool(attrs[Attribute.PRIVATE]),
                sensitive=bool(attrs[Attribute.SENSITIVE]),
                extractable=bool(attrs[Attribute.EXTRACTABLE]),
                always_sensitive=bool(attrs[Attribute.ALWAYS_SENSITIVE]),
                never_extractable=bool(attrs[Attribute.NEVER_EXTRACTABLE]),
                sign=bool(attrs[Attribute.SIGN]),
                derive=bool(attrs[Attribute.DERIVE]),
                value_readable=readable,
            )

        return self._call(label, inspect)

    def key_labels(self) -> list[str]:
        """The labels of the EC private keys in the token, sorted."""

        def collect(owner: _TokenOwner) -> list[str]:
            keys = owner.session.get_objects(
                {
                    Attribute.CLASS: ObjectClass.PRIVATE_KEY,
                    Attribute.KEY_TYPE: KeyType.EC,
                }
            )
            return sorted(key.label for key in keys)

        return self._call(None, collect)

    def session_object_count(self) -> int:
        """How many session (non-token) objects the process's session holds.

        ECDH destroys what it derives, so this stays 0 in normal use.
        """
        return self._call(
            None,
            lambda owner: len(
                list(owner.session.get_objects({Attribute.TOKEN: False}))
            ),
        )

    def token_info(self) -> TokenInfo:
        """The token's identity and the mechanisms the adapter will use."""

        def describe(owner: _TokenOwner) -> TokenInfo:
            token = owner.token
            if Mechanism.ECDSA_SHA256 in owner.mechanisms:
                sign = _mechanism_name(Mechanism.ECDSA_SHA256)
            elif Mechanism.ECDSA in owner.mechanisms:
                sign = f"{_mechanism_name(Mechanism.ECDSA)} (SHA-256 on the host)"
            else:
                sign = "none"
            lib = _library(owner.module)
            return TokenInfo(
                library=f"{lib.manufacturer_id} {lib.library_description} "
                f"{'.'.join(map(str, lib.library_version))}",
                label=token.label,
                manufacturer=token.manufacturer_id,
                model=token.model,
                serial=token.serial.decode("ascii", "replace").strip(),
                sign_mechanism=sign,
                mechanisms=frozenset(
                    _mechanism_name(m) if isinstance(m, Mechanism) else hex(m)
                    for m in owner.mechanisms
                ),
            )

        return self._call(None, describe)

    def close(self) -> None:
        """Log out and close the process's session with this token.

        Other :class:`HSM` instances for the same token share that session;
        the next call of any of them opens a new one.
        """
        with _LOCK:
            _adopt_process()
            owner = _OWNERS.pop((self._config.module, self._config.token_label), None)
            if owner is not None:
                owner.close()

    def _refuse_existing(self, owner: _TokenOwner, label: str) -> None:
        if owner.labelled_objects(label):
            raise KeyExistsError(
                f"token {owner.token_label!r} already holds an object labelled "
                f"{label!r}"
            )


def _private_template() -> dict[Attribute, Any]:
    # PKCS#11 v2.40 base, 4.9 (private key objects): a sensitive,
    # non-extractable private key that the token stores, for ECDSA and ECDH
    # only.
    return {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
        Attribute.SIGN: True,
        Attribute.DERIVE: True,
        Attribute.DECRYPT: False,
        Attribute.UNWRAP: False,
    }


def _public_template() -> dict[Attribute, Any]:
    return {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: False,
        Attribute.VERIFY: True,
        Attribute.ENCRYPT: False,
        Attribute.WRAP: False,
    }


__all__ = ["HSM", "KeyProperties", "TokenInfo"]
