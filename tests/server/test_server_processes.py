"""Serialization across processes: gunicorn workers forked from one app.

The in-process thread tests share one Python process; here two pre-forked
workers (``--preload``, as deployed) each open PKCS#11 and SQLite themselves,
and the database lock alone keeps the verifications of one activation apart.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask

from powerauth.payload import parse_offline_payload
from tests.server.server_device import payload_data
from tests.server.server_testing import Api, enroll
from webapp import services

pytestmark = [pytest.mark.softhsm, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
THREADS = 8


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def server_url(app: Flask, tmp_path: Path) -> Iterator[str]:
    """gunicorn with two workers on the test's database and token."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": app.config["DATABASE_URL"],
        "POWERAUTH_ENVIRONMENT": "development",
    }
    log = (tmp_path / "gunicorn.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--preload",
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
            "webapp:create_app()",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None:
                break
            time.sleep(0.05)
        else:
            pytest.fail("gunicorn did not answer /health")
        assert process.poll() is None, (tmp_path / "gunicorn.log").read_text()
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def parallel_verify(url: str, request_object: dict[str, Any]) -> list[dict[str, Any]]:
    barrier = threading.Barrier(THREADS)
    answers: list[dict[str, Any]] = []
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(timeout=60) as client:
            barrier.wait()
            response = client.post(
                f"{url}/rest/v3/signature/offline/verify",
                json={"requestObject": request_object},
            )
        with lock:
            answers.append(response.json())

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == THREADS
    assert all(answer["status"] == "OK" for answer in answers), answers
    return [answer["responseObject"] for answer in answers]


def test_two_workers_never_accept_one_code_twice(
    api: Api,
    application: dict[str, Any],
    server_url: str,
    activation_state: Callable[[str], services.ActivationView],
) -> None:
    enrolled = enroll(api, application["applicationId"], maxFailureCount=30)
    created = api.call(
        "/signature/offline/personalized/create",
        {"activationId": enrolled.activation_id, "data": payload_data()},
    )
    base = parse_offline_payload(created["offlineData"]).base_string()
    request = {"activationId": enrolled.activation_id, "data": base}

    same_code = parallel_verify(
        server_url, {**request, "signature": enrolled.device.code(base)}
    )
    wrong_codes = parallel_verify(
        server_url, {**request, "signature": "11111111-22222222"}
    )

    assert sum(answer["signatureValid"] for answer in same_code) == 1
    assert not any(answer["signatureValid"] for answer in wrong_codes)
    state = activation_state(enrolled.activation_id)
    assert state.counter == 1
    assert state.failed_attempts == (THREADS - 1) + THREADS
