"""Benchmark: offline payload creation and verification against the token and CPU bounds.

One run, one throw-away SoftHSM token (its own SOFTHSM2_CONF in a temporary
folder; the development token is never touched), one SQLite database:

* bounds: ECDSA sign and ECDH through python-pkcs11 directly (a child
  process, ``bench_raw.py``), the same through ``hsm.HSM``, and both in
  ``cryptography`` (software, no token);
* the product in process, through the service layer: personalized payload
  creation; verification of a right code at offset 0, at offset 19 with and
  without biometry allowed, and of a wrong code (the whole window searched)
  at lookahead 1, 20 and 64;
* the product over HTTP: gunicorn with one worker per core on loopback,
  create and verify at 1, 2, 4, 8 and 16 concurrent clients.

Figures are taken in interleaved rounds (see ``bench_common``). Run it with
``scripts/bench`` (``--quick`` for a short run, ``--profile`` for profiles,
``--workers N``, ``--database-url URL`` for PostgreSQL). It prints a table and
writes JSON, a Markdown table and a PNG chart, by default to
``var/bench/bench.{json,md,png}``; ``scripts/PERFORMANCE.md`` explains them.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import json
import os
import platform
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bench_http as web
from bench_common import Budget, Sample, combine, sample

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "var" / "bench" / "bench.json"

TOKEN_LABEL = "powerauth-bench"  # noqa: S105 (a token label, not a password)
# Throw-away token of this run only; the values are SoftHSM test defaults.
USER_PIN = "1234"
SO_PIN = "12345678"

LOOKAHEAD = 20
LOOKAHEADS = (1, 20, 64)
CLIENT_LEVELS = (1, 2, 4, 8, 16)
# Clients during the py-spy profile of the workers (--profile).
PROFILE_CLIENTS = 4
WORST_OFFSET = LOOKAHEAD - 1
# Wrong codes each count as a failed attempt (SPEC 6.2); activations made for
# the benchmark allow 64, and a right code resets the count every RESET_EVERY.
MAX_FAILURES = 64
RESET_EVERY = 60

CREATE_PATH = "/rest/v3/signature/offline/personalized/create"
VERIFY_PATH = "/rest/v3/signature/offline/verify"
PAYLOAD_DATA = "\n".join(
    (
        "5ff1b1ed-a3cc-45a3-8ab0-ed60950312b6",
        "Payment",
        "Please confirm this payment",
        "A1*A100CZK*ICZ2730300000001165254011*D20180425",
        "B",
    )
)

TARGETS = {
    "create_vs_raw_sign": 0.70,
    "verify_vs_raw_ecdh": 0.60,
    "http_errors": 0,
    "p99_ms_at_best_throughput": 50.0,
}


@dataclass(frozen=True)
class Plan:
    """The size of a run: ``budget`` is per figure and round."""

    name: str
    budget: Budget
    rounds: int
    http_requests: int
    http_seconds: float
    http_rounds: int
    clients: tuple[int, ...] = CLIENT_LEVELS


PLANS = {
    "full": Plan("full", Budget(0.8, 20_000, warmup=20), 5, 8_000, 4.0, 3),
    "quick": Plan("quick", Budget(0.5, 5_000, warmup=5), 1, 400, 1.2, 1),
    # For the smoke test: every figure and both kinds of rounds, a handful of
    # operations each.
    "smoke": Plan("smoke", Budget(0.05, 8, warmup=1), 2, 6, 0.5, 2),
}


# --------------------------------------------------------------------------
# The token, the environment, the machine


def init_token(directory: Path) -> Path:
    """A SoftHSM configuration and token of this run only, in ``directory``."""
    tokens = directory / "tokens"
    tokens.mkdir(parents=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
    )
    subprocess.run(
        [
            "softhsm2-util", "--init-token", "--free", "--label", TOKEN_LABEL,
            "--so-pin", SO_PIN, "--pin", USER_PIN,
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
    )  # fmt: skip
    return conf


def bench_environment(conf: Path, database_url: str, module: str) -> dict[str, str]:
    """The variables of the benchmark's own process and of gunicorn."""
    return {
        **os.environ,
        "SOFTHSM2_CONF": str(conf),
        "PKCS11_MODULE": module,
        "PKCS11_TOKEN_LABEL": TOKEN_LABEL,
        "PKCS11_USER_PIN": USER_PIN,
        "DATABASE_URL": database_url,
        "SECRET_KEY": secrets.token_hex(32),
        "POWERAUTH_ENVIRONMENT": "development",
        "POWERAUTH_SIGNATURE_LOOKAHEAD": str(LOOKAHEAD),
    }


