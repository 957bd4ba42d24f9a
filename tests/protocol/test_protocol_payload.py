"""QR payload: qr-payload-cases.json (positive and negative), build, parse."""

from __future__ import annotations

import base64
import copy
import dataclasses
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from powerauth.errors import (
    EscapingError,
    InvalidServerSignatureError,
    MalformedPayloadError,
    OperationDataError,
)
from powerauth.keys import public_key_from_private, sign_ecdsa_der
from powerauth.operation_data import (
    AmountField,
    IbanField,
    Template,
    TextField,
    parse_operation_data,
)
from powerauth.payload import (
    MAX_DATA_BYTES,
    MAX_PAYLOAD_BYTES,
    Flags,
    KeyIndicator,
    PayloadData,
    build_offline_payload,
    build_payload_data,
    parse_offline_payload,
    parse_payload_data,
)
from powerauth.signature import offline_body, signature_base_string
from tests.protocol.protocol_vectors import load

QR = load("qr-payload-cases.json")
DEFAULTS: dict[str, str] = QR["defaults_for_mutations"]


def _assemble(values: dict[str, str], other: tuple[str, ...] = ()) -> str:
    """Put the payload together as the vector's ``assembly`` template says."""
    lines = [
        values["operationId"],
        values["title"],
        values["message"],
        values["operationData"],
        values["flags"],
        *other,
        values["nonce"],
        values["signingKey"] + values["signature"],
    ]
    return "\n".join(lines)


