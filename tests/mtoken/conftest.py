"""Fixtures of the simulator tests: an in-memory server and a fresh phone."""

from __future__ import annotations

import sys
from pathlib import Path

# pytest puts tests/ on sys.path for the root conftest; there the folders
# tests/mtoken and tests/hsm would pass for namespace packages and hide the
# real ones, so the checkout's root goes first.
_ROOT = str(Path(__file__).resolve().parents[2])
if sys.path[:1] != [_ROOT]:
    sys.path.insert(0, _ROOT)

import pytest  # noqa: E402
from mtoken_softserver import SoftwareServer  # noqa: E402

from mtoken.device import Device  # noqa: E402
from mtoken.state import StateStore  # noqa: E402
from mtoken.transport import CallableTransport  # noqa: E402


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
