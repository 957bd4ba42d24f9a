"""Demo server: ``python -m webapp.demo`` (what ``scripts/demo`` runs).

Creates the schema when missing, seeds a demo application whose master key
pair lives in the project's token (idempotent: a second run reuses both),
and a demo user (``alice``) with one activated simulated device whose state
is kept in ``var/mtoken`` (the token simulator page uses it; its PIN is
``DEMO_PIN``, default 1234). Prints the application id, the master public key
and the walk-through URLs, then serves the app with Flask's development server
on ``HOST``:``PORT`` (default 127.0.0.1:5000).

This is a development server: for production run the app factory under a
WSGI server, with ``SECRET_KEY`` set.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass

from flask import Flask

from mtoken import Device, FlaskClientTransport, StateStore
from mtoken.errors import MTokenError
from webapp import create_app, db, services
from webapp.extensions import get_hsm, get_settings
from webapp.services.encoding import b64
from webapp.services.errors import ApplicationNotFoundError

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
        session = db.new_session()
        try:
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
        finally:
            session.close()
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
    with app.app_context():
        session = db.new_session()
        try:
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
        finally:
            session.close()
    return DemoSeed(application=application)


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "5000"))
    app = build_app()
    demo = seed(app)
    user = seed_demo_user(app)
    master = demo.application.master_public_key
    base = f"http://{host}:{port}"
    # Public identifiers and the walk-through; the console password is this
    # run's throw-away one (or says where it was set).
    print(f"demo application id:  {demo.application.application_id}")
    print(f"master public key:    {b64(master) if master else '-'}")
    print(f"REST API:             {base}/rest/v3/")
    print(f"demo user:            {user.user_id} (device {user.activation_id})")
    print(f"1. Demo bank:         {base}/  (log in as {user.user_id})")
    print(f"2. Token simulator:   {base}/simulator/  (PIN: see webapp/PAGES.md)")
    print(f"3. Pilot console:     {base}/console/")
    if os.environ.get("POWERAUTH_CONSOLE_PASSWORD"):
        print("   console password:  the one in POWERAUTH_CONSOLE_PASSWORD")
    else:
        print(f"   console password:  {app.config['CONSOLE_PASSWORD']} (this run only)")
    app.run(host=host, port=port, threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()
