"""Audit trail rows, added in the caller's transaction."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from webapp.config import ServerSettings
from webapp.models import Activation, AuditRecord


def record(
    session: Session,
    settings: ServerSettings,
    *,
    actor: str,
    action: str,
    result: str,
    application_id: str | None = None,
    activation_id: str | None = None,
    signature_type: str | None = None,
    counter_offset: int | None = None,
    reason: str | None = None,
) -> None:
    """Add one audit row; never pass a typed code, a PIN or key material."""
    session.add(
        AuditRecord(
            created_at=settings.now(),
            actor=actor,
            action=action,
            result=result,
            application_id=application_id,
            activation_id=activation_id,
            signature_type=signature_type,
            counter_offset=counter_offset,
            reason=reason,
        )
    )


def record_activation(
    session: Session,
    settings: ServerSettings,
    activation: Activation,
    *,
    actor: str,
    action: str,
    result: str,
    signature_type: str | None = None,
    counter_offset: int | None = None,
    reason: str | None = None,
) -> None:
    """:func:`record` for an event about one activation (and its application)."""
    record(
        session,
        settings,
        actor=actor,
        action=action,
        result=result,
        application_id=activation.application_id,
        activation_id=activation.id,
        signature_type=signature_type,
        counter_offset=counter_offset,
        reason=reason,
    )


def recent(session: Session, limit: int = 200) -> list[AuditRecord]:
    """The newest ``limit`` audit rows, newest first (for the pilot console)."""
    with session.begin():
        return list(
            session.scalars(
                select(AuditRecord)
                .order_by(AuditRecord.created_at.desc(), AuditRecord.id.desc())
                .limit(limit)
            )
        )
