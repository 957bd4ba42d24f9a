"""Activation lifecycle (SPEC 8.3, 8.5): init, prepare, commit, block, unblock, remove.

The transport is simplified: plain values instead of the ECIES layers of
SPEC 8.4. The state machine and the key material are PowerAuth's: the server
key pair is generated in the token at init, CTR_DATA is chosen at prepare.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from hsm import HSM
from hsm.errors import KeyNotFoundError
from powerauth.activation import (
    generate_activation_code,
    public_key_fingerprint,
    validate_activation_code,
)
from powerauth.errors import ActivationCodeError, InvalidKeyError
from powerauth.keys import private_key_from_java_bytes, validate_public_key
from webapp.config import ServerSettings
from webapp.db import lock_name
from webapp.models import Activation, ActivationStatus, Application
from webapp.services import audit
from webapp.services.applications import check_application_id, newest_master_key
from webapp.services.errors import (
    ActivationCodeGenerationError,
    ActivationExpiredError,
    ActivationNotFoundError,
    ActivationStateError,
    ApplicationNotFoundError,
    InvalidKeyFormatError,
    InvalidRequestError,
    discard_key,
    token_operation,
)

logger = logging.getLogger(__name__)

PENDING = (ActivationStatus.CREATED, ActivationStatus.PENDING_COMMIT)
CODE_ATTEMPTS = 10
MAX_FAILED_ATTEMPTS_RANGE = (1, 64)
BLOCKED_REASON_DEFAULT = "NOT_SPECIFIED"
BLOCKED_REASON_MAX_FAILED = "MAX_FAILED_ATTEMPTS"
ACTIVATION_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,35}")
TEXT_MAX = 255


@dataclass(frozen=True)
class InitResult:
    activation_id: str
    activation_code: str
    activation_signature: bytes
    user_id: str
    application_id: str


@dataclass(frozen=True)
class PrepareResult:
    activation_id: str
    server_public_key: bytes
    ctr_data: bytes
    status: ActivationStatus


@dataclass(frozen=True)
class ActivationView:
    activation_id: str
    application_id: str
    user_id: str
    name: str | None
    status: ActivationStatus
    blocked_reason: str | None
    counter: int
    failed_attempts: int
    max_failed_attempts: int
    server_key_label: str
    server_public_key: bytes
    device_public_key: bytes | None
    device_fingerprint: str | None
    flags: list[str]
    created_at: datetime
    changed_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None


def server_key_label(activation_id: str) -> str:
    """Token label of an activation's server key pair."""
    return f"pa-server-{activation_id}"


def view(activation: Activation) -> ActivationView:
    fingerprint = None
    if activation.device_public_key is not None:
        fingerprint = public_key_fingerprint(
            activation.device_public_key, activation.id, activation.server_public_key
        )
    return ActivationView(
        activation_id=activation.id,
        application_id=activation.application_id,
        user_id=activation.user_id,
        name=activation.name,
        status=activation.status,
        blocked_reason=activation.blocked_reason,
        counter=activation.counter,
        failed_attempts=activation.failed_attempts,
        max_failed_attempts=activation.max_failed_attempts,
        server_key_label=activation.server_key_label,
        server_public_key=activation.server_public_key,
        device_public_key=activation.device_public_key,
        device_fingerprint=fingerprint,
        flags=list(activation.flags),
        created_at=activation.created_at,
        changed_at=activation.changed_at,
        last_used_at=activation.last_used_at,
        expires_at=activation.expires_at,
    )


def check_activation_id(activation_id: str) -> None:
    """Refuse ids that cannot exist (they would not fit the column either)."""
    if not ACTIVATION_ID_RE.fullmatch(activation_id):
        raise InvalidRequestError(
            "activationId must be 1-36 characters of A-Z a-z 0-9 and -"
        )


