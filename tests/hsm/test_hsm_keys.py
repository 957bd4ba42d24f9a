"""Key pairs in the token: attributes, lookup by label, duplicates, deletion."""

from __future__ import annotations

import textwrap
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hsm_testing import run_python

from hsm import HSM
from hsm.errors import (
    DuplicateKeyError,
    InvalidLabelError,
    KeyExistsError,
    KeyNotFoundError,
)

pytestmark = pytest.mark.softhsm


def test_generated_private_key_is_protected(
    hsm: HSM, keypair: tuple[str, ec.EllipticCurvePublicKey]
) -> None:
    label, _ = keypair

    props = hsm.private_key_properties(label)

    assert props.token
    assert props.private
    assert props.sensitive
    assert not props.extractable
    assert props.always_sensitive
    assert props.never_extractable
    assert props.sign
    assert props.derive
    assert not props.value_readable


def test_generated_public_key_is_the_returned_point(
    hsm: HSM, new_label: Callable[[], str]
) -> None:
    label = new_label()

    point = hsm.generate_keypair(label)

    assert len(point) == 65
    assert point[0] == 0x04
    assert hsm.public_key(label) == point
    # The point is on P-256 (cryptography checks it).
    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    assert hsm.has_keypair(label)
    assert label in hsm.key_labels()


def test_second_generate_under_one_label_is_refused(
    hsm: HSM, keypair: tuple[str, ec.EllipticCurvePublicKey]
) -> None:
    label, public = keypair

    with pytest.raises(KeyExistsError, match=label):
        hsm.generate_keypair(label)

    with pytest.raises(KeyExistsError, match=label):
        hsm.import_private_key(label, b"\x01" * 32)

    # The first pair is untouched.
    assert hsm.public_key(label) == public.public_bytes(
        Encoding.X962, PublicFormat.UncompressedPoint
    )


def test_delete_removes_both_keys(hsm: HSM, new_label: Callable[[], str]) -> None:
    label = new_label()
    hsm.generate_keypair(label)

    hsm.delete_keypair(label)

    assert not hsm.has_keypair(label)
    assert label not in hsm.key_labels()
    with pytest.raises(KeyNotFoundError, match=label):
        hsm.public_key(label)
    with pytest.raises(KeyNotFoundError, match=label):
        hsm.sign(label, b"message")
    with pytest.raises(KeyNotFoundError, match=label):
        hsm.delete_keypair(label)
    # The label is free again.
    hsm.generate_keypair(label)


def test_unknown_label_is_key_not_found(hsm: HSM) -> None:
    assert not hsm.has_keypair("no-such-key")

    with pytest.raises(KeyNotFoundError, match="no-such-key"):
        hsm.sign("no-such-key", b"m")

    with pytest.raises(KeyNotFoundError, match="no-such-key"):
        hsm.public_key("no-such-key")


@pytest.mark.parametrize("label", ["", "x" * 129, b"bytes-label", None])
def test_malformed_label_is_refused(hsm: HSM, label: object) -> None:
    with pytest.raises(InvalidLabelError):
        hsm.generate_keypair(label)  # type: ignore[arg-type]


# Another process creates a second key pair under a label this process already
# uses, as a racing worker could: python-pkcs11 talks to the token directly.
_MAKE_DUPLICATE = textwrap.dedent(
    """
    import os
    import pkcs11
    from pkcs11 import Attribute, KeyType
    from pkcs11.util.ec import encode_named_curve_parameters

    lib = pkcs11.lib(os.environ["PKCS11_MODULE"])
    token = lib.get_token(token_label=os.environ["PKCS11_TOKEN_LABEL"])
    with token.open(rw=True, user_pin=os.environ["PKCS11_USER_PIN"]) as session:
        params = session.create_domain_parameters(
            KeyType.EC,
            {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
            local=True,
        )
        params.generate_keypair(store=True, label=os.environ["KEY_LABEL"])
    """
)


def test_duplicate_labels_are_refused_not_guessed(
    hsm: HSM, new_label: Callable[[], str]
) -> None:
    label = new_label()
    hsm.generate_keypair(label)
    # A new session forgets remembered handles, so the lookup runs again.
    hsm.close()

    result = run_python(_MAKE_DUPLICATE, {"KEY_LABEL": label})
    assert result.returncode == 0, result.stderr

    with pytest.raises(DuplicateKeyError, match=label):
        hsm.sign(label, b"message")
    with pytest.raises(DuplicateKeyError, match=label):
        hsm.public_key(label)
    with pytest.raises(DuplicateKeyError, match=label):
        hsm.delete_keypair(label)

    # Clean up past the adapter's refusal, through the same route.
    cleanup = textwrap.dedent(
        """
        import os
        import pkcs11
        from pkcs11 import Attribute
        lib = pkcs11.lib(os.environ["PKCS11_MODULE"])
        token = lib.get_token(token_label=os.environ["PKCS11_TOKEN_LABEL"])
        with token.open(rw=True, user_pin=os.environ["PKCS11_USER_PIN"]) as s:
            for obj in list(s.get_objects({Attribute.LABEL: os.environ["KEY_LABEL"]})):
                obj.destroy()
        """
    )
    assert run_python(cleanup, {"KEY_LABEL": label}).returncode == 0
    hsm.close()
    assert not hsm.has_keypair(label)


_DELETE_ELSEWHERE = textwrap.dedent(
    """
    import os
    from hsm import HSM
    HSM().delete_keypair(os.environ["KEY_LABEL"])
    """
)


def test_key_deleted_by_another_process(
    hsm: HSM, keypair: tuple[str, ec.EllipticCurvePublicKey]
) -> None:
    label, _ = keypair
    # Both handles are now remembered by the adapter.
    hsm.sign(label, b"message")
    hsm.public_key(label)

    result = run_python(_DELETE_ELSEWHERE, {"KEY_LABEL": label})
    assert result.returncode == 0, result.stderr

    # The stale handles fail, the adapter looks again and finds nothing.
    with pytest.raises(KeyNotFoundError, match=label):
        hsm.sign(label, b"message")
    with pytest.raises(KeyNotFoundError, match=label):
        hsm.public_key(label)
    assert not hsm.has_keypair(label)
