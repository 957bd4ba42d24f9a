"""Offline codes: signatures-offline.json, signature-base-string-cases.json, verify."""

from __future__ import annotations

import hmac
import re
from typing import Any

import pytest

from powerauth.crypto import FactorKeys, advance_counter, derive_factor_keys
from powerauth.errors import (
    InvalidParameterError,
    MalformedCodeError,
    MalformedPayloadError,
    SignatureMismatchError,
)
from powerauth.signature import (
    OFFLINE_URI_ID,
    SignatureType,
    base_string_with_totp,
    compute_offline_code,
    decimal_signature,
    http_base_string,
    keys_for_type,
    normalize_code,
    offline_body,
    offline_hmac_input,
    parse_base_string,
    signature_base_string,
    signature_components,
    verify_offline_code,
)
from tests.protocol.protocol_vectors import b64, data_cases, load

OFFLINE = data_cases("signatures-offline.json")
BASE_STRINGS = load("signature-base-string-cases.json")

PK = SignatureType.POSSESSION_KNOWLEDGE
PB = SignatureType.POSSESSION_BIOMETRY
KEYS = derive_factor_keys(bytes(range(16)))
CTR = bytes(range(100, 116))
NONCE = "AD8bOO0Df73kNaIGb3Vmpg=="
BASE = signature_base_string(NONCE, offline_body("op-1", "A1*A100CZK"))


def _fullwidth(text: str) -> str:
    """Digits as FULLWIDTH DIGIT characters (U+FF10..U+FF19)."""
    return "".join(chr(0xFF10 + int(c)) if c.isdigit() else c for c in text)


def _offline_id(case: dict[str, Any]) -> str:
    given = case["input"]
    return (
        f"{given['signatureType']}-L{given['signatureComponentLength']}-{given['data']}"
    )


@pytest.mark.parametrize("case", OFFLINE, ids=_offline_id)
def test_offline_signature_vector(case: dict[str, Any]) -> None:
    given = case["input"]
    keys = FactorKeys(
        possession=b64(given["signaturePossessionKey"]),
        knowledge=b64(given["signatureKnowledgeKey"]),
        biometry=b64(given["signatureBiometryKey"]),
        transport=bytes(16),
        vault=bytes(16),
    )
    signature_type = SignatureType.from_name(given["signatureType"])
    code = decimal_signature(
        keys_for_type(keys, signature_type),
        b64(given["counterData"]),
        b64(given["data"]),
        int(given["signatureComponentLength"]),
    )
    assert code == case["output"]["signature"]


@pytest.mark.parametrize(
    "case", BASE_STRINGS["cases"], ids=lambda c: f"{c['method']}-{c['nonceB64']}"
)
def test_base_string_vector(case: dict[str, Any]) -> None:
    body = case["body"].encode() if case["body"] is not None else None
    result = http_base_string(case["method"], case["uriId"], case["nonceB64"], body)
    assert result == case["expected"]


def test_offline_doc_example_base_string_and_code_normalization() -> None:
    example = BASE_STRINGS["offline_doc_example"]
    operation_id, operation_data = example["body_example"].split("&", 1)
    body = offline_body(operation_id, operation_data)
    assert body == example["body_example"].encode()
    base = signature_base_string(NONCE, body, example["uriId"])
    assert base.startswith("POST&L29wZXJhdGlvbi9hdXRob3JpemUvb2ZmbGluZQ==&" + NONCE)
    assert base == signature_base_string(NONCE, body)
    typed = normalize_code(example["userInput_4x4"])
    assert typed == example["normalized_for_server_2x8"]


def test_hmac_input_appends_offline() -> None:
    assert offline_hmac_input("POST&a&b&c") == b"POST&a&b&c&offline"
    assert OFFLINE_URI_ID == "/operation/authorize/offline"


def test_offline_body_with_totp() -> None:
    assert offline_body("id", "A1", "12345678") == b"id&A1&12345678"


def test_base_string_with_totp_matches_body_with_totp() -> None:
    expected = signature_base_string(NONCE, offline_body("op-1", "A1*A100CZK", "0042"))
    assert base_string_with_totp(BASE, "0042") == expected


