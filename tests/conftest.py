"""Fixtures shared by every test: a throw-away SoftHSM token for this run.

The token is made before any test imports the PKCS#11 library, because SoftHSM
reads ``SOFTHSM2_CONF`` when it is initialized.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

SOFTHSM_MODULE = os.environ.get("TEST_PKCS11_MODULE", "/usr/lib/softhsm/libsofthsm2.so")
TOKEN_LABEL = "powerauth-test"
USER_PIN = "1234"
SO_PIN = "12345678"

_token_dir: Path | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Create the run's token and point the adapter's settings at it."""
    global _token_dir
    if shutil.which("softhsm2-util") is None or not Path(SOFTHSM_MODULE).exists():
        # Tests marked softhsm are skipped below with this reason.
        return
    _token_dir = Path(tempfile.mkdtemp(prefix="softhsm-test-"))
    init_softhsm_token(_token_dir, TOKEN_LABEL)
    os.environ["SOFTHSM2_CONF"] = str(_token_dir / "softhsm2.conf")
    os.environ["PKCS11_MODULE"] = SOFTHSM_MODULE
    os.environ["PKCS11_TOKEN_LABEL"] = TOKEN_LABEL
    os.environ["PKCS11_USER_PIN"] = USER_PIN


def pytest_unconfigure(config: pytest.Config) -> None:
    if _token_dir is not None:
        shutil.rmtree(_token_dir, ignore_errors=True)


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    if _token_dir is not None:
        return
    skip = pytest.mark.skip(reason=f"SoftHSM is not installed ({SOFTHSM_MODULE})")
    for item in items:
        if "softhsm" in item.keywords:
            item.add_marker(skip)


def init_softhsm_token(directory: Path, label: str) -> None:
    """Initialize a SoftHSM token called ``label`` in ``directory``.

    Several tokens may share one directory (one configuration file); each call
    takes the next free slot.
    """
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
    )
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            label,
            "--so-pin",
            SO_PIN,
            "--pin",
            USER_PIN,
        ],
        check=True,
        env=env,
        capture_output=True,
    )


@pytest.fixture(scope="session")
def softhsm_dir() -> Iterator[Path]:
    """The folder of this run's SoftHSM configuration and tokens."""
    if _token_dir is None:
        pytest.skip(f"SoftHSM is not installed ({SOFTHSM_MODULE})")
    yield _token_dir
