"""Settings, and the specific error each bad setting gives."""

from __future__ import annotations

import _ctypes
import dataclasses

import pytest
from pkcs11 import exceptions as p11

from hsm import DEFAULT_MODULE, HSM, HSMConfig
from hsm.errors import (
    ConfigurationError,
    DeviceError,
    HSMError,
    KeyNotFoundError,
    MechanismNotSupportedError,
    ModuleLoadError,
    PinIncorrectError,
    PinLockedError,
    SessionLostError,
    TokenNotFoundError,
    from_pkcs11,
)

PIN = "1234"


def test_from_env_reads_the_three_settings() -> None:
    config = HSMConfig.from_env(
        {
            "PKCS11_MODULE": "/opt/vendor/libp11.so",
            "PKCS11_TOKEN_LABEL": "prod-keys",
            "PKCS11_USER_PIN": "secret-pin",
        }
    )

    assert config.module == "/opt/vendor/libp11.so"
    assert config.token_label == "prod-keys"
    assert config.user_pin == "secret-pin"
    assert config.ecdh_peer_encoding == "der"


def test_module_defaults_to_debian_softhsm() -> None:
    config = HSMConfig.from_env({"PKCS11_TOKEN_LABEL": "t", "PKCS11_USER_PIN": PIN})

    assert config.module == DEFAULT_MODULE == "/usr/lib/softhsm/libsofthsm2.so"


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"PKCS11_USER_PIN": PIN}, "PKCS11_TOKEN_LABEL"),
        ({"PKCS11_TOKEN_LABEL": "", "PKCS11_USER_PIN": PIN}, "PKCS11_TOKEN_LABEL"),
        ({"PKCS11_TOKEN_LABEL": "t"}, "PKCS11_USER_PIN"),
        (
            {"PKCS11_TOKEN_LABEL": "t" * 33, "PKCS11_USER_PIN": PIN},
            "PKCS11_TOKEN_LABEL",
        ),
        (
            {
                "PKCS11_TOKEN_LABEL": "t",
                "PKCS11_USER_PIN": PIN,
                "PKCS11_ECDH_PEER_ENCODING": "hex",
            },
            "PKCS11_ECDH_PEER_ENCODING",
        ),
    ],
)
def test_missing_or_malformed_setting_is_named(
    environ: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named):
        HSMConfig.from_env(environ)


def test_pin_is_not_in_repr() -> None:
    config = HSMConfig(token_label="t", user_pin="987654")

    assert "987654" not in repr(config)
    assert "987654" not in repr(HSM(config))


def test_adapter_is_lazy() -> None:
    # Nothing is loaded until the first call, so a bad path fails there.
    adapter = HSM(HSMConfig(token_label="t", user_pin=PIN, module="/nope.so"))

    with pytest.raises(ModuleLoadError, match="PKCS11_MODULE"):
        adapter.has_keypair("k")


@pytest.mark.softhsm
@pytest.mark.parametrize(
    "module",
    ["/nonexistent/libsofthsm2.so", "/etc/hostname", "/bin"],
    ids=["missing", "not a library", "a folder"],
)
def test_bad_module_path(hsm_config: HSMConfig, module: str) -> None:
    adapter = HSM(dataclasses.replace(hsm_config, module=module))

    with pytest.raises(ModuleLoadError, match=f"PKCS11_MODULE.*{module}"):
        adapter.sign("k", b"m")


@pytest.mark.softhsm
def test_library_without_pkcs11_entry_point(hsm_config: HSMConfig) -> None:
    # A real shared library, but not a PKCS#11 one: Python's own _ctypes.
    adapter = HSM(dataclasses.replace(hsm_config, module=_ctypes.__file__))

    with pytest.raises(ModuleLoadError, match="C_GetFunctionList"):
        adapter.sign("k", b"m")


@pytest.mark.softhsm
def test_wrong_token_label(hsm_config: HSMConfig) -> None:
    adapter = HSM(dataclasses.replace(hsm_config, token_label="not-our-token"))

    with pytest.raises(TokenNotFoundError, match=r"PKCS11_TOKEN_LABEL.*not-our-token"):
        adapter.has_keypair("k")