def test_parse_base_string_reads_back_what_signature_base_string_made() -> None:
    body = offline_body("op-1", "A1*A100CZK")
    parsed = parse_base_string(signature_base_string(NONCE, body))
    assert parsed.uri_id == OFFLINE_URI_ID.encode()
    assert parsed.nonce == b64(NONCE)
    assert parsed.body == body
    empty = parse_base_string(http_base_string("POST", OFFLINE_URI_ID, NONCE, None))
    assert empty.body == b""


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("garbage", "four '&'-separated parts, got 1"),
        (BASE + "&offline", "four '&'-separated parts, got 5"),
        (BASE.replace("POST", "GET", 1), "must start with POST"),
        (BASE.replace("POST", "post", 1), "must start with POST"),
        ("POST&&" + NONCE + "&YQ==", "uriId must be non-empty canonical Base64"),
        ("POST&L29w!&" + NONCE + "&YQ==", "uriId must be non-empty canonical Base64"),
        ("POST&YR==&" + NONCE + "&YQ==", "uriId must be non-empty canonical Base64"),
        ("POST&YQ==&short&YQ==", "nonce must be 24 characters"),
        ("POST&YQ==&" + "A" * 21 + "B==&YQ==", "nonce must be Base64 of 16 bytes"),
        ("POST&YQ==&" + NONCE + "&YQ", "body must be canonical Base64"),
        ("POST&YQ==&" + NONCE + "&Y\u00e9==", "body must be canonical Base64"),
    ],
)
def test_parse_base_string_names_the_wrong_part(text: str, named: str) -> None:
    with pytest.raises(MalformedPayloadError, match=re.escape(named)):
        parse_base_string(text)


def test_chaining_follows_spec_5_4() -> None:
    p, k, b = KEYS.possession, KEYS.knowledge, KEYS.biometry
    data = b"data"

    def h(key: bytes, msg: bytes) -> bytes:
        return hmac.digest(key, msg, "sha256")

    three = signature_components([p, k, b], CTR, data)
    # Component i: outer key keys[i], inner chain keys[1..i] (not keys[0]).
    assert three[0] == h(h(p, CTR), data)
    assert three[1] == h(h(h(k, CTR), h(k, CTR)), data)
    chained = h(h(b, CTR), h(h(k, CTR), h(b, CTR)))
    assert three[2] == h(chained, data)
    # The possession key never enters later components.
    other = signature_components([bytes(16), k, b], CTR, data)
    assert other[1:] == three[1:]
    assert signature_components([p, k], CTR, data) == three[:2]


def test_short_components_are_suffixes_of_eight_digit_ones() -> None:
    data = offline_hmac_input(BASE)
    keys = keys_for_type(KEYS, PK)
    full = decimal_signature(keys, CTR, data, 8).split("-")
    for length in range(4, 9):
        short = decimal_signature(keys, CTR, data, length).split("-")
        assert short == [part[-length:] for part in full]


def test_compute_offline_code_shape() -> None:
    for length in range(4, 9):
        code = compute_offline_code(KEYS, CTR, BASE, PK, length)
        assert re.fullmatch(rf"[0-9]{{{length}}}-[0-9]{{{length}}}", code)
    assert re.fullmatch(
        r"[0-9]{8}", compute_offline_code(KEYS, CTR, BASE, SignatureType.POSSESSION)
    )
    three = compute_offline_code(
        KEYS, CTR, BASE, SignatureType.POSSESSION_KNOWLEDGE_BIOMETRY
    )
    assert re.fullmatch(r"[0-9]{8}-[0-9]{8}-[0-9]{8}", three)


def test_possession_component_is_shared_between_types() -> None:
    pk = compute_offline_code(KEYS, CTR, BASE, PK)
    pb = compute_offline_code(KEYS, CTR, BASE, PB)
    assert pk.split("-")[0] == pb.split("-")[0]
    assert pk != pb


