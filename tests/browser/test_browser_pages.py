"""The pilot's flows in a real headless Chromium: the QR is read from a
screenshot with zxing-cpp, the code computed by the simulator library and
typed into the page like a person would."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import expect

from mtoken import Device
from tests.web.pages_testing import CONSOLE_PASSWORD, PIN, Clock, Served, payment_form

pytestmark = [pytest.mark.browser, pytest.mark.softhsm]


def scan_screen(page: Any) -> str:
    """Screenshot the QR element and decode it like a phone camera would."""
    shot = page.locator("#qr svg").screenshot()
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(shot)).convert("L"))
    assert len(found) == 1, "no single QR code in the screenshot"
    assert found[0].format == zxingcpp.BarcodeFormat.QRCode
    return bytes(found[0].bytes).decode("utf-8")


def browser_login(page: Any, user: str, device: Device, shots: Path | None) -> None:
    page.goto("/")
    if shots:
        page.screenshot(path=shots / "01-login.png", full_page=True)
    page.fill("#username", user)
    page.click("button[type=submit]")
    page.wait_for_selector("#qr svg")
    if shots:
        page.screenshot(path=shots / "02-login-qr.png", full_page=True)
    text = scan_screen(page)
    assert text == page.locator("#qr-text").text_content()
    page.fill("#code", device.sign(text, pin=PIN).code)
    page.click(".code-form button[type=submit]")
    page.wait_for_selector("text=Account of")


def start_payment(page: Any, clock: Clock, shots: Path | None) -> None:
    page.click("text=New payment")
    form = payment_form(clock)
    for name in ("amount", "currency", "iban", "bic", "note"):
        page.fill(f"#{name}", form[name])
    page.fill("#due_date", form["due_date"])
    if shots:
        page.screenshot(path=shots / "04-payment-form.png", full_page=True)
    page.click("button[type=submit]:has-text('Continue')")
    page.wait_for_selector("#qr svg")


def test_login_and_payment_flow(
    page: Any, user: str, device: Device, clock: Clock, shots: Path
) -> None:
    browser_login(page, user, device, shots)
    page.screenshot(path=shots / "03-account-empty.png", full_page=True)
    start_payment(page, clock, shots)
    page.screenshot(path=shots / "05-payment-qr.png", full_page=True)
    # The static countdown script runs under the CSP (no inline script).
    # (A locator expectation: the CSP forbids the eval of wait_for_function.)
    expect(page.locator("#expiry")).to_have_text(re.compile(r"^4 min \d+ s$"))
    label = page.locator("#qr svg").get_attribute("aria-label") or ""
    assert "Amount: 1,250.50 CZK" in label and "Dárek pro Janu" in label

    code = device.sign(scan_screen(page), pin=PIN)
    page.fill("#code", code.grouped)  # "1234 5678 8765 4321", as read aloud
    page.click(".code-form button[type=submit]")

    page.wait_for_selector("#confirmed")
    page.screenshot(path=shots / "06-payment-confirmed.png", full_page=True)
    page.click("text=Back to the account")
    row = page.locator("#payments tbody tr").first
    assert "1250.50 CZK" in row.text_content()
    page.screenshot(path=shots / "07-account-with-payment.png", full_page=True)


def test_wrong_codes_show_attempts_then_block(
    page: Any, user: str, device: Device, clock: Clock, shots: Path
) -> None:
    browser_login(page, user, device, None)
    start_payment(page, clock, None)
    code = device.sign(scan_screen(page), pin=PIN).code
    wrong = code[:-1] + str((int(code[-1]) + 1) % 10)

    page.fill("#code", "12345")
    page.click(".code-form button[type=submit]")
    assert "Type the 16 digits" in page.locator("#code-error").text_content()
    for left in (4, 3, 2, 1):
        page.fill("#code", wrong)
        page.click(".code-form button[type=submit]")
        assert page.locator("#attempts-left").text_content().startswith(f"{left} ")
        if left == 4:
            page.screenshot(path=shots / "08-wrong-code.png", full_page=True)
    page.fill("#code", wrong)
    page.click(".code-form button[type=submit]")

    page.wait_for_selector("#blocked")
    assert "Your mobile token is blocked" in page.content()
    page.screenshot(path=shots / "09-blocked.png", full_page=True)


def test_expired_operation(
    page: Any, user: str, device: Device, clock: Clock, shots: Path
) -> None:
    browser_login(page, user, device, None)
    start_payment(page, clock, None)
    code = device.sign(scan_screen(page), pin=PIN).code
    clock.advance(minutes=5, seconds=1)

    page.fill("#code", code)
    page.click(".code-form button[type=submit]")

    page.wait_for_selector("#unavailable-reason")
    assert "This request has expired" in page.content()
    assert "no attempt was used" in page.content()
    page.screenshot(path=shots / "10-expired.png", full_page=True)


def test_console_and_simulator_pages(
    page: Any, live: Served, user: str, shots: Path
) -> None:
    """The pilot's path: the console makes a code, the simulator tab uses it."""
    page.goto("/console/")
    page.fill("#password", CONSOLE_PASSWORD)
    page.click("button[type=submit]")
    page.fill("#user_id", user)
    page.click("button:has-text('Create activation')")
    qr_text = page.locator("#activation-qr-text").text_content()
    page.screenshot(path=shots / "11-console-new-activation.png", full_page=True)

    simulator = page.context.new_page()
    simulator.goto("/simulator/")
    simulator.fill("#activation_code", qr_text)
    simulator.fill("#pin", PIN)
    simulator.fill("#pin_again", PIN)
    simulator.click("button:has-text('Activate')")
    assert "stored (ACTIVE)" in simulator.locator("#sim-notice").text_content()
    simulator.screenshot(path=shots / "12-simulator.png", full_page=True)

    page.goto("/")
    page.fill("#username", user)
    page.click("button[type=submit]")
    payload = page.locator("#qr-text").text_content()
    simulator.goto("/simulator/")
    simulator.fill("#payload", payload)
    simulator.click("button:has-text('Scan')")
    simulator.fill("#pin", PIN)
    simulator.click("button:has-text('Approve')")
    simulator.wait_for_selector("#code, .error", timeout=5000)
    assert simulator.locator("#code").count() == 1, simulator.locator(
        "main"
    ).inner_text()
    code = simulator.locator("#code").text_content()
    simulator.screenshot(path=shots / "13-simulator-code.png", full_page=True)
    page.fill("#code", code)
    page.click(".code-form button[type=submit]")
    page.wait_for_selector("text=Account of")

    page.goto("/console/")
    assert "ACTIVE" in page.locator("#activations").text_content()
    page.screenshot(path=shots / "14-console.png", full_page=True)
    page.goto("/console/audit")
    assert "signature_ok" in page.locator("#audit").text_content()
    page.screenshot(path=shots / "15-audit.png", full_page=True)
