"""Helpers of the HSM tests: fault injection past the adapter, subprocesses."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys


def cryptoki() -> ctypes.CDLL:
    """The PKCS#11 library of this process, reached past the adapter.

    dlopen returns the already loaded library, so these calls act on the very
    state the adapter uses: that is how the fault tests pull the rug.
    """
    return ctypes.CDLL(os.environ["PKCS11_MODULE"])


def close_all_sessions() -> None:
    """C_CloseAllSessions on every slot with a token."""
    lib = cryptoki()
    count = ctypes.c_ulong(0)
    assert lib.C_GetSlotList(ctypes.c_ubyte(1), None, ctypes.byref(count)) == 0
    slots = (ctypes.c_ulong * count.value)()
    assert lib.C_GetSlotList(ctypes.c_ubyte(1), slots, ctypes.byref(count)) == 0
    for slot in slots[: count.value]:
        assert lib.C_CloseAllSessions(ctypes.c_ulong(slot)) == 0


def finalize_library() -> None:
    """C_Finalize the library under the adapter."""
    assert cryptoki().C_Finalize(None) == 0


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (its own C_Initialize)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
