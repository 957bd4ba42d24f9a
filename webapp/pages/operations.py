"""The demo bank's operations: build, store, and confirm with a typed code.

An operation (login or payment) is stored server-side with its id, the
operation data, the nonce the PowerAuth server made, its expiry and its
attempts. It is confirmed at most once. At verification the base string is
rebuilt from these stored values (SPEC 2 step 5, SPEC 10.1-10.2): nothing
the browser sends goes into it except the typed digits.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from sqlalchemy import case, literal, select, update
from sqlalchemy.orm import Session

from powerauth.errors import MalformedCodeError, OperationDataError
from powerauth.operation_data import (
    AmountField,
    DateField,
    EmptyField,
    IbanField,
    NoteField,
    Template,
    build_operation_data,
)
from powerauth.payload import build_payload_data
from powerauth.signature import normalize_code, offline_body, signature_base_string
from webapp.config import ServerSettings
from webapp.models import (
    BankOperation,
    BankOperationStatus,
    BankPayment,
    UTCDateTime,
)
from webapp.pages.client import PowerAuthClient

LOGIN = "login"
PAYMENT = "payment"

USERNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_IBAN_RE = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}")
_BIC_RE = re.compile(r"[A-Z]{6}[A-Z0-9]{2}(?:[A-Z0-9]{3})?")
_CURRENCY_RE = re.compile(r"[A-Z]{3}")
MAX_AMOUNT = Decimal("1000000000")
NOTE_MAX = 140
MAX_DUE_DAYS = 366


class FormError(ValueError):
    """A form field is wrong; ``field`` names it and the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class PaymentOrder:
    amount: Decimal
    currency: str
    iban: str
    bic: str | None
    due_date: date
    note: str | None

    def operation_data(self) -> str:
        """Template 1, fields A, I, R (empty), D, N (SPEC 4)."""
        return build_operation_data(
            Template.PAYMENT,
            [
                AmountField(self.amount, self.currency),
                IbanField(self.iban, self.bic),
                EmptyField(),
                DateField(self.due_date),
                NoteField(self.note) if self.note else EmptyField(),
            ],
        )

    def details(self) -> dict[str, str | None]:
        return {
            "amount": f"{self.amount:f}",
            "currency": self.currency,
            "iban": self.iban,
            "bic": self.bic,
            "due_date": self.due_date.isoformat(),
            "note": self.note,
        }


def check_username(text: str) -> str:
    name = text.strip()
    if not USERNAME_RE.fullmatch(name):
        raise FormError(
            "username",
            "A username is 1 to 64 letters, digits and . _ @ - characters.",
        )
    return name


def _iban_checksum_ok(iban: str) -> bool:
    # ISO 13616: move the first four characters to the end, letters to
    # numbers (A=10 ... Z=35); the result modulo 97 must be 1.
    moved = iban[4:] + iban[:4]
    digits = "".join(str(int(ch, 36)) for ch in moved)
    return int(digits) % 97 == 1


def parse_payment(form: dict[str, str], today: date) -> PaymentOrder:
    """Check the payment form; the first wrong field raises :class:`FormError`."""
    amount_text = form.get("amount", "").strip().replace(",", ".")
    try:
        amount = Decimal(amount_text)
    except InvalidOperation:
        raise FormError(
            "amount", "Enter the amount as a number, e.g. 1250.50."
        ) from None
    if not amount.is_finite() or amount <= 0 or amount >= MAX_AMOUNT:
        raise FormError("amount", "The amount must be above 0 and below 1,000,000,000.")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        raise FormError("amount", "The amount can have at most two decimal places.")

    currency = form.get("currency", "").strip().upper()
    if not _CURRENCY_RE.fullmatch(currency):
        raise FormError("currency", "The currency is three letters, e.g. CZK or EUR.")

    iban = re.sub(r"\s+", "", form.get("iban", "")).upper()
    if not _IBAN_RE.fullmatch(iban) or not _iban_checksum_ok(iban):
        raise FormError("iban", "This is not a valid IBAN (check the digits).")

    bic_text = re.sub(r"\s+", "", form.get("bic", "")).upper()
    bic = bic_text or None
    if bic is not None and not _BIC_RE.fullmatch(bic):
        raise FormError("bic", "A BIC has 8 or 11 letters and digits.")

    try:
        due = date.fromisoformat(form.get("due_date", "").strip())
    except ValueError:
        raise FormError("due_date", "Enter the due date as YYYY-MM-DD.") from None
    if due < today:
        raise FormError("due_date", "The due date must not be in the past.")
    if due > today + timedelta(days=MAX_DUE_DAYS):
        raise FormError("due_date", "The due date must be within a year.")

    note = " ".join(form.get("note", "").split()) or None
    if note is not None:
        if len(note) > NOTE_MAX:
            raise FormError("note", f"The note can have at most {NOTE_MAX} characters.")
        if any(unicodedata.category(ch).startswith("C") for ch in note):
            raise FormError("note", "The note must not contain control characters.")
    order = PaymentOrder(amount, currency, iban, bic, due, note)
    try:
        order.operation_data()
    except OperationDataError as exc:
        raise FormError("amount", f"The payment cannot be encoded: {exc}") from exc
    return order


