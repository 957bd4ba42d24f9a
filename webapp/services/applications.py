"""Applications and their master key pairs (SPEC 8.1).

A master key pair is generated in (or imported into) the token; the database
keeps its label and public key. The newest pair signs activation codes and
non-personalized payloads.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hsm import HSM
from powerauth.errors import InvalidKeyError
from powerauth.keys import private_key_from_java_bytes, validate_public_key
from webapp.config import ServerSettings
from webapp.db import lock_name
from webapp.models import Application, MasterKeyPair
from webapp.services import audit
from webapp.services.errors import (
    ApplicationNotFoundError,
    InvalidKeyFormatError,
    InvalidRequestError,
    NoMasterKeyPairError,
    discard_key,
    token_operation,
)

logger = logging.getLogger(__name__)

# The id goes into token labels, so it is kept to a safe, short alphabet.
APPLICATION_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
ROLE_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


@dataclass(frozen=True)
class ApplicationView:
    application_id: str
    name: str
    roles: list[str]
    created_at: datetime
    master_public_key: bytes | None
    master_key_label: str | None
    master_key_created_at: datetime | None
    master_key_count: int


def master_key_label(application_id: str, number: int) -> str:
    """Token label of the ``number``-th master key pair of an application."""
    return f"pa-master-{application_id}-{number}"


def check_application_id(application_id: str) -> None:
    if not APPLICATION_ID_RE.fullmatch(application_id):
        raise InvalidRequestError(
            "applicationId must be 1-64 characters of A-Z a-z 0-9 . _ -, "
            "starting with a letter or digit"
        )


def _check_roles(roles: Sequence[str]) -> list[str]:
    for role in roles:
        if not ROLE_RE.fullmatch(role):
            raise InvalidRequestError(
                "applicationRoles entries must be 1-64 characters of "
                "A-Z a-z 0-9 _ . : -"
            )
    return sorted(set(roles))


def newest_master_key(session: Session, application_id: str) -> MasterKeyPair:
    """The signing master key pair of an application.

    :raises NoMasterKeyPairError: when the application has none.
    """
    key = session.scalars(
        select(MasterKeyPair)
        .where(MasterKeyPair.application_id == application_id)
        .order_by(MasterKeyPair.created_at.desc(), MasterKeyPair.id.desc())
        .limit(1)
    ).first()
    if key is None:
        raise NoMasterKeyPairError(
            f"application {application_id} has no master key pair"
        )
    return key


def _lock_application(session: Session, application_id: str) -> None:
    """Serialize the transactions that add an application or a master key.

    Each of them counts the keys to name the next token label; two workers
    counting at once would generate two key pairs under one label.
    """
    lock_name(session, f"application:{application_id}")


def _load(session: Session, application_id: str) -> Application:
    check_application_id(application_id)
    application = session.get(Application, application_id)
    if application is None:
        raise ApplicationNotFoundError(f"application {application_id} does not exist")
    return application


def _view(session: Session, application: Application) -> ApplicationView:
    count = session.scalar(
        select(func.count())
        .select_from(MasterKeyPair)
        .where(MasterKeyPair.application_id == application.id)
    )
    key = newest_master_key(session, application.id) if count else None
    return ApplicationView(
        application_id=application.id,
        name=application.name,
        roles=list(application.roles),
        created_at=application.created_at,
        master_public_key=key.public_key if key else None,
        master_key_label=key.key_label if key else None,
        master_key_created_at=key.created_at if key else None,
        master_key_count=count or 0,
    )


def _next_label(session: Session, application_id: str) -> str:
    count = session.scalar(
        select(func.count())
        .select_from(MasterKeyPair)
        .where(MasterKeyPair.application_id == application_id)
    )
    return master_key_label(application_id, (count or 0) + 1)


def _add_master_key(
    session: Session,
    settings: ServerSettings,
    application: Application,
    *,
    label: str,
    public_key: bytes,
    created_at: datetime,
    actor: str,
    action: str,
) -> ApplicationView:
    """Store and audit a key pair now in the token; return the application.

    Runs inside the caller's transaction; the caller discards the token key
    when this (or the commit after it) fails.
    """
    session.add(
        MasterKeyPair(
            application_id=application.id,
            key_label=label,
            public_key=public_key,
            created_at=created_at,
        )
    )
    audit.record(
        session,
        settings,
        actor=actor,
        action=action,
        result="OK",
        application_id=application.id,
        reason=f"master key {label}",
    )
    session.flush()
    return _view(session, application)


def create_application(
    session: Session,
    hsm: HSM,
    settings: ServerSettings,
    *,
    application_id: str,
    name: str | None = None,
    roles: Sequence[str] = (),
    adopt_existing_key: bool = False,
    actor: str,
) -> ApplicationView:
    """Create an application with a new master key pair in the token.

    :param adopt_existing_key: when the token already holds a key pair under
        the label this application's first key would get, use it instead of
        failing (the demo uses this after its database was deleted).
    :raises InvalidRequestError: bad id or roles, or the application exists.
    """
    check_application_id(application_id)
    clean_roles = _check_roles(roles)
    label = master_key_label(application_id, 1)
    generated = False
    try:
        with session.begin():
            _lock_application(session, application_id)
            if session.get(Application, application_id) is not None:
                raise InvalidRequestError(
                    f"application {application_id} already exists"
                )
            now = settings.now()
            application = Application(
                id=application_id,
                name=name or application_id,
                roles=clean_roles,
                created_at=now,
            )
            session.add(application)
            with token_operation("generate a master key pair"):
                if adopt_existing_key and hsm.has_keypair(label):
                    public_key = hsm.public_key(label)
                else:
                    public_key = hsm.generate_keypair(label)
                    generated = True
            view = _add_master_key(
                session,
                settings,
                application,
                label=label,
                public_key=public_key,
                created_at=now,
                actor=actor,
                action="application_create",
            )
    except BaseException:
        if generated:
            discard_key(hsm, label)
        raise
    logger.info("application %s created, master key %s", application_id, label)
    return view


def rotate_master_key(
    session: Session,
    hsm: HSM,
    settings: ServerSettings,
    *,
    application_id: str,
    actor: str,
) -> ApplicationView:
    """Generate a further master key pair; from now on it signs."""
    label = ""
    generated = False
    try:
        with session.begin():
            _lock_application(session, application_id)
            application = _load(session, application_id)
            label = _next_label(session, application_id)
            with token_operation("generate a master key pair"):
                public_key = hsm.generate_keypair(label)
                generated = True
            view = _add_master_key(
                session,
                settings,
                application,
                label=label,
                public_key=public_key,
                created_at=settings.now(),
                actor=actor,
                action="master_key_rotate",
            )
    except BaseException:
        if generated:
            discard_key(hsm, label)
        raise
    logger.info("application %s: new master key %s", application_id, label)
    return view


def import_master_key(
    session: Session,
    hsm: HSM,
    settings: ServerSettings,
    *,
    application_id: str,
    private_key: bytes,
    public_key: bytes | None = None,
    name: str | None = None,
    roles: Sequence[str] = (),
    actor: str,
) -> ApplicationView:
    """Import a master key pair (for example from a PowerAuth server database).

    The application is created when it does not exist. The imported pair
    becomes the newest one, so it signs from now on.

    :param private_key: the scalar as Java ``BigInteger.toByteArray()`` bytes.
    :param public_key: when given, must match the private key.
    :raises InvalidKeyFormatError: malformed key, or public and private differ.
    """
    check_application_id(application_id)
    clean_roles = _check_roles(roles)
    try:
        private_key_from_java_bytes(private_key)
        expected = validate_public_key(public_key) if public_key is not None else None
    except InvalidKeyError as exc:
        raise InvalidKeyFormatError(f"master key pair: {exc}") from exc

    label = ""
    imported = False
    try:
        with session.begin():
            _lock_application(session, application_id)
            application = session.get(Application, application_id)
            now = settings.now()
            if application is None:
                application = Application(
                    id=application_id,
                    name=name or application_id,
                    roles=clean_roles,
                    created_at=now,
                )
                session.add(application)
                session.flush()
            label = _next_label(session, application_id)
            with token_operation("import a master key pair"):
                derived = hsm.import_private_key(label, private_key)
                imported = True
            if expected is not None and derived != expected:
                raise InvalidKeyFormatError(
                    "masterPublicKey does not belong to masterPrivateKey"
                )
            view = _add_master_key(
                session,
                settings,
                application,
                label=label,
                public_key=derived,
                created_at=now,
                actor=actor,
                action="master_key_import",
            )
    except BaseException:
        if imported:
            discard_key(hsm, label)
        raise
    logger.info("application %s: imported master key %s", application_id, label)
    return view


def get_application(session: Session, application_id: str) -> ApplicationView:
    """:raises ApplicationNotFoundError: when it does not exist."""
    with session.begin():
        return _view(session, _load(session, application_id))


def list_applications(session: Session) -> list[ApplicationView]:
    with session.begin():
        applications = session.scalars(select(Application).order_by(Application.id))
        return [_view(session, application) for application in applications]
