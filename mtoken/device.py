"""The simulated phone: activation, QR verification and offline codes.

The device is as strict as the PowerAuth mobile SDK: it refuses a payload
whose ECDSA signature does not verify with the key its indicator names
(SPEC 3.4), refuses biometry without the ``B`` flag (SPEC 3.5), and moves
CTR_DATA forward for every code it computes, typed in or not (SPEC 5.6).
All protocol math comes from :mod:`powerauth`.
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

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
from mtoken.state import (
    PIN_SALT_LENGTH,
    DeviceState,
    ProtectedKey,
    StateStore,
    check_activation_id,
)
from mtoken.transport import JSONObject, Transport
from powerauth.activation import (
    parse_activation_qr_text,
    public_key_fingerprint,
    validate_activation_code,
)
from powerauth.crypto import (
    FactorKeys,
    derive_factor_keys,
    master_secret_from_shared_x,
    next_counter,
)
from powerauth.errors import (
    ActivationCodeError as ProtocolActivationCodeError,
)
from powerauth.errors import (
    InvalidKeyError,
    InvalidServerSignatureError,
    MalformedPayloadError,
)
from powerauth.keys import (
    ecdh_shared_x,
    public_key_from_private,
    validate_public_key,
    verify_ecdsa_der,
)
from powerauth.payload import KeyIndicator, OfflinePayload, parse_offline_payload
from powerauth.signature import (
    DEFAULT_COMPONENT_LENGTH,
    OFFLINE_URI_ID,
    SignatureType,
    compute_offline_code,
)

logger = logging.getLogger(__name__)

PREPARE_PATH = "/rest/v3/activation/prepare"
COMMIT_PATH = "/rest/v3/activation/commit"
STATUS_PATH = "/rest/v3/activation/status"
APPLICATION_DETAIL_PATH = "/rest/v3/application/detail"

# Statuses in which the SDK refuses to compute codes (SPEC 8.5 state machine).
_UNUSABLE_STATUSES = frozenset({"BLOCKED", "REMOVED"})

MIN_PIN_LENGTH = 4
MAX_PIN_LENGTH = 64

# The device holds no vault key (offline signatures never use it), and when
# it signs with biometry it does not unlock the knowledge key. FactorKeys
# needs 16 bytes in every slot, so those slots get this unused filler.
_UNUSED_SLOT = bytes(16)


@dataclass(frozen=True)
class ActivationResult:
    """What the phone shows after the key exchange."""

    state: DeviceState
    committed: bool

    @property
    def activation_id(self) -> str:
        return self.state.activation_id

    @property
    def fingerprint(self) -> str:
        """SPEC 8.3 fingerprint, to compare with the one the server shows."""
        return self.state.fingerprint


@dataclass(frozen=True)
class VerifiedPayload:
    """A QR payload whose ECDSA signature verified for one stored activation."""

    payload: OfflinePayload
    activation_id: str

    @property
    def personalized(self) -> bool:
        return self.payload.indicator == KeyIndicator.PERSONALIZED


@dataclass(frozen=True)
class OfflineCode:
    """A computed offline code and how it was made (never logged)."""

    code: str
    signature_type: SignatureType
    activation_id: str

    @property
    def grouped(self) -> str:
        """The digits in groups of four, as a phone shows them for reading."""
        digits = self.code.replace("-", "")
        return " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))

    def __repr__(self) -> str:
        return (
            f"OfflineCode(signature_type={self.signature_type.value}, "
            f"activation_id={self.activation_id!r})"
        )


def check_pin(pin: str) -> None:
    """Check the device's PIN rule: 4 to 64 characters.

    :raises PinFormatError: the PIN is too short or too long.
    """
    if not MIN_PIN_LENGTH <= len(pin) <= MAX_PIN_LENGTH:
        raise PinFormatError(
            f"the PIN must be {MIN_PIN_LENGTH} to {MAX_PIN_LENGTH} characters"
        )


class Device:
    """A phone with a mobile token app holding one or more activations."""

    def __init__(self, store: StateStore | None = None) -> None:
        self.store = store or StateStore()

    # -- activation (SPEC 8.3, 8.5) -----------------------------------------

    def activate(
        self,
        transport: Transport,
        activation_code: str,
        pin: str,
        *,
        signature_b64: str | None = None,
        name: str | None = None,
        commit: bool = False,
        application_id: str | None = None,
        master_public_key: bytes | None = None,
    ) -> ActivationResult:
        """Run the key exchange with the server and store the new activation.

        :param activation_code: ``XXXXX-XXXXX-XXXXX-XXXXX``, or the QR form
            ``CODE#SIGNATURE`` (then ``signature_b64`` must be absent).
        :param signature_b64: the code's ECDSA signature by the master key;
            when given it is verified before anything is sent.
        :param application_id: lets the device fetch the master public key
            from the server's application detail.
        :param master_public_key: the master public key as a phone app would
            bundle it; wins over fetching it.
        :raises ActivationCodeError: bad checksum, or a signature that does
            not verify, or a signature with no master key to check it.
        :raises PinFormatError: the PIN breaks the PIN rules.
        :raises ServerError: the server refused or answered nonsense.
        """
        check_pin(pin)
        code, signature = _split_code(activation_code, signature_b64)
        master = self._master_key(transport, application_id, master_public_key)
        if signature is not None:
            _verify_code_signature(code, signature, master)

        # The device key pair is made in software, as a phone's keystore would.
        device_key = ec.generate_private_key(ec.SECP256R1())
        scalar = device_key.private_numbers().private_value
        device_public = public_key_from_private(scalar)

        request: dict[str, Any] = {
            "activationCode": code,
            "devicePublicKey": _b64(device_public),
        }
        if name:
            request["activationName"] = name
        response = transport.call(PREPARE_PATH, request)

        activation_id = _response_str(response, "activationId", PREPARE_PATH)
        try:
            check_activation_id(activation_id)
        except UnknownActivationError as exc:
            raise ServerError(f"{PREPARE_PATH} returned a bad activationId") from exc
        server_public = _response_key(response, "serverPublicKey", PREPARE_PATH)
        ctr_data = _response_b64(response, "ctrData", PREPARE_PATH, 16)
        status = _response_str(response, "activationStatus", PREPARE_PATH)

        # SPEC 8.3 step 2: both sides fold the ECDH X into the master secret.
        master_secret = master_secret_from_shared_x(
            ecdh_shared_x(scalar, server_public)
        )
        keys = derive_factor_keys(master_secret)

        salt = secrets.token_bytes(PIN_SALT_LENGTH)
        state = DeviceState(
            activation_id=activation_id,
            activation_name=name,
            application_id=application_id or _optional_str(response, "applicationId"),
            server_url=transport.location,
            device_public_key=device_public,
            server_public_key=server_public,
            master_public_key=master,
            fingerprint=public_key_fingerprint(
                device_public, activation_id, server_public
            ),
            ctr_data=ctr_data,
            possession_key=keys.possession,
            biometry_key=keys.biometry,
            transport_key=keys.transport,
            knowledge_key=ProtectedKey.seal(keys.knowledge, pin, salt),
            status=status,
            created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        self.store.save(state)
        logger.info("activation %s stored (status %s)", activation_id, status)

        if commit:
            state = self.commit(transport, activation_id)
        return ActivationResult(state=state, committed=commit)

    def commit(self, transport: Transport, activation_id: str) -> DeviceState:
        """Ask the server to commit the activation and store its new status.

        A real phone never commits by itself (the bank's back office does,
        after comparing fingerprints); this is the demo's shortcut.
        """
        response = transport.call(COMMIT_PATH, {"activationId": activation_id})
        status = _optional_str(response, "activationStatus")
        if status is None:
            # The upstream commit answer says only {"activated": true}.
            if response.get("activated") is not True:
                raise ServerError(f"the answer to {COMMIT_PATH} does not confirm it")
            status = "ACTIVE"
        with self.store.locked(activation_id):
            state = self.store.load(activation_id)
            state = _with_status(state, status)
            self.store.save(state)
        return state

    def refresh_status(self, transport: Transport, activation_id: str) -> DeviceState:
        """Ask the server for the activation's status and store it."""
        response = transport.call(STATUS_PATH, {"activationId": activation_id})
        status = _response_str(response, "activationStatus", STATUS_PATH)
        with self.store.locked(activation_id):
            state = _with_status(self.store.load(activation_id), status)
            self.store.save(state)
        return state

    def _master_key(
        self,
        transport: Transport,
        application_id: str | None,
        given: bytes | None,
    ) -> bytes | None:
        if given is not None:
            try:
                return validate_public_key(given)
            except InvalidKeyError as exc:
                raise ActivationCodeError(
                    f"the master public key is invalid: {exc}"
                ) from exc
        if application_id is None:
            return None
        response = transport.call(
            APPLICATION_DETAIL_PATH, {"applicationId": application_id}
        )
        return _response_key(response, "masterPublicKey", APPLICATION_DETAIL_PATH)

    # -- stored activations --------------------------------------------------

    def activations(self) -> list[DeviceState]:
        """Every stored activation, oldest first."""
        return self.store.states()

    def status(self, activation_id: str | None = None) -> DeviceState:
        """One stored activation (the only one when ``activation_id`` is None)."""
        return self.store.load(self._pick(activation_id))

    def remove(self, activation_id: str | None = None) -> str:
        """Forget an activation on this device only; return its id.

        The server is not told: remove the activation there too (the web
        admin pages), or it stays usable by anyone holding the keys.
        """
        chosen = self._pick(activation_id)
        self.store.remove(chosen)
        return chosen

    def _pick(self, activation_id: str | None) -> str:
        if activation_id is not None:
            return check_activation_id(activation_id)
        ids = self.store.ids()
        if not ids:
            raise UnknownActivationError(
                f"no activation is stored in {self.store.directory}; "
                "run 'mtoken activate' first"
            )
        if len(ids) > 1:
            raise AmbiguousActivationError(
                f"{len(ids)} activations are stored; choose one with --activation "
                f"({', '.join(ids)})"
            )
        return ids[0]

    # -- QR payloads (SPEC 3) ------------------------------------------------

    def scan(
        self, payload_text: str, activation_id: str | None = None
    ) -> VerifiedPayload:
        """Parse a QR payload and verify its ECDSA signature (SPEC 3.4).

        With several activations stored and none named, a personalized
        payload picks the activation whose server key verifies it.

        :raises PayloadFormatError: the text is not a valid payload.
        :raises UnknownActivationError: no (such) activation is stored.
        :raises AmbiguousActivationError: a non-personalized payload with
            several activations stored and none named.
        :raises IndicatorMismatchError: the indicator names a key that does
            not fit, or that this activation does not have.
        :raises PayloadSignatureError: the signature does not verify.
        """
        payload = self._parse(payload_text)
        if activation_id is not None:
            state = self.store.load(check_activation_id(activation_id))
        else:
            state = self._pick_for_payload(payload)
        self._verify(payload, state)
        return VerifiedPayload(payload=payload, activation_id=state.activation_id)

    def _parse(self, payload_text: str) -> OfflinePayload:
        try:
            return parse_offline_payload(payload_text)
        except MalformedPayloadError as exc:
            raise PayloadFormatError(f"the QR payload is malformed: {exc}") from exc

    def _pick_for_payload(self, payload: OfflinePayload) -> DeviceState:
        ids = self.store.ids()
        if len(ids) <= 1 or payload.indicator != KeyIndicator.PERSONALIZED:
            return self.store.load(self._pick(None))
        matching = [
            state
            for state in self.store.states()
            if _signature_fits(payload, state.server_public_key)
        ]
        if len(matching) == 1:
            return matching[0]
        raise PayloadSignatureError(
            "the personalized QR code's signature verifies with the server key "
            "of none of the stored activations"
        )

    def _verify(self, payload: OfflinePayload, state: DeviceState) -> None:
        if payload.indicator == KeyIndicator.PERSONALIZED:
            if _signature_fits(payload, state.server_public_key):
                return
            if state.master_public_key is not None and _signature_fits(
                payload, state.master_public_key
            ):
                raise IndicatorMismatchError(
                    "the QR code says it is personalized (indicator 1) but it is "
                    "signed with the application's master key"
                )
            for other in self.store.ids():
                if other == state.activation_id:
                    continue
                if _signature_fits(payload, self.store.load(other).server_public_key):
                    raise IndicatorMismatchError(
                        f"the QR code is personalized for activation {other}, "
                        f"not {state.activation_id}"
                    )
            raise PayloadSignatureError(
                "the QR code's signature does not verify with the server key of "
                f"activation {state.activation_id}: it was altered or not made "
                "for this device"
            )

        if state.master_public_key is None:
            raise IndicatorMismatchError(
                "the QR code is signed with the application's master key "
                f"(indicator 0) but activation {state.activation_id} has no "
                "master public key; activate with --application-id or "
                "--master-public-key"
            )
        if _signature_fits(payload, state.master_public_key):
            return
        if _signature_fits(payload, state.server_public_key):
            raise IndicatorMismatchError(
                "the QR code says it is signed with the master key (indicator 0) "
                "but it is signed with this activation's server key"
            )
        raise PayloadSignatureError(
            "the QR code's signature does not verify with the application's "
            "master key: it was altered or not made for this application"
        )

    # -- offline codes (SPEC 5) ----------------------------------------------

    def sign(
        self,
        verified: VerifiedPayload | OfflinePayload | str,
        *,
        pin: str | None = None,
        biometry: bool = False,
        activation_id: str | None = None,
        component_length: int = DEFAULT_COMPONENT_LENGTH,
        uri_id: str = OFFLINE_URI_ID,
    ) -> OfflineCode:
        """Compute the offline code for a payload and advance CTR_DATA.

        ``verified`` is what :meth:`scan` returned, or a parsed payload, or
        the payload text (both are scanned first). The payload's signature is
        checked again here, so a payload object built by hand cannot skip the
        check. The new CTR_DATA is on disk
        before the code is returned (SPEC 5.6).

        :param pin: the PIN (possession + knowledge). A wrong PIN gives a
            wrong code without an error, as on a real phone.
        :param biometry: sign with possession + biometry instead; needs the
            payload's ``B`` flag.
        :raises PinFormatError: the PIN is shorter or longer than any PIN
            the device accepts (nothing is computed).
        :raises BiometryNotAllowedError: biometry without the ``B`` flag.
        :raises ActivationStateError: the last status the device saw from the
            server is BLOCKED or REMOVED.
        :raises ValueError: neither or both of ``pin`` and ``biometry``.
        """
        if (pin is None) == (not biometry):
            raise ValueError("sign with exactly one of pin=... or biometry=True")
        if pin is not None:
            check_pin(pin)
        if isinstance(verified, OfflinePayload):
            verified = self.scan(verified.text, activation_id)
        elif isinstance(verified, str):
            verified = self.scan(verified, activation_id)
        payload = verified.payload
        if biometry and not payload.flags.biometry:
            raise BiometryNotAllowedError(
                "the QR code does not allow biometry (no B flag); sign with the PIN"
            )
        signature_type = (
            SignatureType.POSSESSION_BIOMETRY
            if biometry
            else SignatureType.POSSESSION_KNOWLEDGE
        )
        # SPEC 5.1, 5.2: the body is the raw operation data line, plus the
        # proximity TOTP when the payload carries one.
        base_string = payload.base_string(uri_id)

        with self.store.locked(verified.activation_id):
            state = self.store.load(verified.activation_id)
            _check_usable(state)
            self._verify(payload, state)
            knowledge = _UNUSED_SLOT if pin is None else state.knowledge_key.unseal(pin)
            keys = FactorKeys(
                possession=state.possession_key,
                knowledge=knowledge,
                biometry=state.biometry_key,
                transport=state.transport_key,
                vault=_UNUSED_SLOT,
            )
            code = compute_offline_code(
                keys, state.ctr_data, base_string, signature_type, component_length
            )
            # SPEC 5.6: every computed code advances CTR_DATA; persist first.
            self.store.save(state.advanced(next_counter(state.ctr_data)))
        logger.info(
            "offline code computed for activation %s (%s)",
            state.activation_id,
            signature_type.value,
        )
        return OfflineCode(code, signature_type, state.activation_id)


