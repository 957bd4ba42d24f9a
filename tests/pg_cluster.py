"""A throw-away PostgreSQL cluster for tests.

``initdb`` in a temporary folder, ``trust`` authentication, the server on a
free loopback port with its unix socket in that folder; ``stop()`` shuts it
down (``pg_ctl stop -m fast``) and deletes the folder.

PostgreSQL refuses to run as root. Run as root, the cluster belongs to the
``postgres`` system user that Debian's package creates (``runuser -u
postgres``); run as any other user, it belongs to that user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

BIN_GLOB = "/usr/lib/postgresql/*/bin"
SERVER_USER = "postgres"
SUPERUSER = "postgres"
START_TIMEOUT_S = 60
COMMAND_TIMEOUT_S = 120
# Durability is pointless for a cluster that is deleted after the run, and
# turning it off keeps the tests quick on a small machine.
SERVER_OPTIONS = (
    "-c listen_addresses=127.0.0.1",
    "-c fsync=off",
    "-c synchronous_commit=off",
    "-c full_page_writes=off",
    "-c max_connections=200",
)


class ClusterUnavailableError(RuntimeError):
    """The cluster cannot start here; the message says exactly why."""


def find_bin_dir(pattern: str = BIN_GLOB) -> Path:
    """The newest PostgreSQL binaries folder that has ``initdb`` and ``pg_ctl``."""

    def version(path: Path) -> tuple[int, ...]:
        numbers = re.findall(r"\d+", path.parent.name)
        return tuple(int(n) for n in numbers)

    candidates = [
        path
        for path in (Path(p) for p in glob.glob(pattern))
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file()
    ]
    if not candidates:
        raise ClusterUnavailableError(
            f"no PostgreSQL server binaries (initdb, pg_ctl) match {pattern}; "
            "install Debian's postgresql package (scripts/setup does)"
        )
    return max(candidates, key=version)


def _run_as() -> tuple[list[str], pwd.struct_passwd]:
    """The command prefix that runs the server binaries, and their user."""
    if os.geteuid() != 0:
        return [], pwd.getpwuid(os.geteuid())
    try:
        user = pwd.getpwnam(SERVER_USER)
    except KeyError as exc:
        raise ClusterUnavailableError(
            f"running as root, and PostgreSQL refuses root, but there is no "
            f"'{SERVER_USER}' system user to run it as"
        ) from exc
    runuser = shutil.which("runuser")
    if runuser is None:
        raise ClusterUnavailableError(
            f"running as root, and PostgreSQL refuses root, but runuser is "
            f"missing, so the server cannot be started as '{SERVER_USER}'"
        )
    return [runuser, "-u", SERVER_USER, "--"], user


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresCluster:
    """One running throw-away cluster; make databases with :meth:`create_database`."""

    def __init__(self, bin_dir: Path, base_dir: Path, port: int) -> None:
        self.bin_dir = bin_dir
        self.base_dir = base_dir
        self.port = port
        self.data_dir = base_dir / "data"
        self.socket_dir = base_dir / "socket"
        self.log_file = base_dir / "server.log"
        self._prefix, self._user = _run_as()
        self._running = False

    @classmethod
    def start_new(cls, bin_dir: Path | None = None) -> PostgresCluster:
        """initdb and start a cluster in a new temporary folder.

        :raises ClusterUnavailableError: no binaries, no user to run them as,
            or initdb / pg_ctl failed (their output is in the message).
        """
        bin_dir = bin_dir or find_bin_dir()
        base_dir = Path(tempfile.mkdtemp(prefix="pg-test-"))
        cluster = cls(bin_dir, base_dir, free_port())
        try:
            cluster._init()
            cluster._start()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _command(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._prefix, *args],
            cwd=self.base_dir,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )

    def _init(self) -> None:
        self.socket_dir.mkdir()
        for path in (self.base_dir, self.socket_dir):
            os.chown(path, self._user.pw_uid, self._user.pw_gid)
        done = self._command(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "-A",
            "trust",
            "-U",
            SUPERUSER,
            "-E",
            "UTF8",
            "--no-instructions",
        )
        if done.returncode != 0:
            raise ClusterUnavailableError(
                f"initdb failed (exit {done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-800:]}"
            )

    def _start(self) -> None:
        options = " ".join(
            (f"-p {self.port}", f"-k {self.socket_dir}", *SERVER_OPTIONS)
        )
        done = self._command(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            "-o",
            options,
            "start",
        )
        if done.returncode != 0:
            log = ""
            with contextlib.suppress(OSError):
                log = self.log_file.read_text()[-800:]
            raise ClusterUnavailableError(
                f"pg_ctl start failed (exit {done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-400:]} {log}"
            )
        self._running = True

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete the folder; idempotent."""
        if self._running:
            self._command(
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-m",
                "fast",
                "-w",
                "stop",
            )
            self._running = False
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL (psycopg 3) of ``database`` over loopback TCP."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def connect(
        self, database: str = "postgres"
    ) -> psycopg.Connection[tuple[object, ...]]:
        """A plain psycopg connection in autocommit mode."""
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=SUPERUSER,
            dbname=database,
            autocommit=True,
        )

    def create_database(self, prefix: str = "test") -> str:
        """Create an empty database with a fresh name; return its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with self.connect() as connection:
            connection.execute(
                sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            )
        return self.url(name)
