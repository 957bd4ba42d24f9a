"""REST API of the PowerAuth server subset under ``/rest/v3`` (SPEC 7, 8.3).

Every endpoint is a ``POST`` with the envelope of :mod:`webapp.rest.envelope`.
The views only translate JSON to service calls and results back to JSON.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, current_app, g, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from webapp import services
from webapp.db import get_session
from webapp.extensions import get_hsm, get_settings
from webapp.rest.envelope import (
    authenticate,
    error,
    iso,
    ok,
    parse_request,
    request_object,
    service_error,
)
from webapp.services import imports
from webapp.services.encoding import b64, from_b64
from webapp.services.errors import InvalidRequestError, ServiceError
from webapp.services.fields import Field

logger = logging.getLogger(__name__)

bp = Blueprint("rest", __name__, url_prefix="/rest/v3")

NO_PROXIMITY = "the proximity check (TOTP line) is not implemented"
NO_OTP = "activation OTPs are not implemented"


@bp.before_request
def _authenticate() -> tuple[Response, int] | None:
    actor = authenticate()
    if actor is None:
        response, status = error(
            "ERR0024", "HTTP basic authentication with a known user is required", 401
        )
        response.headers["WWW-Authenticate"] = 'Basic realm="PowerAuth"'
        return response, status
    g.rest_actor = actor
    return None


@bp.errorhandler(ServiceError)
def _service_error(exc: ServiceError) -> tuple[Response, int]:
    return service_error(exc)


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_exc: RequestEntityTooLarge) -> tuple[Response, int]:
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    return error("ERR0024", f"request body is larger than {limit} bytes")


@bp.after_app_request
def _json_routing_errors(response: Response) -> Response:
    """Answer an unknown path (404) or method (405) under /rest/ in the envelope.

    Routing errors belong to no blueprint, so this blueprint's error handlers
    never see them, and the app-wide handlers of the HTML pages (registered
    after this blueprint, for the same codes) pass /rest/ paths through as
    Werkzeug's HTML. Every answer passes here, so the HTML body is swapped
    for the envelope a REST client can parse; the status and the ``Allow``
    header of a 405 stay.
    """
    if (
        response.status_code in (404, 405)
        and request.path.startswith("/rest/")
        and not response.is_json
    ):
        if response.status_code == 404:
            message = f"no such endpoint: {request.path}"
        else:
            message = f"method {request.method} is not allowed on {request.path}"
        replaced, status = error("ERR0024", message, response.status_code)
        allow = response.headers.get("Allow")
        if allow:
            replaced.headers["Allow"] = allow
        replaced.status_code = status
        return replaced
    return response


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> tuple[Response, int] | HTTPException:
    if isinstance(exc, HTTPException):
        return exc
    logger.exception("unexpected error in a REST call")
    return error("ERR0000", "unknown error", 500)


def _actor(values: dict[str, Any] | None = None) -> str:
    """Who asks: the caller's ``externalUserId`` if given, else the REST user."""
    external = (values or {}).get("externalUserId")
    if external is not None:
        if not 1 <= len(external) <= 255 or not external.isprintable():
            raise InvalidRequestError(
                "externalUserId must be 1-255 printable characters"
            )
        return str(external)
    actor: str = g.rest_actor
    return actor


# Applications ---------------------------------------------------------------


def _application(view: services.ApplicationView) -> dict[str, Any]:
    return {
        "applicationId": view.application_id,
        "applicationName": view.name,
        "applicationRoles": view.roles,
        "masterPublicKey": b64(view.master_public_key)
        if view.master_public_key
        else None,
    }


@bp.post("/application/create")
def application_create() -> Response:
    values = parse_request(
        {
            "applicationId": Field(str, required=True),
            "applicationName": Field(str),
            "applicationRoles": Field(list),
        }
    )
    view = services.create_application(
        get_session(),
        get_hsm(),
        get_settings(),
        application_id=values["applicationId"],
        name=values.get("applicationName"),
        roles=values.get("applicationRoles", ()),
        actor=_actor(),
    )
    return ok(_application(view))


