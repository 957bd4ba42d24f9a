"""The HTTP half of the benchmark: gunicorn on loopback and a bounded load generator.

The server is the product as deployed: ``gunicorn 'webapp:create_app()'`` with
sync workers (one per core unless told otherwise) and ``--preload`` (the app
is built once, then the workers fork; each worker opens PKCS#11 itself on its
first request). The
load generator is a pool of threads, one ``httpx.Client`` each, on
127.0.0.1 only; every run stops at a request count or a time limit, whichever
comes first.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from bench_common import percentile

# What one request of a load run is: the path, the JSON body, and a check of
# the response that returns None when it is right or a short reason when not.
Check = Callable[[httpx.Response], "str | None"]
RequestFactory = Callable[[int], tuple[str, dict[str, Any], Check]]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A gunicorn master started by the benchmark, stopped by its own pid."""

    process: subprocess.Popen[bytes]
    base_url: str
    access_log: Path
    error_log: Path
    workers: int

    def worker_pids(self) -> list[int]:
        """The master's children (the workers), from /proc."""
        pid = self.process.pid
        try:
            text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def stop(self) -> None:
        if self.process.poll() is None:
            # TERM is gunicorn's graceful shutdown of the master and workers.
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(
    root: Path, env: Mapping[str, str], workers: int, log_dir: Path
) -> Server:
    """Start gunicorn on a free loopback port and wait until /health answers."""
    port = free_port()
    access_log = log_dir / "gunicorn-access.log"
    error_log = log_dir / "gunicorn-error.log"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--preload",
        # Each access line: the worker's pid (which workers signed), the
        # status, the path, and the time the worker spent on the request in
        # µs (the rest of a client's latency is queueing and the network).
        "--access-logfile",
        str(access_log),
        "--access-logformat",
        "%(p)s %(s)s %(U)s %(D)s",
        "--error-logfile",
        str(error_log),
        "webapp:create_app()",
    ]
    process = subprocess.Popen(command, cwd=root, env=dict(env))
    server = Server(process, f"http://127.0.0.1:{port}", access_log, error_log, workers)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"gunicorn exited with status {process.returncode}; see {error_log}"
            )
        try:
            if httpx.get(f"{server.base_url}/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"gunicorn did not answer /health within 60 s; see {error_log}")


def signing_worker_pids(server: Server, path: str) -> set[str]:
    """The pids of the workers that answered ``path`` with 200 (access log)."""
    pids = set()
    for line in server.access_log.read_text().splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[1] == "200" and parts[2] == path:
            pids.add(parts[0])
    return pids


def cpu_pressure_us() -> int | None:
    """Total µs some task waited for a CPU (Linux PSI), or None without PSI.

    Its growth over a run, divided by the run's wall time, says how much of
    that run the machine had more runnable tasks than cores (other work on
    a shared machine included).
    """
    try:
        for line in Path("/proc/pressure/cpu").read_text().splitlines():
            if line.startswith("some "):
                return int(line.rsplit("total=", 1)[1])
    except (OSError, IndexError, ValueError):
        return None
    return None


def _server_times_ms(server: Server, start: int) -> list[float]:
    """The worker time of each request logged since byte ``start`` of the log."""
    # gunicorn writes an access line after the response; give the last ones
    # a moment to reach the file.
    time.sleep(0.2)
    with server.access_log.open("rb") as log:
        log.seek(start)
        text = log.read().decode("utf-8", "replace")
    times = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3].isdigit():
            times.append(int(parts[3]) / 1000)
    return times