def _command_output(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError:
        return "unknown"
    return (done.stdout or done.stderr).strip() or "unknown"


def machine_info(workdir: Path) -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import gunicorn

    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "softhsm": _command_output(["softhsm2-util", "--version"]),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "gunicorn": gunicorn.__version__,
        "kernel": platform.release(),
        "filesystem": _command_output(["stat", "-f", "-c", "%T", str(workdir)]),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "commit": _command_output(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]
        ),
    }


# --------------------------------------------------------------------------
# A device: software key, the protocol core computes its codes (SPEC 5)


class Device:
    """The mobile side of one activation, enough to type right codes."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec

        self._key = ec.generate_private_key(ec.SECP256R1())
        self.keys: Any = None
        self.ctr_data = b""

    @property
    def public_key(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import (
            Encoding,
            PublicFormat,
        )

        return self._key.public_key().public_bytes(
            Encoding.X962, PublicFormat.UncompressedPoint
        )

    def activate(self, server_public_key: bytes, ctr_data: bytes) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec

        from powerauth.crypto import derive_factor_keys, master_secret_from_shared_x

        peer = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), server_public_key
        )
        shared_x = self._key.exchange(ec.ECDH(), peer)
        self.keys = derive_factor_keys(master_secret_from_shared_x(shared_x))
        self.ctr_data = ctr_data

    def code(self, base_string: str, signature_type: Any = None, ahead: int = 0) -> str:
        """The code ``ahead`` counter steps past the current; the counter moves past it."""
        from powerauth.crypto import advance_counter, next_counter
        from powerauth.signature import SignatureType, compute_offline_code

        ctr = advance_counter(self.ctr_data, ahead)
        code = compute_offline_code(
            self.keys,
            ctr,
            base_string,
            signature_type or SignatureType.POSSESSION_KNOWLEDGE,
        )
        self.ctr_data = next_counter(ctr)
        return code


@dataclass
class Enrolled:
    activation_id: str
    key_label: str
    device: Device
    base_string: str


class Product:
    """The app in this process, used through its service layer."""

    def __init__(self, env: dict[str, str]) -> None:
        from webapp import create_app, db
        from webapp.extensions import get_hsm, get_settings

        self.app = create_app(
            {
                "DATABASE_URL": env["DATABASE_URL"],
                "ENVIRONMENT": "development",
                "SECRET_KEY": env["SECRET_KEY"],
                "SIGNATURE_LOOKAHEAD": LOOKAHEAD,
            }
        )
        db.upgrade_schema(db.get_engine(self.app))
        self.hsm = get_hsm(self.app)
        self.settings = get_settings(self.app)
        self.application_id = f"bench-{uuid.uuid4().hex[:8]}"

    @contextmanager
    def session(self) -> Iterator[Any]:
        # A new session per call, as the REST views get one per request.
        from webapp.db import new_session

        with new_session(self.app) as session:
            yield session

    def create_application(self) -> None:
        from webapp import services

        with self.session() as session:
            services.create_application(
                session,
                self.hsm,
                self.settings,
                application_id=self.application_id,
                actor="bench",
            )

    def enroll(self) -> Enrolled:
        """init, prepare, commit; then one payload whose base string is kept."""
        from powerauth.payload import parse_offline_payload
        from webapp import services
        from webapp.services.activations import server_key_label

        device = Device()
        with self.session() as session:
            created = services.init_activation(
                session,
                self.hsm,
                self.settings,
                user_id=f"user-{uuid.uuid4().hex[:8]}",
                application_id=self.application_id,
                max_failure_count=MAX_FAILURES,
                actor="bench",
            )
        with self.session() as session:
            prepared = services.prepare_activation(
                session,
                self.hsm,
                self.settings,
                activation_code=created.activation_code,
                device_public_key=device.public_key,
                actor="bench",
            )
        device.activate(prepared.server_public_key, prepared.ctr_data)
        with self.session() as session:
            services.commit_activation(
                session,
                self.hsm,
                self.settings,
                activation_id=created.activation_id,
                actor="bench",
            )
        payload = self.create(created.activation_id)
        base_string = parse_offline_payload(payload).base_string()
        label = server_key_label(created.activation_id)
        return Enrolled(created.activation_id, label, device, base_string)

    def create(self, activation_id: str) -> str:
        from webapp import services

        with self.session() as session:
            result = services.create_personalized_payload(
                session,
                self.hsm,
                self.settings,
                activation_id=activation_id,
                data=PAYLOAD_DATA,
                actor="bench",
            )
        return result.offline_data

    def verify(
        self,
        activation_id: str,
        base_string: str,
        code: str,
        *,
        biometry: bool = False,
        lookahead: int = LOOKAHEAD,
    ) -> Any:
        from webapp import services

        settings = self.settings
        if lookahead != settings.lookahead:
            settings = dataclasses.replace(settings, lookahead=lookahead)
        with self.session() as session:
            return services.verify_offline_signature(
                session,
                self.hsm,
                settings,
                activation_id=activation_id,
                data=base_string,
                signature=code,
                allow_biometry=biometry,
                actor="bench",
            )


# --------------------------------------------------------------------------
# Bounds: the token without us, the token through the adapter, the CPU


def signed_message() -> bytes:
    """What a personalized payload signs (SPEC 3.2), for the bound figures."""
    from powerauth.payload import KeyIndicator, build_offline_payload

    nonce = "AD8bOO0Df73kNaIGb3Vmpg=="
    return build_offline_payload(
        PAYLOAD_DATA, nonce, KeyIndicator.PERSONALIZED
    ).signed_bytes


def raw_bounds(
    env: dict[str, str], budget: Budget, enrolled: Enrolled, message: bytes
) -> dict[str, Any]:
    """python-pkcs11 straight on the token, in a child process (bench_raw.py)."""
    command = [
        sys.executable,
        str(Path(__file__).with_name("bench_raw.py")),
        "--key-label", enrolled.key_label,
        "--peer", enrolled.device.public_key.hex(),
        "--message", message.hex(),
        "--seconds", str(budget.seconds),
        "--max-ops", str(budget.max_ops),
        "--warmup", str(budget.warmup),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"bench_raw.py failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def adapter_bounds(
    product: Product, budget: Budget, enrolled: Enrolled, message: bytes
) -> dict[str, Sample]:
    hsm = product.hsm
    peer = enrolled.device.public_key
    return {
        "sign": sample(lambda: hsm.sign(enrolled.key_label, message), budget),
        "ecdh": sample(lambda: hsm.ecdh(enrolled.key_label, peer), budget),
    }


def software_bounds(budget: Budget, message: bytes) -> dict[str, Sample]:
    """``cryptography`` (OpenSSL) with keys in memory: what the CPU allows."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    peer = ec.generate_private_key(ec.SECP256R1()).public_key()
    algorithm = ec.ECDSA(hashes.SHA256())
    return {
        "sign": sample(lambda: key.sign(message, algorithm), budget),
        "ecdh": sample(lambda: key.exchange(ec.ECDH(), peer), budget),
    }