def _check_usable(state: DeviceState) -> None:
    """A phone that knows its activation is blocked or removed does not sign."""
    if state.status in _UNUSABLE_STATUSES:
        raise ActivationStateError(
            f"activation {state.activation_id} is {state.status} (as last seen "
            "from the server); if that changed, run 'mtoken status --refresh'"
        )


def _signature_fits(payload: OfflinePayload, public_key: bytes) -> bool:
    try:
        payload.verify_signature(public_key)
    except (InvalidServerSignatureError, InvalidKeyError):
        return False
    return True


def _split_code(code: str, signature_b64: str | None) -> tuple[str, bytes | None]:
    """The code and its DER signature, from ``CODE#SIG`` or ``--signature``."""
    code = code.strip().upper() if "#" not in code else code.strip()
    try:
        if "#" in code:
            if signature_b64 is not None:
                raise ActivationCodeError(
                    "the activation code already carries a signature "
                    "(CODE#SIGNATURE); do not give --signature too"
                )
            return parse_activation_qr_text(code)
        validate_activation_code(code)
    except ProtocolActivationCodeError as exc:
        raise ActivationCodeError(f"activation code is invalid: {exc}") from exc
    if signature_b64 is None:
        return code, None
    try:
        return code, base64.b64decode(signature_b64, validate=True)
    except binascii.Error as exc:
        raise ActivationCodeError("the activation signature is not Base64") from exc


