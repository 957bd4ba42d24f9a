"""QR images: segno renders UTF-8 bytes, zxing-cpp reads the exact text back."""

from __future__ import annotations

import io

import pytest
import segno
from PIL import Image, ImageDraw

from mtoken.errors import (
    ImageUnreadableError,
    NoQRCodeError,
    PayloadFormatError,
    SeveralQRCodesError,
)
from mtoken.qr import decode_qr_image, read_payload_source

NONCE_AND_SIG = (
    "AD8bOO0Df73kNaIGb3Vmpg==\n1MEUCIQDby1Uq+MaxiAAGzKmE/McHzNOUrvAP2qqGBvSg"
)

TEXTS = {
    "czech": ("Platba kartou", "Příliš žluťoučký kůň úpěl ďábelské ódy"),
    "german": ("Überweisung", "Grüße aus Köln, Straße 5 \u2013 Maß"),
    "latin1_only": ("Zahlung", "Grüße"),  # valid Latin-1 too: must stay UTF-8
    "cyrillic": ("Платёж", "Пожалуйста, подтвердите перевод"),
    "cjk": ("支払い確認", "请确认这笔付款 — 결제를 확인하세요"),
    "emoji": ("Pay 💶", "Thanks 🙏🏽 👨‍👩‍👧 ✅"),
    "escapes": ("Line\\none", "Back\\\\slash and star \\* kept"),
}


def render_png(payload: str, *, scale: int = 4, error: str = "m") -> bytes:
    """The QR a web page shows: the payload's UTF-8 bytes in byte mode."""
    buffer = io.BytesIO()
    qr = segno.make(payload.encode("utf-8"), mode="byte", error=error)
    qr.save(buffer, kind="png", scale=scale, border=4)
    return buffer.getvalue()


def payload_with(title: str, message: str, note: str = "") -> str:
    data = "A1*A1234.50CZK*ICZ2730300000001165254011,FIOBCZPP*D20260425"
    if note:
        data += f"*N{note}"
    return "\n".join(
        ["5ff1b1ed-a3cc-45a3-8ab0-ed60950312b6", title, message, data, "B"]
    ) + ("\n" + NONCE_AND_SIG)


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_png_round_trip_is_exact(name: str) -> None:
    title, message = TEXTS[name]
    payload = payload_with(title, message, note=message)

    assert decode_qr_image(render_png(payload)) == payload


@pytest.mark.parametrize("name", ["czech", "cjk", "emoji"])
def test_jpeg_round_trip_is_exact(name: str) -> None:
    title, message = TEXTS[name]
    payload = payload_with(title, message)
    image = Image.open(io.BytesIO(render_png(payload, scale=6))).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)

    assert decode_qr_image(buffer.getvalue()) == payload


def test_large_payload_round_trip() -> None:
    note = "Poznámka k platbě č. 42 \u2013 💶 " * 50
    payload = payload_with("Dávková platba", "Potvrďte prosím", note=note)
    assert len(payload.encode()) > 1900  # a version 36+ symbol at level M

    assert decode_qr_image(render_png(payload, scale=3)) == payload


def test_stdin_text_drops_one_trailing_newline() -> None:
    payload = payload_with("a", "b")
    assert read_payload_source((payload + "\n").encode()) == payload
    assert read_payload_source((payload + "\r\n").encode()) == payload
    assert read_payload_source(payload.encode()) == payload


def test_stdin_image_is_decoded() -> None:
    payload = payload_with(*TEXTS["cyrillic"])
    assert read_payload_source(render_png(payload)) == payload


def test_stdin_bytes_that_are_not_utf8() -> None:
    with pytest.raises(PayloadFormatError, match="neither"):
        read_payload_source(b"abc\xff\xfe")


def test_not_an_image() -> None:
    with pytest.raises(ImageUnreadableError, match="not a PNG or JPEG"):
        decode_qr_image(b"GIF89a...")


def test_truncated_image() -> None:
    with pytest.raises(ImageUnreadableError, match="cannot be read"):
        decode_qr_image(render_png("x")[:60])


def test_image_without_qr() -> None:
    buffer = io.BytesIO()
    Image.new("L", (200, 200), 255).save(buffer, "PNG")
    with pytest.raises(NoQRCodeError, match="no QR code"):
        decode_qr_image(buffer.getvalue())


def test_damaged_qr() -> None:
    image = Image.open(io.BytesIO(render_png(payload_with("a", "b")))).convert("L")
    ImageDraw.Draw(image).rectangle(
        (40, 40, image.width - 40, image.height // 2), fill=255
    )
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    with pytest.raises(NoQRCodeError):
        decode_qr_image(buffer.getvalue())


def test_two_qr_codes() -> None:
    first = Image.open(io.BytesIO(render_png(payload_with("a", "b"))))
    second = Image.open(io.BytesIO(render_png(payload_with("c", "d"))))
    canvas = Image.new("L", (first.width + second.width + 20, first.height), 255)
    canvas.paste(first, (0, 0))
    canvas.paste(second, (first.width + 20, 0))
    buffer = io.BytesIO()
    canvas.save(buffer, "PNG")
    with pytest.raises(SeveralQRCodesError, match="2 QR codes"):
        decode_qr_image(buffer.getvalue())


def test_qr_bytes_not_utf8() -> None:
    buffer = io.BytesIO()
    segno.make(b"\xc3\x28 invalid", mode="byte").save(buffer, kind="png", scale=4)
    with pytest.raises(PayloadFormatError, match="not UTF-8"):
        decode_qr_image(buffer.getvalue())


def test_latin1_rendering_is_refused() -> None:
    """segno given a str picks ISO-8859-1 when it can; SPEC 3.10 wants UTF-8.

    A server that renders ``segno.make(text)`` instead of the UTF-8 bytes
    breaks every payload whose text fits Latin-1 (German umlauts): the phone
    must refuse it rather than guess.
    """
    payload = payload_with(*TEXTS["latin1_only"])
    buffer = io.BytesIO()
    segno.make(payload, mode="byte").save(buffer, kind="png", scale=4)
    with pytest.raises(PayloadFormatError, match="not UTF-8"):
        decode_qr_image(buffer.getvalue())
