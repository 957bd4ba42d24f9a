"""How the web pages talk to the PowerAuth server: one interface, two ways.

:class:`InProcessClient` (the default) calls the service layer of this app.
:class:`HttpClient` speaks the ``/rest/v3`` envelope (SPEC 7.1) with httpx to
any server that exposes the PowerAuth REST paths; the ``POWERAUTH_API_URL``
setting chooses it. The pages see the same dataclasses either way.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import httpx
from flask import Flask, current_app

from webapp import services
from webapp.db import get_session
from webapp.extensions import get_hsm, get_settings
from webapp.services import audit

PAGES_ACTOR = "web-pages"
HTTP_TIMEOUT_SECONDS = 15.0


class ClientError(Exception):
    """The server refused a call or could not be reached; ``code`` is its error code."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class NotSupportedError(ClientError):
    """The chosen server offers no way to do this (the message says why)."""


@dataclass(frozen=True)
class Payload:
    offline_data: str
    nonce: str


@dataclass(frozen=True)
class Verification:
    """The answer of an offline code verification (SPEC 7.4)."""

    valid: bool
    status: str
    remaining_attempts: int | None
    blocked_reason: str | None


@dataclass(frozen=True)
class Activation:
    activation_id: str
    application_id: str
    user_id: str
    name: str | None
    status: str
    blocked_reason: str | None
    failed_attempts: int
    max_failed_attempts: int
    fingerprint: str | None
    counter: int | None
    created_at: str | None
    last_used_at: str | None


@dataclass(frozen=True)
class Application:
    application_id: str
    name: str
    master_public_key: str | None


@dataclass(frozen=True)
class NewActivation:
    activation_id: str
    activation_code: str
    activation_signature: str
    user_id: str
    application_id: str

    @property
    def qr_text(self) -> str:
        """``CODE#SIGNATURE``, the activation QR text (SPEC 8.2)."""
        return f"{self.activation_code}#{self.activation_signature}"


@dataclass(frozen=True)
class AuditEntry:
    created_at: str
    actor: str
    action: str
    result: str
    application_id: str | None
    activation_id: str | None
    reason: str | None


class PowerAuthClient(Protocol):
    """What the bank, the simulator page and the console ask of the server."""

    def create_personalized_payload(self, activation_id: str, data: str) -> Payload:
        """SPEC 7.2; the server makes the nonce."""
        ...

    def create_non_personalized_payload(
        self, application_id: str, data: str
    ) -> Payload:
        """SPEC 7.3."""
        ...

    def verify_offline(
        self, activation_id: str, base_string: str, code: str, allow_biometry: bool
    ) -> Verification:
        """SPEC 7.4: ``base_string`` without ``&offline``, ``code`` normalized."""
        ...

    def list_activations(
        self, user_id: str | None, application_id: str | None = None
    ) -> list[Activation]:
        """A user's activations; ``user_id=None`` (every user) only in-process."""
        ...

    def get_activation(self, activation_id: str) -> Activation: ...

    def list_applications(self) -> list[Application]: ...

    def init_activation(self, user_id: str, application_id: str) -> NewActivation: ...

    def commit_activation(self, activation_id: str) -> None: ...

    def block_activation(self, activation_id: str) -> None: ...

    def unblock_activation(self, activation_id: str) -> None: ...

    def remove_activation(self, activation_id: str) -> None: ...

    def audit_trail(self, limit: int) -> list[AuditEntry]:
        """Newest first; only in-process (no upstream REST endpoint reads it)."""
        ...


