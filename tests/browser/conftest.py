"""Fixtures of the browser tests: Debian's Chromium driven by Playwright,
against the app served by werkzeug on 127.0.0.1 (real SoftHSM token, SQLite
file in a temp folder). Screenshots of the main pages go to var/screenshots/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mtoken import Device
from tests.support import in_ci
from tests.web.pages_testing import Clock, Served, enroll, make_app, unique

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        # scripts/setup installs Chromium, so in CI its absence is a failure.
        if in_ci():
            pytest.fail(f"CI must run the browser tests, but {CHROMIUM} is missing")
        pytest.skip(f"Chromium is not installed at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def live(tmp_path: Path, clock: Clock) -> Iterator[Served]:
    app = make_app(tmp_path, clock)
    served = Served(app)
    served.app = app  # type: ignore[attr-defined]
    yield served
    served.close()
    app.extensions["powerauth.engine"].dispose()


@pytest.fixture
def user() -> str:
    return unique("alice")


@pytest.fixture
def device(live: Served, user: str, tmp_path: Path) -> Device:
    return enroll(live.app, user, tmp_path / "phone")  # type: ignore[attr-defined]


@pytest.fixture
def page(browser: object, live: Served) -> Iterator[object]:
    context = browser.new_context(  # type: ignore[attr-defined]
        base_url=live.url, viewport={"width": 1200, "height": 900}
    )
    context.set_default_timeout(10_000)
    opened = context.new_page()
    problems: list[str] = []

    def on_console(message: Any) -> None:
        # A CSP violation or a script error shows up here. Pages answered
        # with 4xx on purpose (a wrong code) log "Failed to load resource";
        # those are checked by status below, documents excepted.
        if message.type == "error" and "Failed to load resource" not in message.text:
            problems.append(message.text)

    def on_response(response: Any) -> None:
        if response.request.resource_type != "document" and response.status >= 400:
            problems.append(f"{response.status} {response.url}")

    opened.on("console", on_console)
    opened.on("response", on_response)
    opened.on("pageerror", lambda error: problems.append(str(error)))
    yield opened
    context.close()
    assert problems == [], problems


@pytest.fixture
def shots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