# --------------------------------------------------------------------------
# The product in process


class BenchError(RuntimeError):
    """The product answered something the benchmark did not set it up for."""


def bench_create(product: Product, budget: Budget, enrolled: Enrolled) -> Sample:
    return sample(lambda: product.create(enrolled.activation_id), budget)


def bench_verify_right(
    product: Product,
    budget: Budget,
    enrolled: Enrolled,
    *,
    ahead: int,
    biometry: bool = False,
) -> Sample:
    """Right codes that match at offset ``ahead``; each is made outside the timer."""
    from powerauth.signature import SignatureType

    signature_type = (
        SignatureType.POSSESSION_BIOMETRY
        if biometry
        else SignatureType.POSSESSION_KNOWLEDGE
    )
    typed: list[str] = []

    def next_code() -> None:
        typed.append(
            enrolled.device.code(enrolled.base_string, signature_type, ahead=ahead)
        )

    def verify() -> None:
        result = product.verify(
            enrolled.activation_id, enrolled.base_string, typed.pop(), biometry=biometry
        )
        if not result.signature_valid or result.counter_offset != ahead:
            raise BenchError(f"a right code at offset {ahead} was not accepted there")

    return sample(verify, budget, between=next_code)


WRONG_CODE = "12345678-87654321"


def bench_verify_wrong(
    product: Product, budget: Budget, enrolled: Enrolled, lookahead: int
) -> Sample:
    """Wrong codes: every candidate of the window is computed (no early exit).

    Each wrong code is a failed attempt; outside the timer, a right code
    resets the count before it can block the activation.
    """
    count = 0

    def upkeep() -> None:
        nonlocal count
        count += 1
        # The first call resets too: an earlier figure may have left failures.
        if count % RESET_EVERY == 1:
            code = enrolled.device.code(enrolled.base_string)
            result = product.verify(
                enrolled.activation_id, enrolled.base_string, code, lookahead=lookahead
            )
            if not result.signature_valid:
                raise BenchError("the right code that resets the failures was refused")

    def verify() -> None:
        result = product.verify(
            enrolled.activation_id,
            enrolled.base_string,
            WRONG_CODE,
            lookahead=lookahead,
        )
        if result.signature_valid or str(result.activation_status) != "ACTIVE":
            raise BenchError("a wrong code was accepted or the activation is blocked")

    return sample(verify, budget, between=upkeep)


