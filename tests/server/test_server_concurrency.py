"""Per-activation serialization: concurrent verifications through HTTP.

Each thread has its own test client (and so its own database session); the
barrier makes them send at the same moment.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from powerauth.payload import parse_offline_payload
from tests.server.server_device import payload_data
from tests.server.server_testing import Api, enroll
from webapp import services

pytestmark = pytest.mark.softhsm

THREADS = 8


def run_parallel(app: Flask, request_object: dict[str, Any]) -> list[dict[str, Any]]:
    barrier = threading.Barrier(THREADS)
    answers: list[dict[str, Any]] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            client = app.test_client()
            barrier.wait()
            response = client.post(
                "/rest/v3/signature/offline/verify",
                json={"requestObject": request_object},
            )
            assert response.status_code == 200, response.get_json()
            with lock:
                answers.append(response.get_json()["responseObject"])
        except BaseException as exc:
            with lock:
                failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    assert len(answers) == THREADS
    return answers


def base_string(api: Api, activation_id: str) -> str:
    created = api.call(
        "/signature/offline/personalized/create",
        {"activationId": activation_id, "data": payload_data()},
    )
    return parse_offline_payload(created["offlineData"]).base_string()


def test_same_valid_code_succeeds_exactly_once(
    app: Flask,
    api: Api,
    application: dict[str, Any],
    activation_state: Callable[[str], services.ActivationView],
) -> None:
    enrolled = enroll(api, application["applicationId"], maxFailureCount=20)
    base = base_string(api, enrolled.activation_id)
    code = enrolled.device.code(base)

    answers = run_parallel(
        app,
        {"activationId": enrolled.activation_id, "data": base, "signature": code},
    )

    assert sum(answer["signatureValid"] for answer in answers) == 1
    state = activation_state(enrolled.activation_id)
    assert state.counter == 1
    # The seven losers arrive after the winner moved the counter: each is a
    # plain wrong code, counted once.
    assert state.failed_attempts == THREADS - 1


def test_wrong_codes_lose_no_failed_attempt(
    app: Flask,
    api: Api,
    application: dict[str, Any],
    activation_state: Callable[[str], services.ActivationView],
) -> None:
    enrolled = enroll(api, application["applicationId"], maxFailureCount=10)
    base = base_string(api, enrolled.activation_id)

    answers = run_parallel(
        app,
        {
            "activationId": enrolled.activation_id,
            "data": base,
            "signature": "11111111-22222222",
        },
    )

    assert not any(answer["signatureValid"] for answer in answers)
    assert sorted(answer["remainingAttempts"] for answer in answers) == list(
        range(2, 10)
    )
    state = activation_state(enrolled.activation_id)
    assert (state.failed_attempts, state.counter) == (THREADS, 0)
    assert str(state.status) == "ACTIVE"


def test_wrong_codes_block_exactly_at_the_limit(
    app: Flask,
    api: Api,
    application: dict[str, Any],
    activation_state: Callable[[str], services.ActivationView],
) -> None:
    enrolled = enroll(api, application["applicationId"])
    base = base_string(api, enrolled.activation_id)

    answers = run_parallel(
        app,
        {
            "activationId": enrolled.activation_id,
            "data": base,
            "signature": "11111111-22222222",
        },
    )

    # Five requests are counted; the three after the block see BLOCKED only.
    counted = [a for a in answers if "remainingAttempts" in a]
    assert sorted(a["remainingAttempts"] for a in counted) == [0, 1, 2, 3, 4]
    assert all(a["activationStatus"] == "BLOCKED" for a in answers if a not in counted)
    state = activation_state(enrolled.activation_id)
    assert (str(state.status), state.failed_attempts) == ("BLOCKED", 5)
    assert state.blocked_reason == "MAX_FAILED_ATTEMPTS"
