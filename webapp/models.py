"""Database tables (SQLAlchemy 2 typed ORM).

No private key is stored here: the tables hold the token *labels* of the key
pairs, and their public halves. No derived secret (master secret, factor keys)
and no typed code is stored either.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names, so that migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and read back as aware UTC.

    SQLite keeps no time zone; storing UTC everywhere makes comparisons correct
    on every backend.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware datetimes")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {value!r}")
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ActivationStatus(enum.StrEnum):
    """SPEC 8.5 state machine: CREATED -> PENDING_COMMIT -> ACTIVE <-> BLOCKED -> REMOVED."""

    CREATED = "CREATED"
    PENDING_COMMIT = "PENDING_COMMIT"
    ACTIVE = "ACTIVE"
    BLOCKED = "BLOCKED"
    REMOVED = "REMOVED"


class Application(Base):
    __tablename__ = "application"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    master_keys: Mapped[list[MasterKeyPair]] = relationship(
        back_populates="application", order_by="MasterKeyPair.created_at"
    )


class MasterKeyPair(Base):
    """A master key pair of an application; the newest one signs (SPEC 8.1)."""

    __tablename__ = "master_key_pair"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    application_id: Mapped[str] = mapped_column(
        ForeignKey("application.id"), index=True
    )
    key_label: Mapped[str] = mapped_column(String(128), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(65))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    application: Mapped[Application] = relationship(back_populates="master_keys")


class Activation(Base):
    __tablename__ = "activation"
    __table_args__ = (
        # An activation code is unique among the activations that can still
        # use it (SPEC 8.3 step 1); old codes may repeat.
        Index(
            "uq_activation_pending_code",
            "activation_code",
            unique=True,
            sqlite_where=text("status IN ('CREATED', 'PENDING_COMMIT')"),
            postgresql_where=text("status IN ('CREATED', 'PENDING_COMMIT')"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    application_id: Mapped[str] = mapped_column(
        ForeignKey("application.id"), index=True
    )
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[ActivationStatus] = mapped_column(
        Enum(ActivationStatus, native_enum=False, length=16, name="activation_status")
    )
    blocked_reason: Mapped[str | None] = mapped_column(String(255))
    activation_code: Mapped[str | None] = mapped_column(String(23))
    server_key_label: Mapped[str] = mapped_column(String(128), unique=True)
    server_public_key: Mapped[bytes] = mapped_column(LargeBinary(65))
    device_public_key: Mapped[bytes | None] = mapped_column(LargeBinary(65))
    ctr_data: Mapped[bytes | None] = mapped_column(LargeBinary(16))
    counter: Mapped[int] = mapped_column(Integer, default=0)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_failed_attempts: Mapped[int] = mapped_column(Integer, default=5)
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    application: Mapped[Application] = relationship()


class AuditRecord(Base):
    """One payload creation, verification or lifecycle change.

    Never holds a typed code, a PIN or key material: only identifiers, the
    outcome and the matched counter offset.
    """

    __tablename__ = "audit_record"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    result: Mapped[str] = mapped_column(String(64))
    # Plain columns, no foreign keys: an audit row must outlive what it names,
    # and records attempts on unknown ids too.
    application_id: Mapped[str | None] = mapped_column(String(64), index=True)
    activation_id: Mapped[str | None] = mapped_column(String(36), index=True)
    signature_type: Mapped[str | None] = mapped_column(String(32))
    counter_offset: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)


# Demo bank tables (web pages): operations waiting for an offline code, and the
# payments they confirmed. They hold what the bank knows, never a typed code.


class BankOperationStatus(enum.StrEnum):
    """PENDING until confirmed, cancelled, or out of attempts (FAILED).

    VERIFYING: one submitted code is being checked by the server; no other
    submission may use the operation until it is back to PENDING or finished.
    """

    PENDING = "PENDING"
    VERIFYING = "VERIFYING"
    CONFIRMED = "CONFIRMED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"


class BankOperation(Base):
    """A login or payment shown as a QR code and confirmed by the typed code.

    The nonce and the operation data stay here: the verify call rebuilds the
    base string from these columns, never from what the browser sends back
    (SPEC 10.1, 10.2).
    """

    __tablename__ = "bank_operation"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    application_id: Mapped[str] = mapped_column(String(64))
    # Set for a personalized QR; None for a non-personalized one.
    activation_id: Mapped[str | None] = mapped_column(String(36))
    payload_data: Mapped[str] = mapped_column(Text)
    operation_data: Mapped[str] = mapped_column(Text)
    nonce: Mapped[str] = mapped_column(String(24))
    offline_data: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[BankOperationStatus] = mapped_column(
        Enum(
            BankOperationStatus,
            native_enum=False,
            length=16,
            name="bank_operation_status",
        )
    )
    attempts_left: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class BankPayment(Base):
    """A payment confirmed with an offline code (the account page lists them)."""

    __tablename__ = "bank_payment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    operation_id: Mapped[str] = mapped_column(
        ForeignKey("bank_operation.id"), unique=True
    )
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    activation_id: Mapped[str] = mapped_column(String(36))
    amount: Mapped[str] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(3))
    iban: Mapped[str] = mapped_column(String(34))
    bic: Mapped[str | None] = mapped_column(String(11))
    due_date: Mapped[str] = mapped_column(String(10))
    note: Mapped[str | None] = mapped_column(String(140))
    confirmed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class BankLoginGuard(Base):
    """Failed bank logins of one username, and its login lock-out.

    Each failed login code also counts as a failed attempt on the device
    (SPEC 6.2), and anyone may type a username. The bank locks a username's
    login for a while after fewer failures than the device's limit, so an
    anonymous guesser cannot block the device in one burst. Rows exist for
    unknown usernames too: the lock-out looks the same for every name.
    """

    __tablename__ = "bank_login_guard"

    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    # Failed logins since the last successful one.
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set while one login code of this user is being checked: a second one
    # waits, so parallel guesses cannot overrun the lock-out.
    checking_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
