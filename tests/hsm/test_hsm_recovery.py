"""Sessions lost under the adapter, and tokens found by label only."""

from __future__ import annotations

import dataclasses
import json
import os
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hsm_testing import close_all_sessions, cryptoki, finalize_library, run_python

from hsm import HSM, HSMConfig
from hsm.errors import SessionLostError, TokenNotFoundError

pytestmark = [
    pytest.mark.softhsm,
    # When a session dies under a key search, python-pkcs11's destructor of
    # that search reports the dead session as an "Exception ignored" line;
    # the adapter has already moved to a new session by then.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

ECDSA = ec.ECDSA(hashes.SHA256())


def test_sessions_closed_under_the_adapter(
    hsm: HSM, keypair: tuple[str, ec.EllipticCurvePublicKey]
) -> None:
    label, public = keypair
    hsm.sign(label, b"before")

    close_all_sessions()

    public.verify(hsm.sign(label, b"after"), b"after", ECDSA)
    assert hsm.public_key(label)


def test_library_finalized_under_the_adapter(
    hsm: HSM, keypair: tuple[str, ec.EllipticCurvePublicKey]
) -> None:
    label, public = keypair
    hsm.sign(label, b"before")

    finalize_library()

    public.verify(hsm.sign(label, b"after"), b"after", ECDSA)
    # Derivation works on the new session too.
    peer = ec.generate_private_key(ec.SECP256R1())
    point = peer.public_key().public_bytes(
        Encoding.X962, PublicFormat.UncompressedPoint
    )
    assert hsm.ecdh(label, point) == peer.exchange(ec.ECDH(), public)


def test_faults_in_a_row_each_recover(
    hsm: HSM, keypair: tuple[str, ec.EllipticCurvePublicKey]
) -> None:
    label, public = keypair

    for fault in (close_all_sessions, finalize_library) * 3:
        fault()
        public.verify(hsm.sign(label, b"m"), b"m", ECDSA)


@pytest.fixture
def empty_softhsm_conf(tmp_path: Path) -> Iterator[Path]:
    """A SoftHSM configuration whose token folder holds no token."""
    (tmp_path / "tokens").mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tmp_path / 'tokens'}\n"
        "objectstore.backend = file\nlog.level = ERROR\n"
    )
    saved = os.environ["SOFTHSM2_CONF"]
    yield conf
    if os.environ["SOFTHSM2_CONF"] != saved:
        # The test stopped half-way: bring the run's token back for the
        # tests that follow (the next call re-initializes the library).
        os.environ["SOFTHSM2_CONF"] = saved
        cryptoki().C_Finalize(None)


def test_token_gone_for_good_gives_up_after_the_retries(
    hsm: HSM,
    hsm_config: HSMConfig,
    keypair: tuple[str, ec.EllipticCurvePublicKey],
    empty_softhsm_conf: Path,
) -> None:
    label, public = keypair
    hsm.sign(label, b"before")
    saved = os.environ["SOFTHSM2_CONF"]

    # SoftHSM reads SOFTHSM2_CONF at C_Initialize: once the adapter
    # re-initializes the library, the token has vanished.
    os.environ["SOFTHSM2_CONF"] = str(empty_softhsm_conf)
    finalize_library()

    with pytest.raises(SessionLostError, match="could not be reached again"):
        hsm.sign(label, b"lost")

    # Even with no retry allowed, the error is just as clear.
    no_retry = HSM(dataclasses.replace(hsm_config, max_retries=0))
    with pytest.raises(TokenNotFoundError, match="PKCS11_TOKEN_LABEL"):
        no_retry.sign(label, b"lost")

    # The token comes back: the next call after a re-initialization finds it.
    os.environ["SOFTHSM2_CONF"] = saved
    finalize_library()
    public.verify(hsm.sign(label, b"back"), b"back", ECDSA)


# Runs in a fresh interpreter: SoftHSM reads SOFTHSM2_CONF once, at
# C_Initialize, and this test needs a configuration with two tokens.
_TWO_TOKENS = textwrap.dedent(
    """
    import json, os
    from hsm import HSM, HSMConfig

    ours = HSM(HSMConfig.from_env())
    first = HSM(HSMConfig(
        token_label="aaa-first-token",
        user_pin=os.environ["PKCS11_USER_PIN"],
        module=os.environ["PKCS11_MODULE"],
    ))
    decoy = first.generate_keypair("server-key")
    point = ours.generate_keypair("server-key")
    print(json.dumps({
        "ours": point.hex(),
        "decoy": decoy.hex(),
        "ours_again": ours.public_key("server-key").hex(),
        "signature": ours.sign("server-key", b"which token?").hex(),
        "ours_labels": ours.key_labels(),
        "first_labels": first.key_labels(),
    }))
    """
)


def test_second_token_initialized_before_ours(
    tmp_path: Path, init_token: Callable[[Path, str], None]
) -> None:
    init_token(tmp_path, "aaa-first-token")
    init_token(tmp_path, "powerauth-second")

    result = run_python(
        _TWO_TOKENS,
        {
            "SOFTHSM2_CONF": str(tmp_path / "softhsm2.conf"),
            "PKCS11_TOKEN_LABEL": "powerauth-second",
        },
    )

    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["ours"] != out["decoy"]
    assert out["ours_again"] == out["ours"]
    assert out["ours_labels"] == ["server-key"]
    assert out["first_labels"] == ["server-key"]
    public = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), bytes.fromhex(out["ours"])
    )
    public.verify(bytes.fromhex(out["signature"]), b"which token?", ECDSA)


def test_token_label_that_no_token_has(
    hsm_config: HSMConfig, new_label: Callable[[], str]
) -> None:
    missing = HSM(dataclasses.replace(hsm_config, token_label="no-such-token"))

    with pytest.raises(TokenNotFoundError, match="PKCS11_TOKEN_LABEL"):
        missing.has_keypair("any")