@bp.post("/application/detail")
def application_detail() -> Response:
    values = parse_request({"applicationId": Field(str, required=True)})
    view = services.get_application(get_session(), values["applicationId"])
    return ok(_application(view))


@bp.post("/application/list")
def application_list() -> Response:
    parse_request({})
    views = services.list_applications(get_session())
    return ok({"applications": [_application(view) for view in views]})


# Activations ----------------------------------------------------------------


def _activation(view: services.ActivationView) -> dict[str, Any]:
    return {
        "activationId": view.activation_id,
        "activationStatus": str(view.status),
        "blockedReason": view.blocked_reason,
        "activationName": view.name,
        "userId": view.user_id,
        "applicationId": view.application_id,
        "timestampCreated": iso(view.created_at),
        "timestampLastUsed": iso(view.last_used_at),
        "timestampLastChange": iso(view.changed_at),
        "timestampActivationExpire": iso(view.expires_at),
        "devicePublicKeyFingerprint": view.device_fingerprint,
        "failedAttempts": view.failed_attempts,
        "maxFailedAttempts": view.max_failed_attempts,
        "activationFlags": view.flags,
    }


@bp.post("/activation/init")
def activation_init() -> Response:
    values = parse_request(
        {
            "userId": Field(str, required=True),
            "applicationId": Field(str, required=True),
            "maxFailureCount": Field(int),
            "timestampActivationExpire": Field("timestamp"),
        },
        unsupported={"activationOtp": NO_OTP, "commitPhase": NO_OTP},
    )
    result = services.init_activation(
        get_session(),
        get_hsm(),
        get_settings(),
        user_id=values["userId"],
        application_id=values["applicationId"],
        max_failure_count=values.get("maxFailureCount"),
        expires_at=values.get("timestampActivationExpire"),
        actor=_actor(),
    )
    return ok(
        {
            "activationId": result.activation_id,
            "activationCode": result.activation_code,
            "activationSignature": b64(result.activation_signature),
            "userId": result.user_id,
            "applicationId": result.application_id,
        }
    )


@bp.post("/activation/prepare")
def activation_prepare() -> Response:
    values = parse_request(
        {
            "activationCode": Field(str, required=True),
            "devicePublicKey": Field(str, required=True),
            "activationName": Field(str),
        },
        unsupported={"activationOtp": NO_OTP},
    )
    result = services.prepare_activation(
        get_session(),
        get_hsm(),
        get_settings(),
        activation_code=values["activationCode"],
        device_public_key=from_b64("devicePublicKey", values["devicePublicKey"]),
        activation_name=values.get("activationName"),
        actor=_actor(),
    )
    return ok(
        {
            "activationId": result.activation_id,
            "serverPublicKey": b64(result.server_public_key),
            "ctrData": b64(result.ctr_data),
            "activationStatus": str(result.status),
        }
    )


@bp.post("/activation/commit")
def activation_commit() -> Response:
    values = parse_request(
        {"activationId": Field(str, required=True), "externalUserId": Field(str)},
        unsupported={"activationOtp": NO_OTP},
    )
    view = services.commit_activation(
        get_session(),
        get_hsm(),
        get_settings(),
        activation_id=values["activationId"],
        actor=_actor(values),
    )
    return ok({"activationId": view.activation_id, "activated": True})


@bp.post("/activation/status")
def activation_status() -> Response:
    values = parse_request(
        {"activationId": Field(str, required=True), "challenge": Field(str)},
    )
    if "challenge" in values:
        raise InvalidRequestError(
            "challenge is not supported by this server: the encrypted status "
            "blob is not implemented"
        )
    view = services.get_activation(get_session(), values["activationId"])
    return ok(_activation(view))


@bp.post("/activation/list")
def activation_list() -> Response:
    values = parse_request(
        {"userId": Field(str, required=True), "applicationId": Field(str)}
    )
    views = services.list_activations(
        get_session(),
        user_id=values["userId"],
        application_id=values.get("applicationId"),
    )
    return ok({"activations": [_activation(view) for view in views]})


