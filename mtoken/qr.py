"""Reading the payload text from a QR image (SPEC 3.10).

The server puts the UTF-8 bytes of the payload into the QR symbol in byte
mode. zxing-cpp hands back both its own text interpretation (``.text``,
which guesses a character set) and the raw bytes (``.bytes``); only the raw
bytes decoded as UTF-8 reproduce the payload exactly, so those are used.
"""

from __future__ import annotations

import io

import zxingcpp
from PIL import Image, UnidentifiedImageError

from mtoken.errors import (
    ImageUnreadableError,
    NoQRCodeError,
    PayloadFormatError,
    SeveralQRCodesError,
)

# Magic numbers of the image formats a phone camera or a screenshot gives.
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")


def looks_like_image(data: bytes) -> bool:
    """True when ``data`` starts like a PNG or a JPEG file."""
    return data.startswith(_IMAGE_MAGIC)


def decode_qr_image(data: bytes) -> str:
    """Return the payload text of the single QR code in a PNG or JPEG image.

    :raises ImageUnreadableError: ``data`` is not an image that opens.
    :raises NoQRCodeError: no QR code decodes in the image.
    :raises SeveralQRCodesError: more than one QR code decodes.
    :raises PayloadFormatError: the QR's bytes are not valid UTF-8.
    """
    if not looks_like_image(data):
        raise ImageUnreadableError("the file is not a PNG or JPEG image")
    try:
        with Image.open(io.BytesIO(data)) as opened:
            image = opened.convert("L")
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        OSError,
        ValueError,
    ) as exc:
        raise ImageUnreadableError(
            "the image cannot be read (damaged, truncated or too large)"
        ) from exc

    found = zxingcpp.read_barcodes(
        image,
        formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode),
        return_errors=True,
    )
    good = [barcode for barcode in found if barcode.valid]
    if len(good) > 1:
        raise SeveralQRCodesError(
            f"the image holds {len(good)} QR codes; crop it to the one to sign"
        )
    if not good:
        if found:
            raise NoQRCodeError(
                "a QR code was found but it does not decode (damaged or blurred)"
            )
        raise NoQRCodeError("the image holds no QR code")

    raw = good[0].bytes
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadFormatError(
            f"the QR code's bytes are not UTF-8 (byte {exc.start})"
        ) from exc


def read_payload_source(data: bytes) -> str:
    """Payload text from a file or standard input: an image, or the text itself.

    Text is UTF-8; one trailing line break (as ``echo`` adds) is dropped,
    because the payload never ends with one (SPEC 3.1).

    :raises PayloadFormatError: the text is not UTF-8.
    """
    if looks_like_image(data):
        return decode_qr_image(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadFormatError(
            f"the input is neither a PNG/JPEG image nor UTF-8 text (byte {exc.start})"
        ) from exc
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text
