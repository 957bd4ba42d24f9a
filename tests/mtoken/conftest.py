"""Fixtures of the simulator tests: an in-memory server and a fresh phone."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtoken.device import Device
from mtoken.state import StateStore
from mtoken.transport import CallableTransport
from tests.mtoken.mtoken_softserver import SoftwareServer


@pytest.fixture
def server() -> SoftwareServer:
    return SoftwareServer()


@pytest.fixture
def transport(server: SoftwareServer) -> CallableTransport:
    return CallableTransport(server.handle, location="memory://server")


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "phone"


@pytest.fixture
def device(state_dir: Path) -> Device:
    return Device(StateStore(state_dir))