def bench_window_core(budget: Budget, enrolled: Enrolled, lookahead: int) -> Sample:
    """The protocol core alone: a wrong code searched through the whole window."""
    from powerauth.errors import SignatureMismatchError
    from powerauth.signature import SignatureType, verify_offline_code

    keys = enrolled.device.keys
    ctr_data = enrolled.device.ctr_data
    types = [SignatureType.POSSESSION_KNOWLEDGE]

    def search() -> None:
        try:
            verify_offline_code(
                keys, ctr_data, enrolled.base_string, WRONG_CODE, types, lookahead
            )
        except SignatureMismatchError:
            return
        raise BenchError("a wrong code matched in the protocol core")

    return sample(search, budget)


# --------------------------------------------------------------------------
# The product over HTTP


def bench_http(
    env: dict[str, str],
    plan: Plan,
    clients: list[Enrolled],
    log_dir: Path,
    workers: int,
    profile_dir: Path | None = None,
) -> dict[str, Any]:
    """gunicorn with ``workers`` sync workers; create and verify at each client count.

    With ``profile_dir``, one more run per endpoint is sampled by py-spy.
    """

    def create_request(i: int) -> tuple[str, dict[str, Any], web.Check]:
        body = {"activationId": clients[i].activation_id, "data": PAYLOAD_DATA}
        return CREATE_PATH, {"requestObject": body}, web.expect_ok

    def verify_request(i: int) -> tuple[str, dict[str, Any], web.Check]:
        # Client i alone uses activation i, so its device's counter stays in
        # step with the server's; each code matches at offset 0.
        enrolled = clients[i]
        body = {
            "activationId": enrolled.activation_id,
            "data": enrolled.base_string,
            "signature": enrolled.device.code(enrolled.base_string),
        }
        return VERIFY_PATH, {"requestObject": body}, web.expect_valid_signature

    factories = {"create": create_request, "verify": verify_request}
    server = web.start_server(ROOT, env, workers, log_dir)
    try:
        # Warm-up, and proof that every forked worker opened the token itself:
        # the access log names the pid of each worker that answered 200. The
        # kernel picks the worker of each connection, so a few more warm-up
        # rounds may be needed before every worker has served both endpoints.
        warmup: list[dict[str, Any]] = []
        for _ in range(5):
            warmup += [
                web.run_load(
                    server,
                    name,
                    min(2 * workers, len(clients)),
                    factory,
                    max_requests=10 * workers,
                    max_seconds=30,
                ).as_dict()
                for name, factory in factories.items()
            ]
            signing = web.signing_worker_pids(server, CREATE_PATH)
            deriving = web.signing_worker_pids(server, VERIFY_PATH)
            if len(signing) >= workers and len(deriving) >= workers:
                break
        else:
            log(
                f"warning: only {len(signing)} of {workers} workers signed and "
                f"{len(deriving)} ran ECDH during the warm-up"
            )

        runs: dict[tuple[str, int], list[web.LoadResult]] = collections.defaultdict(
            list
        )
        for round_number in range(1, plan.http_rounds + 1):
            log(f"HTTP round {round_number} of {plan.http_rounds}")
            for name, factory in factories.items():
                for count in plan.clients:
                    runs[name, count].append(
                        web.run_load(
                            server,
                            name,
                            count,
                            factory,
                            max_requests=plan.http_requests,
                            max_seconds=plan.http_seconds,
                        )
                    )
        profiles = {}
        if profile_dir is not None:
            for name, factory in factories.items():
                log(f"profiling the workers under HTTP {name} with py-spy")
                profiles[name] = web.profile_workers(
                    server,
                    name,
                    PROFILE_CLIENTS,
                    factory,
                    seconds=max(3.0, plan.http_seconds),
                    out_dir=profile_dir,
                )
    finally:
        server.stop()

    levels = {
        name: [web.combine_loads(runs[name, count]) for count in plan.clients]
        for name in factories
    }

    best = {
        name: max(figures, key=lambda figure: figure["requests_per_s"])
        for name, figures in levels.items()
    }
    return {
        "server": f"gunicorn {workers} sync workers, --preload, 127.0.0.1",
        "workers": workers,
        "workers_that_signed": len(signing),
        "workers_that_ran_ecdh": len(deriving),
        "warmup": warmup,
        "create": best["create"],
        "verify": best["verify"],
        "levels": levels,
        **({"worker_profiles": profiles} if profiles else {}),
    }