def _expand(case: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """Turn one parser case into (id, payload text, expectation) triples."""
    name = case["name"]
    expect = case.get("expect")
    if "input" in case:
        return [(name, case["input"], expect)]
    if "mutate" in case:
        return [(name, _assemble({**DEFAULTS, **case["mutate"]}), expect)]
    if "input_operationData" in case:
        text = _assemble({**DEFAULTS, "operationData": case["input_operationData"]})
        return [(name, text, expect)]
    for key in ("operationData", "nonce", "signature", "signingKey"):
        values = case.get(f"mutate_{key}_each")
        if values is not None:
            return [
                (f"{name}: {value!r}", _assemble({**DEFAULTS, key: value}), expect)
                for value in values
            ]
    triples = []
    for item in case["cases"]:
        field_text = item if isinstance(item, str) else item[0]
        text = _assemble({**DEFAULTS, "operationData": case["prefix"] + field_text})
        triples.append((f"{name}: {field_text}", text, case.get("expect", item)))
    return triples


PARSER_CASES = [triple for case in QR["parserCases"] for triple in _expand(case)]
POSITIVE = [(i, t, e) for i, t, e in PARSER_CASES if e != "error"]
NEGATIVE = [(i, t) for i, t, e in PARSER_CASES if e == "error"]

FLAG_NAMES = {
    "biometry(B)": "biometry",
    "flipButtons(X)": "flip_buttons",
    "fraudWarning(F)": "fraud_warning",
    "blockWhenOnCall(C)": "block_when_on_call",
}


def _check_fields(actual: tuple[Any, ...], expected: list[dict[str, Any]]) -> None:
    assert len(actual) == len(expected)
    for field, want in zip(actual, expected, strict=True):
        kind = want["type"]
        if kind == "A":
            assert isinstance(field, AmountField)
            assert str(field.amount) == want["amount"]
            assert field.currency == want["currency"]
        elif kind == "I":
            assert isinstance(field, IbanField)
            assert (field.iban, field.bic) == (want["iban"], want["bic"])
        elif kind == "D":
            assert field.date.isoformat() == want["date"]
        elif kind == "T":
            assert isinstance(field, TextField)
            assert field.text == want["text"]


@pytest.mark.parametrize(
    ("text", "expect"),
    [(t, e) for _, t, e in POSITIVE],
    ids=[i for i, _, _ in POSITIVE],
)
def test_parser_case_accepted(text: str, expect: Any) -> None:
    payload = parse_offline_payload(text)
    if isinstance(expect, list):
        # Field cases: [field text, value, value].
        field = payload.operation_data.fields[0]
        if isinstance(field, AmountField):
            assert (str(field.amount), field.currency) == (expect[1], expect[2])
        else:
            assert isinstance(field, IbanField)
            assert (field.iban, field.bic) == (expect[1], expect[2])
        return
    simple = {
        "operationId": "operation_id",
        "title": "title",
        "message": "message",
        "nonce": "nonce",
        "totp": "totp",
    }
    for key, attribute in simple.items():
        if key in expect:
            assert getattr(payload, attribute) == expect[key]
    if expect.get("flags") == "all false":
        assert payload.flags == Flags()
    elif "flags" in expect:
        for key, value in expect["flags"].items():
            assert getattr(payload.flags, FLAG_NAMES[key]) is value
    if "signingKey" in expect:
        assert payload.indicator is KeyIndicator(expect["signingKey"][-3])
    if "signatureBase64" in expect:
        assert payload.signature == base64.b64decode(expect["signatureBase64"])
    if "signedData" in expect:
        assert payload.signed_bytes == expect["signedData"].encode()
    if "isNewerFormat" in expect:
        assert payload.is_newer_format is expect["isNewerFormat"]
    if "dataForOfflineSigning" in expect:
        assert payload.offline_body() == expect["dataForOfflineSigning"].encode()
    if "operationData" in expect:
        data = expect["operationData"]
        assert payload.operation_data.version == data["version"][0]
        assert payload.operation_data.template == data["templateId"]
        _check_fields(payload.operation_data.fields, data["fields"])
    if "fieldTypes" in expect:
        kinds = [type(f).__name__ for f in payload.operation_data.fields]
        names = {"empty": "EmptyField", "A": "AmountField", "T": "TextField"}
        assert kinds == [names[k] for k in expect["fieldTypes"]]


@pytest.mark.parametrize("text", [t for _, t in NEGATIVE], ids=[i for i, _ in NEGATIVE])
def test_parser_case_rejected(text: str) -> None:
    with pytest.raises(MalformedPayloadError):
        parse_offline_payload(text)


EXAMPLES = QR["examples"]


def test_doc_example_with_stray_padding_is_rejected() -> None:
    with pytest.raises(MalformedPayloadError, match="Base64"):
        parse_offline_payload(EXAMPLES[0]["offlineData"])


def test_doc_example_rebuilds_from_its_create_request() -> None:
    example = EXAMPLES[0]
    fixed = example["offlineData"][:-1]
    payload = parse_offline_payload(fixed)
    data = parse_payload_data(example["dataForCreateRequest"])
    assert data.operation_id == payload.operation_id
    draft = build_offline_payload(data.text, payload.nonce, KeyIndicator.MASTER)
    assert draft.signed_bytes == payload.signed_bytes
    assert draft.finish(payload.signature) == fixed


def test_cmd_example_is_a_personalized_login() -> None:
    example = EXAMPLES[1]
    payload = parse_offline_payload(example["offlineData"])
    assert payload.indicator is KeyIndicator.PERSONALIZED
    assert payload.operation_data.template == 2
    assert payload.flags.biometry
    base = payload.base_string()
    assert base == signature_base_string(payload.nonce, payload.offline_body())


def test_bytes_input_and_signed_bytes_with_non_ascii() -> None:
    data = build_payload_data("op", "Platba 😀", "Zpráva\nřádek", "A1*A1CZK", "B")
    draft = build_offline_payload(data, DEFAULTS["nonce"], "1")
    text = draft.finish(bytes(70))
    payload = parse_offline_payload(text.encode())
    assert payload.title == "Platba 😀"
    assert payload.message == "Zpráva\nřádek"
    assert payload.signed_bytes == text.encode()[: -len(base64.b64encode(bytes(70)))]


def test_signature_round_trip_with_a_software_key() -> None:
    scalar = 0x1234_5678_9ABC_DEF0_1234_5678_9ABC_DEF0
    data = build_payload_data(
        "op-9", "Title", "Message", "A1*A10.5EUR", Flags(biometry=True)
    )
    draft = build_offline_payload(
        data, DEFAULTS["nonce"], KeyIndicator.PERSONALIZED, "01234567"
    )
    text = draft.finish(sign_ecdsa_der(scalar, draft.signed_bytes))
    payload = parse_offline_payload(text)
    payload.verify_signature(public_key_from_private(scalar))
    assert payload.totp == "01234567"
    assert payload.offline_body() == offline_body("op-9", "A1*A10.5EUR", "01234567")
    tampered = text.replace("Title", "Tit1e")
    with pytest.raises(InvalidServerSignatureError):
        parse_offline_payload(tampered).verify_signature(
            public_key_from_private(scalar)
        )


def test_reserved_lines_after_totp() -> None:
    lines = _assemble(DEFAULTS, ("12345678", "future-1", "future-2"))
    payload = parse_offline_payload(lines)
    assert payload.totp == "12345678"
    assert payload.reserved_lines == ("future-1", "future-2")
    assert payload.is_newer_format


def _with_lines(*extra: str, **values: str) -> str:
    return _assemble({**DEFAULTS, **values}, extra)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("\n".join(_with_lines().split("\n")[:6]), "at least 7 lines"),
        ("", "at least 7 lines"),
        (_with_lines(operationId=""), "operation id"),
        (_with_lines(nonce="AD8bOO0Df73kNaIGb3Vmpg="), "24 characters"),
        (_with_lines(nonce="AD8bOO0Df73kNaIGb3Vmph=="), "16 bytes"),
        (_with_lines(nonce="AD8bOO0Df73kNaIGb3Vmp*=="), "16 bytes"),
        (_with_lines(nonce="AD8bOO0Df73kNaIGb3VmpgAA"), "16 bytes"),
        (_with_lines(signingKey="", signature=""), "key indicator"),
        (_with_lines(signingKey="2"), "indicator"),
        (_with_lines(signingKey="O"), "indicator"),
        (_with_lines(signature=base64.b64encode(bytes(63)).decode()), "64..255"),
        (_with_lines(signature=base64.b64encode(bytes(256)).decode()), "64..255"),
        (_with_lines(signature="MEYC IQDb"), "Base64"),
        (_with_lines(signature=DEFAULTS["signature"] + "="), "Base64"),
        (_with_lines(title="Pay\rment"), r"U\+000D"),
        (_with_lines(message="tab\there"), r"U\+0009"),
        (_with_lines(message="nul\x00"), r"U\+0000"),
        (_with_lines(flags="B\x7f"), r"U\+007F"),
        (_with_lines(title="next\x85line"), r"U\+0085"),
        (_with_lines("12a45678"), "TOTP"),
        (_with_lines(""), "TOTP"),
        (_with_lines(title="\ud800"), "UTF-8"),
        (_with_lines(operationData="A1*A0"), "amount"),
        (_with_lines(operationData="A1*D20230229"), "calendar"),
    ],
)
def test_payload_rule_violation(text: str, message: str) -> None:
    with pytest.raises(MalformedPayloadError, match=message):
        parse_offline_payload(text)