def _iso(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else None


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _activation_from_view(view: services.ActivationView) -> Activation:
    return Activation(
        activation_id=view.activation_id,
        application_id=view.application_id,
        user_id=view.user_id,
        name=view.name,
        status=str(view.status),
        blocked_reason=view.blocked_reason,
        failed_attempts=view.failed_attempts,
        max_failed_attempts=view.max_failed_attempts,
        fingerprint=view.device_fingerprint,
        counter=view.counter,
        created_at=_iso(view.created_at),
        last_used_at=_iso(view.last_used_at),
    )


class InProcessClient:
    """The service layer of the running app, without a socket."""

    def __init__(self, actor: str = PAGES_ACTOR) -> None:
        self.actor = actor

    def _call(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except services.ServiceError as exc:
            raise ClientError(exc.message, exc.code) from exc

    def create_personalized_payload(self, activation_id: str, data: str) -> Payload:
        result = self._call(
            services.create_personalized_payload,
            get_session(),
            get_hsm(),
            get_settings(),
            activation_id=activation_id,
            data=data,
            actor=self.actor,
        )
        return Payload(result.offline_data, result.nonce)

    def create_non_personalized_payload(
        self, application_id: str, data: str
    ) -> Payload:
        result = self._call(
            services.create_non_personalized_payload,
            get_session(),
            get_hsm(),
            get_settings(),
            application_id=application_id,
            data=data,
            actor=self.actor,
        )
        return Payload(result.offline_data, result.nonce)

    def verify_offline(
        self, activation_id: str, base_string: str, code: str, allow_biometry: bool
    ) -> Verification:
        result = self._call(
            services.verify_offline_signature,
            get_session(),
            get_hsm(),
            get_settings(),
            activation_id=activation_id,
            data=base_string,
            signature=code,
            allow_biometry=allow_biometry,
            actor=self.actor,
        )
        return Verification(
            valid=result.signature_valid,
            status=str(result.activation_status),
            remaining_attempts=result.remaining_attempts,
            blocked_reason=result.blocked_reason,
        )

    def list_activations(
        self, user_id: str | None, application_id: str | None = None
    ) -> list[Activation]:
        views = self._call(
            services.list_activations,
            get_session(),
            user_id=user_id,
            application_id=application_id,
        )
        return [_activation_from_view(view) for view in views]

    def get_activation(self, activation_id: str) -> Activation:
        view = self._call(services.get_activation, get_session(), activation_id)
        return _activation_from_view(view)

    def list_applications(self) -> list[Application]:
        views = self._call(services.list_applications, get_session())
        return [
            Application(
                view.application_id,
                view.name,
                _b64(view.master_public_key) if view.master_public_key else None,
            )
            for view in views
        ]

    def init_activation(self, user_id: str, application_id: str) -> NewActivation:
        result = self._call(
            services.init_activation,
            get_session(),
            get_hsm(),
            get_settings(),
            user_id=user_id,
            application_id=application_id,
            actor=self.actor,
        )
        return NewActivation(
            result.activation_id,
            result.activation_code,
            _b64(result.activation_signature),
            result.user_id,
            result.application_id,
        )

    def commit_activation(self, activation_id: str) -> None:
        self._call(
            services.commit_activation,
            get_session(),
            get_hsm(),
            get_settings(),
            activation_id=activation_id,
            actor=self.actor,
        )

    def block_activation(self, activation_id: str) -> None:
        self._call(
            services.block_activation,
            get_session(),
            get_settings(),
            activation_id=activation_id,
            actor=self.actor,
        )

    def unblock_activation(self, activation_id: str) -> None:
        self._call(
            services.unblock_activation,
            get_session(),
            get_settings(),
            activation_id=activation_id,
            actor=self.actor,
        )

    def remove_activation(self, activation_id: str) -> None:
        self._call(
            services.remove_activation,
            get_session(),
            get_hsm(),
            get_settings(),
            activation_id=activation_id,
            actor=self.actor,
        )

    def audit_trail(self, limit: int) -> list[AuditEntry]:
        records = audit.recent(get_session(), limit)
        return [
            AuditEntry(
                created_at=_iso(record.created_at) or "",
                actor=record.actor,
                action=record.action,
                result=record.result,
                application_id=record.application_id,
                activation_id=record.activation_id,
                reason=record.reason,
            )
            for record in records
        ]


def _text(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise ClientError(f"the server's answer lacks {name}")
    return value


def _optional_text(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    return value if isinstance(value, str) else None


def _int(body: Mapping[str, Any], name: str, default: int = 0) -> int:
    value = body.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return default


class HttpClient:
    """Any server exposing the PowerAuth ``/rest/v3`` paths, over HTTP(S)."""

    def __init__(
        self,
        base_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ClientError("POWERAUTH_API_URL must start with http:// or https://")
        self.base_url = base_url.rstrip("/")
        auth = httpx.BasicAuth(username, password or "") if username else None
        self._http = http or httpx.Client(timeout=HTTP_TIMEOUT_SECONDS, auth=auth)

    def call(self, path: str, request_object: Mapping[str, Any]) -> dict[str, Any]:
        """POST one envelope to ``/rest/v3`` + ``path``; return ``responseObject``."""
        url = f"{self.base_url}/rest/v3{path}"
        try:
            response = self._http.post(url, json={"requestObject": request_object})
        except httpx.HTTPError as exc:
            raise ClientError(
                f"the PowerAuth server at {self.base_url} is unreachable"
            ) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("status") == "ERROR":
            detail = body.get("responseObject")
            detail = detail if isinstance(detail, dict) else {}
            raise ClientError(
                str(detail.get("message") or f"the server refused {path}"),
                detail.get("code") if isinstance(detail.get("code"), str) else None,
            )
        if response.status_code >= 400 or not isinstance(body, dict):
            raise ClientError(
                f"the server answered HTTP {response.status_code} to {path}"
            )
        result = body.get("responseObject")
        if body.get("status") != "OK" or not isinstance(result, dict):
            raise ClientError(f"the answer to {path} is not an OK envelope")
        return result

    def create_personalized_payload(self, activation_id: str, data: str) -> Payload:
        body = self.call(
            "/signature/offline/personalized/create",
            {"activationId": activation_id, "data": data},
        )
        return Payload(_text(body, "offlineData"), _text(body, "nonce"))

    def create_non_personalized_payload(
        self, application_id: str, data: str
    ) -> Payload:
        body = self.call(
            "/signature/offline/non-personalized/create",
            {"applicationId": application_id, "data": data},
        )
        return Payload(_text(body, "offlineData"), _text(body, "nonce"))

    def verify_offline(
        self, activation_id: str, base_string: str, code: str, allow_biometry: bool
    ) -> Verification:
        body = self.call(
            "/signature/offline/verify",
            {
                "activationId": activation_id,
                "data": base_string,
                "signature": code,
                "allowBiometry": allow_biometry,
            },
        )
        remaining = body.get("remainingAttempts")
        return Verification(
            valid=body.get("signatureValid") is True,
            status=_text(body, "activationStatus"),
            remaining_attempts=remaining if isinstance(remaining, int) else None,
            blocked_reason=_optional_text(body, "blockedReason"),
        )

    def _activation(self, body: Mapping[str, Any]) -> Activation:
        return Activation(
            activation_id=_text(body, "activationId"),
            application_id=_optional_text(body, "applicationId") or "",
            user_id=_optional_text(body, "userId") or "",
            name=_optional_text(body, "activationName"),
            status=_text(body, "activationStatus"),
            blocked_reason=_optional_text(body, "blockedReason"),
            failed_attempts=_int(body, "failedAttempts"),
            max_failed_attempts=_int(body, "maxFailedAttempts", 5),
            fingerprint=_optional_text(body, "devicePublicKeyFingerprint"),
            counter=None,
            created_at=_optional_text(body, "timestampCreated"),
            last_used_at=_optional_text(body, "timestampLastUsed"),
        )

    def list_activations(
        self, user_id: str | None, application_id: str | None = None
    ) -> list[Activation]:
        if user_id is None:
            raise NotSupportedError(
                "the PowerAuth REST API lists activations per user: enter a user id"
            )
        request: dict[str, Any] = {"userId": user_id}
        if application_id is not None:
            request["applicationId"] = application_id
        body = self.call("/activation/list", request)
        items = body.get("activations")
        if not isinstance(items, list):
            raise ClientError("the server's answer lacks activations")
        return [self._activation(item) for item in items if isinstance(item, dict)]

    def get_activation(self, activation_id: str) -> Activation:
        return self._activation(
            self.call("/activation/status", {"activationId": activation_id})
        )

    def list_applications(self) -> list[Application]:
        body = self.call("/application/list", {})
        items = body.get("applications")
        if not isinstance(items, list):
            raise ClientError("the server's answer lacks applications")
        return [
            Application(
                _text(item, "applicationId"),
                _optional_text(item, "applicationName") or _text(item, "applicationId"),
                _optional_text(item, "masterPublicKey"),
            )
            for item in items
            if isinstance(item, dict)
        ]

    def init_activation(self, user_id: str, application_id: str) -> NewActivation:
        body = self.call(
            "/activation/init", {"userId": user_id, "applicationId": application_id}
        )
        signature = _text(body, "activationSignature")
        try:
            base64.b64decode(signature, validate=True)
        except binascii.Error as exc:
            raise ClientError("activationSignature is not Base64") from exc
        return NewActivation(
            _text(body, "activationId"),
            _text(body, "activationCode"),
            signature,
            user_id,
            application_id,
        )

    def commit_activation(self, activation_id: str) -> None:
        self.call("/activation/commit", {"activationId": activation_id})

    def block_activation(self, activation_id: str) -> None:
        self.call("/activation/block", {"activationId": activation_id})

    def unblock_activation(self, activation_id: str) -> None:
        self.call("/activation/unblock", {"activationId": activation_id})

    def remove_activation(self, activation_id: str) -> None:
        self.call("/activation/remove", {"activationId": activation_id})

    def audit_trail(self, limit: int) -> list[AuditEntry]:
        raise NotSupportedError(
            "the audit trail is only readable with the in-process server: the "
            "PowerAuth REST API has no endpoint for it"
        )


_CLIENT_KEY = "powerauth.pages_client"


def init_client(app: Flask) -> None:
    """Choose the implementation once, from ``API_URL`` (env ``POWERAUTH_API_URL``)."""
    url = str(app.config.get("API_URL") or "")
    client: PowerAuthClient
    if url:
        client = HttpClient(
            url,
            username=app.config.get("API_USER") or None,
            password=app.config.get("API_PASSWORD") or None,
        )
    else:
        client = InProcessClient()
    app.extensions[_CLIENT_KEY] = client


def get_client(app: Flask | None = None) -> PowerAuthClient:
    client: PowerAuthClient = (app or current_app).extensions[_CLIENT_KEY]
    return client
