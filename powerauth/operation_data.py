"""Operation data, line 4 of the offline QR (SPEC 4).

Text form: ``{VERSION}{TEMPLATE}*{FIELD}*{FIELD}...``. Each field starts with
its type letter; an empty field is nothing between two asterisks.

The parser follows the mobile SDKs (up to six fields, unknown types kept as
:class:`FallbackField`); the builder follows the documented limits (at most
five fields, positive amounts with at most cent precision) and, like upstream
generators, collapses whitespace runs in text fields.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import IntEnum
from typing import ClassVar

from powerauth.errors import EscapingError, OperationDataError
from powerauth.escaping import (
    decode_field_text,
    encode_field_text,
    find_control_character,
    normalize_whitespace,
)

__all__ = [
    "MAX_BUILD_FIELDS",
    "MAX_PARSE_FIELDS",
    "AccountField",
    "AmountField",
    "DateField",
    "EmptyField",
    "FallbackField",
    "Field",
    "IbanField",
    "NoteField",
    "OperationData",
    "ReferenceField",
    "Template",
    "TextField",
    "build_operation_data",
    "parse_operation_data",
]

MAX_PARSE_FIELDS = 6
"""The mobile SDKs tolerate six data fields and refuse more (SPEC 4, 11)."""

MAX_BUILD_FIELDS = 5
"""The documented limit for version A, kept by the builder (SPEC 4)."""

MAX_TEMPLATE = 99


class Template(IntEnum):
    """The known templates. Unknown ids display as generic (SPEC 3.8)."""

    GENERIC = 0
    PAYMENT = 1
    LOGIN = 2

    @property
    def default_title(self) -> str | None:
        """The title a mobile app shows for this template, if it has one."""
        return _DEFAULT_TEXTS.get(self, (None, None))[0]

    @property
    def default_message(self) -> str | None:
        """The message a mobile app shows for this template, if it has one."""
        return _DEFAULT_TEXTS.get(self, (None, None))[1]


_DEFAULT_TEXTS = {
    Template.PAYMENT: ("Payment", "Please confirm this payment"),
    Template.LOGIN: (
        "Login request",
        "Please confirm login into internet banking.",
    ),
}


def _encode_field(text: str, normalize: bool) -> str:
    if normalize:
        text = normalize_whitespace(text)
    return encode_field_text(text)


def _decode_field(type_char: str, raw: str) -> str:
    try:
        return decode_field_text(raw)
    except EscapingError as exc:
        raise OperationDataError(f"field {type_char}: {exc}") from None


@dataclass(frozen=True)
class AmountField:
    """``A{amount}{currency}``: amount with a dot separator, ISO currency."""

    amount: Decimal
    currency: str
    type_char: ClassVar[str] = "A"

    def to_text(self, *, normalize: bool = True) -> str:
        """Field text; refuses non-positive amounts and sub-cent precision."""
        amount = self.amount
        if not amount.is_finite() or amount <= 0:
            raise OperationDataError("amount must be a positive number")
        exponent = amount.normalize().as_tuple().exponent
        if isinstance(exponent, int) and exponent < -2:
            raise OperationDataError("amount must not be more precise than 0.01")
        if not _CURRENCY.fullmatch(self.currency):
            raise OperationDataError("currency must be three letters A-Z")
        return f"A{amount:f}{self.currency}"


@dataclass(frozen=True)
class IbanField:
    """``I{IBAN}[,{BIC}]``; characters limited to 0-9 and A-Z."""

    iban: str
    bic: str | None = None
    type_char: ClassVar[str] = "I"

    def to_text(self, *, normalize: bool = True) -> str:
        """Field text; refuses characters outside 0-9A-Z."""
        _check_bank_code("IBAN", self.iban)
        if self.bic is None:
            return f"I{self.iban}"
        _check_bank_code("BIC", self.bic)
        return f"I{self.iban},{self.bic}"


@dataclass(frozen=True)
class AccountField:
    """``Q{account}``: an account number in any format."""

    account: str
    type_char: ClassVar[str] = "Q"

    def to_text(self, *, normalize: bool = True) -> str:
        """Field text with the account escaped."""
        return "Q" + _encode_field(self.account, normalize)


@dataclass(frozen=True)
class DateField:
    """``D{YYYYMMDD}``: a calendar date."""

    date: datetime.date
    type_char: ClassVar[str] = "D"

    def to_text(self, *, normalize: bool = True) -> str:
        """Field text ``DYYYYMMDD``, the year zero-padded to four digits."""
        # strftime does not pad years below 1000 on every platform.
        date = self.date
        return f"D{date.year:04d}{date.month:02d}{date.day:02d}"


@dataclass(frozen=True)
class ReferenceField:
    """``R{text}``: a payment reference."""

    text: str
    type_char: ClassVar[str] = "R"

    def to_text(self, *, normalize: bool = True) -> str:
        """Field text with the reference escaped."""
        return "R" + _encode_field(self.text, normalize)


@dataclass(frozen=True)
class NoteField:
    """``N{text}``: a note."""

    text: str
    type_char: ClassVar[str] = "N"

    def to_text(self, *, normalize: bool = True) -> str:
        """Field text with the note escaped."""
        return "N" + _encode_field(self.text, normalize)


@dataclass(frozen=True)
class TextField:
    """``T{text}``: free text."""

    text: str
    type_char: ClassVar[str] = "T"

    def to_text(self, *, normalize: bool = True) -> str:
        """Field text with the text escaped."""
        return "T" + _encode_field(self.text, normalize)


@dataclass(frozen=True)
class FallbackField:
    """A field of an unknown type, shown as text (SPEC 3.8)."""

    type: str
    text: str

    def to_text(self, *, normalize: bool = True) -> str:
        """Field text: the type character, then the escaped text."""
        _check_fallback_type(self.type)
        return self.type + _encode_field(self.text, normalize)


@dataclass(frozen=True)
class EmptyField:
    """An empty slot between two asterisks."""

    def to_text(self, *, normalize: bool = True) -> str:
        """The empty string."""
        return ""


Field = (
    AmountField
    | IbanField
    | AccountField
    | DateField
    | ReferenceField
    | NoteField
    | TextField
    | FallbackField
    | EmptyField
)

_KNOWN_TYPES = "AIQDRNT"
_HEADER = re.compile(r"([A-Z])([0-9]+)", re.ASCII)
_AMOUNT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)", re.ASCII)
_CURRENCY = re.compile(r"[A-Z]{3}", re.ASCII)
_BANK_CODE = re.compile(r"[0-9A-Z]+", re.ASCII)
_DATE = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})", re.ASCII)


def _check_bank_code(name: str, value: str) -> None:
    if not _BANK_CODE.fullmatch(value):
        raise OperationDataError(f"{name} must be one or more characters 0-9A-Z")


def _check_fallback_type(type_char: str) -> None:
    if len(type_char) != 1 or type_char in _KNOWN_TYPES or type_char in "\\*\n":
        raise OperationDataError(
            "fallback field type must be one character, not a known type, "
            "backslash, asterisk or newline"
        )


@dataclass(frozen=True)
class OperationData:
    """Parsed operation data: version letter, template id and fields."""

    version: str
    template: int
    fields: tuple[Field, ...] = ()

    @property
    def template_kind(self) -> Template:
        """The template to display; unknown ids count as generic (SPEC 3.8)."""
        try:
            return Template(self.template)
        except ValueError:
            return Template.GENERIC

    def to_text(self, *, normalize: bool = True) -> str:
        """Build the text form; see :func:`build_operation_data`."""
        return build_operation_data(
            self.template, self.fields, version=self.version, normalize=normalize
        )


def build_operation_data(
    template: int,
    fields: Sequence[Field] = (),
    *,
    version: str = "A",
    normalize: bool = True,
) -> str:
    """Build the operation data text.

    Trailing empty fields are dropped; empty fields before a value stay as
    empty slots. With ``normalize`` (the default, as upstream generators do),
    whitespace runs in text fields collapse to one space.

    :raises OperationDataError: a limit of SPEC 4 is broken.
    :raises EscapingError: a text field holds a control character.
    """
    if not isinstance(version, str) or len(version) != 1 or not "A" <= version <= "Z":
        raise OperationDataError("version must be one letter A-Z")
    if not isinstance(template, int) or isinstance(template, bool):
        raise OperationDataError("template must be an integer")
    if not 0 <= template <= MAX_TEMPLATE:
        raise OperationDataError(f"template must be 0..{MAX_TEMPLATE}")

    kept = list(fields)
    while kept and isinstance(kept[-1], EmptyField):
        kept.pop()
    if len(kept) > MAX_BUILD_FIELDS:
        raise OperationDataError(f"at most {MAX_BUILD_FIELDS} fields can be built")

    pieces = [f"{version}{template}"]
    pieces.extend(field.to_text(normalize=normalize) for field in kept)
    return "*".join(pieces)


def _split_fields(text: str) -> list[str]:
    """Split on asterisks that are not escaped, keeping escapes in the pieces."""
    pieces = []
    current: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            current.append(text[index : index + 2])
            index += 2
            continue
        if char == "*":
            pieces.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    pieces.append("".join(current))
    return pieces


def _parse_amount(raw: str) -> AmountField:
    value = raw[1:]
    if len(value) < 4:
        raise OperationDataError("amount field must hold an amount and a currency")
    amount_text, currency = value[:-3], value[-3:].upper()
    if not _AMOUNT.fullmatch(amount_text):
        raise OperationDataError("amount must be a decimal number with a dot")
    if not _CURRENCY.fullmatch(currency):
        raise OperationDataError("currency must be three letters A-Z")
    try:
        amount = Decimal(amount_text)
    except InvalidOperation:
        raise OperationDataError("amount must be a decimal number") from None
    return AmountField(amount=amount, currency=currency)


def _parse_iban(raw: str) -> IbanField:
    parts = [part for part in raw[1:].split(",") if part]
    if not parts:
        raise OperationDataError("IBAN field must not be empty")
    if len(parts) > 2:
        raise OperationDataError("IBAN field must be IBAN or IBAN,BIC")
    _check_bank_code("IBAN", parts[0])
    if len(parts) == 1:
        return IbanField(iban=parts[0])
    _check_bank_code("BIC", parts[1])
    return IbanField(iban=parts[0], bic=parts[1])


def _parse_date(raw: str) -> DateField:
    match = _DATE.fullmatch(raw[1:])
    if match is None:
        raise OperationDataError("date must be eight digits YYYYMMDD")
    year, month, day = (int(group) for group in match.groups())
    try:
        return DateField(datetime.date(year, month, day))
    except ValueError:
        raise OperationDataError("date is not a real calendar date") from None


def _parse_field(raw: str) -> Field:
    if not raw:
        return EmptyField()
    type_char = raw[0]
    if type_char == "A":
        return _parse_amount(raw)
    if type_char == "I":
        return _parse_iban(raw)
    if type_char == "D":
        return _parse_date(raw)
    if type_char == "\\":
        raise OperationDataError("a field must not start with an escape")
    text = _decode_field(type_char, raw[1:])
    if type_char == "Q":
        return AccountField(text)
    if type_char == "R":
        return ReferenceField(text)
    if type_char == "N":
        return NoteField(text)
    if type_char == "T":
        return TextField(text)
    return FallbackField(type=type_char, text=text)


def parse_operation_data(text: str) -> OperationData:
    """Parse the operation data line.

    :raises OperationDataError: naming the broken rule.
    """
    index = find_control_character(text)
    if index is not None:
        raise OperationDataError(f"operation data has a control character at {index}")

    pieces = _split_fields(text)
    header = _HEADER.fullmatch(pieces[0])
    if header is None:
        raise OperationDataError(
            "operation data must start with a version letter and a template number"
        )
    template = int(header.group(2))
    if template > MAX_TEMPLATE:
        raise OperationDataError(f"template must be 0..{MAX_TEMPLATE}")

    raw_fields = pieces[1:]
    if len(raw_fields) > MAX_PARSE_FIELDS:
        raise OperationDataError(
            f"operation data has more than {MAX_PARSE_FIELDS} fields"
        )
    fields = tuple(_parse_field(raw) for raw in raw_fields)
    return OperationData(version=header.group(1), template=template, fields=fields)
