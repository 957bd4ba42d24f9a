"""Device state: one JSON file per activation, written atomically.

What a phone keeps after activation (SPEC 8.5), and how this simulator keeps it:

- The possession, biometry and transport keys are stored in plain Base64. On a
  phone they sit in a file protected by the platform keystore (Android
  Keystore, iOS Keychain); here the stand-in for that protection is only the
  file's mode 0600 in a folder of mode 0700.
- The knowledge key is stored only encrypted under the PIN: AES-128-CBC
  without padding and with a zero IV, under PBKDF2-HMAC-SHA1(PIN, 16-byte
  salt, 10,000 iterations, 128 bits). Any PIN decrypts to *some* key, so a
  wrong PIN silently gives a wrong code that only the server can detect.
- The device private key and the master secret are never stored; the vault
  key is neither derived nor kept (offline signatures do not use it).

Writes go to a temporary file in the same folder, are flushed to disk, then
renamed over the old file, so a crash mid-write leaves the old file intact.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import platformdirs
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from mtoken.errors import StateError, UnknownActivationError

STATE_ENV = "MTOKEN_STATE"
APP_DIR_NAME = "powerauth-mtoken"
FORMAT = "mtoken-state/1"

# SPEC 8.5: the PIN-derived key that wraps the knowledge key.
PIN_KDF_ITERATIONS = 10_000
PIN_SALT_LENGTH = 16
KEY_LENGTH = 16

_ACTIVATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_STORAGE_NOTE = (
    "possessionKey, biometryKey and transportKey are plain Base64, standing in "
    "for a phone's keystore-protected storage; the knowledge key is encrypted "
    "under the PIN (PBKDF2-HMAC-SHA1, 10000 iterations, AES-128-CBC, no "
    "padding, zero IV)"
)


def default_state_dir() -> Path:
    """The folder named by ``MTOKEN_STATE``, else the user's data folder."""
    configured = os.environ.get(STATE_ENV)
    if configured:
        return Path(configured)
    return Path(platformdirs.user_data_dir(APP_DIR_NAME))


def check_activation_id(activation_id: str) -> str:
    """Return ``activation_id`` if it is safe to use as a file name.

    :raises UnknownActivationError: the id has characters no server issues.
    """
    if not _ACTIVATION_ID.fullmatch(activation_id):
        raise UnknownActivationError(
            f"activation id {activation_id!r} is not a valid id "
            "(letters, digits, '-' and '_' only)"
        )
    return activation_id


def _pin_cipher(pin: str, salt: bytes) -> Cipher[modes.CBC]:
    kdf = PBKDF2HMAC(
        algorithm=hashes.SHA1(),  # noqa: S303 - SPEC 8.5 fixes PBKDF2-HMAC-SHA1
        length=KEY_LENGTH,
        salt=salt,
        iterations=PIN_KDF_ITERATIONS,
    )
    key = kdf.derive(pin.encode("utf-8"))
    # SPEC 8.5: no padding and a zero IV, so decryption never fails on a
    # wrong PIN; it just yields another 16-byte key.
    return Cipher(algorithms.AES(key), modes.CBC(bytes(16)))


@dataclass(frozen=True)
class ProtectedKey:
    """The knowledge key, encrypted under a key derived from the PIN."""

    ciphertext: bytes
    salt: bytes

    @classmethod
    def seal(cls, knowledge_key: bytes, pin: str, salt: bytes) -> ProtectedKey:
        """Encrypt ``knowledge_key`` under ``pin`` (SPEC 8.5)."""
        if len(knowledge_key) != KEY_LENGTH:
            raise ValueError("the knowledge key must be 16 bytes")
        if len(salt) != PIN_SALT_LENGTH:
            raise ValueError("the PIN salt must be 16 bytes")
        encryptor = _pin_cipher(pin, salt).encryptor()
        return cls(encryptor.update(knowledge_key) + encryptor.finalize(), salt)

    def unseal(self, pin: str) -> bytes:
        """Decrypt under ``pin``; a wrong PIN gives a wrong key, not an error."""
        decryptor = _pin_cipher(pin, self.salt).decryptor()
        return decryptor.update(self.ciphertext) + decryptor.finalize()


