"""Import of key material from another PowerAuth server (records as JSON objects).

The records use the REST field names; the REST import endpoints and the
``flask --app webapp application import`` / ``activation import`` commands
both go through here. Private keys are Base64 of Java
``BigInteger.toByteArray()`` (SPEC 1.2), as a PowerAuth server stores them
when database encryption is off; they go into the token and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from hsm import HSM
from webapp.config import ServerSettings
from webapp.models import ActivationStatus
from webapp.services.activations import ActivationView, import_activation
from webapp.services.applications import ApplicationView, import_master_key
from webapp.services.encoding import from_b64
from webapp.services.errors import InvalidRequestError
from webapp.services.fields import Field, check_fields

APPLICATION_FIELDS = {
    "applicationId": Field(str, required=True),
    "masterPrivateKey": Field(str, required=True),
    "masterPublicKey": Field(str),
    "applicationName": Field(str),
    "applicationRoles": Field(list),
}

ACTIVATION_FIELDS = {
    "activationId": Field(str, required=True),
    "applicationId": Field(str, required=True),
    "userId": Field(str, required=True),
    "activationName": Field(str),
    "serverPrivateKey": Field(str, required=True),
    "serverPublicKey": Field(str),
    "devicePublicKey": Field(str, required=True),
    "ctrData": Field(str, required=True),
    "counter": Field(int, required=True),
    "activationStatus": Field(str, required=True),
    "blockedReason": Field(str),
    "failedAttempts": Field(int),
    "maxFailedAttempts": Field(int),
}


def _java_private_key(name: str, text: str) -> bytes:
    key = from_b64(name, text)
    if not 1 <= len(key) <= 33:
        raise InvalidRequestError(f"{name} must be Base64 of 1..33 bytes")
    return key


def _optional_key(name: str, values: Mapping[str, Any]) -> bytes | None:
    text = values.get(name)
    return from_b64(name, text) if text else None


def import_application_record(
    session: Session,
    hsm: HSM,
    settings: ServerSettings,
    record: Mapping[str, Any],
    *,
    actor: str,
) -> ApplicationView:
    """Import one application master key pair (see :data:`APPLICATION_FIELDS`)."""
    values = check_fields(record, APPLICATION_FIELDS)
    return import_master_key(
        session,
        hsm,
        settings,
        application_id=values["applicationId"],
        private_key=_java_private_key("masterPrivateKey", values["masterPrivateKey"]),
        public_key=_optional_key("masterPublicKey", values),
        name=values.get("applicationName"),
        roles=values.get("applicationRoles", ()),
        actor=actor,
    )


def import_activation_record(
    session: Session,
    hsm: HSM,
    settings: ServerSettings,
    record: Mapping[str, Any],
    *,
    actor: str,
) -> ActivationView:
    """Import one activation (see :data:`ACTIVATION_FIELDS`)."""
    values = check_fields(record, ACTIVATION_FIELDS)
    try:
        status = ActivationStatus(values["activationStatus"])
    except ValueError as exc:
        raise InvalidRequestError(
            "activationStatus must be PENDING_COMMIT, ACTIVE or BLOCKED"
        ) from exc
    return import_activation(
        session,
        hsm,
        settings,
        activation_id=values["activationId"],
        application_id=values["applicationId"],
        user_id=values["userId"],
        activation_name=values.get("activationName"),
        server_private_key=_java_private_key(
            "serverPrivateKey", values["serverPrivateKey"]
        ),
        server_public_key=_optional_key("serverPublicKey", values),
        device_public_key=from_b64("devicePublicKey", values["devicePublicKey"]),
        ctr_data=from_b64("ctrData", values["ctrData"], length=16),
        counter=values["counter"],
        status=status,
        blocked_reason=values.get("blockedReason"),
        failed_attempts=values.get("failedAttempts", 0),
        max_failed_attempts=values.get("maxFailedAttempts"),
        actor=actor,
    )