@pytest.mark.softhsm
def test_wrong_pin_rejected_by_the_token(hsm: HSM, hsm_config: HSMConfig) -> None:
    # Log the process out first: a token checks a PIN only when no one of the
    # process is logged in (login state is per application and token).
    hsm.close()
    wrong = HSM(dataclasses.replace(hsm_config, user_pin="0000"))

    with pytest.raises(PinIncorrectError, match="PKCS11_USER_PIN") as caught:
        wrong.has_keypair("k")

    assert "0000" not in str(caught.value)
    assert isinstance(caught.value.__cause__, p11.PinIncorrect)
    # The right PIN still works afterwards.
    assert not hsm.has_keypair("k")


@pytest.mark.softhsm
def test_wrong_pin_while_logged_in_is_refused_too(
    hsm: HSM, hsm_config: HSMConfig
) -> None:
    hsm.has_keypair("k")  # logged in with the right PIN
    wrong = HSM(dataclasses.replace(hsm_config, user_pin="0000"))

    with pytest.raises(PinIncorrectError, match="PKCS11_USER_PIN") as caught:
        wrong.has_keypair("k")

    assert "0000" not in str(caught.value)


@pytest.mark.softhsm
def test_softhsm_never_locks_the_user_pin(hsm: HSM, hsm_config: HSMConfig) -> None:
    """SoftHSM 2.6 counts no PIN failures, so CKR_PIN_LOCKED is out of reach.

    This pins down that fact; the PIN_LOCKED translation is checked below on
    python-pkcs11's own exception class instead of a token's answer.
    """
    hsm.close()
    for attempt in range(12):
        # A different PIN each time: the adapter offers a refused PIN once.
        wrong = HSM(dataclasses.replace(hsm_config, user_pin=f"99{attempt:02d}"))
        with pytest.raises(PinIncorrectError) as caught:
            wrong.has_keypair("k")
        assert isinstance(caught.value.__cause__, p11.PinIncorrect)

    assert not hsm.has_keypair("k")


@pytest.mark.softhsm
def test_refused_pin_is_not_offered_again(hsm: HSM, hsm_config: HSMConfig) -> None:
    hsm.close()
    wrong = HSM(dataclasses.replace(hsm_config, user_pin="5555"))
    with pytest.raises(PinIncorrectError) as first:
        wrong.has_keypair("k")
    assert isinstance(first.value.__cause__, p11.PinIncorrect)

    with pytest.raises(PinIncorrectError, match="not tried again") as second:
        wrong.has_keypair("k")

    assert second.value.__cause__ is None
    assert "5555" not in str(second.value)
    assert not hsm.has_keypair("k")


@pytest.mark.parametrize(
    ("exc", "error", "named"),
    [
        (p11.PinLocked(), PinLockedError, "PKCS11_USER_PIN"),
        (p11.PinIncorrect(), PinIncorrectError, "PKCS11_USER_PIN"),
        (p11.PinLenRange(), PinIncorrectError, "PKCS11_USER_PIN"),
        (p11.NoSuchToken(), TokenNotFoundError, "PKCS11_TOKEN_LABEL"),
        (p11.MultipleTokensReturned(), ConfigurationError, "PKCS11_TOKEN_LABEL"),
        (p11.MechanismInvalid(), MechanismNotSupportedError, "tok"),
        (p11.DeviceError(), DeviceError, "tok"),
        (p11.ObjectHandleInvalid(), KeyNotFoundError, "key-1"),
        (p11.SessionHandleInvalid(), SessionLostError, "tok"),
        (p11.DeviceRemoved(), SessionLostError, "tok"),
        (p11.SignatureInvalid(), HSMError, "SignatureInvalid"),
    ],
)
def test_translation_of_return_codes(
    exc: p11.PKCS11Error, error: type[HSMError], named: str
) -> None:
    result = from_pkcs11(exc, module="/m.so", token_label="tok", key_label="key-1")

    assert type(result) is error
    assert named in str(result)


def test_translation_after_failed_recoveries() -> None:
    for exc in (p11.NoSuchToken(), p11.SessionClosed(), p11.TokenNotPresent()):
        result = from_pkcs11(exc, module="/m.so", token_label="tok", recoveries=2)

        assert type(result) is SessionLostError
        assert "after 2 new session" in str(result)
