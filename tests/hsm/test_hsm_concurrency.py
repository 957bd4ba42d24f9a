"""Threads and forked processes sharing the adapter."""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hsm import HSM

pytestmark = pytest.mark.softhsm

THREADS = 16
CALLS_PER_THREAD = 200


def test_threads_mixing_sign_and_derive(
    hsm: HSM, keypair: tuple[str, ec.EllipticCurvePublicKey]
) -> None:
    label, public = keypair
    peers = [ec.generate_private_key(ec.SECP256R1()) for _ in range(8)]
    expected = {
        peer.public_key().public_bytes(
            Encoding.X962, PublicFormat.UncompressedPoint
        ): peer.exchange(ec.ECDH(), public)
        for peer in peers
    }
    points = list(expected)
    start = threading.Barrier(THREADS)

    def work(worker: int) -> int:
        start.wait()
        checked = 0
        for call in range(CALLS_PER_THREAD):
            if (worker + call) % 2:
                message = f"{worker}/{call}".encode()
                der = hsm.sign(label, message)
                public.verify(der, message, ec.ECDSA(hashes.SHA256()))
            else:
                point = points[(worker * 31 + call) % len(points)]
                assert hsm.ecdh(label, point) == expected[point]
            checked += 1
        return checked

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        done = list(pool.map(work, range(THREADS)))

    assert done == [CALLS_PER_THREAD] * THREADS
    assert hsm.session_object_count() == 0


def _sign_in_child(hsm: HSM, label: str, message: bytes) -> bytes:
    """Fork; the child signs with the inherited adapter and pipes the result."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(read_end)
            der = hsm.sign(label, message)
            os.write(write_end, der)
            status = 0
        finally:
            os._exit(status)

    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        der = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return der


def test_forked_child_can_sign(
    hsm: HSM, keypair: tuple[str, ec.EllipticCurvePublicKey]
) -> None:
    label, public = keypair
    # The parent has used the token: its session is open and logged in.
    public.verify(hsm.sign(label, b"parent"), b"parent", ec.ECDSA(hashes.SHA256()))

    der = _sign_in_child(hsm, label, b"child")

    public.verify(der, b"child", ec.ECDSA(hashes.SHA256()))
    # The parent's own session survived the child's fresh C_Initialize.
    public.verify(hsm.sign(label, b"after"), b"after", ec.ECDSA(hashes.SHA256()))


def test_fork_while_other_threads_use_the_token(
    hsm: HSM, keypair: tuple[str, ec.EllipticCurvePublicKey]
) -> None:
    label, public = keypair
    stop = threading.Event()
    errors: list[BaseException] = []

    def busy() -> None:
        try:
            while not stop.is_set():
                hsm.sign(label, b"busy")
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    workers = [threading.Thread(target=busy) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        for round_ in range(3):
            message = f"child {round_}".encode()
            der = _sign_in_child(hsm, label, message)
            public.verify(der, message, ec.ECDSA(hashes.SHA256()))
    finally:
        stop.set()
        for worker in workers:
            worker.join()

    assert errors == []


def test_grandchild_can_sign(
    hsm: HSM, keypair: tuple[str, ec.EllipticCurvePublicKey]
) -> None:
    label, public = keypair
    hsm.sign(label, b"parent")
    read_end, write_end = os.pipe()

    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(read_end)
            hsm.sign(label, b"child")  # the child initializes its own library
            os.write(write_end, _sign_in_child(hsm, label, b"grandchild"))
            status = 0
        finally:
            os._exit(status)

    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        der = pipe.read()
    _, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    public.verify(der, b"grandchild", ec.ECDSA(hashes.SHA256()))


_POOL_HSM: HSM | None = None
_POOL_LOCK: Any = None


def _pool_init(lock: Any) -> None:
    global _POOL_LOCK
    _POOL_LOCK = lock


def _pool_sign(job: tuple[str, bytes]) -> bytes:
    assert _POOL_HSM is not None
    label, message = job
    # SoftHSM's file store is not safe for processes that initialize and log
    # in at the same moment (each C_Login rewrites the token file, and a
    # process that reads it half-written loses the token until it exits), so
    # the workers take turns; the adapter's own locking is per process.
    with _POOL_LOCK:
        return _POOL_HSM.sign(label, message)


def test_fork_pool_workers_sign(
    hsm: HSM, keypair: tuple[str, ec.EllipticCurvePublicKey]
) -> None:
    global _POOL_HSM
    label, public = keypair
    hsm.sign(label, b"parent first")
    _POOL_HSM = hsm
    jobs = [(label, f"job {i}".encode()) for i in range(12)]
    context = multiprocessing.get_context("fork")

    try:
        with context.Pool(2, _pool_init, (context.Lock(),)) as pool:
            signatures = pool.map(_pool_sign, jobs)
    finally:
        _POOL_HSM = None

    for (_, message), der in zip(jobs, signatures, strict=True):
        public.verify(der, message, ec.ECDSA(hashes.SHA256()))