@dataclass(frozen=True)
class DeviceState:
    """Everything the simulated phone remembers about one activation."""

    activation_id: str
    activation_name: str | None
    application_id: str | None
    server_url: str | None
    device_public_key: bytes
    server_public_key: bytes
    master_public_key: bytes | None
    fingerprint: str
    ctr_data: bytes
    possession_key: bytes
    biometry_key: bytes
    transport_key: bytes
    knowledge_key: ProtectedKey
    status: str
    created_at: str
    codes_computed: int = 0

    def advanced(self, next_ctr_data: bytes) -> DeviceState:
        """A copy with CTR_DATA moved one step (SPEC 5.6)."""
        return replace(
            self, ctr_data=next_ctr_data, codes_computed=self.codes_computed + 1
        )

    def public_view(self) -> dict[str, Any]:
        """The fields that are safe to print: no key material."""
        return {
            "activationId": self.activation_id,
            "activationName": self.activation_name,
            "applicationId": self.application_id,
            "serverUrl": self.server_url,
            "status": self.status,
            "fingerprint": self.fingerprint,
            "codesComputed": self.codes_computed,
            "hasMasterPublicKey": self.master_public_key is not None,
            "createdAt": self.created_at,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "storageNote": _STORAGE_NOTE,
            "activationId": self.activation_id,
            "activationName": self.activation_name,
            "applicationId": self.application_id,
            "serverUrl": self.server_url,
            "status": self.status,
            "createdAt": self.created_at,
            "fingerprint": self.fingerprint,
            "devicePublicKey": _b64(self.device_public_key),
            "serverPublicKey": _b64(self.server_public_key),
            "masterPublicKey": (
                None if self.master_public_key is None else _b64(self.master_public_key)
            ),
            "ctrData": _b64(self.ctr_data),
            "codesComputed": self.codes_computed,
            "possessionKey": _b64(self.possession_key),
            "biometryKey": _b64(self.biometry_key),
            "transportKey": _b64(self.transport_key),
            "knowledgeKey": {
                "encrypted": _b64(self.knowledge_key.ciphertext),
                "salt": _b64(self.knowledge_key.salt),
                "kdf": "PBKDF2-HMAC-SHA1",
                "iterations": PIN_KDF_ITERATIONS,
                "cipher": "AES-128-CBC-NoPadding-ZeroIV",
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeviceState:
        """Rebuild a state from its JSON form.

        :raises ValueError: a field is missing, of the wrong type or length.
        """
        if data.get("format") != FORMAT:
            raise ValueError(f"format is not {FORMAT!r}")
        knowledge = data["knowledgeKey"]
        if knowledge.get("iterations") != PIN_KDF_ITERATIONS:
            raise ValueError("knowledgeKey.iterations is not 10000")
        master = data.get("masterPublicKey")
        return cls(
            activation_id=check_activation_id(_str(data, "activationId")),
            activation_name=_opt_str(data, "activationName"),
            application_id=_opt_str(data, "applicationId"),
            server_url=_opt_str(data, "serverUrl"),
            status=_str(data, "status"),
            created_at=_str(data, "createdAt"),
            fingerprint=_str(data, "fingerprint"),
            device_public_key=_unb64(data["devicePublicKey"], 65, "devicePublicKey"),
            server_public_key=_unb64(data["serverPublicKey"], 65, "serverPublicKey"),
            master_public_key=(
                None if master is None else _unb64(master, 65, "masterPublicKey")
            ),
            ctr_data=_unb64(data["ctrData"], 16, "ctrData"),
            codes_computed=int(data.get("codesComputed", 0)),
            possession_key=_unb64(data["possessionKey"], 16, "possessionKey"),
            biometry_key=_unb64(data["biometryKey"], 16, "biometryKey"),
            transport_key=_unb64(data["transportKey"], 16, "transportKey"),
            knowledge_key=ProtectedKey(
                ciphertext=_unb64(knowledge["encrypted"], 16, "knowledgeKey"),
                salt=_unb64(knowledge["salt"], PIN_SALT_LENGTH, "knowledgeKey.salt"),
            ),
        )


class StateStore:
    """The folder of state files, one ``<activation id>.json`` per activation."""

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory) if directory else default_state_dir()

    def path_for(self, activation_id: str) -> Path:
        return self.directory / f"{check_activation_id(activation_id)}.json"

    def save(self, state: DeviceState) -> None:
        """Write ``state`` atomically with mode 0600.

        :raises StateError: the folder or the file cannot be written; the
            previous file, if any, is left as it was.
        """
        path = self.path_for(state.activation_id)
        text = json.dumps(state.to_json(), indent=2, sort_keys=True) + "\n"
        try:
            self._ensure_directory()
            _atomic_write(path, text.encode("utf-8"))
        except OSError as exc:
            raise StateError(
                f"cannot write the state file {path}: {exc.strerror or exc}"
            ) from exc

    def load(self, activation_id: str) -> DeviceState:
        """Read one activation's state.

        :raises UnknownActivationError: no file for that id.
        :raises StateError: the file exists but cannot be read or parsed.
        """
        path = self.path_for(activation_id)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise UnknownActivationError(
                f"no activation {activation_id} in {self.directory}"
            ) from None
        except OSError as exc:
            raise StateError(f"cannot read {path}: {exc.strerror or exc}") from exc
        try:
            return DeviceState.from_json(json.loads(raw.decode("utf-8")))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StateError(f"the state file {path} is damaged: {exc}") from exc

    def ids(self) -> list[str]:
        """The ids of the stored activations, sorted."""
        if not self.directory.is_dir():
            return []
        return sorted(
            p.stem
            for p in self.directory.glob("*.json")
            if not p.name.startswith(".") and _ACTIVATION_ID.fullmatch(p.stem)
        )

    def states(self) -> list[DeviceState]:
        """All stored activations, oldest first."""
        states = [self.load(activation_id) for activation_id in self.ids()]
        return sorted(states, key=lambda s: (s.created_at, s.activation_id))

    def remove(self, activation_id: str) -> None:
        """Delete one activation's file (without reading it, so a damaged file goes).

        :raises UnknownActivationError: no file for that id.
        """
        path = self.path_for(activation_id)
        try:
            path.unlink()
        except FileNotFoundError:
            raise UnknownActivationError(
                f"no activation {activation_id} in {self.directory}"
            ) from None
        except OSError as exc:
            raise StateError(f"cannot remove {path}: {exc.strerror or exc}") from exc
        with contextlib.suppress(OSError):
            path.with_suffix(".lock").unlink()

    @contextlib.contextmanager
    def locked(self, activation_id: str) -> Iterator[None]:
        """Hold an exclusive lock on one activation across read-modify-write.

        Two ``mtoken sign`` runs at once must not use the same CTR_DATA.
        """
        lock_path = self.path_for(activation_id).with_suffix(".lock")
        try:
            self._ensure_directory()
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateError(
                f"cannot open the lock file {lock_path}: {exc.strerror or exc}"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _ensure_directory(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)


def _atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see old or new, never half."""
    fd, tmp_name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    # Make the rename itself durable.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _unb64(value: object, length: int, name: str) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"{name} is not a string")
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"{name} is not Base64") from exc
    if len(raw) != length:
        raise ValueError(f"{name} is {len(raw)} bytes, expected {length}")
    return raw


def _str(data: dict[str, Any], name: str) -> str:
    value = data[name]
    if not isinstance(value, str):
        raise ValueError(f"{name} is not a string")
    return value


def _opt_str(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} is not a string")
    return value