# --------------------------------------------------------------------------
# Ratios, targets, output


def _ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 3) if denominator else None


def ratios(results: dict[str, Any]) -> dict[str, float | None]:
    raw = results["bounds"]["pkcs11_raw"]
    adapter = results["bounds"]["adapter"]
    inproc = results["inprocess"]
    http = results["http"]
    return {
        "create_vs_raw_sign": _ratio(
            inproc["create"]["ops_per_s"], raw["sign"]["ops_per_s"]
        ),
        "verify_vs_raw_ecdh": _ratio(
            inproc["verify_offset_0"]["ops_per_s"], raw["ecdh"]["ops_per_s"]
        ),
        "http_vs_inprocess": _ratio(
            http["create"]["requests_per_s"], inproc["create"]["ops_per_s"]
        ),
        "http_vs_inprocess_verify": _ratio(
            http["verify"]["requests_per_s"], inproc["verify_offset_0"]["ops_per_s"]
        ),
        "adapter_vs_raw_sign": _ratio(
            adapter["sign"]["ops_per_s"], raw["sign"]["ops_per_s"]
        ),
        "adapter_vs_raw_ecdh": _ratio(
            adapter["ecdh"]["ops_per_s"], raw["ecdh"]["ops_per_s"]
        ),
        "raw_vs_software_sign": _ratio(
            raw["sign"]["ops_per_s"], results["bounds"]["software"]["sign"]["ops_per_s"]
        ),
        "raw_vs_software_ecdh": _ratio(
            raw["ecdh"]["ops_per_s"], results["bounds"]["software"]["ecdh"]["ops_per_s"]
        ),
    }


def targets(results: dict[str, Any]) -> dict[str, Any]:
    r = results["ratios"]
    http = results["http"]
    errors = sum(
        run["errors"] for runs in http["levels"].values() for run in runs
    ) + sum(run["errors"] for run in http["warmup"])
    limit = TARGETS["p99_ms_at_best_throughput"]
    p99 = {name: http[name]["p99_ms"] for name in ("create", "verify")}
    return {
        "create_vs_raw_sign": {
            "target": f">= {TARGETS['create_vs_raw_sign']}",
            "measured": r["create_vs_raw_sign"],
            "met": (r["create_vs_raw_sign"] or 0) >= TARGETS["create_vs_raw_sign"],
        },
        "verify_vs_raw_ecdh": {
            "target": f">= {TARGETS['verify_vs_raw_ecdh']}",
            "measured": r["verify_vs_raw_ecdh"],
            "met": (r["verify_vs_raw_ecdh"] or 0) >= TARGETS["verify_vs_raw_ecdh"],
        },
        "http_errors": {"target": "0", "measured": errors, "met": errors == 0},
        "p99_ms_at_best_throughput": {
            "target": f"< {limit}",
            "measured": p99,
            "met": all(value < limit for value in p99.values()),
        },
    }


