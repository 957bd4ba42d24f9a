"""The demo bank: login and payments confirmed with offline codes from QR codes.

Failure answers are uniform: an unknown user, a user without a usable device
and a wrong code all read "The code was not accepted", and the login lock-out
(:mod:`webapp.pages.lockout`) counts and locks every username the same way.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from powerauth.operation_data import Template, build_operation_data
from webapp.db import get_session
from webapp.extensions import get_settings
from webapp.models import BankOperation
from webapp.pages import lockout, operations, qr
from webapp.pages.client import Activation, ClientError, get_client
from webapp.pages.console import SESSION_KEYS
from webapp.pages.operations import LOGIN, PAYMENT, FormError
from webapp.pages.security import limit

bp = Blueprint("bank", __name__)

NOT_ACCEPTED = "The code was not accepted. Check the digits and try again."
LOGIN_UNAVAILABLE = "Login is not possible right now. Try again later."
LOGIN_BUSY = "A code for this login is being checked. Wait a moment and try again."
# The same words for every username, known or not.
LOGIN_LOCKED = (
    "Too many failed logins for this username. Logging in is locked for "
    "{minutes} more minute(s)."
)
# Outcomes of operations.confirm that count for the login lock-out: True a
# successful login, False a failed one; others checked no code.
_LOGIN_VERDICTS = {"confirmed": True, "wrong": False, "failed": False, "blocked": False}
USABLE = ("ACTIVE", "BLOCKED")


def _config(name: str) -> Any:
    return current_app.config[name]


def _validity() -> timedelta:
    return timedelta(seconds=int(_config("BANK_OPERATION_TTL_SECONDS")))


def _user() -> str | None:
    user = session.get("user")
    return user if isinstance(user, str) else None


def _require_user() -> str:
    user = _user()
    if user is None:
        abort(403)
    return user


def _devices(user_id: str) -> list[Activation]:
    """The user's activations in the bank's application that can confirm."""
    activations = get_client().list_activations(user_id, _config("BANK_APPLICATION_ID"))
    return [a for a in activations if a.status in USABLE]


@bp.get("/")
def home() -> BaseResponse | str:
    if _user() is not None:
        return redirect(url_for("bank.account"))
    return render_template("bank/login.html", error=None, username="")


@bp.post("/login")
def login_start() -> BaseResponse | tuple[str, int]:
    limit(current_app, "login", int(_config("RATE_LIMIT_LOGIN_PER_MINUTE")))
    try:
        username = operations.check_username(request.form.get("username", ""))
    except FormError as exc:
        return render_template("bank/login.html", error=exc.message, username=""), 400
    refusal = lockout.locked(get_session(), username, get_settings().now())
    if refusal is not None:
        return _login_refused(refusal, username)
    client = get_client()
    try:
        devices = _devices(username)
        personalized = (
            _config("BANK_LOGIN_QR") == "auto"
            and len(devices) == 1
            and devices[0].status == "ACTIVE"
        )
        operation = operations.start_operation(
            get_session(),
            client,
            get_settings(),
            kind=LOGIN,
            user_id=username,
            application_id=_config("BANK_APPLICATION_ID"),
            activation_id=devices[0].activation_id if personalized else None,
            title="Log in to Demo Bank",
            message=f"Log in as {username}",
            operation_data=build_operation_data(Template.LOGIN),
            details={
                "devices": [  # type: ignore[dict-item]
                    [d.activation_id, d.name or "unnamed device"] for d in devices
                ]
            },
            validity=_validity(),
            attempts=int(_config("BANK_OPERATION_ATTEMPTS")),
        )
    except ClientError as exc:
        current_app.logger.warning("login QR could not be made: %s", exc.message)
        return render_template(
            "bank/login.html", error=LOGIN_UNAVAILABLE, username=username
        ), 503
    session["login_op"] = operation.id
    return redirect(url_for("bank.login_confirm", operation_id=operation.id))


def _login_refused(refusal: lockout.Refusal, username: str) -> tuple[str, int]:
    if refusal.reason == "busy":
        return render_template(
            "bank/login.html", error=LOGIN_BUSY, username=username
        ), 409
    message = LOGIN_LOCKED.format(minutes=refusal.minutes)
    return render_template("bank/login.html", error=message, username=username), 429


def _login_operation(operation_id: str) -> BankOperation:
    operation = operations.load_operation(get_session(), operation_id)
    if (
        operation is None
        or operation.kind != LOGIN
        or session.get("login_op") != operation_id
    ):
        abort(404)
    return operation


def _payment_operation(operation_id: str) -> BankOperation:
    user = _require_user()
    operation = operations.load_operation(get_session(), operation_id)
    if operation is None or operation.kind != PAYMENT or operation.user_id != user:
        abort(404)
    return operation


def _device_choices(operation: BankOperation) -> list[list[str]]:
    if operation.activation_id is not None:
        return []
    devices = operation.details.get("devices") or []
    return [list(d) for d in devices] if len(devices) > 1 else []


def _operation_page(
    template: str,
    operation: BankOperation,
    *,
    error: str | None = None,
    attempts_left: int | None = None,
    status: int = 200,
) -> tuple[str, int]:
    now = get_settings().now()
    reason = operations.availability(operation, now)
    if reason is not None:
        return render_template(
            "bank/unavailable.html", reason=reason, kind=operation.kind
        ), status
    alt = qr.alt_text(operation.payload_data)
    return render_template(
        template,
        operation=operation,
        qr_svg=qr.svg(operation.offline_data, alt),
        alt=alt,
        lines=qr.operation_lines(operation.payload_data),
        personalized=operation.activation_id is not None,
        devices=_device_choices(operation),
        error=error,
        attempts_left=attempts_left,
        expires_in=max(int((operation.expires_at - now).total_seconds()), 0),
    ), status


def _png(operation: BankOperation) -> Response:
    if operations.availability(operation, get_settings().now()) is not None:
        abort(404)
    response = Response(qr.png(operation.offline_data), mimetype="image/png")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{operation.kind}-{operation.id[:8]}.png"'
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/login/<operation_id>")
def login_confirm(operation_id: str) -> tuple[str, int]:
    return _operation_page("bank/login_qr.html", _login_operation(operation_id))


@bp.get("/login/<operation_id>/qr.png")
def login_png(operation_id: str) -> Response:
    return _png(_login_operation(operation_id))


def _chosen_activation(operation: BankOperation) -> str | None:
    """The activation to verify with: never more than one per typed code."""
    if operation.activation_id is not None:
        return operation.activation_id
    devices = [d[0] for d in operation.details.get("devices") or []]
    if len(devices) == 1:
        return str(devices[0])
    chosen = request.form.get("device", "")
    return chosen if chosen in devices else None


def _submit_code(operation: BankOperation, template: str) -> tuple[str, int] | None:
    """Check and verify the typed code; None when the operation is confirmed."""
    limit(current_app, "code", int(_config("RATE_LIMIT_CODE_PER_MINUTE")))
    settings = get_settings()
    reason = operations.availability(operation, settings.now())
    if reason is not None:
        busy = reason == "processing"
        return _operation_page(template, operation, status=409 if busy else 400)
    try:
        code = operations.parse_code(
            request.form.get("code", ""), settings.component_length
        )
    except FormError as exc:
        return _operation_page(template, operation, error=exc.message, status=400)
    activation_id = _chosen_activation(operation)
    if (
        operation.kind == LOGIN
        and operation.details.get("devices")
        and not (activation_id)
    ):
        return _operation_page(
            template,
            operation,
            error="Choose the device that shows the code.",
            status=400,
        )
    guarded = operation.kind == LOGIN
    if guarded:
        refusal = lockout.begin(get_session(), operation.user_id, settings.now())
        if refusal is not None:
            return _login_refused(refusal, operation.user_id)
    verdict: bool | None = None
    try:
        outcome = operations.confirm(
            get_session(), get_client(), settings, operation, code, activation_id
        )
        verdict = _LOGIN_VERDICTS.get(outcome.result)
    except ClientError as exc:
        current_app.logger.warning("verification failed: %s", exc.message)
        return render_template("bank/error.html", message=LOGIN_UNAVAILABLE), 503
    finally:
        if guarded:
            lockout.finish(
                get_session(),
                operation.user_id,
                settings.now(),
                verdict,
                max_failures=int(_config("LOGIN_LOCKOUT_FAILURES")),
                lock_for=timedelta(minutes=int(_config("LOGIN_LOCKOUT_MINUTES"))),
            )
    if guarded and outcome.result in ("wrong", "failed"):
        refusal = lockout.locked(get_session(), operation.user_id, settings.now())
        if refusal is not None:
            # The failure that locked the login: say so instead of "N attempts left".
            return _login_refused(refusal, operation.user_id)
    if outcome.result == "confirmed":
        if operation.kind == LOGIN:
            # A fresh session for the logged-in user; a pilot console sign-in
            # in the same browser survives.
            console = {k: session[k] for k in SESSION_KEYS if k in session}
            session.clear()
            session.update(console)
            session["user"] = operation.user_id
            session["device"] = outcome.activation_id
        return None
    if outcome.result == "wrong":
        return _operation_page(
            template,
            operations.load_operation(get_session(), operation.id) or operation,
            error=NOT_ACCEPTED,
            attempts_left=outcome.attempts_left,
            status=400,
        )
    if outcome.result == "blocked":
        return render_template("bank/blocked.html", status=outcome.status), 403
    busy = outcome.result == "processing"
    return render_template(
        "bank/unavailable.html", reason=outcome.result, kind=operation.kind
    ), 409 if busy else 400


@bp.post("/login/<operation_id>")
def login_submit(operation_id: str) -> BaseResponse | tuple[str, int]:
    operation = _login_operation(operation_id)
    page = _submit_code(operation, "bank/login_qr.html")
    if page is not None:
        return page
    return redirect(url_for("bank.account"))


@bp.post("/logout")
def logout() -> BaseResponse:
    session.clear()
    return redirect(url_for("bank.home"))


@bp.get("/account")
def account() -> BaseResponse | str:
    user = _user()
    if user is None:
        return redirect(url_for("bank.home"))
    payments = operations.payments_of(get_session(), user)
    return render_template("bank/account.html", user=user, payments=payments)


def _payment_device() -> tuple[str | None, str]:
    """The device that logged in and its status (REMOVED when it is gone)."""
    device = session.get("device")
    user = _require_user()
    for activation in _devices(user):
        if activation.activation_id == device:
            return activation.activation_id, activation.status
    return None, "REMOVED"


@bp.get("/payment/new")
def payment_form() -> str:
    _require_user()
    today = get_settings().now().date()
    return render_template(
        "bank/payment_form.html",
        form={"currency": "CZK", "due_date": today.isoformat()},
        error=None,
        field=None,
    )


@bp.post("/payment/new")
def payment_create() -> BaseResponse | tuple[str, int]:
    user = _require_user()
    settings = get_settings()
    form = {
        k: request.form.get(k, "")
        for k in ("amount", "currency", "iban", "bic", "due_date", "note")
    }
    try:
        order = operations.parse_payment(form, settings.now().date())
    except FormError as exc:
        return render_template(
            "bank/payment_form.html", form=form, error=exc.message, field=exc.field
        ), 400
    try:
        device, status = _payment_device()
        if device is None or status != "ACTIVE":
            return render_template("bank/blocked.html", status=status), 403
        amount = f"{order.amount:,.2f} {order.currency}"
        operation = operations.start_operation(
            get_session(),
            get_client(),
            settings,
            kind=PAYMENT,
            user_id=user,
            application_id=_config("BANK_APPLICATION_ID"),
            activation_id=device,
            title="Confirm payment",
            message=f"Pay {amount} to {order.iban}",
            operation_data=order.operation_data(),
            details=order.details(),
            validity=_validity(),
            attempts=int(_config("BANK_OPERATION_ATTEMPTS")),
        )
    except ClientError as exc:
        current_app.logger.warning("payment QR could not be made: %s", exc.message)
        return render_template("bank/error.html", message=LOGIN_UNAVAILABLE), 503
    return redirect(url_for("bank.payment_confirm", operation_id=operation.id))


@bp.get("/payment/<operation_id>")
def payment_confirm(operation_id: str) -> tuple[str, int]:
    operation = _payment_operation(operation_id)
    if operation.status == "CONFIRMED":
        return render_template("bank/payment_done.html", operation=operation), 200
    return _operation_page("bank/payment_qr.html", operation)


@bp.get("/payment/<operation_id>/qr.png")
def payment_png(operation_id: str) -> Response:
    return _png(_payment_operation(operation_id))


@bp.post("/payment/<operation_id>")
def payment_submit(operation_id: str) -> BaseResponse | tuple[str, int]:
    operation = _payment_operation(operation_id)
    page = _submit_code(operation, "bank/payment_qr.html")
    if page is not None:
        return page
    return redirect(url_for("bank.payment_confirm", operation_id=operation.id))


@bp.post("/payment/<operation_id>/cancel")
def payment_cancel(operation_id: str) -> BaseResponse:
    operation = _payment_operation(operation_id)
    operations.cancel(get_session(), operation, get_settings().now())
    return redirect(url_for("bank.account"))
