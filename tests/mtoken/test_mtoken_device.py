"""The device library against the in-memory software server."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest
import segno
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtoken.device import Device
from mtoken.errors import (
    ActivationCodeError,
    ActivationStateError,
    AmbiguousActivationError,
    BiometryNotAllowedError,
    IndicatorMismatchError,
    PayloadFormatError,
    PayloadSignatureError,
    PinFormatError,
    ServerError,
    UnknownActivationError,
)
from mtoken.qr import decode_qr_image
from mtoken.state import StateStore
from mtoken.transport import CallableTransport
from powerauth.crypto import next_counter
from powerauth.errors import SignatureMismatchError
from powerauth.operation_data import NoteField, build_operation_data
from powerauth.payload import KeyIndicator, build_payload_data
from powerauth.signature import SignatureType
from tests.mtoken.mtoken_softserver import APPLICATION_ID, PIN, SoftwareServer, b64

PAYMENT = "\n".join(
    [
        "5ff1b1ed-a3cc-45a3-8ab0-ed60950312b6",
        "Platba",
        "Potvrďte prosím platbu",
        "A1*A1234.5CZK*ICZ2730300000001165254011,FIOBCZPP*D20260425*NPro Jana",
        "B",
    ]
)
LOGIN_NO_BIOMETRY = "\n".join(
    ["op-login-1", "Login", "Přihlášení do bankovnictví", "A2", ""]
)


def activate(
    device: Device,
    server: SoftwareServer,
    transport: CallableTransport,
    *,
    commit: bool = True,
    with_master: bool = True,
) -> str:
    activation, signature = server.init()
    result = device.activate(
        transport,
        activation.code,
        PIN,
        signature_b64=signature if with_master else None,
        name="test phone",
        commit=commit,
        application_id=APPLICATION_ID if with_master else None,
    )
    return result.activation_id


class TestActivation:
    def test_fingerprint_and_state_match_the_server(
        self, device: Device, server: SoftwareServer, transport: CallableTransport
    ) -> None:
        activation, signature = server.init()

        result = device.activate(
            transport,
            activation.code,
            PIN,
            signature_b64=signature,
            application_id=APPLICATION_ID,
        )

        assert result.fingerprint == activation.fingerprint
        assert result.state.status == "PENDING_COMMIT"
        assert not result.committed
        stored = device.status(result.activation_id)
        assert stored.ctr_data == activation.ctr_data
        assert stored.server_public_key == activation.server_public_key
        assert stored.master_public_key == server.master_public_key
        assert stored.server_url == "memory://server"
        assert server.activations[result.activation_id].status == "PENDING_COMMIT"

    def test_state_file_holds_no_plain_knowledge_key(
        self,
        device: Device,
        server: SoftwareServer,
        transport: CallableTransport,
        state_dir: Path,
    ) -> None:
        activation_id = activate(device, server, transport)
        keys = server.activations[activation_id].keys
        assert keys is not None

        text = (state_dir / f"{activation_id}.json").read_text()

        assert b64(keys.knowledge) not in text
        assert b64(keys.possession) in text  # keystore stand-in, stated in the file
        assert json.loads(text)["knowledgeKey"]["iterations"] == 10_000

    def test_commit(
        self, device: Device, server: SoftwareServer, transport: CallableTransport
    ) -> None:
        activation_id = activate(device, server, transport, commit=True)
        assert device.status().status == "ACTIVE"
        assert server.activations[activation_id].status == "ACTIVE"

    def test_qr_form_of_the_code(
        self, device: Device, server: SoftwareServer, transport: CallableTransport
    ) -> None:
        activation, signature = server.init()
        result = device.activate(
            transport,
            f"{activation.code}#{signature}",
            PIN,
            master_public_key=server.master_public_key,
        )
        assert result.fingerprint == activation.fingerprint

    def test_bad_checksum_is_refused_before_any_call(
        self, device: Device, server: SoftwareServer, transport: CallableTransport
    ) -> None:
        activation, _ = server.init()
        broken = activation.code[:-1] + ("A" if activation.code[-1] != "A" else "B")
        with pytest.raises(ActivationCodeError, match="invalid"):
            device.activate(transport, broken, PIN)
        assert server.calls == []
        assert device.activations() == []

    def test_wrong_code_signature_is_refused(
        self, device: Device, server: SoftwareServer, transport: CallableTransport
    ) -> None:
        activation, _ = server.init()
        _, other_signature = server.init()
        with pytest.raises(ActivationCodeError, match="does not verify"):
            device.activate(
                transport,
                activation.code,
                PIN,
                signature_b64=other_signature,
                application_id=APPLICATION_ID,
            )
        assert "/rest/v3/activation/prepare" not in server.calls

    def test_signature_needs_a_master_key(
        self, device: Device, server: SoftwareServer, transport: CallableTransport
    ) -> None:
        activation, signature = server.init()
        with pytest.raises(ActivationCodeError, match="master public key"):
            device.activate(transport, activation.code, PIN, signature_b64=signature)

    def test_short_pin(
        self, device: Device, server: SoftwareServer, transport: CallableTransport
    ) -> None:
        activation, _ = server.init()
        with pytest.raises(PinFormatError, match="4 to 64"):
            device.activate(transport, activation.code, "123")

    def test_server_error_is_reported(
        self, device: Device, server: SoftwareServer, transport: CallableTransport
    ) -> None:
        activation, _ = server.init()
        activation.status = "ACTIVE"  # the code is used up
        with pytest.raises(ServerError, match="ERR0009"):
            device.activate(transport, activation.code, PIN)
        assert device.activations() == []

    def test_bad_server_key_is_refused(self, device: Device) -> None:
        def handler(path: str, envelope: dict[str, object]) -> dict[str, object]:
            return {
                "status": "OK",
                "responseObject": {
                    "activationId": "a1",
                    "serverPublicKey": b64(b"\x04" + bytes(64)),
                    "ctrData": b64(bytes(16)),
                    "activationStatus": "PENDING_COMMIT",
                },
            }

        with pytest.raises(ServerError, match="serverPublicKey"):
            device.activate(CallableTransport(handler), "AAAAA-AAAAA-AAAAA-AAAAA", PIN)
        assert device.activations() == []


class TestScan:
    def test_personalized_and_master_payloads_verify(
        self, device: Device, server: SoftwareServer, transport: CallableTransport
    ) -> None:
        activation_id = activate(device, server, transport)
        personal, _ = server.qr(PAYMENT, activation_id)
        generic, _ = server.qr(LOGIN_NO_BIOMETRY)

        verified = device.scan(personal)
        assert verified.activation_id == activation_id
        assert verified.personalized
        assert verified.payload.title == "Platba"
        assert not device.scan(generic).personalized

    @pytest.mark.parametrize(
        ("old", "new"),
        [
            ("Platba", "Plátba"),  # title
            ("A1234.5CZK", "A9234.5CZK"),  # amount
            ("\nB\n", "\n\n"),  # flags
        ],
    )
    def test_tampered_payload_is_refused(
        self,
        device: Device,
        server: SoftwareServer,
        transport: CallableTransport,
        old: str,
        new: str,
    ) -> None:
        activation_id = activate(device, server, transport)
        payload, _ = server.qr(PAYMENT, activation_id)
        assert old in payload

        with pytest.raises(PayloadSignatureError, match="does not verify"):
            device.scan(payload.replace(old, new, 1))

    def test_tampered_nonce_is_refused(
        self, device: Device, server: SoftwareServer, transport: CallableTransport
    ) -> None:
        activation_id = activate(device, server, transport)
        payload, nonce = server.qr(PAYMENT, activation_id)
        other = b64(bytes(16))
        with pytest.raises(PayloadSignatureError):
            device.scan(payload.replace(nonce, other))

    @pytest.mark.parametrize("personalized", [True, False])
    def test_switched_indicator_is_refused(
        self,
        device: Device,
        server: SoftwareServer,
        transport: CallableTransport,
        personalized: bool,
    ) -> None:
        activation_id = activate(device, server, transport)
        payload, _ = server.qr(PAYMENT, activation_id if personalized else None)
        lines = payload.split("\n")
        switched = ("0" if personalized else "1") + lines[-1][1:]

        with pytest.raises(PayloadSignatureError):
            device.scan("\n".join([*lines[:-1], switched]))

    def test_master_signature_under_personalized_indicator(
        self, device: Device, server: SoftwareServer, transport: CallableTransport
    ) -> None:
        activation_id = activate(device, server, transport)
        payload, _ = server.qr(
            PAYMENT,
            activation_id,
            signer=server.master_scalar,
            indicator=KeyIndicator.PERSONALIZED,
        )
        with pytest.raises(IndicatorMismatchError, match="master key"):
            device.scan(payload)

    def test_server_key_under_master_indicator(
        self, device: Device, server: SoftwareServer, transport: CallableTransport
    ) -> None:
        activation_id = activate(device, server, transport)
        payload, _ = server.qr(
            PAYMENT,
            signer=server.activations[activation_id].server_scalar,
            indicator=KeyIndicator.MASTER,
        )
        with pytest.raises(IndicatorMismatchError, match="server key"):
            device.scan(payload)

    def test_master_payload_without_master_key(
        self, device: Device, server: SoftwareServer, transport: CallableTransport
    ) -> None:
        activate(device, server, transport, with_master=False)
        payload, _ = server.qr(PAYMENT)
        with pytest.raises(IndicatorMismatchError, match="no master public key"):
            device.scan(payload)

    def test_payload_for_another_activation(
        self, device: Device, server: SoftwareServer, transport: CallableTransport
    ) -> None:
        first = activate(device, server, transport)
        second = activate(device, server, transport)
        payload, _ = server.qr(PAYMENT, second)

        assert device.scan(payload).activation_id == second  # picked by key
        with pytest.raises(IndicatorMismatchError, match=second):
            device.scan(payload, activation_id=first)

    def test_unknown_activation_key(
        self, device: Device, server: SoftwareServer, transport: CallableTransport
    ) -> None:
        activate(device, server, transport)
        other_server = SoftwareServer()
        other, _ = other_server.init()
        payload, _ = other_server.qr(PAYMENT, other.activation_id)
        with pytest.raises(PayloadSignatureError):
            device.scan(payload)

    def test_master_payload_with_two_activations_needs_a_choice(
        self, device: Device, server: SoftwareServer, transport: CallableTransport
    ) -> None:
        first = activate(device, server, transport)
        activate(device, server, transport)
        payload, _ = server.qr(PAYMENT)
        with pytest.raises(AmbiguousActivationError, match="--activation"):
            device.scan(payload)
        assert device.scan(payload, activation_id=first).activation_id == first

    def test_no_activation(self, device: Device) -> None:
        with pytest.raises(UnknownActivationError, match="mtoken activate"):
            device.scan(SoftwareServer().qr(PAYMENT)[0])
        with pytest.raises(UnknownActivationError):
            device.status("nope")

    def test_malformed_payload(self, device: Device) -> None:
        with pytest.raises(PayloadFormatError, match="at least 7 lines"):
            device.scan("just\na\nfew\nlines")


class TestSign:
    def test_pin_code_is_accepted_and_counter_advances(
        self, device: Device, server: SoftwareServer, transport: CallableTransport
    ) -> None:
        activation_id = activate(device, server, transport)
        payload, _ = server.qr(PAYMENT, activation_id)
        before = device.status().ctr_data

        verified = device.scan(payload)
        code = device.sign(verified, pin=PIN)

        assert code.signature_type is SignatureType.POSSESSION_KNOWLEDGE
        after = device.status()
        assert after.ctr_data == next_counter(before)
        assert after.codes_computed == 1
        accepted = server.verify(
            activation_id, verified.payload.base_string(), code.code, False
        )
        assert accepted is SignatureType.POSSESSION_KNOWLEDGE
        digits = code.code.replace("-", "")
        assert code.grouped == " ".join(digits[i : i + 4] for i in range(0, 16, 4))
        assert code.code not in repr(code)

    def test_same_payload_twice_gives_new_codes(
        self, device: Device, server: SoftwareServer, transport: CallableTransport
    ) -> None:
        activation_id = activate(device, server, transport)
        payload, _ = server.qr(PAYMENT, activation_id)
        first = device.sign(payload, pin=PIN)
        second = device.sign(payload, pin=PIN)
        assert first.code != second.code
        # The server finds the second code one step ahead (lookahead).
        base = device.scan(payload).payload.base_string()
        server.verify(activation_id, base, second.code, False)
        assert device.status().codes_computed == 2

    def test_wrong_pin_gives_a_code_the_server_refuses(
        self, device: Device, server: SoftwareServer, transport: CallableTransport
    ) -> None:
        activation_id = activate(device, server, transport)
        payload, _ = server.qr(PAYMENT, activation_id)
        verified = device.scan(payload)

        code = device.sign(verified, pin="9999")

        with pytest.raises(SignatureMismatchError):
            server.verify(
                activation_id, verified.payload.base_string(), code.code, True
            )
        assert device.status().codes_computed == 1

    def test_biometry(
        self, device: Device, server: SoftwareServer, transport: CallableTransport
    ) -> None:
        activation_id = activate(device, server, transport)
        payload, _ = server.qr(PAYMENT)  # non-personalized, with B
        verified = device.scan(payload)

        code = device.sign(verified, biometry=True)

        assert code.signature_type is SignatureType.POSSESSION_BIOMETRY
        base = verified.payload.base_string()
        assert server.verify(activation_id, base, code.code, True) is (
            SignatureType.POSSESSION_BIOMETRY
        )

    def test_biometry_needs_the_b_flag(
        self, device: Device, server: SoftwareServer, transport: CallableTransport
    ) -> None:
        activation_id = activate(device, server, transport)
        payload, _ = server.qr(LOGIN_NO_BIOMETRY, activation_id)
        with pytest.raises(BiometryNotAllowedError, match="B flag"):
            device.sign(payload, biometry=True)
        assert device.status().codes_computed == 0

    def test_proximity_totp_enters_the_code(
        self, device: Device, server: SoftwareServer, transport: CallableTransport
    ) -> None:
        activation_id = activate(device, server, transport)
        payload, _ = server.qr(PAYMENT, activation_id, totp="12345678")
        verified = device.scan(payload)
        assert verified.payload.totp == "12345678"

        code = device.sign(verified, pin=PIN)

        server.verify(activation_id, verified.payload.base_string(), code.code, False)

    def test_sign_rechecks_the_signature(
        self, device: Device, server: SoftwareServer, transport: CallableTransport
    ) -> None:
        activation_id = activate(device, server, transport)
        verified = device.scan(server.qr(PAYMENT, activation_id)[0])
        device.remove(activation_id)
        activate(device, server, transport)
        with pytest.raises(UnknownActivationError):
            device.sign(verified, pin=PIN)

    def test_concurrent_signs_never_share_a_counter_value(
        self,
        device: Device,
        server: SoftwareServer,
        transport: CallableTransport,
        state_dir: Path,
    ) -> None:
        activation_id = activate(device, server, transport)
        verified = device.scan(server.qr(PAYMENT, activation_id)[0])
        codes: list[str] = []

        def sign_five() -> None:
            # A second Device on the same folder: another app process.
            other = Device(StateStore(state_dir))
            codes.extend(other.sign(verified, pin=PIN).code for _ in range(5))

        threads = [threading.Thread(target=sign_five) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert len(set(codes)) == 15
        assert device.status().codes_computed == 15

    def test_sign_accepts_text_or_parsed_payload(
        self, device: Device, server: SoftwareServer, transport: CallableTransport
    ) -> None:
        activation_id = activate(device, server, transport)
        payload, _ = server.qr(PAYMENT, activation_id)
        parsed = device.scan(payload).payload
        base = parsed.base_string()

        for form in (payload, parsed):
            code = device.sign(form, pin=PIN)
            server.verify(activation_id, base, code.code, False)

    def test_short_pin_computes_nothing(
        self, device: Device, server: SoftwareServer, transport: CallableTransport
    ) -> None:
        activation_id = activate(device, server, transport)
        payload, _ = server.qr(PAYMENT, activation_id)
        with pytest.raises(PinFormatError):
            device.sign(payload, pin="12")
        assert device.status().codes_computed == 0

    def test_exactly_one_factor(
        self, device: Device, server: SoftwareServer, transport: CallableTransport
    ) -> None:
        activation_id = activate(device, server, transport)
        payload, _ = server.qr(PAYMENT, activation_id)
        with pytest.raises(ValueError, match="exactly one"):
            device.sign(payload)
        with pytest.raises(ValueError, match="exactly one"):
            device.sign(payload, pin=PIN, biometry=True)


class TestList:
    def test_list_status_remove(
        self, device: Device, server: SoftwareServer, transport: CallableTransport
    ) -> None:
        first = activate(device, server, transport)
        second = activate(device, server, transport)

        assert {s.activation_id for s in device.activations()} == {first, second}
        with pytest.raises(AmbiguousActivationError):
            device.status()
        assert device.remove(first) == first
        assert device.status().activation_id == second
        view = device.status().public_view()
        assert "possessionKey" not in json.dumps(view)

    def test_blocked_activation_does_not_sign(
        self, device: Device, server: SoftwareServer, transport: CallableTransport
    ) -> None:
        activation_id = activate(device, server, transport)
        payload, _ = server.qr(PAYMENT, activation_id)
        server.activations[activation_id].status = "BLOCKED"
        device.refresh_status(transport, activation_id)

        with pytest.raises(ActivationStateError, match="BLOCKED"):
            device.sign(payload, pin=PIN)
        assert device.status().codes_computed == 0

        server.activations[activation_id].status = "ACTIVE"
        device.refresh_status(transport, activation_id)
        device.sign(payload, pin=PIN)

    def test_refresh_status(
        self, device: Device, server: SoftwareServer, transport: CallableTransport
    ) -> None:
        activation_id = activate(device, server, transport, commit=False)
        server.activations[activation_id].status = "BLOCKED"
        assert device.refresh_status(transport, activation_id).status == "BLOCKED"
        assert device.status().status == "BLOCKED"


# Text a bank may put in a title, a message or a note: any printable
# character from any script (no control characters, which the format forbids).
PRINTABLE = st.text(
    st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=40
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(title=PRINTABLE, message=PRINTABLE, note=PRINTABLE)
def test_signed_qr_image_round_trip(
    device: Device,
    server: SoftwareServer,
    transport: CallableTransport,
    title: str,
    message: str,
    note: str,
) -> None:
    """A signed payload survives PNG rendering and scanning byte for byte."""
    if not device.activations():
        activate(device, server, transport)
    activation_id = device.activations()[0].activation_id
    operation_data = build_operation_data(1, [NoteField(note)])
    data = build_payload_data("op-h", title, message, operation_data, "B")
    payload, _ = server.qr(data, activation_id)
    image = io.BytesIO()
    segno.make(payload.encode("utf-8"), mode="byte").save(image, kind="png", scale=3)

    verified = device.scan(decode_qr_image(image.getvalue()))

    assert verified.payload.text == payload
    assert verified.payload.title == title
    assert verified.payload.message == message
    assert verified.payload.operation_data_text == operation_data
