"""The bank's login lock-out per username, kept in the database.

Every failed login code is also a failed attempt on the device (SPEC 6.2),
and the login page is open to anyone who knows a username. After
``LOGIN_LOCKOUT_FAILURES`` failed logins (3, below the device's limit of 5)
the bank stops asking the server for that username's login codes for
``LOGIN_LOCKOUT_MINUTES``. The count goes back to zero only at a successful
login: once a username is locked, each later failure locks it again.

The state lives in the ``bank_login_guard`` table, so every worker process
sees the same counts; one login code per username is checked at a time, so
parallel guesses cannot all pass the count. Unknown usernames are counted
and locked the same way as known ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, literal, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from webapp.models import BankLoginGuard, UTCDateTime

# How long a login check may hold the username before another one may start;
# well above the pages client's HTTP timeout, so it only matters when a worker
# died during the check.
CHECK_LEASE = timedelta(seconds=60)


@dataclass(frozen=True)
class Refusal:
    """Why a login code is not checked now: ``locked`` (``minutes`` left) or ``busy``."""

    reason: str
    minutes: int = 0


def _locked_minutes(guard: BankLoginGuard | None, now: datetime) -> int | None:
    if guard is None or guard.locked_until is None or guard.locked_until <= now:
        return None
    seconds = (guard.locked_until - now).total_seconds()
    return max(1, -int(-seconds // 60))  # whole minutes, rounded up


def locked(session: Session, user_id: str, now: datetime) -> Refusal | None:
    """The lock-out of ``user_id``'s login now, or None."""
    with session.begin():
        guard = session.get(BankLoginGuard, user_id, populate_existing=True)
        minutes = _locked_minutes(guard, now)
    return None if minutes is None else Refusal("locked", minutes)


def _ensure_row(session: Session, user_id: str) -> None:
    try:
        with session.begin():
            if session.get(BankLoginGuard, user_id) is None:
                session.add(BankLoginGuard(user_id=user_id, failures=0))
    except IntegrityError:
        pass  # another request made the row first


def begin(session: Session, user_id: str, now: datetime) -> Refusal | None:
    """Take ``user_id``'s login check; a :class:`Refusal` when it may not run now.

    Call :func:`finish` after the check, whatever its outcome.
    """
    _ensure_row(session, user_id)
    with session.begin():
        changed = session.execute(
            update(BankLoginGuard)
            .where(
                BankLoginGuard.user_id == user_id,
                or_(
                    BankLoginGuard.locked_until.is_(None),
                    BankLoginGuard.locked_until <= now,
                ),
                or_(
                    BankLoginGuard.checking_until.is_(None),
                    BankLoginGuard.checking_until <= now,
                ),
            )
            .values(checking_until=now + CHECK_LEASE)
        )
        if changed.rowcount:  # type: ignore[attr-defined]
            return None
    refusal = locked(session, user_id, now)
    return refusal if refusal is not None else Refusal("busy")


def finish(
    session: Session,
    user_id: str,
    now: datetime,
    succeeded: bool | None,
    *,
    max_failures: int,
    lock_for: timedelta,
) -> None:
    """End the check :func:`begin` took.

    ``succeeded`` True resets the count, False counts one failure (and locks
    at ``max_failures``), None (the code was not checked) changes nothing.
    """
    values: dict[str, object] = {"checking_until": None}
    if succeeded is True:
        values.update(failures=0, locked_until=None)
    elif succeeded is False:
        values.update(
            failures=BankLoginGuard.failures + 1,
            locked_until=case(
                (
                    BankLoginGuard.failures + 1 >= max_failures,
                    literal(now + lock_for, UTCDateTime()),
                ),
                else_=BankLoginGuard.locked_until,
            ),
        )
    with session.begin():
        session.execute(
            update(BankLoginGuard)
            .where(BankLoginGuard.user_id == user_id)
            .values(**values)
        )
