"""Admin commands: ``scripts/admin <group> <command>`` (``python -m webapp``).

Groups: ``db`` (schema), ``application`` and ``activation``. They call the same
services as the REST API, with ``cli`` as the actor in the audit trail.
Import commands read JSON files (``-`` for standard input) rather than
options, so that private keys do not end up in shell history or ``ps``.

``flask --app webapp <group> <command>`` runs the same commands; :func:`main`
adds that a wrong setting or token comes out as one ``Error:`` line and exit
status 1 instead of a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup, FlaskGroup
from sqlalchemy.orm import Session

from hsm.errors import HSMError
from webapp import db, services
from webapp.config import DEFAULTS, SettingsError, redacted
from webapp.extensions import get_hsm, get_settings
from webapp.rest.envelope import iso
from webapp.services import imports
from webapp.services.encoding import b64
from webapp.services.errors import ServiceError

ACTOR = "cli"
HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}
# What a wrong setting or token raises: SettingsError, the ValueError of a
# DATABASE_URL the engine refuses, and the HSM layer's errors (their messages
# name the setting and never hold the PIN).
SETUP_ERRORS: tuple[type[Exception], ...] = (SettingsError, ValueError, HSMError)

db_group = AppGroup(
    "db", help="Create or migrate the database schema.", context_settings=HELP_OPTIONS
)
application_group = AppGroup(
    "application", help="Manage applications.", context_settings=HELP_OPTIONS
)
activation_group = AppGroup(
    "activation", help="Manage activations.", context_settings=HELP_OPTIONS
)


@contextmanager
def _session() -> Iterator[Session]:
    with db.new_session() as session:
        try:
            yield session
        except ServiceError as exc:
            raise click.ClickException(f"{exc.code}: {exc.message}") from exc
        except HSMError as exc:
            raise click.ClickException(f"the token: {exc}") from exc


def _print_application(view: services.ApplicationView) -> None:
    click.echo(f"applicationId:    {view.application_id}")
    click.echo(f"name:             {view.name}")
    click.echo(f"roles:            {', '.join(view.roles) or '-'}")
    click.echo(f"masterKeyLabel:   {view.master_key_label or '-'}")
    master = b64(view.master_public_key) if view.master_public_key else "-"
    click.echo(f"masterPublicKey:  {master}")
    click.echo(f"masterKeys:       {view.master_key_count}")


def _print_activation(view: services.ActivationView) -> None:
    rows = [
        ("activationId", view.activation_id),
        ("applicationId", view.application_id),
        ("userId", view.user_id),
        ("name", view.name or "-"),
        ("status", str(view.status)),
        ("blockedReason", view.blocked_reason or "-"),
        ("counter", str(view.counter)),
        ("failedAttempts", f"{view.failed_attempts} of {view.max_failed_attempts}"),
        ("serverKeyLabel", view.server_key_label),
        ("fingerprint", view.device_fingerprint or "-"),
        ("created", iso(view.created_at) or "-"),
        ("lastUsed", iso(view.last_used_at) or "-"),
        ("expires", iso(view.expires_at) or "-"),
    ]
    for name, value in rows:
        click.echo(f"{name + ':':<16}  {value}")


def _records(stream: Any) -> list[dict[str, Any]]:
    try:
        document = json.load(stream)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"the file is not valid JSON: {exc}") from exc
    records = document if isinstance(document, list) else [document]
    if not all(isinstance(record, dict) for record in records):
        raise click.ClickException("the file must hold an object or a list of them")
    return records


# db -------------------------------------------------------------------------


@db_group.command("init")
def db_init() -> None:
    """Create the schema, or bring it up to date (alembic upgrade head)."""
    engine = db.get_engine()
    db.upgrade_schema(engine)
    click.echo(f"database schema at revision {db.schema_revision(engine)}")


@db_group.command("revision")
def db_revision() -> None:
    """Show the schema revision of the database and of the code."""
    click.echo(f"database: {db.schema_revision(db.get_engine()) or 'empty'}")
    click.echo(f"code:     {db.head_revision()}")


@db_group.command("settings")
def db_settings() -> None:
    """Print the effective server settings, secrets redacted."""
    shown = redacted({name: current_app.config[name] for name in DEFAULTS})
    for name, value in sorted(shown.items()):
        click.echo(f"{name} = {value!r}")


# application ----------------------------------------------------------------


@application_group.command("create")
@click.argument("application_id")
@click.option("--name", help="Display name (defaults to the id).")
@click.option("--role", "roles", multiple=True, help="Application role; repeatable.")
def application_create(
    application_id: str, name: str | None, roles: tuple[str]
) -> None:
    """Create an application with a master key pair in the token."""
    with _session() as session:
        view = services.create_application(
            session,
            get_hsm(),
            get_settings(),
            application_id=application_id,
            name=name,
            roles=roles,
            actor=ACTOR,
        )
    _print_application(view)


@application_group.command("list")
def application_list() -> None:
    """List applications."""
    with _session() as session:
        for view in services.list_applications(session):
            click.echo(f"{view.application_id}\t{view.name}")


@application_group.command("show")
@click.argument("application_id")
def application_show(application_id: str) -> None:
    """Show an application and its signing master public key."""
    with _session() as session:
        _print_application(services.get_application(session, application_id))


@application_group.command("rotate-key")
@click.argument("application_id")
def application_rotate_key(application_id: str) -> None:
    """Generate a new master key pair; it signs from now on."""
    with _session() as session:
        view = services.rotate_master_key(
            session,
            get_hsm(),
            get_settings(),
            application_id=application_id,
            actor=ACTOR,
        )
    _print_application(view)


@application_group.command("import")
@click.argument("file", type=click.File("r"))
def application_import(file: Any) -> None:
    """Import master key pairs from a JSON file (object or list).

    Fields: applicationId, masterPrivateKey (Base64 Java integer),
    masterPublicKey?, applicationName?, applicationRoles?.
    """
    for record in _records(file):
        with _session() as session:
            view = imports.import_application_record(
                session, get_hsm(), get_settings(), record, actor=ACTOR
            )
        click.echo(f"imported master key {view.master_key_label}")


# activation -----------------------------------------------------------------


@activation_group.command("init")
@click.option("--application", "application_id", required=True)
@click.option("--user", "user_id", required=True)
@click.option("--max-failures", type=int, help="Failed attempts before blocking.")
def activation_init(
    application_id: str, user_id: str, max_failures: int | None
) -> None:
    """Create an activation (CREATED) and print its activation code."""
    with _session() as session:
        result = services.init_activation(
            session,
            get_hsm(),
            get_settings(),
            user_id=user_id,
            application_id=application_id,
            max_failure_count=max_failures,
            actor=ACTOR,
        )
    click.echo(f"activationId:         {result.activation_id}")
    click.echo(f"activationCode:       {result.activation_code}")
    click.echo(f"activationSignature:  {b64(result.activation_signature)}")


@activation_group.command("list")
@click.option("--user", "user_id")
@click.option("--application", "application_id")
def activation_list(user_id: str | None, application_id: str | None) -> None:
    """List activations, optionally of one user or application."""
    with _session() as session:
        views = services.list_activations(
            session, user_id=user_id, application_id=application_id
        )
    for view in views:
        click.echo(
            f"{view.activation_id}\t{view.application_id}\t{view.user_id}\t"
            f"{view.status}\tcounter={view.counter}\tfailed={view.failed_attempts}"
        )


@activation_group.command("show")
@click.argument("activation_id")
def activation_show(activation_id: str) -> None:
    """Show an activation: status, counter, failed attempts."""
    with _session() as session:
        _print_activation(services.get_activation(session, activation_id))


@activation_group.command("block")
@click.argument("activation_id")
@click.option("--reason", help="Blocked reason (default NOT_SPECIFIED).")
def activation_block(activation_id: str, reason: str | None) -> None:
    """Block an ACTIVE activation."""
    with _session() as session:
        view = services.block_activation(
            session,
            get_settings(),
            activation_id=activation_id,
            reason=reason,
            actor=ACTOR,
        )
    _print_activation(view)


@activation_group.command("unblock")
@click.argument("activation_id")
def activation_unblock(activation_id: str) -> None:
    """Unblock a BLOCKED activation and reset its failed attempts."""
    with _session() as session:
        view = services.unblock_activation(
            session, get_settings(), activation_id=activation_id, actor=ACTOR
        )
    _print_activation(view)


@activation_group.command("remove")
@click.argument("activation_id")
def activation_remove(activation_id: str) -> None:
    """Remove an activation and delete its server key pair from the token."""
    with _session() as session:
        view = services.remove_activation(
            session,
            get_hsm(),
            get_settings(),
            activation_id=activation_id,
            actor=ACTOR,
        )
    _print_activation(view)


@activation_group.command("import")
@click.argument("file", type=click.File("r"))
def activation_import(file: Any) -> None:
    """Import activations from a JSON file (object or list).

    Fields: activationId, applicationId, userId, serverPrivateKey (Base64 Java
    integer), devicePublicKey, ctrData, counter, activationStatus
    (PENDING_COMMIT, ACTIVE or BLOCKED), and optionally serverPublicKey,
    activationName, blockedReason, failedAttempts, maxFailedAttempts.
    """
    for record in _records(file):
        with _session() as session:
            view = imports.import_activation_record(
                session, get_hsm(), get_settings(), record, actor=ACTOR
            )
        click.echo(f"imported activation {view.activation_id} ({view.status})")


def register_commands(app: Flask) -> None:
    for group in (db_group, application_group, activation_group):
        app.cli.add_command(group)


class _AdminGroup(FlaskGroup):
    """The Flask command group, with setup errors as one ``Error:`` line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SETUP_ERRORS as exc:
            raise click.ClickException(str(exc)) from exc


def main(argv: Sequence[str] | None = None) -> None:
    """Run the admin commands on the app the environment describes.

    The app is built before the command line is parsed, so that a wrong
    setting stops even ``--help`` with one line rather than a traceback.
    """
    from webapp import create_app

    # The command's own output says what went wrong; the library's warnings
    # (the throw-away SECRET_KEY, token retries) would only repeat it.
    logging.basicConfig(
        level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        app = create_app()
    except SETUP_ERRORS as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    group = _AdminGroup(
        create_app=lambda: app,
        load_dotenv=False,
        set_debug_flag=False,
        context_settings=HELP_OPTIONS,
        help="PowerAuth server admin commands.",
    )
    # The app is given: --app, --env-file and --debug would be ignored or
    # misleading here.
    group.params = [
        param
        for param in group.params
        if param.name not in ("app", "env_file", "debug")
    ]
    group.main(args=list(argv) if argv is not None else None, prog_name="admin")