def _check_text(field: str, value: str, *, required: bool = True) -> None:
    if required and not value.strip():
        raise InvalidRequestError(f"{field} must not be empty")
    if len(value) > TEXT_MAX:
        raise InvalidRequestError(f"{field} must be at most {TEXT_MAX} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidRequestError(f"{field} must not contain control characters")


def _check_max_failed(value: int) -> None:
    low, high = MAX_FAILED_ATTEMPTS_RANGE
    if not low <= value <= high:
        raise InvalidRequestError(f"maxFailureCount must be within {low}..{high}")


def lock_activation(
    session: Session,
    activation_id: str,
    *,
    shared: bool = False,
    with_application: bool = False,
) -> Activation | None:
    """Load an activation and lock its row until the transaction ends.

    ``FOR UPDATE`` locks the row on PostgreSQL (``FOR SHARE`` when
    ``shared``: readers that must not see the row change under them, but
    need not exclude each other); on SQLite the engine's ``BEGIN IMMEDIATE``
    already holds the database write lock.

    The row is always read again after the lock is granted, also when the
    session still holds the object from an earlier transaction: its old
    attribute values may be from before another worker's change.

    ``with_application`` loads the application in the same SELECT (a join),
    for callers that read it after changing the activation: a lazy load then
    would flush the change and run a second query. Only the activation row is
    locked (``FOR UPDATE OF activation``), so activations of one application
    still do not wait for each other.
    """
    query = _LOCK_QUERIES[shared, with_application]
    return session.scalars(query, {"activation_id": activation_id}).first()


def _lock_query(*, shared: bool, with_application: bool) -> Select[Activation]:
    query = select(Activation).where(Activation.id == bindparam("activation_id"))
    if with_application:
        query = query.options(joinedload(Activation.application, innerjoin=True))
    return query.with_for_update(read=shared, of=Activation).execution_options(
        populate_existing=True
    )


# Built once: statements are immutable, and building one cost about a tenth
# of a millisecond on every payload creation and verification.
_LOCK_QUERIES = {
    (shared, with_application): _lock_query(
        shared=shared, with_application=with_application
    )
    for shared in (False, True)
    for with_application in (False, True)
}


def _require(session: Session, activation_id: str) -> Activation:
    check_activation_id(activation_id)
    activation = lock_activation(session, activation_id)
    if activation is None:
        raise ActivationNotFoundError(f"activation {activation_id} does not exist")
    return activation


def _unique_code(session: Session) -> str:
    for _ in range(CODE_ATTEMPTS):
        code = generate_activation_code(os.urandom(10))
        taken = session.scalars(
            select(Activation.id).where(
                Activation.activation_code == code, Activation.status.in_(PENDING)
            )
        ).first()
        if taken is None:
            return code
    raise ActivationCodeGenerationError("could not find a free activation code")


@contextlib.contextmanager
def _code_collision_is_an_error() -> Iterator[None]:
    """Turn a lost race for an activation code into a service error.

    Two workers may pick the same free code at the same moment; the partial
    unique index lets only the first commit, the other gets this error (and
    its server key pair is discarded by the caller).
    """
    try:
        yield
    except IntegrityError as exc:
        raise ActivationCodeGenerationError(
            "another activation took the same activation code at the same "
            "moment; try again"
        ) from exc


def init_activation(
    session: Session,
    hsm: HSM,
    settings: ServerSettings,
    *,
    user_id: str,
    application_id: str,
    max_failure_count: int | None = None,
    expires_at: datetime | None = None,
    actor: str,
) -> InitResult:
    """Create an activation in state CREATED (SPEC 8.3 step 1).

    The server key pair is generated in the token now; the activation code is
    signed with the application's newest master key.
    """
    _check_text("userId", user_id)
    check_application_id(application_id)
    if max_failure_count is not None:
        _check_max_failed(max_failure_count)
    now = settings.now()
    if expires_at is not None and expires_at <= now:
        raise InvalidRequestError("timestampActivationExpire must be in the future")

    activation_id = str(uuid.uuid4())
    label = server_key_label(activation_id)
    generated = False
    try:
        with _code_collision_is_an_error(), session.begin():
            if session.get(Application, application_id) is None:
                raise ApplicationNotFoundError(
                    f"application {application_id} does not exist"
                )
            master = newest_master_key(session, application_id)
            code = _unique_code(session)
            with token_operation("sign the activation code"):
                # SPEC 8.2: ECDSA over the ASCII code, newest master key.
                signature = hsm.sign(master.key_label, code.encode("ascii"))
            with token_operation("generate the server key pair"):
                server_public_key = hsm.generate_keypair(label)
                generated = True
            session.add(
                Activation(
                    id=activation_id,
                    application_id=application_id,
                    user_id=user_id,
                    status=ActivationStatus.CREATED,
                    activation_code=code,
                    server_key_label=label,
                    server_public_key=server_public_key,
                    counter=0,
                    failed_attempts=0,
                    max_failed_attempts=max_failure_count
                    or settings.max_failed_attempts,
                    flags=[],
                    created_at=now,
                    changed_at=now,
                    expires_at=expires_at or now + settings.activation_validity,
                )
            )
            audit.record(
                session,
                settings,
                actor=actor,
                action="activation_init",
                result="OK",
                application_id=application_id,
                activation_id=activation_id,
            )
    except BaseException:
        if generated:
            discard_key(hsm, label)
        raise
    logger.info(
        "activation %s created for application %s", activation_id, application_id
    )
    return InitResult(activation_id, code, signature, user_id, application_id)


def _expire(
    session: Session,
    hsm: HSM,
    settings: ServerSettings,
    activation: Activation,
    actor: str,
) -> None:
    """Mark a CREATED/PENDING_COMMIT activation past its expiry REMOVED."""
    now = settings.now()
    activation.status = ActivationStatus.REMOVED
    activation.changed_at = now
    with token_operation("delete the server key pair"):
        try:
            hsm.delete_keypair(activation.server_key_label)
        except KeyNotFoundError:
            logger.warning("key pair %s was already gone", activation.server_key_label)
    audit.record_activation(
        session,
        settings,
        activation,
        actor=actor,
        action="activation_expire",
        result="REMOVED",
    )


def _is_expired(activation: Activation, now: datetime) -> bool:
    return activation.expires_at is not None and activation.expires_at <= now


def prepare_activation(
    session: Session,
    hsm: HSM,
    settings: ServerSettings,
    *,
    activation_code: str,
    device_public_key: bytes,
    activation_name: str | None = None,
    actor: str,
) -> PrepareResult:
    """Key exchange (SPEC 8.3 step 2, without ECIES): CREATED -> PENDING_COMMIT.

    :raises ActivationNotFoundError: unknown or already used code.
    :raises ActivationExpiredError: the code expired (the activation is removed).
    :raises InvalidKeyFormatError: the device key is not a valid P-256 point.
    """
    try:
        validate_activation_code(activation_code)
    except ActivationCodeError as exc:
        raise InvalidRequestError(f"activationCode: {exc}") from exc
    try:
        device_key = validate_public_key(device_public_key)
    except InvalidKeyError as exc:
        raise InvalidKeyFormatError(f"devicePublicKey: {exc}") from exc
    if activation_name is not None:
        _check_text("activationName", activation_name, required=False)

    expired = False
    with session.begin():
        activation = session.scalars(
            select(Activation)
            .where(
                Activation.activation_code == activation_code,
                Activation.status.in_(PENDING),
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        ).first()
        if activation is None or activation.status != ActivationStatus.CREATED:
            raise ActivationNotFoundError(
                "no activation waits for this activation code (unknown or used)"
            )
        now = settings.now()
        if _is_expired(activation, now):
            _expire(session, hsm, settings, activation, actor)
            expired = True
        else:
            activation.device_public_key = device_key
            # SPEC 5.6: CTR_DATA is 16 fresh random bytes chosen by the server.
            activation.ctr_data = os.urandom(16)
            activation.name = activation_name
            activation.status = ActivationStatus.PENDING_COMMIT
            activation.changed_at = now
            audit.record_activation(
                session,
                settings,
                activation,
                actor=actor,
                action="activation_prepare",
                result="OK",
            )
            result = PrepareResult(
                activation.id,
                activation.server_public_key,
                activation.ctr_data,
                activation.status,
            )
    if expired:
        raise ActivationExpiredError("the activation code has expired")
    return result


def commit_activation(
    session: Session,
    hsm: HSM,
    settings: ServerSettings,
    *,
    activation_id: str,
    actor: str,
) -> ActivationView:
    """PENDING_COMMIT -> ACTIVE (SPEC 8.3 step 4)."""
    expired = False
    with session.begin():
        activation = _require(session, activation_id)
        if activation.status != ActivationStatus.PENDING_COMMIT:
            raise ActivationStateError(
                f"only a PENDING_COMMIT activation can be committed, "
                f"this one is {activation.status}"
            )
        now = settings.now()
        if _is_expired(activation, now):
            _expire(session, hsm, settings, activation, actor)
            expired = True
        else:
            activation.status = ActivationStatus.ACTIVE
            activation.changed_at = now
            audit.record_activation(
                session,
                settings,
                activation,
                actor=actor,
                action="activation_commit",
                result="OK",
            )
            result = view(activation)
    if expired:
        raise ActivationExpiredError("the activation has expired before its commit")
    logger.info("activation %s committed", activation_id)
    return result


def get_activation(session: Session, activation_id: str) -> ActivationView:
    """:raises ActivationNotFoundError: when it does not exist."""
    check_activation_id(activation_id)
    with session.begin():
        # populate_existing: a session that read this activation in an earlier
        # transaction must not answer from its stale copy.
        activation = session.get(Activation, activation_id, populate_existing=True)
        if activation is None:
            raise ActivationNotFoundError(f"activation {activation_id} does not exist")
        return view(activation)


def list_activations(
    session: Session,
    *,
    user_id: str | None = None,
    application_id: str | None = None,
) -> list[ActivationView]:
    if user_id is not None:
        _check_text("userId", user_id)
    if application_id is not None:
        check_application_id(application_id)
    query = select(Activation).order_by(Activation.created_at, Activation.id)
    if user_id is not None:
        query = query.where(Activation.user_id == user_id)
    if application_id is not None:
        query = query.where(Activation.application_id == application_id)
    with session.begin():
        return [view(activation) for activation in session.scalars(query)]


def block_activation(
    session: Session,
    settings: ServerSettings,
    *,
    activation_id: str,
    reason: str | None = None,
    actor: str,
) -> ActivationView:
    """ACTIVE -> BLOCKED with a reason; a BLOCKED activation stays as it is."""
    if reason is not None:
        _check_text("reason", reason)
    with session.begin():
        activation = _require(session, activation_id)
        if activation.status == ActivationStatus.ACTIVE:
            activation.status = ActivationStatus.BLOCKED
            activation.blocked_reason = reason or BLOCKED_REASON_DEFAULT
            activation.changed_at = settings.now()
            audit.record_activation(
                session,
                settings,
                activation,
                actor=actor,
                action="activation_block",
                result="OK",
                reason=activation.blocked_reason,
            )
        elif activation.status != ActivationStatus.BLOCKED:
            raise ActivationStateError(
                f"only an ACTIVE activation can be blocked, this one is "
                f"{activation.status}"
            )
        return view(activation)


def unblock_activation(
    session: Session,
    settings: ServerSettings,
    *,
    activation_id: str,
    actor: str,
) -> ActivationView:
    """BLOCKED -> ACTIVE, failed attempts back to 0; ACTIVE stays as it is."""
    with session.begin():
        activation = _require(session, activation_id)
        if activation.status == ActivationStatus.BLOCKED:
            activation.status = ActivationStatus.ACTIVE
            activation.blocked_reason = None
            activation.failed_attempts = 0
            activation.changed_at = settings.now()
            audit.record_activation(
                session,
                settings,
                activation,
                actor=actor,
                action="activation_unblock",
                result="OK",
            )
        elif activation.status != ActivationStatus.ACTIVE:
            raise ActivationStateError(
                f"only a BLOCKED activation can be unblocked, this one is "
                f"{activation.status}"
            )
        return view(activation)


def remove_activation(
    session: Session,
    hsm: HSM,
    settings: ServerSettings,
    *,
    activation_id: str,
    actor: str,
) -> ActivationView:
    """Any state -> REMOVED (terminal); the server key pair leaves the token."""
    with session.begin():
        activation = _require(session, activation_id)
        if activation.status != ActivationStatus.REMOVED:
            # Delete first: if the token refuses, the transaction rolls back
            # and the activation keeps its state and its key.
            with token_operation("delete the server key pair"):
                try:
                    hsm.delete_keypair(activation.server_key_label)
                except KeyNotFoundError:
                    logger.warning(
                        "key pair %s was already gone", activation.server_key_label
                    )
            activation.status = ActivationStatus.REMOVED
            activation.changed_at = settings.now()
            audit.record_activation(
                session,
                settings,
                activation,
                actor=actor,
                action="activation_remove",
                result="OK",
            )
        logger.info("activation %s removed", activation_id)
        return view(activation)


IMPORTABLE = (
    ActivationStatus.PENDING_COMMIT,
    ActivationStatus.ACTIVE,
    ActivationStatus.BLOCKED,
)


def import_activation(
    session: Session,
    hsm: HSM,
    settings: ServerSettings,
    *,
    activation_id: str,
    application_id: str,
    user_id: str,
    server_private_key: bytes,
    device_public_key: bytes,
    ctr_data: bytes,
    counter: int,
    status: ActivationStatus,
    failed_attempts: int = 0,
    max_failed_attempts: int | None = None,
    server_public_key: bytes | None = None,
    activation_name: str | None = None,
    blocked_reason: str | None = None,
    actor: str,
) -> ActivationView:
    """Import an activation from another PowerAuth server's database.

    :param server_private_key: Java ``BigInteger.toByteArray()`` bytes; the
        key goes into the token and nowhere else.
    :raises InvalidKeyFormatError: malformed keys, or a public key that does
        not belong to the private one.
    """
    check_activation_id(activation_id)
    check_application_id(application_id)
    _check_text("userId", user_id)
    if activation_name is not None:
        _check_text("activationName", activation_name, required=False)
    if blocked_reason is not None:
        _check_text("blockedReason", blocked_reason)
    if status not in IMPORTABLE:
        raise InvalidRequestError(
            "activationStatus must be PENDING_COMMIT, ACTIVE or BLOCKED"
        )
    if len(ctr_data) != 16:
        raise InvalidRequestError("ctrData must be Base64 of 16 bytes")
    if counter < 0:
        raise InvalidRequestError("counter must not be negative")
    limit = settings.max_failed_attempts
    if max_failed_attempts is not None:
        _check_max_failed(max_failed_attempts)
        limit = max_failed_attempts
    if not 0 <= failed_attempts <= limit:
        raise InvalidRequestError("failedAttempts must be within 0..maxFailedAttempts")
    try:
        private_key_from_java_bytes(server_private_key)
        device_key = validate_public_key(device_public_key)
        expected = (
            validate_public_key(server_public_key)
            if server_public_key is not None
            else None
        )
    except InvalidKeyError as exc:
        raise InvalidKeyFormatError(f"activation keys: {exc}") from exc

    label = server_key_label(activation_id)
    imported = False
    try:
        with session.begin():
            # Two imports of one id would both put a key under one label.
            lock_name(session, f"activation:{activation_id}")
            if session.get(Application, application_id) is None:
                raise ApplicationNotFoundError(
                    f"application {application_id} does not exist"
                )
            if (
                session.get(Activation, activation_id, populate_existing=True)
                is not None
            ):
                raise InvalidRequestError(f"activation {activation_id} already exists")
            with token_operation("import the server key pair"):
                derived = hsm.import_private_key(label, server_private_key)
                imported = True
            if expected is not None and derived != expected:
                raise InvalidKeyFormatError(
                    "serverPublicKey does not belong to serverPrivateKey"
                )
            now = settings.now()
            blocked = status == ActivationStatus.BLOCKED
            activation = Activation(
                id=activation_id,
                application_id=application_id,
                user_id=user_id,
                name=activation_name,
                status=status,
                blocked_reason=(blocked_reason or BLOCKED_REASON_DEFAULT)
                if blocked
                else None,
                server_key_label=label,
                server_public_key=derived,
                device_public_key=device_key,
                ctr_data=ctr_data,
                counter=counter,
                failed_attempts=failed_attempts,
                max_failed_attempts=limit,
                flags=[],
                created_at=now,
                changed_at=now,
            )
            session.add(activation)
            audit.record(
                session,
                settings,
                actor=actor,
                action="activation_import",
                result="OK",
                application_id=application_id,
                activation_id=activation_id,
            )
            session.flush()
            result = view(activation)
    except BaseException:
        if imported:
            discard_key(hsm, label)
        raise
    logger.info("activation %s imported", activation_id)
    return result
