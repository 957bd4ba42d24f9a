"""Four gunicorn workers on one SoftHSM token and one PostgreSQL database.

Four client processes (multiprocessing) released by one barrier send:

1. the same valid code at once: exactly one is accepted;
2. wrong codes at once: every one is counted as a failed attempt until the
   activation blocks at its limit, and none after;
3. payload creations at once: every QR's ECDSA signature verifies with the
   server's public key (``cryptography``).

It runs twice: workers that import the app after the fork (no ``--preload``),
and ``--preload`` with a master that has logged in to the token and opened a
database connection before it forks (``scale_wsgi``). Either way each worker
initializes PKCS#11 and opens connections itself.
What each phase observed is printed and appended to ``var/scale/``.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text

from mtoken import HttpTransport
from tests.pg_cluster import free_port
from tests.scale.scale_testing import (
    PIN,
    ROOT,
    WRONG_CODE,
    check_qr_signature,
    create_application,
    enroll,
    make_app,
    payload_data,
    personalized_payload,
    record_counts,
    verify_request,
)

pytestmark = [pytest.mark.postgres, pytest.mark.softhsm, pytest.mark.slow]

WORKERS = 4
CLIENTS = 4
SAME_CODE_ROUNDS = 3
HTTP_TIMEOUT_S = 60
CLIENT_TIMEOUT_S = 180
START_POLLS = 600
VERIFY = "/rest/v3/signature/offline/verify"
PERSONALIZED = "/rest/v3/signature/offline/personalized/create"
NON_PERSONALIZED = "/rest/v3/signature/offline/non-personalized/create"

Request = tuple[str, dict[str, Any]]


class Server:
    """A running gunicorn and what its log says about its workers."""

    def __init__(self, url: str, process: subprocess.Popen[bytes], log: Path):
        self.url = url
        self.process = process
        self.log = log

    def worker_pids(self) -> set[int]:
        booted = re.findall(r"Booting worker with pid: (\d+)", self.log.read_text())
        return {int(pid) for pid in booted}


def start_gunicorn(database_url: str, preload: bool, log: Path) -> Server:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        # Shared by all workers, as a deployment must (page sessions).
        "SECRET_KEY": secrets.token_hex(32),
        # Production refuses an open /rest/v3; this server listens on
        # 127.0.0.1 only, for the test's own clients.
        "POWERAUTH_REST_PROTECTED_BY_PROXY": "true",
    }
    if preload:
        app_options = ["--preload", "--pythonpath", "tests/scale", "scale_wsgi:app"]
    else:
        app_options = ["webapp:create_app()"]
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        str(WORKERS),
        "--bind",
        f"127.0.0.1:{port}",
        "--timeout",
        "120",
        "--graceful-timeout",
        "10",
        *app_options,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    for _ in range(START_POLLS):
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited: {log.read_text()[-2000:]}")
        if len(server.worker_pids()) == WORKERS and answers_health(server.url):
            return server
        time.sleep(0.1)
    stop(server)
    pytest.fail(f"gunicorn did not start {WORKERS} workers: {log.read_text()[-2000:]}")


def answers_health(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def stop(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=30)


@pytest.fixture(params=["fork-fresh", "preload-touched"])
def server(
    request: pytest.FixtureRequest, postgres_url: str, tmp_path: Path
) -> Iterator[Server]:
    # The schema is made once, before the workers start (flask db init).
    make_app(postgres_url).extensions["powerauth.engine"].dispose()
    running = start_gunicorn(
        postgres_url, request.param == "preload-touched", tmp_path / "gunicorn.log"
    )
    try:
        yield running
    finally:
        stop(running)
    log = (tmp_path / "gunicorn.log").read_text()
    assert "Traceback" not in log, log[-3000:]


@pytest.fixture
def database(postgres_url: str) -> Iterator[Engine]:
    engine = create_engine(postgres_url)
    yield engine
    engine.dispose()


def client(
    url: str,
    requests: list[Request],
    barrier: Any,
    results: Any,
    index: int,
) -> None:
    """One client process: wait for the others, then send its requests in order."""
    answers: list[tuple[int, Any]] = []
    try:
        with httpx.Client(timeout=HTTP_TIMEOUT_S) as http:
            barrier.wait(timeout=HTTP_TIMEOUT_S)
            for path, request_object in requests:
                response = http.post(url + path, json={"requestObject": request_object})
                answers.append((response.status_code, response.json()))
    except Exception as exc:
        answers.append((0, f"{type(exc).__name__}: {exc}"))
    results.put((index, os.getpid(), answers))


def from_clients(url: str, per_client: list[list[Request]]) -> list[dict[str, Any]]:
    """Run one client process per request list at once; every response object.

    :raises AssertionError: a client failed, or an answer is not HTTP 200 OK.
    """
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(per_client))
    results = context.Queue()
    processes = [
        context.Process(target=client, args=(url, requests, barrier, results, i))
        for i, requests in enumerate(per_client)
    ]
    for process in processes:
        process.start()
    collected = []
    try:
        for _ in processes:
            collected.append(results.get(timeout=CLIENT_TIMEOUT_S))
    except queue.Empty:
        pytest.fail("a client process sent no answers in time")
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    assert len({pid for _, pid, _ in collected}) == len(per_client)
    responses = []
    for _, _, answers in sorted(collected):
        for status, body in answers:
            assert status == 200, body
            assert body["status"] == "OK", body
            responses.append(body["responseObject"])
    return responses


def activation_row(database: Engine, activation_id: str) -> dict[str, Any]:
    with database.connect() as connection:
        row = connection.execute(
            text(
                "SELECT status, counter, failed_attempts FROM activation WHERE id = :id"
            ),
            {"id": activation_id},
        ).one()
        mismatches = connection.execute(
            text(
                "SELECT count(*) FROM audit_record WHERE activation_id = :id "
                "AND action = 'verify' AND result = 'signature_does_not_match'"
            ),
            {"id": activation_id},
        ).scalar()
    return {
        "status": row.status,
        "counter": row.counter,
        "failed_attempts": row.failed_attempts,
        "audited_mismatches": mismatches,
    }


def server_connections(database: Engine) -> int:
    """Connections to this database other than our own.

    The pools of the workers that served a request, plus the master's idle
    one in the ``--preload`` run.
    """
    with database.connect() as connection:
        count = connection.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar()
    return int(count or 0)


def test_four_workers_four_clients(
    server: Server, database: Engine, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    mode = request.node.callspec.params["server"]
    transport = HttpTransport(server.url, timeout=HTTP_TIMEOUT_S)
    application = create_application(transport)
    patient = enroll(transport, application, tmp_path / "a", maxFailureCount=20)
    strict = enroll(transport, application, tmp_path / "b", maxFailureCount=5)

    # 1. The same valid code from four processes at once, in a few rounds.
    for round_number in range(1, SAME_CODE_ROUNDS + 1):
        qr = personalized_payload(transport, patient.activation_id)
        code = patient.device.sign(qr, pin=PIN).code
        same = (VERIFY, verify_request(patient.activation_id, qr, code))
        answers = from_clients(server.url, [[same]] * CLIENTS)
        accepted = sum(answer["signatureValid"] for answer in answers)
        state = activation_row(database, patient.activation_id)
        record_counts(
            f"gunicorn-{mode}-same-code-round-{round_number}",
            {"sent": CLIENTS, "accepted": accepted, **state},
        )
        assert accepted == 1
        # The winner reset the failures; the three others came after it.
        assert (state["counter"], state["failed_attempts"]) == (
            round_number,
            CLIENTS - 1,
        )

    # 2. Wrong codes: four at once stay under the limit of 5 ...
    qr = personalized_payload(transport, strict.activation_id)
    wrong = (VERIFY, verify_request(strict.activation_id, qr, WRONG_CODE))
    first = from_clients(server.url, [[wrong]] * CLIENTS)
    state = activation_row(database, strict.activation_id)
    record_counts(
        f"gunicorn-{mode}-wrong-codes-below-limit",
        {"sent": CLIENTS, "limit": 5, **state},
    )
    assert sorted(a["remainingAttempts"] for a in first) == [1, 2, 3, 4]
    assert (state["failed_attempts"], state["status"]) == (CLIENTS, "ACTIVE")

    # ... then eight more (two per client): one reaches the limit, the
    # others find the activation blocked and are not counted.
    second = from_clients(server.url, [[wrong, wrong]] * CLIENTS)
    counted = [a for a in second if "remainingAttempts" in a]
    state = activation_row(database, strict.activation_id)
    record_counts(
        f"gunicorn-{mode}-wrong-codes-to-block",
        {"sent": 2 * CLIENTS, "counted": len(counted), "limit": 5, **state},
    )
    assert [a["remainingAttempts"] for a in counted] == [0]
    assert sum(a["activationStatus"] == "BLOCKED" for a in second) == 2 * CLIENTS
    assert (state["failed_attempts"], state["status"]) == (5, "BLOCKED")
    assert state["audited_mismatches"] == 5
    assert not any(a["signatureValid"] for a in first + second)

    # 3. Payloads: five per client, personalized and non-personalized mixed.
    personal = (PERSONALIZED, {"activationId": patient.activation_id})
    master = (NON_PERSONALIZED, {"applicationId": application["applicationId"]})
    per_client = [
        [
            (path, {**body, "data": payload_data()})
            for path, body in (personal, master, personal, master, personal)
        ]
        for _ in range(CLIENTS)
    ]
    created = from_clients(server.url, per_client)
    paths = [path for requests in per_client for path, _ in requests]
    verified = 0
    for path, answer in zip(paths, created, strict=True):
        key = (
            patient.server_public_key
            if path == PERSONALIZED
            else patient.master_public_key
        )
        check_qr_signature(answer["offlineData"], key)
        verified += 1
    nonces = {answer["nonce"] for answer in created}
    record_counts(
        f"gunicorn-{mode}-payloads",
        {
            "created": len(created),
            "verified": verified,
            "distinct_nonces": len(nonces),
            "workers_booted": len(server.worker_pids()),
            "server_db_connections": server_connections(database),
        },
    )
    assert verified == len(created) == 5 * CLIENTS
    assert len(nonces) == len(created)
    transport.close()
