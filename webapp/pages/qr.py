"""QR symbols of the pages, made with segno (SPEC 3.10).

The payload goes in as its UTF-8 bytes in byte mode, never as Micro QR, so a
phone's reader gets back exactly the bytes the server signed.
"""

from __future__ import annotations

import io

import segno
from markupsafe import Markup, escape

from mtoken.display import describe_fields
from powerauth.errors import MalformedPayloadError
from powerauth.payload import parse_payload_data

PNG_SCALE = 6
SVG_SCALE = 4


def make_symbol(text: str) -> segno.QRCode:
    """A full-size QR symbol holding the UTF-8 bytes of ``text`` in byte mode."""
    return segno.make(text.encode("utf-8"), mode="byte", error="m", micro=False)


def svg(text: str, label: str) -> Markup:
    """Inline SVG for an HTML page, with ``label`` as its accessible name."""
    markup = make_symbol(text).svg_inline(
        scale=SVG_SCALE, border=4, title=label, svgclass="qr-svg", lineclass=None
    )
    # segno escapes the title; the aria-label is escaped here.
    labelled = markup.replace(
        "<svg ", f'<svg role="img" aria-label="{escape(label)}" ', 1
    )
    return Markup(labelled)  # noqa: S704 - segno output, label escaped above


def png(text: str) -> bytes:
    out = io.BytesIO()
    make_symbol(text).save(out, kind="png", scale=PNG_SCALE, border=4)
    return out.getvalue()


def operation_lines(payload_data: str) -> list[tuple[str, str]]:
    """(label, value) pairs of what the phone will display for ``payload_data``."""
    try:
        parsed = parse_payload_data(payload_data)
    except MalformedPayloadError:
        return []
    template = parsed.operation_data.template_kind
    lines = [
        ("Title", parsed.title or template.default_title or ""),
        ("Message", parsed.message or template.default_message or ""),
    ]
    lines.extend(
        (str(item["label"]), str(item["value"]))
        for item in describe_fields(parsed.operation_data)
    )
    return lines


def alt_text(payload_data: str) -> str:
    """Read-out of the operation for screen readers: the QR's content in words."""
    lines = operation_lines(payload_data)
    if not lines:
        return "QR code of the operation"
    spoken = "; ".join(f"{label}: {value}" for label, value in lines if value)
    return f"QR code to scan with your mobile token. {spoken}."
