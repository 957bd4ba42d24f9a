"""Helpers of the scale-out tests: REST calls, enrolment, payload checks, counts."""

from __future__ import annotations

import base64
import json
import os
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask

from mtoken import Device, StateStore, Transport
from powerauth.payload import parse_offline_payload
from webapp import create_app

ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = ROOT / "var" / "scale"
PIN = "2468"
WRONG_CODE = "11111111-22222222"
OPERATION_DATA = "A1*A100CZK*ICZ2730300000001165254011*D20180425"

T = TypeVar("T")


def make_app(database_url: str) -> Flask:
    """An app on ``database_url`` with the schema made by ``db init``."""
    app = create_app({"TESTING": True, "DATABASE_URL": database_url})
    result = app.test_cli_runner().invoke(args=["db", "init"])
    assert result.exit_code == 0, result.output
    return app


def unique(prefix: str) -> str:
    """A fresh id: the token outlives each test's database."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def payload_data(operation_id: str | None = None) -> str:
    """The ``data`` of a payment QR (SPEC 3.1: id, title, message, data, flags)."""
    return "\n".join(
        (
            operation_id or str(uuid.uuid4()),
            "Payment",
            "Please confirm this payment",
            OPERATION_DATA,
            "B",
        )
    )


@dataclass
class Enrolled:
    activation_id: str
    device: Device
    application_id: str
    server_public_key: bytes
    master_public_key: bytes


def create_application(transport: Transport) -> dict[str, Any]:
    return transport.call(
        "/rest/v3/application/create", {"applicationId": unique("app")}
    )


def enroll(
    transport: Transport,
    application: Mapping[str, Any],
    state_dir: Path,
    **init: Any,
) -> Enrolled:
    """init on the backend's side, then prepare and commit by the token app."""
    application_id = application["applicationId"]
    created = transport.call(
        "/rest/v3/activation/init",
        {"userId": unique("user"), "applicationId": application_id, **init},
    )
    device = Device(StateStore(state_dir / created["activationId"]))
    master = decode_b64(application["masterPublicKey"])
    result = device.activate(
        transport,
        created["activationCode"],
        PIN,
        signature_b64=created["activationSignature"],
        master_public_key=master,
        commit=True,
    )
    return Enrolled(
        result.activation_id,
        device,
        application_id,
        result.state.server_public_key,
        master,
    )


def decode_b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def personalized_payload(transport: Transport, activation_id: str) -> str:
    created = transport.call(
        "/rest/v3/signature/offline/personalized/create",
        {"activationId": activation_id, "data": payload_data()},
    )
    offline_data: str = created["offlineData"]
    return offline_data


def verify_request(activation_id: str, offline_data: str, code: str) -> dict[str, Any]:
    """The verify request object for a code typed from ``offline_data``."""
    base = parse_offline_payload(offline_data).base_string()
    return {"activationId": activation_id, "data": base, "signature": code}


def check_qr_signature(offline_data: str, public_key: bytes) -> None:
    """ECDSA P-256 / SHA-256 check of a QR payload with ``cryptography``.

    :raises cryptography.exceptions.InvalidSignature: it does not verify.
    """
    payload = parse_offline_payload(offline_data)
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_key)
    key.verify(payload.signature, payload.signed_bytes, ec.ECDSA(hashes.SHA256()))


def in_threads(count: int, task: Callable[[int], T]) -> list[T]:
    """Run ``task(i)`` in ``count`` threads released together; all results.

    :raises AssertionError: carrying every exception a thread raised.
    """
    barrier = threading.Barrier(count, timeout=60)
    results: list[T] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def run(index: int) -> None:
        try:
            barrier.wait()
            result = task(index)
        except BaseException as exc:
            with lock:
                failures.append(exc)
        else:
            with lock:
                results.append(result)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    assert not failures, failures
    return results


def record_counts(name: str, counts: Mapping[str, Any]) -> None:
    """Print what a concurrent test observed and keep it in var/scale/."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"test": name, "pid": os.getpid(), **counts}, sort_keys=True)
    print(f"\nobserved {line}")
    with (RESULTS_DIR / "observed.jsonl").open("a", encoding="utf-8") as out:
        out.write(line + "\n")
