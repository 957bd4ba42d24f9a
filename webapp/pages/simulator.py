"""The token simulator page: a stand-in for the pilot's phone.

It drives the simulator library (:mod:`mtoken`) with device state in the
``SIMULATOR_STATE_DIR`` folder. It is a simulator: the PIN travels to this
web server, which a real phone would never allow.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from flask import (
    Blueprint,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from mtoken import Device, FlaskClientTransport, HttpTransport, StateStore, Transport
from mtoken.display import describe_operation
from mtoken.errors import AmbiguousActivationError, MTokenError
from mtoken.qr import decode_qr_image

bp = Blueprint("simulator", __name__, url_prefix="/simulator")

MAX_PAYLOAD_CHARS = 4096


def state_dir() -> Path:
    configured = current_app.config.get("SIMULATOR_STATE_DIR")
    if configured:
        return Path(configured)
    return Path(current_app.root_path).parent / "var" / "mtoken"


def device() -> Device:
    return Device(StateStore(state_dir()))


@contextmanager
def transport() -> Iterator[Transport]:
    """The server the simulated phone talks to: this app, or API_URL."""
    chosen = _make_transport()
    try:
        yield chosen
    finally:
        close = getattr(chosen, "close", None)
        if close is not None:
            close()


def _make_transport() -> Transport:
    url = current_app.config.get("API_URL") or ""
    user = current_app.config.get("API_USER") or ""
    password = current_app.config.get("API_PASSWORD") or ""
    if url:
        auth = httpx.BasicAuth(user, password) if user else None
        return HttpTransport(url, client=httpx.Client(timeout=15.0, auth=auth))
    client = current_app.test_client()
    users = current_app.config.get("REST_BASIC_AUTH_USERS") or {}
    if current_app.config.get("REST_BASIC_AUTH") and users:
        name, secret = next(iter(users.items()))
        token = base64.b64encode(f"{name}:{secret}".encode()).decode("ascii")
        client.environ_base["HTTP_AUTHORIZATION"] = f"Basic {token}"
    return FlaskClientTransport(client)


@bp.before_request
def _enabled() -> None:
    if not current_app.config.get("SIMULATOR_ENABLED"):
        abort(404)


def _page(status: int = 200, **extra: Any) -> tuple[str, int]:
    try:
        devices = [state.public_view() for state in device().activations()]
        store_error = None
    except MTokenError as exc:
        devices, store_error = [], str(exc)
    context = {"devices": devices, "error": None, "notice": None, **extra}
    if store_error and not context["error"]:
        context["error"] = store_error
    return render_template("simulator/index.html", **context), status


def _error_text(exc: MTokenError) -> str:
    """The message the page shows for ``exc``: the library's, except where
    that is a command-line hint (``--activation``) with no meaning here."""
    if isinstance(exc, AmbiguousActivationError):
        return (
            "Several devices are stored and this QR code (signed with the "
            'master key) fits any of them: pick one in the "Device" list, then '
            "scan again."
        )
    return str(exc)


@bp.get("/")
def index() -> tuple[str, int]:
    return _page()


@bp.post("/activate")
def activate() -> tuple[str, int]:
    code = request.form.get("activation_code", "").strip()
    signature = request.form.get("signature", "").strip() or None
    pin = request.form.get("pin", "")
    name = request.form.get("name", "").strip()[:100] or "Simulated phone"
    commit = request.form.get("commit") == "on"
    if pin != request.form.get("pin_again", ""):
        return _page(400, error="The two PINs differ.")
    try:
        with transport() as server:
            result = device().activate(
                server,
                code,
                pin,
                signature_b64=signature,
                name=name,
                commit=commit,
                application_id=current_app.config["BANK_APPLICATION_ID"],
            )
    except MTokenError as exc:
        return _page(400, error=str(exc))
    state = "ACTIVE" if result.committed else "waiting for the bank's commit"
    return _page(
        notice=f"Activation {result.activation_id} stored ({state}). "
        f"Fingerprint {result.fingerprint}: compare it with the console."
    )


def _form_text(name: str) -> str:
    """A multi-line form field with the browser's CRLF line breaks made LF.

    Browsers send every line break of a form field as CRLF; the QR payload
    separates its lines with a single LF (SPEC 3.1). Whitespace around the
    whole text (a stray space or line break picked up when copying) is no
    part of a QR code and is dropped; whitespace inside it is kept, so the
    protocol parser still judges the text itself.
    """
    return request.form.get(name, "").replace("\r\n", "\n").strip()


def _payload_text() -> str:
    upload = request.files.get("image")
    if upload is not None and upload.filename:
        return decode_qr_image(upload.read())
    text = _form_text("payload")
    if not text:
        raise _InputError("Paste the QR text or choose an image of the QR code.")
    if len(text) > MAX_PAYLOAD_CHARS:
        raise _InputError("The QR text is too long.")
    return text


class _InputError(Exception):
    pass


@bp.post("/scan")
def scan() -> tuple[str, int]:
    # A non-personalized QR fits every stored activation: the form names one.
    chosen = request.form.get("activation_id", "") or None
    try:
        text = _payload_text()
        verified = device().scan(text, chosen)
    except MTokenError as exc:
        return _page(400, error=_error_text(exc))
    except _InputError as exc:
        return _page(400, error=str(exc))
    return render_template(
        "simulator/operation.html",
        operation=describe_operation(verified),
        activation_id=verified.activation_id,
        payload=text,
        error=None,
    ), 200


@bp.post("/sign")
def sign() -> tuple[str, int]:
    text = _form_text("payload")
    activation_id = request.form.get("activation_id", "")
    pin = request.form.get("pin", "")
    simulator = device()
    try:
        verified = simulator.scan(text, activation_id or None)
    except MTokenError as exc:
        return _page(400, error=_error_text(exc))
    try:
        code = simulator.sign(verified, pin=pin)
    except MTokenError as exc:
        return render_template(
            "simulator/operation.html",
            operation=describe_operation(verified),
            activation_id=verified.activation_id,
            payload=text,
            error=str(exc),
        ), 400
    return render_template(
        "simulator/code.html",
        code=code.code,
        grouped=code.grouped,
        operation=describe_operation(verified),
    ), 200


@bp.post("/<activation_id>/refresh")
def refresh(activation_id: str) -> tuple[str, int]:
    try:
        with transport() as server:
            state = device().refresh_status(server, activation_id)
    except MTokenError as exc:
        return _page(400, error=str(exc))
    return _page(notice=f"Activation {state.activation_id} is {state.status}.")


@bp.post("/<activation_id>/forget")
def forget(activation_id: str) -> BaseResponse | tuple[str, int]:
    try:
        device().remove(activation_id)
    except MTokenError as exc:
        return _page(400, error=str(exc))
    return redirect(url_for("simulator.index"))