@bp.post("/activation/block")
def activation_block() -> Response:
    values = parse_request(
        {
            "activationId": Field(str, required=True),
            "reason": Field(str),
            "externalUserId": Field(str),
        }
    )
    view = services.block_activation(
        get_session(),
        get_settings(),
        activation_id=values["activationId"],
        reason=values.get("reason"),
        actor=_actor(values),
    )
    return ok(
        {
            "activationId": view.activation_id,
            "activationStatus": str(view.status),
            "blockedReason": view.blocked_reason,
        }
    )


@bp.post("/activation/unblock")
def activation_unblock() -> Response:
    values = parse_request(
        {"activationId": Field(str, required=True), "externalUserId": Field(str)}
    )
    view = services.unblock_activation(
        get_session(),
        get_settings(),
        activation_id=values["activationId"],
        actor=_actor(values),
    )
    return ok(
        {"activationId": view.activation_id, "activationStatus": str(view.status)}
    )


@bp.post("/activation/remove")
def activation_remove() -> Response:
    values = parse_request(
        {"activationId": Field(str, required=True), "externalUserId": Field(str)}
    )
    view = services.remove_activation(
        get_session(),
        get_hsm(),
        get_settings(),
        activation_id=values["activationId"],
        actor=_actor(values),
    )
    return ok({"activationId": view.activation_id, "removed": True})


# Offline signatures ---------------------------------------------------------


def _payload(result: services.OfflinePayloadResult) -> Response:
    return ok({"offlineData": result.offline_data, "nonce": result.nonce})


@bp.post("/signature/offline/personalized/create")
def offline_personalized_create() -> Response:
    values = parse_request(
        {
            "activationId": Field(str, required=True),
            "data": Field(str, required=True),
            "nonce": Field(str),
        },
        unsupported={"proximityCheck": NO_PROXIMITY},
    )
    result = services.create_personalized_payload(
        get_session(),
        get_hsm(),
        get_settings(),
        activation_id=values["activationId"],
        data=values["data"],
        nonce=values.get("nonce"),
        actor=_actor(),
    )
    return _payload(result)


@bp.post("/signature/offline/non-personalized/create")
def offline_non_personalized_create() -> Response:
    values = parse_request(
        {"applicationId": Field(str, required=True), "data": Field(str, required=True)}
    )
    result = services.create_non_personalized_payload(
        get_session(),
        get_hsm(),
        get_settings(),
        application_id=values["applicationId"],
        data=values["data"],
        actor=_actor(),
    )
    return _payload(result)


@bp.post("/signature/offline/verify")
def offline_verify() -> Response:
    values = parse_request(
        {
            "activationId": Field(str, required=True),
            "data": Field(str, required=True),
            "signature": Field(str, required=True),
            "allowBiometry": Field(bool),
            "componentLength": Field(int),
        },
        unsupported={"proximityCheck": NO_PROXIMITY},
    )
    result = services.verify_offline_signature(
        get_session(),
        get_hsm(),
        get_settings(),
        activation_id=values["activationId"],
        data=values["data"],
        signature=values["signature"],
        allow_biometry=values.get("allowBiometry", False),
        component_length=values.get("componentLength"),
        actor=_actor(),
    )
    body: dict[str, Any] = {
        "signatureValid": result.signature_valid,
        "activationStatus": str(result.activation_status),
        "activationId": result.activation_id,
    }
    if result.user_id is not None:
        # SPEC 7.4: an invalid-state answer carries only the three fields above.
        body |= {
            "blockedReason": result.blocked_reason,
            "userId": result.user_id,
            "applicationId": result.application_id,
            "signatureType": str(result.signature_type),
            "remainingAttempts": result.remaining_attempts,
            "applicationRoles": result.application_roles,
            "activationFlags": result.activation_flags,
        }
    return ok(body)


# Import for integrators (not an upstream endpoint) ---------------------------


@bp.post("/import/application")
def import_application() -> Response:
    view = imports.import_application_record(
        get_session(), get_hsm(), get_settings(), request_object(), actor=_actor()
    )
    return ok(_application(view))


@bp.post("/import/activation")
def import_activation() -> Response:
    view = imports.import_activation_record(
        get_session(), get_hsm(), get_settings(), request_object(), actor=_actor()
    )
    return ok(_activation(view))