def _cpu_seconds(pids: list[int]) -> float | None:
    """utime + stime of ``pids`` in seconds, from /proc (None when unreadable)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    try:
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None
    return total / ticks


@dataclass
class LoadResult:
    """One load run: ``clients`` threads against one endpoint."""

    endpoint: str
    clients: int
    requests: int
    errors: int
    wall_s: float
    latencies_ms: list[float] = field(repr=False)
    error_samples: list[str]
    client_cpu_s: float
    server_cpu_s: float | None
    cpu_pressure_s: float | None = None
    server_ms: list[float] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "clients": self.clients,
            "requests": self.requests,
            "errors": self.errors,
            "wall_s": round(self.wall_s, 3),
            "requests_per_s": round(self.requests / self.wall_s, 1)
            if self.wall_s
            else 0.0,
            "p50_ms": round(percentile(self.latencies_ms, 0.50), 3),
            "p99_ms": round(percentile(self.latencies_ms, 0.99), 3),
            "max_ms": round(max(self.latencies_ms, default=float("nan")), 3),
            # Time inside a worker, from the access log.
            "server_p50_ms": round(percentile(self.server_ms, 0.50), 3),
            "server_p99_ms": round(percentile(self.server_ms, 0.99), 3),
            # Cores busy on average: the load generator (this process, all
            # threads) and the gunicorn workers.
            "client_cores": round(self.client_cpu_s / self.wall_s, 2)
            if self.wall_s
            else None,
            "server_cores": round(self.server_cpu_s / self.wall_s, 2)
            if self.wall_s and self.server_cpu_s is not None
            else None,
            # Share of the run during which some task waited for a core.
            "cpu_pressure": round(self.cpu_pressure_s / self.wall_s, 2)
            if self.wall_s and self.cpu_pressure_s is not None
            else None,
            "error_samples": self.error_samples,
        }


def run_load(
    server: Server,
    endpoint: str,
    clients: int,
    make_request: RequestFactory,
    *,
    max_requests: int,
    max_seconds: float,
) -> LoadResult:
    """Drive ``endpoint`` with ``clients`` threads until either bound is reached.

    ``make_request(i)`` builds client ``i``'s next request; it runs outside
    the latency timer. Errors are transport failures, statuses other than 200
    and responses the check refuses.
    """
    lock = threading.Lock()
    issued = 0
    latencies: list[float] = []
    errors: list[str] = []
    began = deadline = 0.0

    def open_gate() -> None:
        # Runs once every client has its connection pool ready, so that
        # making clients is not part of the time bound.
        nonlocal began, deadline
        began = time.perf_counter()
        deadline = began + max_seconds

    start_gate = threading.Barrier(clients + 1, action=open_gate)

    def take_ticket() -> bool:
        nonlocal issued
        with lock:
            if issued >= max_requests or time.perf_counter() >= deadline:
                return False
            issued += 1
            return True

    def client_loop(index: int) -> None:
        with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
            start_gate.wait()
            while take_ticket():
                path, body, check = make_request(index)
                sent = time.perf_counter()
                try:
                    response = client.post(path, json=body)
                    problem = check(response)
                except httpx.HTTPError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                except (ValueError, KeyError, TypeError) as exc:
                    # A body that is not the JSON envelope the check expects.
                    problem = f"malformed response: {type(exc).__name__}"
                took = (time.perf_counter() - sent) * 1000
                with lock:
                    latencies.append(took)
                    if problem is not None:
                        errors.append(problem)

    threads = [
        threading.Thread(target=client_loop, args=(i,), daemon=True)
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    workers = server.worker_pids()
    log_start = server.access_log.stat().st_size
    server_cpu_before = _cpu_seconds(workers)
    pressure_before = cpu_pressure_us()
    cpu_before = time.process_time()
    start_gate.wait()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    client_cpu = time.process_time() - cpu_before
    pressure_after = cpu_pressure_us()
    pressure = (
        (pressure_after - pressure_before) / 1e6
        if pressure_before is not None and pressure_after is not None
        else None
    )
    server_cpu_after = _cpu_seconds(workers)
    server_cpu = (
        server_cpu_after - server_cpu_before
        if server_cpu_before is not None and server_cpu_after is not None
        else None
    )
    return LoadResult(
        endpoint=endpoint,
        clients=clients,
        requests=len(latencies),
        errors=len(errors),
        wall_s=wall,
        latencies_ms=latencies,
        error_samples=sorted(set(errors))[:5],
        client_cpu_s=client_cpu,
        server_cpu_s=server_cpu,
        cpu_pressure_s=pressure,
        server_ms=_server_times_ms(server, log_start),
    )


def expect_ok(response: httpx.Response) -> str | None:
    """The check of a create request: 200 with the OK envelope."""
    if response.status_code != 200:
        return f"HTTP {response.status_code}"
    if response.json().get("status") != "OK":
        return "status is not OK"
    return None


def expect_valid_signature(response: httpx.Response) -> str | None:
    """The check of a verify request with a right code: signatureValid true."""
    problem = expect_ok(response)
    if problem is not None:
        return problem
    if response.json()["responseObject"].get("signatureValid") is not True:
        return "signatureValid is not true"
    return None


def combine_loads(runs: list[LoadResult]) -> dict[str, Any]:
    """One client count over several rounds.

    The rate is the median of the rounds' rates; latencies are pooled for the
    percentiles; requests, errors and CPU add up.
    """
    pooled = LoadResult(
        endpoint=runs[0].endpoint,
        clients=runs[0].clients,
        requests=sum(run.requests for run in runs),
        errors=sum(run.errors for run in runs),
        wall_s=sum(run.wall_s for run in runs),
        latencies_ms=[ms for run in runs for ms in run.latencies_ms],
        error_samples=sorted({e for run in runs for e in run.error_samples})[:5],
        client_cpu_s=sum(run.client_cpu_s for run in runs),
        server_cpu_s=None
        if any(run.server_cpu_s is None for run in runs)
        else sum(run.server_cpu_s or 0.0 for run in runs),
        cpu_pressure_s=None
        if any(run.cpu_pressure_s is None for run in runs)
        else sum(run.cpu_pressure_s or 0.0 for run in runs),
        server_ms=[ms for run in runs for ms in run.server_ms],
    )
    figure = pooled.as_dict()
    rates = [run.requests / run.wall_s for run in runs if run.wall_s]
    if rates:
        figure["requests_per_s"] = round(statistics.median(rates), 1)
        figure["requests_per_s_rounds"] = [round(rate, 1) for rate in rates]
    return figure


# Where a worker's time goes, from py-spy stacks: the first category whose
# marker is in a stack takes the sample. Idle and lock-wait come first, so that
# time spent waiting is not counted as work of the frames above it.
PROFILE_CATEGORIES = (
    ("idle: waiting for a connection", ("SyncWorker.wait ",)),
    ("closing the connection", ("close_graceful",)),
    ("SQLite write lock wait (BEGIN IMMEDIATE)", ("_on_begin ",)),
    ("database commit", ("do_commit ",)),
    ("token: ECDH or sign (hsm adapter)", ("hsm/adapter.py",)),
    ("offline code window (protocol core)", ("verify_offline_code ",)),
    ("database: ORM, queries, flush", ("sqlalchemy/",)),
    ("Flask, request, JSON, services", ("flask/", "werkzeug/", "webapp/")),
)


def categorize_stacks(collapsed: str) -> dict[str, float]:
    """Shares of samples per category, from py-spy's raw (collapsed) output."""
    counts: dict[str, int] = {}
    total = 0
    for line in collapsed.splitlines():
        stack, _, number = line.rstrip().rpartition(" ")
        if not number.isdigit():
            continue
        count = int(number)
        total += count
        name = next(
            (
                name
                for name, markers in PROFILE_CATEGORIES
                if any(marker in stack for marker in markers)
            ),
            "other",
        )
        counts[name] = counts.get(name, 0) + count
    return {
        name: round(count / total, 3)
        for name, count in sorted(counts.items(), key=lambda item: -item[1])
    }


