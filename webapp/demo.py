"""Demo server: ``python -m webapp.demo`` (what ``scripts/demo`` runs).

Creates the schema when missing, seeds a demo application whose master key
pair lives in the project's token (idempotent: a second run reuses both),
prints the application id and master public key, then serves the app with
Flask's development server on ``HOST``:``PORT`` (default 127.0.0.1:5000).

This is a development server: for production run the app factory under a
WSGI server, with ``SECRET_KEY`` set.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from flask import Flask

from webapp import create_app, db, services
from webapp.extensions import get_hsm, get_settings
from webapp.services.encoding import b64
from webapp.services.errors import ApplicationNotFoundError

logger = logging.getLogger("webapp.demo")

DEMO_APPLICATION_ID = "demo"
DEMO_APPLICATION_NAME = "Demo application"
DEMO_ACTOR = "demo-seed"


@dataclass(frozen=True)
class DemoSeed:
    """What the demo made or found."""

    application: services.ApplicationView


def build_app() -> Flask:
    """The demo app: development settings unless the environment says otherwise."""
    environment = os.environ.get("POWERAUTH_ENVIRONMENT", "development")
    return create_app({"ENVIRONMENT": environment})


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
    master = demo.application.master_public_key
    # The demo's only console output: public identifiers, no secrets.
    print(f"demo application id:  {demo.application.application_id}")
    print(f"master public key:    {b64(master) if master else '-'}")
    print(f"REST API:             http://{host}:{port}/rest/v3/")
    app.run(host=host, port=port, threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()