@pytest.mark.parametrize(
    ("typed", "length"),
    [
        ("12345678-87654321", 8),
        ("1234567887654321", 8),
        ("1234 5678 8765 4321", 8),
        ("1234-5678-8765-4321", 8),
        ("12345678 87654321", 8),
        ("  12345678-87654321 ", 8),
        ("1234-4321", 4),
        ("1234 4321", 4),
        ("12344321", 4),
        ("123456-654321", 6),
        ("1234 5665 4321", 6),
        ("123456654321", 6),
        ("12345-54321", 5),
        ("1234 5543 21", 5),
    ],
)
def test_normalize_code_accepts(typed: str, length: int) -> None:
    digits = re.sub(r"[- ]", "", typed)
    assert normalize_code(typed, length) == f"{digits[:length]}-{digits[length:]}"


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "1234567-87654321",
        "123456788-7654321",
        "123456788765432",
        "12345678876543210",
        "1234567a-87654321",
        "abcdefgh-ijklmnop",
        "1234-5678 8765-4321",
        "1234--5678-8765-4321",
        "12 345678-87654321",
        "123-45678-87654321",
        "1234_5678_8765_4321",
        "12345678\t87654321",
        "١٢٣٤٥٦٧٨-٨٧٦٥٤٣٢١",
        _fullwidth("12345678-87654321"),
        "12345678-87654321-11111111",
    ],
)
def test_normalize_code_refuses(typed: str) -> None:
    with pytest.raises(MalformedCodeError):
        normalize_code(typed)


@pytest.mark.parametrize("length", [3, 9, 0])
def test_component_length_outside_4_to_8_is_refused(length: int) -> None:
    with pytest.raises(InvalidParameterError, match="component length"):
        normalize_code("1234-5678", length)
    with pytest.raises(InvalidParameterError, match="component length"):
        compute_offline_code(KEYS, CTR, BASE, PK, length)


@pytest.mark.parametrize("offset", [0, 1, 7, 19])
@pytest.mark.parametrize("signature_type", [PK, PB])
def test_verify_finds_code_in_window(
    offset: int, signature_type: SignatureType
) -> None:
    code = compute_offline_code(
        KEYS, advance_counter(CTR, offset), BASE, signature_type
    )
    match = verify_offline_code(KEYS, CTR, BASE, code, [PK, PB], 20, 8)
    assert match.signature_type is signature_type
    assert match.offset == offset
    assert match.next_ctr_data == advance_counter(CTR, offset + 1)


def test_verify_accepts_grouped_input() -> None:
    digits = compute_offline_code(KEYS, CTR, BASE, PK).replace("-", "")
    grouped = " ".join(digits[i : i + 4] for i in range(0, 16, 4))
    assert verify_offline_code(KEYS, CTR, BASE, grouped, [PK], 1).offset == 0


def test_verify_short_component_length() -> None:
    code = compute_offline_code(KEYS, CTR, BASE, PK, 4)
    assert verify_offline_code(KEYS, CTR, BASE, code, [PK], 5, 4).offset == 0


def test_verify_window_is_half_open() -> None:
    code = compute_offline_code(KEYS, advance_counter(CTR, 5), BASE, PK)
    assert verify_offline_code(KEYS, CTR, BASE, code, [PK], 6).offset == 5
    with pytest.raises(SignatureMismatchError):
        verify_offline_code(KEYS, CTR, BASE, code, [PK], 5)


def test_verify_refuses_type_not_allowed() -> None:
    code = compute_offline_code(KEYS, CTR, BASE, PB)
    with pytest.raises(SignatureMismatchError):
        verify_offline_code(KEYS, CTR, BASE, code, [PK], 20)


def test_verify_refuses_code_behind_the_counter() -> None:
    code = compute_offline_code(KEYS, CTR, BASE, PK)
    with pytest.raises(SignatureMismatchError):
        verify_offline_code(KEYS, advance_counter(CTR, 1), BASE, code, [PK], 20)