def profile_workers(
    server: Server,
    endpoint: str,
    clients: int,
    make_request: RequestFactory,
    *,
    seconds: float,
    out_dir: Path,
) -> dict[str, Any]:
    """Sample every worker with py-spy (idle time included) during one load run."""
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        return {"error": f"py-spy is not installed at {spy}"}
    pids = server.worker_pids()
    outputs = [out_dir / f"py-spy-{endpoint}-{pid}.txt" for pid in pids]
    recorders = [
        subprocess.Popen(
            [
                str(spy), "record", "--idle", "--nonblocking", "--rate", "250",
                "--format", "raw", "--duration", str(int(seconds) + 2),
                "--pid", str(pid), "--output", str(output),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for pid, output in zip(pids, outputs, strict=True)
    ]  # fmt: skip
    time.sleep(1.0)
    run = run_load(
        server,
        endpoint,
        clients,
        make_request,
        max_requests=1_000_000,
        max_seconds=seconds,
    )
    problems = []
    for recorder in recorders:
        _, stderr = recorder.communicate(timeout=60)
        if recorder.returncode != 0:
            problems.append(stderr.decode(errors="replace").strip()[-300:])
    collapsed = "\n".join(path.read_text() for path in outputs if path.exists())
    result: dict[str, Any] = {
        "clients": clients,
        "run": run.as_dict(),
        "where_the_workers_time_goes": categorize_stacks(collapsed),
        "stacks": [str(path) for path in outputs],
    }
    if problems:
        result["py_spy_errors"] = problems
    return result
