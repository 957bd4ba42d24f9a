"""The operation screen: labels, formats, template texts and flags."""

from __future__ import annotations

import base64
import datetime
from decimal import Decimal

import pytest

from mtoken.device import VerifiedPayload
from mtoken.display import (
    describe_operation,
    format_amount,
    format_date,
    format_iban,
    render_operation,
)
from powerauth.payload import parse_offline_payload

# Display never checks signatures, so any well-formed signature bytes do.
TAIL = "AD8bOO0Df73kNaIGb3Vmpg==\n1" + base64.b64encode(bytes(70)).decode()


def shown(title: str, message: str, data: str, flags: str = "") -> VerifiedPayload:
    text = "\n".join(["op-1", title, message, data, flags, TAIL])
    return VerifiedPayload(payload=parse_offline_payload(text), activation_id="a-1")


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("1234.5", "CZK", "1,234.50 CZK"),
        ("100", "EUR", "100.00 EUR"),
        (".325", "CZK", "0.325 CZK"),
        ("-50000.16", "GBP", "-50,000.16 GBP"),
        ("1000000", "JPY", "1,000,000.00 JPY"),
    ],
)
def test_amounts(amount: str, currency: str, expected: str) -> None:
    assert format_amount(Decimal(amount), currency) == expected


def test_iban_and_date() -> None:
    assert format_iban("CZ2730300000001165254011") == "CZ27 3030 0000 0011 6525 4011"
    assert format_date(datetime.date(2018, 4, 25)) == "25 April 2018"


def test_payment_template_defaults_and_every_field_type() -> None:
    data = (
        "A1*A100CZK*ISOMEIBAN*Q1165254011/3030*R/VS123*D20260101*NLine one\\nline two"
    )
    verified = shown("", "", data, "CXF")

    described = describe_operation(verified)
    text = render_operation(verified)

    assert described["title"] == "Payment"
    assert described["message"] == "Please confirm this payment"
    assert [f["label"] for f in described["fields"]] == [
        "Amount",
        "To account",
        "To account",
        "Reference",
        "Due date",
        "Note",
    ]
    assert "  Note        Line one\n              line two" in text
    assert "SOME IBAN" in text
    assert text.index("WARNING") < text.index("Biometry: not allowed")
    assert "buttons are swapped" in text
    assert "phone call" in text


def test_empty_slots_are_skipped_and_text_fields_numbered() -> None:
    verified = shown("Login", "Confirm", "A2**TFirst**TSecond*Zmystery", "B")

    fields = describe_operation(verified)["fields"]

    assert [(f["label"], f["value"]) for f in fields] == [
        ("Attribute 1", "First"),
        ("Attribute 2", "Second"),
        ("Field Z", "mystery"),
    ]
    assert describe_operation(verified)["flags"]["biometryAllowed"] is True


def test_title_escapes_are_decoded() -> None:
    verified = shown("Two\\nlines", "Back\\\\slash", "A0")
    described = describe_operation(verified)
    assert described["title"] == "Two\nlines"
    assert described["message"] == "Back\\slash"