def test_verify_refuses_other_base_string() -> None:
    code = compute_offline_code(KEYS, CTR, BASE, PK)
    other = signature_base_string(NONCE, offline_body("op-1", "A1*A101CZK"))
    with pytest.raises(SignatureMismatchError):
        verify_offline_code(KEYS, CTR, other, code, [PK], 20)


def test_verify_refuses_one_wrong_digit() -> None:
    code = compute_offline_code(KEYS, CTR, BASE, PK)
    last = str((int(code[-1]) + 1) % 10)
    with pytest.raises(SignatureMismatchError) as caught:
        verify_offline_code(KEYS, CTR, BASE, code[:-1] + last, [PK, PB], 20)
    # The message must not leak the typed or the expected code.
    assert code[:8] not in str(caught.value)


def test_verify_malformed_code_is_not_a_mismatch() -> None:
    with pytest.raises(MalformedCodeError):
        verify_offline_code(KEYS, CTR, BASE, "1234", [PK], 20)


@pytest.mark.parametrize("lookahead", [0, -1, 65])
def test_verify_refuses_lookahead_out_of_range(lookahead: int) -> None:
    with pytest.raises(InvalidParameterError, match="lookahead"):
        verify_offline_code(KEYS, CTR, BASE, "12345678-87654321", [PK], lookahead)


def test_verify_needs_allowed_types_and_a_16_byte_counter() -> None:
    with pytest.raises(InvalidParameterError, match="signature type"):
        verify_offline_code(KEYS, CTR, BASE, "12345678-87654321", [], 20)
    with pytest.raises(InvalidParameterError, match="CTR_DATA"):
        verify_offline_code(KEYS, CTR[:15], BASE, "12345678-87654321", [PK], 20)


@pytest.mark.parametrize(
    "nonce",
    [
        "",
        "AAAA",
        "AD8bOO0Df73kNaIGb3Vmpg=",
        "AD8bOO0Df73kNaIGb3Vmp!==",
        "AAAAAAAAAAAAAAAAAAAAAAAA",
    ],
)
def test_base_string_refuses_bad_nonce(nonce: str) -> None:
    with pytest.raises(MalformedPayloadError, match="nonce"):
        signature_base_string(nonce, b"body")


def test_offline_body_refuses_empty_id_and_bad_totp() -> None:
    with pytest.raises(MalformedPayloadError, match="operation id"):
        offline_body("", "A1")
    for totp in ("", "12a4", "١٢٣٤"):
        with pytest.raises(MalformedPayloadError, match="TOTP"):
            offline_body("id", "A1", totp)


def test_signature_type_names() -> None:
    assert SignatureType.from_name("possession_knowledge") is PK
    assert PK.value == "POSSESSION_KNOWLEDGE"
    with pytest.raises(InvalidParameterError, match="signature type"):
        SignatureType.from_name("possession_pin")


def test_components_need_one_to_three_keys() -> None:
    with pytest.raises(InvalidParameterError, match="factor keys"):
        signature_components([], CTR, b"")
    with pytest.raises(InvalidParameterError, match="factor key"):
        signature_components([bytes(15)], CTR, b"")


def test_verify_with_proximity_totp_candidates() -> None:
    with_totp = base_string_with_totp(BASE, "11112222")
    code = compute_offline_code(KEYS, advance_counter(CTR, 3), with_totp, PK)
    match = verify_offline_code(
        KEYS, CTR, BASE, code, [PK], 20, totps=["99990000", "11112222"]
    )
    assert (match.totp, match.offset) == ("11112222", 3)
    # Without the TOTP in the candidates, the same code does not verify.
    with pytest.raises(SignatureMismatchError):
        verify_offline_code(KEYS, CTR, BASE, code, [PK], 20, totps=["99990000"])
    with pytest.raises(SignatureMismatchError):
        verify_offline_code(KEYS, CTR, BASE, code, [PK], 20)
    # A code over the body without TOTP fails once candidates are required.
    plain = compute_offline_code(KEYS, CTR, BASE, PK)
    with pytest.raises(SignatureMismatchError):
        verify_offline_code(KEYS, CTR, BASE, plain, [PK], 20, totps=["11112222"])
