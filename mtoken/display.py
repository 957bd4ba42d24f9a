"""The operation as a phone shows it before asking for the PIN.

Title and message come from the QR (or the template's defaults when empty),
then each operation data field with a human label, then the flags in words
(SPEC 3.5, 4). The same description feeds the CLI's ``--json`` output.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

from mtoken.device import VerifiedPayload
from powerauth.operation_data import (
    AccountField,
    AmountField,
    DateField,
    EmptyField,
    FallbackField,
    Field,
    IbanField,
    NoteField,
    OperationData,
    ReferenceField,
    TextField,
)
from powerauth.payload import KeyIndicator, OfflinePayload

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def format_amount(amount: Decimal, currency: str) -> str:
    """``1234.5`` CZK -> ``1,234.50 CZK``; more precise amounts keep their digits."""
    exponent = amount.as_tuple().exponent
    places = max(2, -exponent) if isinstance(exponent, int) else 2
    return f"{amount:,.{places}f} {currency}"


def format_iban(iban: str) -> str:
    """Groups of four, as IBANs are printed on paper."""
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


def format_date(date: datetime.date) -> str:
    """``25 April 2018`` (English month names, independent of the locale)."""
    return f"{date.day} {_MONTHS[date.month - 1]} {date.year}"


def describe_field(field: Field, text_number: int) -> dict[str, Any] | None:
    """Label, display value and raw parts of one field; None for an empty slot."""
    if isinstance(field, EmptyField):
        return None
    if isinstance(field, AmountField):
        return {
            "type": "AMOUNT",
            "label": "Amount",
            "value": format_amount(field.amount, field.currency),
            "amount": str(field.amount),
            "currency": field.currency,
        }
    if isinstance(field, IbanField):
        value = format_iban(field.iban)
        if field.bic:
            value += f" (BIC {field.bic})"
        return {
            "type": "IBAN",
            "label": "To account",
            "value": value,
            "iban": field.iban,
            "bic": field.bic,
        }
    if isinstance(field, AccountField):
        return {"type": "ACCOUNT", "label": "To account", "value": field.account}
    if isinstance(field, DateField):
        return {
            "type": "DATE",
            "label": "Due date",
            "value": format_date(field.date),
            "date": field.date.isoformat(),
        }
    if isinstance(field, ReferenceField):
        return {"type": "REFERENCE", "label": "Reference", "value": field.text}
    if isinstance(field, NoteField):
        return {"type": "NOTE", "label": "Note", "value": field.text}
    if isinstance(field, TextField):
        return {
            "type": "TEXT",
            "label": f"Attribute {text_number}",
            "value": field.text,
        }
    if isinstance(field, FallbackField):
        return {
            "type": "FALLBACK",
            "label": f"Field {field.type}",
            "value": field.text,
            "fieldType": field.type,
        }
    raise TypeError(f"unknown operation data field {type(field).__name__}")


def describe_fields(data: OperationData) -> list[dict[str, Any]]:
    """Every non-empty field, in QR order."""
    described = []
    text_number = 0
    for field in data.fields:
        if isinstance(field, TextField):
            text_number += 1
        item = describe_field(field, text_number)
        if item is not None:
            described.append(item)
    return described


def _flags(payload: OfflinePayload) -> dict[str, bool]:
    flags = payload.flags
    return {
        "biometryAllowed": bool(flags.biometry),
        "fraudWarning": bool(flags.fraud_warning),
        "flipButtons": bool(flags.flip_buttons),
        "blockWhenOnCall": bool(flags.block_when_on_call),
    }


def _title_and_message(payload: OfflinePayload) -> tuple[str, str]:
    template = payload.operation_data.template_kind
    title = payload.title or template.default_title or ""
    message = payload.message or template.default_message or ""
    return title, message


def describe_operation(verified: VerifiedPayload) -> dict[str, Any]:
    """A JSON-ready description of the verified operation (no secrets in it)."""
    payload = verified.payload
    title, message = _title_and_message(payload)
    return {
        "operationId": payload.operation_id,
        "personalized": payload.indicator == KeyIndicator.PERSONALIZED,
        "title": title,
        "message": message,
        "template": payload.operation_data.template,
        "operationData": payload.operation_data_text,
        "fields": describe_fields(payload.operation_data),
        "flags": _flags(payload),
        "proximityCheck": payload.totp is not None,
    }


def _flag_lines(flags: dict[str, bool]) -> list[str]:
    lines = []
    if flags["fraudWarning"]:
        lines.append(
            "WARNING: this may be fraud. If someone asked you to approve it "
            "(on the phone, in a chat), stop and reject it."
        )
    lines.append(
        "Biometry: allowed"
        if flags["biometryAllowed"]
        else "Biometry: not allowed for this operation (PIN only)"
    )
    if flags["flipButtons"]:
        lines.append("Note: the Approve and Reject buttons are swapped.")
    if flags["blockWhenOnCall"]:
        lines.append("Approval is blocked while a phone call is active.")
    return lines


def render_operation(verified: VerifiedPayload) -> str:
    """The operation as text, the way the phone screen lays it out."""
    described = describe_operation(verified)
    lines = [described["title"], described["message"], ""]

    fields = described["fields"]
    width = max((len(item["label"]) for item in fields), default=0)
    for item in fields:
        value_lines = str(item["value"]).split("\n")
        lines.append(f"  {item['label']:<{width}}  {value_lines[0]}")
        lines.extend(f"  {'':<{width}}  {more}" for more in value_lines[1:])
    if fields:
        lines.append("")

    lines.extend(_flag_lines(described["flags"]))
    if described["proximityCheck"]:
        lines.append("Proximity check: the QR carries a time-based code.")
    source = (
        f"personalized for activation {verified.activation_id}"
        if described["personalized"]
        else "signed by the application (non-personalized)"
    )
    lines.append(f"Operation {described['operationId']}, {source}; signature OK.")
    return "\n".join(lines)
