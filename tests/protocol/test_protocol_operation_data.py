"""Operation data: operation-data-builder-cases.json, parser rules and limits."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from powerauth.errors import EscapingError, OperationDataError
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
    Template,
    TextField,
    build_operation_data,
    parse_operation_data,
)
from tests.protocol.protocol_vectors import load

BUILDER = load("operation-data-builder-cases.json")


def _field(attribute: list[str]) -> Field:
    """Map an upstream builder call to our field type."""
    kind, *values = attribute
    if kind == "accountGeneric":
        return AccountField(values[0])
    if kind == "accountIban":
        return IbanField(values[0])
    if kind == "amount":
        return AmountField(Decimal(values[0]), values[1])
    if kind == "date":
        return DateField(datetime.date.fromisoformat(values[0]))
    if kind == "note":
        return NoteField(values[0])
    if kind == "reference":
        return ReferenceField(values[0])
    if kind == "text":
        # Upstream's builder text() emits an N field (SPEC 4, upstream quirk).
        return NoteField(values[0])
    raise AssertionError(f"unknown builder attribute {kind}")


def _fields(attrs: dict[str, list[str]]) -> list[Field]:
    slots = max((int(slot) for slot in attrs), default=0)
    fields: list[Field] = [EmptyField()] * slots
    for slot, attribute in attrs.items():
        fields[int(slot) - 1] = _field(attribute)
    return fields


@pytest.mark.parametrize("case", BUILDER["cases"], ids=lambda c: c["expected"])
def test_builder_case(case: dict[str, Any]) -> None:
    text = build_operation_data(
        case["templateId"], _fields(case["attrs"]), version=case["templateVersion"]
    )
    assert text == case["expected"]
    # The parser reads the builder's output back.
    parsed = parse_operation_data(text)
    assert parsed.version == case["templateVersion"]
    assert parsed.template == case["templateId"]


INVALID_AMOUNTS = [c for c in BUILDER["invalid"] if "amount" in c]
MISSING = [c for c in BUILDER["invalid"] if "missing" in c]


@pytest.mark.parametrize("case", INVALID_AMOUNTS, ids=lambda c: c["amount"])
def test_builder_refuses_amount(case: dict[str, str]) -> None:
    field = AmountField(Decimal(case["amount"]), case["currency"])
    with pytest.raises(OperationDataError, match="amount"):
        build_operation_data(1, [field])


@pytest.mark.parametrize("case", MISSING, ids=lambda c: c["missing"])
def test_builder_refuses_missing_header(case: dict[str, str]) -> None:
    # A missing version or template id must be refused, never defaulted.
    version: Any = None if "templateVersion" in case["missing"] else "A"
    template: Any = None if "templateId" in case["missing"] else 1
    with pytest.raises(OperationDataError, match=r"version|template"):
        build_operation_data(template, version=version)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "version letter"),
        ("a1", "version letter"),
        ("AB1", "version letter"),
        ("A1.0", "version letter"),
        ("A100", "0..99"),
        ("A1*" + "*".join(["Tx"] * 7), "more than 6"),
        ("A1*ACZK", "amount and a currency"),
        ("A1*A1e5CZK", "decimal"),
        ("A1*A100CZ1", "currency"),
        ("A1*I,", "IBAN field must not be empty"),
        ("A1*IA,B,C", "IBAN or IBAN,BIC"),
        ("A1*ICZ27 3030", "IBAN"),
        ("A1*D2018042", "eight digits"),
        ("A1*D2018-4-2", "eight digits"),
        ("A1*D20180431", "calendar"),
        ("A1*D00000101", "calendar"),
        ("A1*D\uff12\uff10\uff11\uff18\uff10\uff14\uff12\uff15", "eight digits"),
        ("A1*\\*x", "escape"),
        ("A1*Tbad\tcontrol", "control character"),
    ],
)
def test_parser_rule_violation(text: str, message: str) -> None:
    with pytest.raises(OperationDataError, match=message):
        parse_operation_data(text)


def test_parser_tolerates_six_fields_and_keeps_unknown_types() -> None:
    data = parse_operation_data("A1*Tx*Ty*Tz*X1*9\\*2*")
    assert len(data.fields) == 6
    assert data.fields[3] == FallbackField("X", "1")
    assert data.fields[4] == FallbackField("9", "*2")
    assert data.fields[5] == EmptyField()


def test_parser_splits_on_unescaped_asterisks_only() -> None:
    data = parse_operation_data("A1*Na\\\\*Rb\\*c*Q1165254011/3030")
    assert data.fields == (
        NoteField("a\\"),
        ReferenceField("b*c"),
        AccountField("1165254011/3030"),
    )


def test_versions_and_templates() -> None:
    assert parse_operation_data("A0").template_kind is Template.GENERIC
    assert parse_operation_data("B2").template_kind is Template.LOGIN
    assert parse_operation_data("A99").template_kind is Template.GENERIC
    assert parse_operation_data("A01").template == 1
    assert Template.PAYMENT.default_title == "Payment"
    assert Template.GENERIC.default_title is None


def test_early_years_are_zero_padded() -> None:
    text = build_operation_data(1, [DateField(datetime.date(7, 3, 9))])
    assert text == "A1*D00070309"
    assert parse_operation_data(text).fields == (DateField(datetime.date(7, 3, 9)),)


def test_leap_day_is_a_real_date() -> None:
    field = parse_operation_data("A1*D20240229").fields[0]
    assert field == DateField(datetime.date(2024, 2, 29))


def test_builder_limits() -> None:
    with pytest.raises(OperationDataError, match="at most 5"):
        build_operation_data(0, [TextField("x")] * 6)
    with pytest.raises(OperationDataError, match=r"0\.\.99"):
        build_operation_data(100)
    with pytest.raises(OperationDataError, match="version"):
        build_operation_data(1, version="a")
    with pytest.raises(OperationDataError, match="currency"):
        build_operation_data(1, [AmountField(Decimal(1), "czk")])
    with pytest.raises(OperationDataError, match="IBAN"):
        build_operation_data(1, [IbanField("cz27")])
    with pytest.raises(OperationDataError, match="BIC"):
        build_operation_data(1, [IbanField("CZ27", "bic")])
    with pytest.raises(OperationDataError, match="fallback"):
        build_operation_data(1, [FallbackField("T", "x")])
    with pytest.raises(EscapingError, match="control"):
        build_operation_data(1, [NoteField("bell\x07")])


def test_builder_drops_trailing_empty_fields_and_keeps_gaps() -> None:
    fields: list[Field] = [EmptyField(), NoteField("n"), EmptyField(), EmptyField()]
    assert build_operation_data(1, fields) == "A1**Nn"


def test_builder_amount_and_iban_forms() -> None:
    fields: list[Field] = [
        AmountField(Decimal("1.000"), "EUR"),
        IbanField("CZ27", "GIBACZPX"),
    ]
    assert build_operation_data(1, fields) == "A1*A1.000EUR*ICZ27,GIBACZPX"


safe_text = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=20)
text_fields = st.one_of(
    st.builds(AccountField, safe_text),
    st.builds(ReferenceField, safe_text),
    st.builds(NoteField, safe_text),
    st.builds(TextField, safe_text),
    st.builds(DateField, st.dates()),
    st.builds(
        AmountField,
        st.decimals(min_value=Decimal("0.01"), max_value=10**9, places=2),
        st.sampled_from(["CZK", "EUR", "USD"]),
    ),
    st.builds(
        IbanField,
        st.from_regex(r"[0-9A-Z]{1,34}", fullmatch=True),
        st.none() | st.from_regex(r"[0-9A-Z]{8,11}", fullmatch=True),
    ),
    st.just(EmptyField()),
)


@given(
    version=st.sampled_from("ABZ"),
    template=st.integers(0, 99),
    fields=st.lists(text_fields, max_size=5),
)
def test_build_then_parse_returns_the_fields(
    version: str, template: int, fields: list[Field]
) -> None:
    while fields and isinstance(fields[-1], EmptyField):
        fields.pop()
    text = build_operation_data(template, fields, version=version, normalize=False)
    assert parse_operation_data(text) == OperationData(version, template, tuple(fields))