def test_invalid_utf8_bytes_are_refused() -> None:
    raw = _assemble(DEFAULTS).encode().replace(b"Payment", b"Pay\xc3ment")
    with pytest.raises(MalformedPayloadError, match="UTF-8"):
        parse_offline_payload(raw)


def test_oversize_payload_is_refused() -> None:
    text = _with_lines(message="x" * MAX_PAYLOAD_BYTES)
    with pytest.raises(MalformedPayloadError, match="longer than"):
        parse_offline_payload(text)


def test_operation_data_errors_are_payload_errors() -> None:
    with pytest.raises(OperationDataError):
        parse_offline_payload(_with_lines(operationData="A100"))


NONCE_16 = "AD8bOO0Df73kNaIGb3Vmpg=="
GOOD_DATA = DEFAULTS["operationId"] + "\nPayment\nPlease confirm\nA1*A100CZK\nB"


def test_parse_payload_data_accepts_five_lines_and_extras() -> None:
    data = parse_payload_data(GOOD_DATA)
    assert data.flags.biometry
    assert data.extra_lines == ()
    assert parse_payload_data(GOOD_DATA + "\nextra").extra_lines == ("extra",)


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        ("op\nT\nM\nA1", MalformedPayloadError, "at least 5 lines"),
        ("\nT\nM\nA1\nB", MalformedPayloadError, "operation id"),
        ("op\n\n\nA0\nB", MalformedPayloadError, "generic template"),
        ("op\nTitle\n\nA7\nB", MalformedPayloadError, "generic template"),
        ("op\nT\nM\n11\nB", OperationDataError, "version letter"),
        ("op\nT\r\nM\nA1\nB", MalformedPayloadError, r"U\+000D"),
        (
            "op\nT\nM\nA1\nB" + "x" * MAX_DATA_BYTES,
            MalformedPayloadError,
            "longer than",
        ),
        ("op\n\ud83d\nM\nA1\nB", MalformedPayloadError, "UTF-8"),
    ],
)
def test_parse_payload_data_rule_violation(
    data: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        parse_payload_data(data)


def test_payload_data_cannot_be_made_without_the_checks() -> None:
    # Regression: a PayloadData used to be a public dataclass, so
    # dataclasses.replace made one whose text skipped every check, and
    # build_offline_payload (which trusts a PayloadData) signed it.
    good = parse_payload_data(GOOD_DATA)
    forged_text = "only\ttwo lines\x00\nB"
    with pytest.raises(MalformedPayloadError):
        parse_payload_data(forged_text)

    with pytest.raises(TypeError):
        dataclasses.replace(good, text=forged_text)  # type: ignore[type-var]
    with pytest.raises(TypeError, match="parse_payload_data only"):
        PayloadData(object(), forged_text, good._lines, ())
    for name in ("text", "_text", "_extra_lines", "title"):
        with pytest.raises(AttributeError):
            setattr(good, name, forged_text)
    assert good.text == GOOD_DATA and good.extra_lines == ()
    # Copies go through parse_payload_data again and stay usable.
    copied = copy.deepcopy(good)
    assert copied == good and copied.title == "Payment"
    draft = build_offline_payload(copied, NONCE_16, KeyIndicator.PERSONALIZED)
    assert draft.unsigned_text == f"{GOOD_DATA}\n{NONCE_16}\n1"


def test_templates_with_default_texts_allow_empty_title() -> None:
    assert parse_payload_data("op\n\n\nA1\n").title == ""
    assert parse_payload_data("op\n\n\nA2\n").message == ""


def test_build_refuses_bad_inputs() -> None:
    with pytest.raises(MalformedPayloadError, match="nonce"):
        build_offline_payload(GOOD_DATA, "AAAA", "0")
    with pytest.raises(MalformedPayloadError, match="indicator"):
        build_offline_payload(GOOD_DATA, DEFAULTS["nonce"], "2")
    with pytest.raises(MalformedPayloadError, match="TOTP"):
        build_offline_payload(GOOD_DATA, DEFAULTS["nonce"], "0", "12 34")
    with pytest.raises(MalformedPayloadError, match="line 6"):
        build_offline_payload(GOOD_DATA + "\nextra", DEFAULTS["nonce"], "0")
    draft = build_offline_payload(GOOD_DATA, DEFAULTS["nonce"], "0")
    for size in (0, 63, 256):
        with pytest.raises(MalformedPayloadError, match=r"64\.\.255"):
            draft.finish(bytes(size))


def test_build_puts_totp_on_line_six_before_extra_lines() -> None:
    draft = build_offline_payload(
        GOOD_DATA + "\nextra", DEFAULTS["nonce"], "1", "42424242"
    )
    payload = parse_offline_payload(draft.finish(bytes(71)))
    assert payload.totp == "42424242"
    assert payload.reserved_lines == ("extra",)


def test_build_payload_data_escapes_title_and_message() -> None:
    data = build_payload_data(
        "op", "a\\nb", "line\nnext*", "A1", Flags(fraud_warning=True)
    )
    assert data == "op\na\\\\nb\nline\\nnext*\nA1\nF"
    with pytest.raises(EscapingError, match=r"U\+0009"):
        build_payload_data("op", "a\tb", "m", "A1")


def test_flags_round_trip_and_unknown_characters() -> None:
    flags = Flags.from_text("CXzB?")
    assert flags == Flags(biometry=True, flip_buttons=True, block_when_on_call=True)
    assert flags.to_text() == "BXC"
    assert Flags.from_text("") == Flags()


# Printable text: no control characters (Cc) and no lone surrogates (Cs).
printable = st.characters(blacklist_categories=("Cc", "Cs"))
line_text = st.text(printable, min_size=1, max_size=30)
# Chunks mix arbitrary printable text with the awkward cases: newlines,
# backslashes (also right before "n" or "*"), emoji, CJK and right-to-left text.
AWKWARD = ["\n", "\\", "\\n", "\\*", "*", "😀", "中文", "שלום", "مرحبا"]
display_text = st.lists(
    st.one_of(st.text(printable, max_size=6), st.sampled_from(AWKWARD)), max_size=8
).map("".join)


@given(
    operation_id=line_text,
    title=display_text,
    message=display_text,
    flags=st.builds(Flags, st.booleans(), st.booleans(), st.booleans(), st.booleans()),
    operation_data=st.sampled_from(
        [
            "A1",
            "A2",
            "A1*A100CZK*ICZ2730300000001165254011*D20180425",
            "B7*Tx\\*y*Q1/2",
            "A0*N\\\\n",
        ]
    ),
    nonce=st.binary(min_size=16, max_size=16),
    indicator=st.sampled_from(list(KeyIndicator)),
    totp=st.none() | st.text("0123456789", min_size=1, max_size=10),
    signature=st.binary(min_size=64, max_size=255),
)
def test_build_then_parse_returns_the_input(
    operation_id: str,
    title: str,
    message: str,
    flags: Flags,
    operation_data: str,
    nonce: bytes,
    indicator: KeyIndicator,
    totp: str | None,
    signature: bytes,
) -> None:
    if parse_operation_data(operation_data).template_kind is Template.GENERIC:
        # The generic template has no default texts, so both are required.
        title, message = title or "t", message or "m"
    data = build_payload_data(operation_id, title, message, operation_data, flags)
    nonce_b64 = base64.b64encode(nonce).decode()
    draft = build_offline_payload(data, nonce_b64, indicator, totp)
    payload = parse_offline_payload(draft.finish(signature))
    assert payload.operation_id == operation_id
    assert payload.title == title
    assert payload.message == message
    assert payload.flags == flags
    assert payload.operation_data_text == operation_data
    assert payload.nonce == nonce_b64
    assert payload.indicator is indicator
    assert payload.totp == totp
    assert payload.signature == signature
    assert payload.signed_bytes == draft.signed_bytes
    assert payload.offline_body() == offline_body(operation_id, operation_data, totp)


def test_amount_field_value_is_decimal() -> None:
    payload = parse_offline_payload(_with_lines(operationData="A1*A.325CZK"))
    field = payload.operation_data.fields[0]
    assert isinstance(field, AmountField)
    assert field.amount == Decimal("0.325")
