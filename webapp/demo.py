"""Demo server: ``python -m webapp.demo`` (what ``scripts/demo`` runs).

Creates the schema when missing, seeds a demo application whose master key
pair lives in the project's token (idempotent: a second run reuses both),
and a demo user (``alice``) with one activated simulated device whose state
is kept in ``var/mtoken`` (the token simulator page uses it; its PIN is
``DEMO_PIN``, default 1234). Prints the application id, the master public key
and the walk-through URLs, then serves the app with Flask's development server
on ``HOST``:``PORT`` (default 127.0.0.1:5000).

Before printing anything it takes the port and logs in to the token, so that
a port in use, a wrong ``PKCS11_*`` or another bad setting stops the demo with
one ``demo: cannot start: ...`` line (never the PIN) and exit status 1.

This is a development server: for production run the app factory under a
WSGI server, with ``SECRET_KEY`` set.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import sys
from dataclasses import dataclass

from flask import Flask
from werkzeug.serving import (
    BaseWSGIServer,
    get_sockaddr,
    make_server,
    select_address_family,
)

from hsm.errors import HSMError
from mtoken import Device, FlaskClientTransport, StateStore
from mtoken.errors import MTokenError
from webapp import create_app, db, services
from webapp.extensions import get_hsm, get_settings
from webapp.services.encoding import b64
from webapp.services.errors import ApplicationNotFoundError, ServiceError

logger = logging.getLogger("webapp.demo")

DEMO_APPLICATION_ID = "demo"
DEMO_APPLICATION_NAME = "Demo application"
DEMO_ACTOR = "demo-seed"
DEMO_USER = "alice"
DEMO_DEVICE_NAME = "Alice's simulated phone"
DEFAULT_DEMO_PIN = "1234"


@dataclass(frozen=True)
class DemoSeed:
    """What the demo made or found."""

    application: services.ApplicationView


def build_app() -> Flask:
    """The demo app: development settings unless the environment says otherwise.

    The pilot console gets a random password for this run unless
    ``POWERAUTH_CONSOLE_PASSWORD`` sets one.
    """
    environment = os.environ.get("POWERAUTH_ENVIRONMENT", "development")
    settings: dict[str, object] = {"ENVIRONMENT": environment}
    if not os.environ.get("POWERAUTH_CONSOLE_PASSWORD"):
        settings["CONSOLE_PASSWORD"] = secrets.token_urlsafe(12)
    return create_app(settings)


@dataclass(frozen=True)
class DemoUser:
    user_id: str
    activation_id: str
    created: bool


def seed_demo_user(app: Flask, pin: str | None = None) -> DemoUser:
    """Give the demo user one ACTIVE simulated device (idempotent).

    The device's state lives in the simulator page's folder. A stored device
    whose activation the server no longer has as ACTIVE (a new database, a
    block, a removal) is forgotten and a new one is activated.
    """
    pin = pin or os.environ.get("DEMO_PIN") or DEFAULT_DEMO_PIN
    from webapp.pages.simulator import state_dir

    with app.app_context():
        device = Device(StateStore(state_dir()))
        application_id = app.config["BANK_APPLICATION_ID"]
        with db.new_session() as session:
            active = {
                view.activation_id
                for view in services.list_activations(
                    session, user_id=DEMO_USER, application_id=application_id
                )
                if view.status == "ACTIVE"
            }
            for state in device.activations():
                if state.activation_id in active:
                    return DemoUser(DEMO_USER, state.activation_id, created=False)
                device.remove(state.activation_id)
            created = services.init_activation(
                session,
                get_hsm(),
                get_settings(),
                user_id=DEMO_USER,
                application_id=application_id,
                actor=DEMO_ACTOR,
            )
        try:
            result = device.activate(
                FlaskClientTransport(app),
                created.activation_code,
                pin,
                name=DEMO_DEVICE_NAME,
                commit=True,
                application_id=application_id,
            )
        except MTokenError as exc:
            raise RuntimeError(
                f"the demo device could not be activated: {exc}"
            ) from exc
    return DemoUser(DEMO_USER, result.activation_id, created=True)


def seed(app: Flask) -> DemoSeed:
    """Create the schema and the demo application when they are missing."""
    engine = db.get_engine(app)
    db.upgrade_schema(engine)
    with app.app_context(), db.new_session() as session:
        try:
            application = services.get_application(session, DEMO_APPLICATION_ID)
        except ApplicationNotFoundError:
            application = services.create_application(
                session,
                get_hsm(),
                get_settings(),
                application_id=DEMO_APPLICATION_ID,
                name=DEMO_APPLICATION_NAME,
                # The token may still hold the key of an earlier demo
                # database: reuse it rather than fail.
                adopt_existing_key=True,
                actor=DEMO_ACTOR,
            )
    return DemoSeed(application=application)


class StartupError(Exception):
    """The demo cannot start; the message says why and names the setting."""


def listen(host: str, port: int) -> socket.socket:
    """Take ``host``:``port`` now, before the slow start-up and the banner.

    :raises StartupError: the port is in use, or the address is not this host's.
    """
    family = select_address_family(host, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As the development server does: a port left in TIME_WAIT by the
        # previous run is free, one another program listens on is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(get_sockaddr(host, port, family))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise StartupError(
            f"cannot listen on {host}:{port} ({exc.strerror}); "
            "set PORT (or HOST) to a free one"
        ) from exc
    return sock


def check_token(app: Flask) -> None:
    """Open the token and log in, so that a wrong PKCS11_* setting shows now.

    :raises StartupError: naming the setting (the HSM layer's messages never
        contain the PIN).
    """
    try:
        get_hsm(app).token_info()
    except HSMError as exc:
        raise StartupError(f"the token: {exc}") from exc


def pin_hint() -> str:
    """What the banner says about the demo device's PIN.

    Only the documented default is shown; a PIN the user chose is not echoed.
    """
    pin = os.environ.get("DEMO_PIN") or DEFAULT_DEMO_PIN
    if pin == DEFAULT_DEMO_PIN:
        return f"PIN {DEFAULT_DEMO_PIN}"
    return "the PIN you set in DEMO_PIN"


def start(host: str, port: int) -> tuple[Flask, socket.socket, DemoSeed, DemoUser]:
    """Everything before the banner: port, settings, token, seed.

    :raises StartupError: with a one-line reason.
    """
    sock = listen(host, port)
    try:
        try:
            app = build_app()
        except (ValueError, HSMError) as exc:
            # SettingsError, a refused DATABASE_URL, an incomplete PKCS11_*.
            raise StartupError(str(exc)) from exc
        check_token(app)
        try:
            demo = seed(app)
            user = seed_demo_user(app)
        except ServiceError as exc:
            raise StartupError(f"{exc.code}: {exc.message}") from exc
        except (HSMError, RuntimeError) as exc:
            raise StartupError(str(exc)) from exc
    except BaseException:
        sock.close()
        raise
    return app, sock, demo, user


def serve(app: Flask, sock: socket.socket, host: str, port: int) -> None:
    """Flask's development server on the socket :func:`listen` took."""
    server: BaseWSGIServer = make_server(
        host, port, app, threaded=True, fd=sock.fileno()
    )
    sock.close()  # the server holds its own duplicate of the descriptor
    server.log_startup()
    server.serve_forever()