def table_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(figure, rate, p50 ms, p99 ms, note) for the printed and Markdown tables."""

    def row(name: str, figure: dict[str, Any], note: str = "") -> tuple[str, ...]:
        rate = figure.get("ops_per_s", figure.get("requests_per_s"))
        if "cpu_ms_per_op" in figure:
            cpu = f"CPU {figure['cpu_ms_per_op']:.3f} ms/op"
            note = f"{note}; {cpu}" if note else cpu
        return (
            name,
            f"{rate:,.0f}/s",
            f"{figure['p50_ms']:.3f}",
            f"{figure['p99_ms']:.3f}",
            note,
        )

    b = results["bounds"]
    p = results["inprocess"]
    h = results["http"]
    rows = [
        row("raw PKCS#11 ECDSA sign", b["pkcs11_raw"]["sign"]),
        row("raw PKCS#11 ECDH", b["pkcs11_raw"]["ecdh"], "derive + read + destroy"),
        row("adapter hsm.sign", b["adapter"]["sign"]),
        row("adapter hsm.ecdh", b["adapter"]["ecdh"]),
        row("cryptography ECDSA sign", b["software"]["sign"], "software bound"),
        row("cryptography ECDH", b["software"]["ecdh"], "software bound"),
        row("create personalized payload", p["create"], "service layer"),
        row("verify, right code, offset 0", p["verify_offset_0"]),
        row(f"verify, offset {WORST_OFFSET}", p["verify_offset_19"]),
        row(f"verify, offset {WORST_OFFSET}, biometry", p["verify_offset_19_biometry"]),
        row("verify, wrong code", p["verify_wrong_code"], f"lookahead {LOOKAHEAD}"),
    ]
    for lookahead, figure in results["lookahead"].items():
        rows.append(row(f"verify, wrong code, lookahead {lookahead}", figure))
    for lookahead, figure in results["lookahead_core"].items():
        rows.append(
            row(f"core window search, lookahead {lookahead}", figure, "no DB, no HSM")
        )
    for name in ("create", "verify"):
        for run in h["levels"][name]:
            rows.append(
                row(
                    f"HTTP {name}, {run['clients']} "
                    + ("client" if run["clients"] == 1 else "clients"),
                    run,
                    f"{run['requests']} req, {run['errors']} errors, in worker "
                    f"p50 {run['server_p50_ms']} p99 {run['server_p99_ms']} ms"
                    + (
                        f", CPU pressure {run['cpu_pressure']}"
                        if run.get("cpu_pressure") is not None
                        else ""
                    ),
                )
            )
    return rows  # type: ignore[return-value]


def render_text(results: dict[str, Any]) -> str:
    rows = [("figure", "rate", "p50 ms", "p99 ms", "note"), *table_rows(results)]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [
        "  ".join(
            cell.rjust(widths[i]) if i in (1, 2, 3) else cell.ljust(widths[i])
            for i, cell in enumerate(r)
        ).rstrip()
        for r in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    lines.append("")
    for name, value in results["ratios"].items():
        lines.append(f"{name:28} {value}")
    lines.append("")
    for name, target in results["targets"].items():
        verdict = "met" if target["met"] else "MISSED"
        lines.append(
            f"target {name:26} {target['target']:>8}  {target['measured']}  {verdict}"
        )
    for name, profile in results["http"].get("worker_profiles", {}).items():
        lines += ["", f"where the workers' time goes, HTTP {name}, 4 clients (py-spy):"]
        for category, share in profile["where_the_workers_time_goes"].items():
            lines.append(f"  {share * 100:5.1f}%  {category}")
    lines += ["", "machine: " + machine_line(results["machine"])]
    return "\n".join(lines)


def machine_line(machine: dict[str, Any]) -> str:
    pressure = machine.get("cpu_pressure_inprocess")
    return (
        f"{machine['nproc']} cores ({machine['cpu_model']}), SoftHSM "
        f"{machine['softhsm']}, Python {machine['python']}, SQLite "
        f"{machine['sqlite']}, gunicorn {machine['gunicorn']}; load average "
        f"{machine['loadavg_at_start'][0]} at start, "
        f"{machine.get('loadavg_at_end', ['?'])[0]} at end"
        + (f"; CPU pressure in process {pressure}" if pressure is not None else "")
        + f"; commit {machine['commit']}"
    )


def render_markdown(results: dict[str, Any]) -> str:
    lines = [
        "| figure | rate | p50 ms | p99 ms | note |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in table_rows(results)]
    lines += ["", "| ratio | value |", "| --- | ---: |"]
    lines += [f"| `{k}` | {v} |" for k, v in results["ratios"].items()]
    lines += ["", "| target | wanted | measured | met |", "| --- | --- | --- | --- |"]
    for name, t in results["targets"].items():
        lines.append(
            f"| {name} | {t['target']} | {t['measured']} | {'yes' if t['met'] else 'no'} |"
        )
    for name, profile in results["http"].get("worker_profiles", {}).items():
        lines += [
            "",
            f"Where the workers' time goes, HTTP {name}, "
            f"{profile['clients']} clients (py-spy, idle included):",
            "",
            "| share | category |",
            "| ---: | --- |",
        ]
        lines += [
            f"| {share * 100:.1f}% | {category} |"
            for category, share in profile["where_the_workers_time_goes"].items()
        ]
    lines += ["", "Machine: " + machine_line(results["machine"]) + "."]
    return "\n".join(lines) + "\n"


def draw_chart(results: dict[str, Any], path: Path) -> None:
    """Wrong-code verification time against the lookahead; HTTP load curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    lookaheads = [int(k) for k in results["lookahead"]]
    for source, label, style in (
        ("lookahead", "service layer, wall p50", "o-"),
        ("lookahead", "service layer, CPU per op", "o:"),
        ("lookahead_core", "protocol core alone, p50", "s--"),
    ):
        key = "cpu_ms_per_op" if "CPU" in label else "p50_ms"
        times = [results[source][str(k)].get(key, float("nan")) for k in lookaheads]
        left.plot(lookaheads, times, style, label=label)
    left.legend(fontsize=8, loc="best")
    left.set_xticks(list(LOOKAHEADS))
    left.set_xlabel("lookahead window (counter values)")
    left.set_ylabel("wrong-code verification, ms")
    left.set_title("In process: cost of the whole window")
    left.set_ylim(bottom=0)
    left.grid(alpha=0.3)

    p99_axis = right.twinx()
    for name, colour in (("create", "tab:blue"), ("verify", "tab:orange")):
        runs = results["http"]["levels"][name]
        clients = [run["clients"] for run in runs]
        right.plot(
            clients,
            [run["requests_per_s"] for run in runs],
            marker="o",
            color=colour,
            label=f"{name} req/s",
        )
        p99_axis.plot(
            clients,
            [run["p99_ms"] for run in runs],
            marker="s",
            linestyle="--",
            color=colour,
            label=f"{name} p99 ms",
        )
    right.set_xscale("log", base=2)
    right.set_xticks(list(CLIENT_LEVELS), [str(c) for c in CLIENT_LEVELS])
    right.set_xlabel("concurrent clients")
    right.set_ylabel("requests/s (solid)")
    p99_axis.set_ylabel("p99 latency, ms (dashed)")
    right.set_ylim(bottom=0)
    p99_axis.set_ylim(bottom=0)
    right.set_title(f"HTTP: gunicorn, {results['http']['workers']} workers")
    handles = right.get_legend_handles_labels()
    more = p99_axis.get_legend_handles_labels()
    right.legend(
        handles[0] + more[0],
        handles[1] + more[1],
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16),
        ncol=4,
    )
    right.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_profiles(
    product: Product, enrolled: Enrolled, operations: int, out_dir: Path
) -> dict[str, str]:
    """pyinstrument profiles of in-process creation and offset-0 verification."""
    from pyinstrument import Profiler

    paths = {}
    for name in ("create", "verify"):
        codes = [enrolled.device.code(enrolled.base_string) for _ in range(operations)]
        profiler = Profiler(interval=0.0002)
        profiler.start()
        for code in codes:
            if name == "create":
                product.create(enrolled.activation_id)
            else:
                product.verify(enrolled.activation_id, enrolled.base_string, code)
        profiler.stop()
        path = out_dir / f"profile-{name}.txt"
        path.write_text(
            profiler.output_text(unicode=False, color=False, show_all=False)
        )
        paths[name] = str(path)
    return paths


