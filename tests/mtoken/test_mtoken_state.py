"""Device state files: PIN protection, atomic writes, crash safety."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mtoken.errors import StateError, UnknownActivationError
from mtoken.state import DeviceState, ProtectedKey, StateStore, default_state_dir


def make_state(
    activation_id: str = "0b7f0a8e-1c1e-4c55-9a0e-3b1f1d2c4e5f",
) -> DeviceState:
    return DeviceState(
        activation_id=activation_id,
        activation_name="test phone",
        application_id="app-1",
        server_url="http://127.0.0.1:5000",
        device_public_key=b"\x04" + bytes(range(64)),
        server_public_key=b"\x04" + bytes(range(1, 65)),
        master_public_key=None,
        fingerprint="01234567",
        ctr_data=bytes(range(16)),
        possession_key=bytes([1]) * 16,
        biometry_key=bytes([3]) * 16,
        transport_key=bytes([4]) * 16,
        knowledge_key=ProtectedKey.seal(bytes([2]) * 16, "1234", bytes([9]) * 16),
        status="ACTIVE",
        created_at="2026-01-01T00:00:00Z",
    )


class TestKnowledgeKeyProtection:
    def test_matches_spec_8_5_parameters(self) -> None:
        # Rebuild the ciphertext with the stated parameters, independently.
        key, pin, salt = bytes(range(16)), "4711", bytes(range(100, 116))
        wrap = hashlib.pbkdf2_hmac("sha1", pin.encode(), salt, 10_000, 16)
        enc = Cipher(algorithms.AES(wrap), modes.CBC(bytes(16))).encryptor()
        expected = enc.update(key) + enc.finalize()

        sealed = ProtectedKey.seal(key, pin, salt)

        assert sealed.ciphertext == expected
        assert sealed.unseal(pin) == key

    def test_wrong_pin_gives_another_key_without_error(self) -> None:
        key = bytes(range(16))
        sealed = ProtectedKey.seal(key, "1234", bytes(16))

        wrong = sealed.unseal("1235")

        assert len(wrong) == 16
        assert wrong != key

    def test_salt_changes_ciphertext(self) -> None:
        key = bytes(range(16))
        a = ProtectedKey.seal(key, "1234", bytes(16))
        b = ProtectedKey.seal(key, "1234", bytes([1]) * 16)
        assert a.ciphertext != b.ciphertext


class TestStore:
    def test_round_trip_and_file_mode(self, tmp_path: Path) -> None:
        store = StateStore(tmp_path / "state")
        state = make_state()

        store.save(state)

        path = store.path_for(state.activation_id)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert store.load(state.activation_id) == state
        assert store.ids() == [state.activation_id]

    def test_knowledge_key_is_not_in_the_file(self, tmp_path: Path) -> None:
        store = StateStore(tmp_path)
        store.save(make_state())
        text = store.path_for(make_state().activation_id).read_text()
        data = json.loads(text)

        assert "ApICAgICAgICAgICAgICAg==" not in text  # Base64 of the plain key
        assert set(data["knowledgeKey"]) == {
            "encrypted",
            "salt",
            "kdf",
            "iterations",
            "cipher",
        }

    def test_unknown_and_invalid_ids(self, tmp_path: Path) -> None:
        store = StateStore(tmp_path)
        with pytest.raises(UnknownActivationError, match="no activation"):
            store.load("missing")
        with pytest.raises(UnknownActivationError, match="not a valid id"):
            store.load("../etc/passwd")
        with pytest.raises(UnknownActivationError):
            store.remove("missing")

    def test_damaged_file_is_reported_and_removable(self, tmp_path: Path) -> None:
        store = StateStore(tmp_path)
        store.save(make_state("abc"))
        store.path_for("abc").write_text('{"format": "mtoken-state/1"')

        with pytest.raises(StateError, match="damaged"):
            store.load("abc")
        store.remove("abc")
        assert store.ids() == []

    def test_states_sorted_by_creation(self, tmp_path: Path) -> None:
        store = StateStore(tmp_path)
        late = make_state("zzz")
        early = replace(make_state("yyy"), created_at="2025-01-01T00:00:00Z")
        store.save(late)
        store.save(early)
        assert [s.activation_id for s in store.states()] == ["yyy", "zzz"]

    def test_default_folder_from_environment(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("MTOKEN_STATE", str(tmp_path / "x"))
        assert default_state_dir() == tmp_path / "x"
        monkeypatch.delenv("MTOKEN_STATE")
        assert default_state_dir().name == "powerauth-mtoken"


class TestCrashSafety:
    def test_failed_rename_keeps_old_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store = StateStore(tmp_path)
        old = make_state()
        store.save(old)

        def broken_replace(src: object, dst: object) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "replace", broken_replace)
        with pytest.raises(StateError, match="No space left"):
            store.save(old.advanced(bytes(16)))
        monkeypatch.undo()

        assert store.load(old.activation_id) == old
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            f"{old.activation_id}.json"
        ]

    def test_process_killed_mid_write_keeps_old_file(self, tmp_path: Path) -> None:
        store = StateStore(tmp_path)
        old = make_state()
        store.save(old)
        # The child starts a save and is killed while the new bytes are in
        # its temporary file, just before they would be renamed into place.
        child = textwrap.dedent(
            f"""
            import os, sys, time
            sys.path.insert(0, {str(Path(__file__).parent)!r})
            from test_mtoken_state import make_state
            from mtoken.state import StateStore

            def stall(fd):
                print("WRITING", flush=True)
                time.sleep(600)

            os.fsync = stall
            store = StateStore({str(tmp_path)!r})
            store.save(make_state().advanced(bytes(16)))
            """
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", child], stdout=subprocess.PIPE, text=True
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "WRITING"
            leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
            assert len(leftovers) == 1  # the half-done write exists
        finally:
            proc.kill()
            proc.wait()

        assert store.load(old.activation_id) == old
        assert store.ids() == [old.activation_id]
