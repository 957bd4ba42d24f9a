"""Fixtures of the HSM layer's tests: the adapter on this run's SoftHSM token.

The root conftest has created the token and set PKCS11_* and SOFTHSM2_CONF.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from hsm import HSM, HSMConfig
from hsm.errors import KeyNotFoundError

P256 = ec.SECP256R1()


@pytest.fixture(scope="session")
def hsm_config() -> HSMConfig:
    return HSMConfig.from_env()


@pytest.fixture(scope="session")
def hsm(hsm_config: HSMConfig) -> Iterator[HSM]:
    adapter = HSM(hsm_config)
    yield adapter
    adapter.close()


@pytest.fixture(scope="session")
def init_token(request: pytest.FixtureRequest) -> Callable[[Path, str], None]:
    """The root conftest's ``init_softhsm_token``.

    Every conftest module is imported under the one name ``conftest``, so the
    root one is reached through pytest's plugin manager.
    """
    path = request.config.rootpath / "tests" / "conftest.py"
    root = request.config.pluginmanager.get_plugin(str(path))
    init: Callable[[Path, str], None] = root.init_softhsm_token
    return init


@pytest.fixture
def new_label(hsm: HSM) -> Iterator[Callable[[], str]]:
    """Makes fresh key labels and deletes their key pairs after the test."""
    made: list[str] = []

    def make() -> str:
        label = f"test-{uuid.uuid4().hex[:16]}"
        made.append(label)
        return label

    yield make
    for label in made:
        try:
            hsm.delete_keypair(label)
        except KeyNotFoundError:
            pass


@pytest.fixture
def keypair(
    hsm: HSM, new_label: Callable[[], str]
) -> tuple[str, ec.EllipticCurvePublicKey]:
    """A key pair generated in the token: its label and its public key."""
    label = new_label()
    point = hsm.generate_keypair(label)
    return label, ec.EllipticCurvePublicKey.from_encoded_point(P256, point)