def parse_code(text: str, component_length: int) -> str:
    """The typed digits in the canonical ``DDDDDDDD-DDDDDDDD`` form.

    Accepts ``12345678-87654321``, ``1234 5678 8765 4321`` and
    ``1234567887654321`` (SPEC 6.1: the caller converts UI formats).
    """
    try:
        return normalize_code(text, component_length)
    except MalformedCodeError:
        digits = 2 * component_length
        raise FormError(
            "code",
            f"Type the {digits} digits the phone shows, e.g. "
            f"{'1234' * (digits // 8)}-{'8765' * (digits // 8)} or in groups of four.",
        ) from None


def start_operation(
    session: Session,
    client: PowerAuthClient,
    settings: ServerSettings,
    *,
    kind: str,
    user_id: str,
    application_id: str,
    activation_id: str | None,
    title: str,
    message: str,
    operation_data: str,
    details: dict[str, str | None],
    validity: timedelta,
    attempts: int,
) -> BankOperation:
    """Ask the server for the signed QR text and store the operation.

    ``activation_id`` set: personalized QR (indicator 1); None: signed with
    the application's master key (indicator 0).
    """
    operation_id = str(uuid.uuid4())
    data = build_payload_data(operation_id, title, message, operation_data)
    if activation_id is not None:
        payload = client.create_personalized_payload(activation_id, data)
    else:
        payload = client.create_non_personalized_payload(application_id, data)
    now = settings.now()
    operation = BankOperation(
        id=operation_id,
        kind=kind,
        user_id=user_id,
        application_id=application_id,
        activation_id=activation_id,
        payload_data=data,
        operation_data=operation_data,
        nonce=payload.nonce,
        offline_data=payload.offline_data,
        details=details,
        status=BankOperationStatus.PENDING,
        attempts_left=attempts,
        created_at=now,
        expires_at=now + validity,
    )
    with session.begin():
        session.add(operation)
    return operation


def load_operation(session: Session, operation_id: str) -> BankOperation | None:
    # populate_existing: a session that already holds this operation must see
    # the row as stored now (another request may have used or failed it).
    with session.begin():
        return session.get(BankOperation, operation_id, populate_existing=True)


def availability(operation: BankOperation, now: datetime) -> str | None:
    """None when the operation still takes a code, else why not."""
    if operation.status is BankOperationStatus.CONFIRMED:
        return "used"
    if operation.status is BankOperationStatus.CANCELLED:
        return "cancelled"
    if operation.status is BankOperationStatus.FAILED:
        return "failed"
    if operation.expires_at <= now:
        return "expired"
    if operation.status is BankOperationStatus.VERIFYING:
        return "processing"
    return None


def base_string(operation: BankOperation) -> str:
    """SPEC 5.2 base string from the stored id, operation data and nonce."""
    return signature_base_string(
        operation.nonce, offline_body(operation.id, operation.operation_data)
    )


@dataclass(frozen=True)
class Outcome:
    """What happened to a typed code.

    ``result`` is ``confirmed``, ``wrong`` (``attempts_left`` more tries),
    ``blocked`` (the device is blocked), ``failed`` (the operation has no
    attempts left) or one of :func:`availability`'s reasons.
    """

    result: str
    attempts_left: int = 0
    activation_id: str | None = None
    # The activation's status when the server refused it (``blocked``).
    status: str | None = None


def _claim(session: Session, operation_id: str, now: datetime) -> bool:
    """Spend one attempt and mark the operation VERIFYING (one atomic UPDATE).

    Only one submission wins the PENDING -> VERIFYING change, so a double
    click never sends an already used code to the server (which would count
    a failed attempt on the device) and never races the confirmation.
    """
    with session.begin():
        changed = session.execute(
            update(BankOperation)
            .where(
                BankOperation.id == operation_id,
                BankOperation.status == BankOperationStatus.PENDING,
                BankOperation.attempts_left > 0,
                BankOperation.expires_at > now,
            )
            .values(
                status=BankOperationStatus.VERIFYING,
                attempts_left=BankOperation.attempts_left - 1,
            )
        )
        return bool(changed.rowcount)  # type: ignore[attr-defined]