# --------------------------------------------------------------------------


def run(
    plan: Plan,
    out_json: Path,
    *,
    workers: int,
    database_url: str | None,
    profile: bool,
    keep: bool,
) -> dict[str, Any]:
    module = os.environ.get("PKCS11_MODULE") or "/usr/lib/softhsm/libsofthsm2.so"
    workdir = Path(tempfile.mkdtemp(prefix="powerauth-bench-"))
    started = time.monotonic()
    try:
        conf = init_token(workdir)
        env = bench_environment(
            conf, database_url or f"sqlite:///{workdir / 'bench.sqlite'}", module
        )
        # This process's adapter reads the same settings (SoftHSM reads
        # SOFTHSM2_CONF at C_Initialize, which has not happened yet).
        os.environ.update(env)
        results: dict[str, Any] = {
            "plan": plan.name,
            "machine": machine_info(workdir),
            "settings": {
                "lookahead": LOOKAHEAD,
                "component_length": 8,
                "database": "PostgreSQL (given by --database-url)"
                if database_url
                else "SQLite file in the run's temporary folder",
                "token": f"SoftHSM token {TOKEN_LABEL!r}, file object store",
                "budget_per_figure_and_round": dataclasses.asdict(plan.budget),
                "rounds": plan.rounds,
                "http_bounds_per_run": {
                    "max_requests": plan.http_requests,
                    "max_seconds": plan.http_seconds,
                },
                "http_rounds": plan.http_rounds,
            },
        }

        product = Product(env)
        product.create_application()
        fixed = {
            name: product.enroll() for name in ("create", "v0", "v19", "bio", "wrong")
        }
        http_clients = [product.enroll() for _ in range(max(plan.clients))]
        message = signed_message()
        budget = plan.budget
        log(f"set up in {time.monotonic() - started:.1f} s")

        figures: dict[str, Callable[[], Sample]] = {
            "create": lambda: bench_create(product, budget, fixed["create"]),
            "verify_offset_0": lambda: bench_verify_right(
                product, budget, fixed["v0"], ahead=0
            ),
            "verify_offset_19": lambda: bench_verify_right(
                product, budget, fixed["v19"], ahead=WORST_OFFSET
            ),
            "verify_offset_19_biometry": lambda: bench_verify_right(
                product, budget, fixed["bio"], ahead=WORST_OFFSET, biometry=True
            ),
        }
        for n in LOOKAHEADS:
            figures[f"lookahead.{n}"] = functools.partial(
                bench_verify_wrong, product, budget, fixed["wrong"], n
            )
            figures[f"lookahead_core.{n}"] = functools.partial(
                bench_window_core, budget, fixed["wrong"], n
            )

        pressure_before = web.cpu_pressure_us()
        phase_started = time.monotonic()
        samples: dict[str, list[Sample]] = collections.defaultdict(list)
        for round_number in range(1, plan.rounds + 1):
            log(f"round {round_number} of {plan.rounds}: bounds and product in process")
            raw = raw_bounds(env, budget, fixed["create"], message)
            results["bounds_library"] = raw["library"]
            results["settings"]["sign_mechanism"] = raw["sign_mechanism"]
            for source, taken in (
                ("pkcs11_raw", raw),
                ("adapter", adapter_bounds(product, budget, fixed["create"], message)),
                ("software", software_bounds(budget, message)),
            ):
                for operation in ("sign", "ecdh"):
                    samples[f"{source}.{operation}"].append(taken[operation])
            for name, figure in figures.items():
                samples[name].append(figure())

        pressure_after = web.cpu_pressure_us()
        if pressure_before is not None and pressure_after is not None:
            # Share of the in-process phase during which some task waited for
            # a core: other work on the machine competed with the figures.
            results["machine"]["cpu_pressure_inprocess"] = round(
                (pressure_after - pressure_before)
                / 1e6
                / (time.monotonic() - phase_started),
                2,
            )
        combined = {name: combine(taken) for name, taken in samples.items()}
        results["bounds"] = {
            source: {op: combined[f"{source}.{op}"] for op in ("sign", "ecdh")}
            for source in ("pkcs11_raw", "adapter", "software")
        }
        results["bounds"]["pkcs11_raw"]["library"] = results.pop("bounds_library")
        results["inprocess"] = {
            name: combined[name]
            for name in (
                "create",
                "verify_offset_0",
                "verify_offset_19",
                "verify_offset_19_biometry",
            )
        }
        for group in ("lookahead", "lookahead_core"):
            results[group] = {str(n): combined[f"{group}.{n}"] for n in LOOKAHEADS}
        results["inprocess"]["verify_wrong_code"] = results["lookahead"][str(LOOKAHEAD)]

        log("measuring over HTTP")
        out_dir = out_json.parent
        out_dir.mkdir(parents=True, exist_ok=True)
        results["http"] = bench_http(
            env,
            plan,
            http_clients,
            workdir,
            workers,
            profile_dir=out_dir if profile else None,
        )
        results["ratios"] = ratios(results)
        results["targets"] = targets(results)

        if profile:
            log("profiling create and verify in process")
            operations = max(20, min(2000, int(budget.seconds * 300)))
            results["profiles"] = write_profiles(
                product, fixed["v0"], operations, out_dir
            )
        results["elapsed_s"] = round(time.monotonic() - started, 1)
        # Other work on the machine shows here: the figures are wall time.
        results["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]

        png = out_json.with_suffix(".png")
        markdown = out_json.with_suffix(".md")
        results["outputs"] = {
            "json": str(out_json),
            "png": str(png),
            "md": str(markdown),
        }
        out_json.write_text(json.dumps(results, indent=2) + "\n")
        markdown.write_text(render_markdown(results))
        draw_chart(results, png)
        return results
    finally:
        if keep:
            log(f"kept the token, database and gunicorn logs in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bench", description=__doc__.splitlines()[0]
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a short run (< 45 s)")
    size.add_argument(
        "--smoke", action="store_true", help="a few operations per figure (tests)"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"where to write the JSON; .md and .png go beside it "
        f"(default {DEFAULT_OUTPUT.relative_to(ROOT)})",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile create and verify in process (pyinstrument) and the "
        "gunicorn workers under load (py-spy); files go beside the JSON",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="gunicorn workers (default: one per core)",
    )
    parser.add_argument(
        "--database-url",
        help="an empty PostgreSQL database to use instead of a new SQLite file "
        "(postgresql+psycopg://...)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary token and logs"
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    plan = PLANS["quick" if args.quick else "smoke" if args.smoke else "full"]

    results = run(
        plan,
        args.json.resolve(),
        workers=args.workers,
        database_url=args.database_url,
        profile=args.profile,
        keep=args.keep,
    )
    print(render_text(results))
    print(f"\nwritten: {', '.join(results['outputs'].values())}")
    log(f"done in {results['elapsed_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
