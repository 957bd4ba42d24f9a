"""Offline signatures: QR payload creation (SPEC 3.2) and verification (SPEC 6.2).

Key custody: the ECDSA signature of a payload and the ECDH of a verification
run in the token. The 32-byte shared X coordinate that ECDH returns is folded
into the master secret and the factor keys on the host, because no standard
PKCS#11 mechanism performs the fold, and SoftHSM refuses HMAC-SHA256 with a
16-byte key. Those values live in local variables for the duration of one
verification and are never stored, logged or returned.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from hsm import HSM
from powerauth.crypto import derive_factor_keys, master_secret_from_shared_x
from powerauth.errors import (
    MalformedCodeError,
    MalformedPayloadError,
    SignatureMismatchError,
)
from powerauth.payload import (
    KeyIndicator,
    PayloadData,
    PayloadDraft,
    build_offline_payload,
    parse_payload_data,
)
from powerauth.signature import (
    SignatureType,
    normalize_code,
    parse_base_string,
    verify_offline_code,
)
from webapp.config import ServerSettings
from webapp.models import Activation, ActivationStatus, Application
from webapp.services import audit
from webapp.services.activations import (
    BLOCKED_REASON_MAX_FAILED,
    check_activation_id,
    lock_activation,
)
from webapp.services.applications import check_application_id, newest_master_key
from webapp.services.encoding import b64, from_b64
from webapp.services.errors import (
    ActivationNotFoundError,
    ActivationStateError,
    ApplicationNotFoundError,
    InvalidRequestError,
    token_operation,
)

logger = logging.getLogger(__name__)

MAX_COMPONENT_LENGTH = 8
# A base string is four short Base64 parts around the signed body; this bound
# only keeps absurd inputs away from the HMAC loop.
MAX_BASE_STRING_CHARS = 16 * 1024


@dataclass(frozen=True)
class OfflinePayloadResult:
    offline_data: str
    nonce: str


@dataclass(frozen=True)
class VerifyResult:
    """SPEC 7.4 response; in invalid-state answers only the first three are set."""

    signature_valid: bool
    activation_id: str
    activation_status: ActivationStatus
    blocked_reason: str | None = None
    user_id: str | None = None
    application_id: str | None = None
    signature_type: SignatureType | None = None
    remaining_attempts: int | None = None
    application_roles: list[str] | None = None
    activation_flags: list[str] | None = None
    # Not part of the upstream response; for the audit and the tests.
    counter_offset: int | None = None


def validate_data(data: str, settings: ServerSettings) -> PayloadData:
    """Check a payload's ``data``: UTF-8, size, and the line structure of SPEC 3.1.

    :returns: the parsed lines, which :func:`_draft` builds the payload from
        without parsing them again.
    :raises InvalidRequestError: naming ``data`` and the broken rule.
    """
    try:
        size = len(data.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidRequestError("data must be valid UTF-8 text") from exc
    if size > settings.payload_data_max_bytes:
        raise InvalidRequestError(
            f"data must be at most {settings.payload_data_max_bytes} bytes "
            f"of UTF-8, got {size}"
        )
    try:
        parsed = parse_payload_data(data)
    except MalformedPayloadError as exc:
        raise InvalidRequestError(f"data: {exc}") from exc
    return parsed


def _draft(data: PayloadData, nonce_b64: str, indicator: KeyIndicator) -> PayloadDraft:
    """The bytes to sign; built before the transaction, as they need no row."""
    try:
        return build_offline_payload(data, nonce_b64, indicator)
    except MalformedPayloadError as exc:
        raise InvalidRequestError(f"data: {exc}") from exc


def _nonce(nonce: str | None) -> str:
    # SPEC 3.2: a blank caller nonce means "make one"; SPEC 10.1: 16 CSPRNG bytes.
    if nonce is None or not nonce.strip():
        return b64(os.urandom(16))
    from_b64("nonce", nonce, length=16)
    return nonce


def create_personalized_payload(
    session: Session,
    hsm: HSM,
    settings: ServerSettings,
    *,
    activation_id: str,
    data: str,
    nonce: str | None = None,
    actor: str,
) -> OfflinePayloadResult:
    """Sign ``data`` with the activation's server key (indicator ``1``).

    Stricter than upstream (SPEC 3.2 signs for any status): the activation
    must be ACTIVE.
    """
    check_activation_id(activation_id)
    parsed = validate_data(data, settings)
    nonce_b64 = _nonce(nonce)
    draft = _draft(parsed, nonce_b64, KeyIndicator.PERSONALIZED)
    with session.begin():
        # A shared lock: a block or a removal waits until the payload is
        # signed, so no payload is made after the activation stopped being
        # ACTIVE; payloads of one activation are still signed side by side.
        activation = lock_activation(session, activation_id, shared=True)
        if activation is None:
            raise ActivationNotFoundError(f"activation {activation_id} does not exist")
        if activation.status != ActivationStatus.ACTIVE:
            raise ActivationStateError(
                f"payloads are only created for ACTIVE activations, this one is "
                f"{activation.status}"
            )
        with token_operation("sign the offline payload"):
            signature = hsm.sign(activation.server_key_label, draft.signed_bytes)
        offline_data = draft.finish(signature)
        audit.record_activation(
            session,
            settings,
            activation,
            actor=actor,
            action="payload_personalized",
            result="OK",
            reason=f"operation {parsed.operation_id}",
        )
    return OfflinePayloadResult(offline_data, nonce_b64)


def create_non_personalized_payload(
    session: Session,
    hsm: HSM,
    settings: ServerSettings,
    *,
    application_id: str,
    data: str,
    actor: str,
) -> OfflinePayloadResult:
    """Sign ``data`` with the application's newest master key (indicator ``0``).

    The nonce is always fresh (SPEC 3.2: no caller nonce here).
    """
    check_application_id(application_id)
    parsed = validate_data(data, settings)
    nonce_b64 = b64(os.urandom(16))
    draft = _draft(parsed, nonce_b64, KeyIndicator.MASTER)
    with session.begin():
        if session.get(Application, application_id) is None:
            raise ApplicationNotFoundError(
                f"application {application_id} does not exist"
            )
        master = newest_master_key(session, application_id)
        with token_operation("sign the offline payload"):
            signature = hsm.sign(master.key_label, draft.signed_bytes)
        offline_data = draft.finish(signature)
        audit.record(
            session,
            settings,
            actor=actor,
            action="payload_non_personalized",
            result="OK",
            application_id=application_id,
            reason=f"operation {parsed.operation_id}",
        )
    return OfflinePayloadResult(offline_data, nonce_b64)


def effective_component_length(settings: ServerSettings, requested: int | None) -> int:
    """The component length of a verification (SPEC 6.1, 10.3).

    A request may ask for longer components than the server's setting, never
    for shorter ones: otherwise a caller could downgrade codes to 4 digits.
    """
    if requested is None:
        return settings.component_length
    if requested < settings.component_length:
        raise InvalidRequestError(
            f"componentLength must not be below the server setting "
            f"{settings.component_length}"
        )
    if requested > MAX_COMPONENT_LENGTH:
        raise InvalidRequestError(
            f"componentLength must be at most {MAX_COMPONENT_LENGTH}"
        )
    return requested


def _invalid_state(activation: Activation) -> VerifyResult:
    return VerifyResult(
        signature_valid=False,
        activation_id=activation.id,
        activation_status=activation.status,
    )


def verify_offline_signature(
    session: Session,
    hsm: HSM,
    settings: ServerSettings,
    *,
    activation_id: str,
    data: str,
    signature: str,
    allow_biometry: bool = False,
    component_length: int | None = None,
    actor: str,
) -> VerifyResult:
    """Verify a typed offline code (SPEC 6.2) in one locked transaction.

    A mismatch is a result (``signature_valid=False``), not an error; it costs
    one failed attempt per request. A malformed code or request (including a
    ``data`` that is not a SPEC 5.2 base string) raises
    :class:`InvalidRequestError` before anything is read or changed.
    """
    check_activation_id(activation_id)
    length = effective_component_length(settings, component_length)
    if not data:
        raise InvalidRequestError("data must not be empty")
    if len(data) > MAX_BASE_STRING_CHARS:
        raise InvalidRequestError(
            f"data must be at most {MAX_BASE_STRING_CHARS} characters"
        )
    try:
        # No real client signs anything else (SPEC 5.2): a garbage ``data``
        # is refused here, before the ECDH and without spending an attempt.
        parse_base_string(data)
    except MalformedPayloadError as exc:
        raise InvalidRequestError(f"data: {exc}") from exc
    try:
        code = normalize_code(signature, length)
    except MalformedCodeError as exc:
        raise InvalidRequestError(f"signature: {exc}") from exc
    types = [SignatureType.POSSESSION_KNOWLEDGE]
    if allow_biometry:
        types.append(SignatureType.POSSESSION_BIOMETRY)
    flags_note = "BIOMETRY_ALLOWED" if allow_biometry else None

    with session.begin():
        activation = lock_activation(session, activation_id, with_application=True)
        now = settings.now()

        if activation is None:
            # SPEC 10.11: an unknown activation is "not valid", not an error.
            audit.record(
                session,
                settings,
                actor=actor,
                action="verify",
                result="activation_not_found",
                activation_id=activation_id,
            )
            return VerifyResult(False, activation_id, ActivationStatus.REMOVED)

        if activation.status != ActivationStatus.ACTIVE:
            activation.last_used_at = now
            audit.record_activation(
                session,
                settings,
                activation,
                actor=actor,
                action="verify",
                result="activation_invalid_state",
                reason=str(activation.status),
            )
            return _invalid_state(activation)

        if activation.failed_attempts >= activation.max_failed_attempts:
            # Safety net of SPEC 6.2 (for example after an import).
            _block_at_limit(activation, now)
            audit.record_activation(
                session,
                settings,
                activation,
                actor=actor,
                action="verify",
                result="activation_blocked",
                reason=BLOCKED_REASON_MAX_FAILED,
            )
            return _invalid_state(activation)

        if activation.device_public_key is None or activation.ctr_data is None:
            raise ActivationStateError("the activation has no device key or counter")

        with token_operation("run ECDH with the server key"):
            shared_x = hsm.ecdh(
                activation.server_key_label, activation.device_public_key
            )
        keys = derive_factor_keys(master_secret_from_shared_x(shared_x))
        del shared_x
        try:
            match = verify_offline_code(
                keys,
                activation.ctr_data,
                data,
                code,
                types,
                settings.lookahead,
                length,
            )
        except SignatureMismatchError:
            match = None
        finally:
            del keys

        activation.last_used_at = now
        application = activation.application
        if match is not None:
            # SPEC 6.2: the counter moves one past the match; failures reset.
            activation.ctr_data = match.next_ctr_data
            activation.counter += match.offset + 1
            activation.failed_attempts = 0
            audit.record_activation(
                session,
                settings,
                activation,
                actor=actor,
                action="verify",
                result="signature_ok",
                signature_type=str(match.signature_type),
                counter_offset=match.offset,
                reason=flags_note,
            )
            result = VerifyResult(
                signature_valid=True,
                activation_id=activation.id,
                activation_status=activation.status,
                blocked_reason=None,
                user_id=activation.user_id,
                application_id=activation.application_id,
                signature_type=match.signature_type,
                remaining_attempts=activation.max_failed_attempts,
                application_roles=list(application.roles),
                activation_flags=list(activation.flags),
                counter_offset=match.offset,
            )
        else:
            # One failed attempt per request, whatever the window (SPEC 10.5).
            activation.failed_attempts += 1
            if activation.failed_attempts >= activation.max_failed_attempts:
                _block_at_limit(activation, now)
            audit.record_activation(
                session,
                settings,
                activation,
                actor=actor,
                action="verify",
                result="signature_does_not_match",
                reason=flags_note,
            )
            result = VerifyResult(
                signature_valid=False,
                activation_id=activation.id,
                activation_status=activation.status,
                blocked_reason=activation.blocked_reason,
                user_id=activation.user_id,
                application_id=activation.application_id,
                signature_type=types[0],
                remaining_attempts=max(
                    activation.max_failed_attempts - activation.failed_attempts, 0
                ),
                application_roles=list(application.roles),
                activation_flags=list(activation.flags),
            )
    logger.info(
        "offline verification of %s: %s",
        activation_id,
        "valid" if result.signature_valid else "not valid",
    )
    return result


def _block_at_limit(activation: Activation, now: datetime) -> None:
    activation.status = ActivationStatus.BLOCKED
    activation.blocked_reason = BLOCKED_REASON_MAX_FAILED
    activation.changed_at = now