def _release(session: Session, operation_id: str, now: datetime) -> None:
    """VERIFYING back to PENDING, or FAILED when no attempt is left."""
    with session.begin():
        session.execute(
            update(BankOperation)
            .where(
                BankOperation.id == operation_id,
                BankOperation.status == BankOperationStatus.VERIFYING,
            )
            .values(
                status=case(
                    (BankOperation.attempts_left > 0, BankOperationStatus.PENDING),
                    else_=BankOperationStatus.FAILED,
                ),
                finished_at=case(
                    (BankOperation.attempts_left > 0, None),
                    else_=literal(now, UTCDateTime()),
                ),
            )
        )


def _finish(
    session: Session,
    operation_id: str,
    status: BankOperationStatus,
    now: datetime,
    payment: BankPayment | None = None,
    *,
    from_status: BankOperationStatus = BankOperationStatus.PENDING,
) -> bool:
    with session.begin():
        changed = session.execute(
            update(BankOperation)
            .where(
                BankOperation.id == operation_id,
                BankOperation.status == from_status,
            )
            .values(status=status, finished_at=now)
        )
        done = bool(changed.rowcount)  # type: ignore[attr-defined]
        if done and payment is not None:
            session.add(payment)
        return done


def cancel(session: Session, operation: BankOperation, now: datetime) -> bool:
    return _finish(session, operation.id, BankOperationStatus.CANCELLED, now)


def confirm(
    session: Session,
    client: PowerAuthClient,
    settings: ServerSettings,
    operation: BankOperation,
    code: str,
    activation_id: str | None,
) -> Outcome:
    """Verify a normalized code for ``operation`` with ``activation_id``.

    ``activation_id`` None means the user has no device that could have made
    the code: the attempt is spent and the answer looks like a wrong code.
    The operation is claimed (one attempt spent, status VERIFYING) before the
    server is asked, so a second submission of the same operation, parallel
    or repeated, never reaches the server: it reads ``processing`` while the
    first one is checked and ``used`` once it is confirmed.

    :raises ClientError: the server could not be asked; the operation is
        PENDING again (its attempt stays spent: the server may have counted
        it).
    """
    now = settings.now()
    reason = availability(operation, now)
    if reason is not None:
        return Outcome(reason)
    before = operation.attempts_left
    if not _claim(session, operation.id, now):
        fresh = load_operation(session, operation.id)
        return Outcome((availability(fresh, now) if fresh else None) or "failed")
    left = before - 1

    if activation_id is None:
        verification = None
    else:
        try:
            verification = client.verify_offline(
                activation_id, base_string(operation), code, allow_biometry=False
            )
        except Exception:
            _release(session, operation.id, now)
            raise

    verifying = BankOperationStatus.VERIFYING
    if verification is not None and verification.valid:
        payment = None
        if operation.kind == PAYMENT:
            details = operation.details
            payment = BankPayment(
                operation_id=operation.id,
                user_id=operation.user_id,
                activation_id=activation_id,
                amount=str(details["amount"]),
                currency=str(details["currency"]),
                iban=str(details["iban"]),
                bic=details.get("bic"),
                due_date=str(details["due_date"]),
                note=details.get("note"),
                confirmed_at=now,
            )
        if _finish(
            session,
            operation.id,
            BankOperationStatus.CONFIRMED,
            now,
            payment,
            from_status=verifying,
        ):
            return Outcome("confirmed", activation_id=activation_id)
        return Outcome("used")

    if verification is not None and verification.status != "ACTIVE":
        _finish(
            session,
            operation.id,
            BankOperationStatus.FAILED,
            now,
            from_status=verifying,
        )
        return Outcome(
            "blocked", activation_id=activation_id, status=verification.status
        )
    if verification is not None and verification.remaining_attempts is not None:
        left = min(left, verification.remaining_attempts)
    if left <= 0:
        _finish(
            session,
            operation.id,
            BankOperationStatus.FAILED,
            now,
            from_status=verifying,
        )
        return Outcome("failed")
    _release(session, operation.id, now)
    return Outcome("wrong", attempts_left=left, activation_id=activation_id)


def payments_of(session: Session, user_id: str) -> list[BankPayment]:
    with session.begin():
        return list(
            session.scalars(
                select(BankPayment)
                .where(BankPayment.user_id == user_id)
                .order_by(BankPayment.confirmed_at.desc(), BankPayment.id.desc())
            )
        )