def main() -> None:
    host = os.environ.get("HOST", "127.0.0.1")
    try:
        port = int(os.environ.get("PORT", "5000"))
    except ValueError:
        print("demo: cannot start: PORT must be a number", file=sys.stderr)
        sys.exit(1)
    # Quiet until the start is known to work: the library's warnings (the
    # throw-away SECRET_KEY, token retries) would bury the one line that
    # says what is wrong.
    logging.disable(logging.WARNING)
    try:
        app, sock, demo, user = start(host, port)
    except StartupError as exc:
        print(f"demo: cannot start: {exc}", file=sys.stderr)
        sys.exit(1)
    finally:
        logging.disable(logging.NOTSET)
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    master = demo.application.master_public_key
    base = f"http://{host}:{port}"
    # Public identifiers and the walk-through; the console password is this
    # run's throw-away one (or says where it was set).
    print(f"demo application id:  {demo.application.application_id}")
    print(f"master public key:    {b64(master) if master else '-'}")
    print(f"REST API:             {base}/rest/v3/")
    print(f"demo user:            {user.user_id} (device {user.activation_id})")
    print(f"1. Demo bank:         {base}/  (log in as {user.user_id})")
    print(f"2. Token simulator:   {base}/simulator/  ({pin_hint()})")
    print(f"3. Pilot console:     {base}/console/")
    if os.environ.get("POWERAUTH_CONSOLE_PASSWORD"):
        print("   console password:  the one in POWERAUTH_CONSOLE_PASSWORD")
    else:
        print(f"   console password:  {app.config['CONSOLE_PASSWORD']} (this run only)")
    sys.stdout.flush()
    serve(app, sock, host, port)


if __name__ == "__main__":
    main()