def _verify_code_signature(code: str, signature: bytes, master: bytes | None) -> None:
    """SPEC 8.2: ACTIVATION_SIGNATURE is ECDSA over the ASCII code."""
    if master is None:
        raise ActivationCodeError(
            "the activation code's signature cannot be checked without the "
            "master public key: give --application-id or --master-public-key"
        )
    try:
        verify_ecdsa_der(master, code.encode("ascii"), signature)
    except InvalidServerSignatureError as exc:
        raise ActivationCodeError(
            "the activation code's signature does not verify with the master public key"
        ) from exc


def _with_status(state: DeviceState, status: str) -> DeviceState:
    return replace(state, status=status)


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _response_str(response: Mapping[str, Any], name: str, path: str) -> str:
    value = response.get(name)
    if not isinstance(value, str) or not value:
        raise ServerError(f"the answer to {path} lacks {name}")
    return value


def _optional_str(response: JSONObject, name: str) -> str | None:
    value = response.get(name)
    return value if isinstance(value, str) and value else None


def _response_b64(
    response: Mapping[str, Any], name: str, path: str, length: int | None = None
) -> bytes:
    text = _response_str(response, name, path)
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ServerError(f"{name} in the answer to {path} is not Base64") from exc
    if length is not None and len(raw) != length:
        raise ServerError(f"{name} in the answer to {path} is not {length} bytes")
    return raw


def _response_key(response: Mapping[str, Any], name: str, path: str) -> bytes:
    try:
        return validate_public_key(_response_b64(response, name, path))
    except InvalidKeyError as exc:
        raise ServerError(f"{name} in the answer to {path} is invalid: {exc}") from exc
