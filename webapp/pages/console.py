"""The pilot console: applications, activations and the audit trail.

Behind one password from the ``CONSOLE_PASSWORD`` setting; without it the
console is switched off (404). A sign-in lasts ``CONSOLE_SESSION_MINUTES``.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import (
    Blueprint,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from webapp.extensions import get_settings
from webapp.pages import qr
from webapp.pages.client import ClientError, NotSupportedError, get_client
from webapp.pages.security import limit

bp = Blueprint("console", __name__, url_prefix="/console")

AUDIT_ROWS = 200
F = TypeVar("F", bound=Callable[..., Any])


def _password() -> str:
    return str(current_app.config.get("CONSOLE_PASSWORD") or "")


@bp.before_request
def _enabled() -> None:
    if not _password():
        abort(404)


# The session keys of a console sign-in: the flag and when it was given (UTC
# epoch seconds). The session cookie is signed, not stored server-side, so the
# time inside it is what ends a sign-in whose cookie was copied or kept.
SESSION_KEYS = ("console", "console_at")


def _sign_in_valid() -> bool:
    if session.get("console") is not True:
        return False
    signed_at = session.get("console_at")
    if isinstance(signed_at, bool) or not isinstance(signed_at, int):
        return False
    now = get_settings().now().timestamp()
    minutes = int(current_app.config["CONSOLE_SESSION_MINUTES"])
    return signed_at <= now < signed_at + minutes * 60


def signed_in(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _sign_in_valid():
            for key in SESSION_KEYS:
                session.pop(key, None)
            return redirect(url_for("console.login"))
        return view(*args, **kwargs)

    return cast(F, wrapper)


@bp.get("/login")
def login() -> str:
    return render_template("console/login.html", error=None)


@bp.post("/login")
def login_submit() -> BaseResponse | tuple[str, int]:
    limit(
        current_app,
        "console-login",
        int(current_app.config["RATE_LIMIT_LOGIN_PER_MINUTE"]),
    )
    given = request.form.get("password", "")
    if not hmac.compare_digest(given.encode(), _password().encode()):
        return render_template(
            "console/login.html", error="The password is not right."
        ), 403
    session["console"] = True
    session["console_at"] = int(get_settings().now().timestamp())
    return redirect(url_for("console.index"))


@bp.post("/logout")
def logout() -> BaseResponse:
    for key in SESSION_KEYS:
        session.pop(key, None)
    return redirect(url_for("console.login"))


def _index(status: int = 200, **extra: Any) -> tuple[str, int]:
    client = get_client()
    user_filter = (request.values.get("user") or "").strip() or None
    errors: list[str] = []
    try:
        applications = client.list_applications()
    except ClientError as exc:
        applications, errors = [], [exc.message]
    try:
        activations = client.list_activations(user_filter)
    except ClientError as exc:
        activations = []
        errors.append(exc.message)
    context: dict[str, Any] = {
        "applications": applications,
        "activations": list(reversed(activations)),
        "user_filter": user_filter or "",
        "errors": errors,
        "created": None,
        "created_qr": None,
        "notice": None,
        "bank_application": current_app.config["BANK_APPLICATION_ID"],
        **extra,
    }
    return render_template("console/index.html", **context), status


@bp.get("/")
@signed_in
def index() -> tuple[str, int]:
    return _index()


@bp.post("/activations")
@signed_in
def create_activation() -> tuple[str, int]:
    user_id = request.form.get("user_id", "").strip()
    application_id = request.form.get("application_id", "").strip()
    try:
        created = get_client().init_activation(user_id, application_id)
    except ClientError as exc:
        return _index(400, errors=[exc.message])
    label = f"Activation code {created.activation_code} for user {created.user_id}"
    return _index(created=created, created_qr=qr.svg(created.qr_text, label))


_ACTIONS = {
    "commit": "commit_activation",
    "block": "block_activation",
    "unblock": "unblock_activation",
    "remove": "remove_activation",
}


@bp.post("/activations/<activation_id>/<action>")
@signed_in
def activation_action(activation_id: str, action: str) -> tuple[str, int]:
    method = _ACTIONS.get(action)
    if method is None:
        abort(404)
    try:
        getattr(get_client(), method)(activation_id)
    except ClientError as exc:
        return _index(400, errors=[exc.message])
    return _index(notice=f"Activation {activation_id}: {action} done.")


@bp.get("/audit")
@signed_in
def audit() -> tuple[str, int]:
    try:
        entries = get_client().audit_trail(AUDIT_ROWS)
        error = None
    except NotSupportedError as exc:
        entries, error = [], exc.message
    return render_template("console/audit.html", entries=entries, error=error), 200
