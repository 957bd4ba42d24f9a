"""The simulator is a phone: it never reaches into the server's layers."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ("pkcs11", "hsm", "webapp", "sqlalchemy", "flask")

CHECK = f"""
import sys
import mtoken, mtoken.cli, mtoken.display, mtoken.qr
bad = sorted(name for name in sys.modules if name.split(".")[0] in {FORBIDDEN!r})
print(",".join(bad))
"""


def test_mtoken_imports_no_server_layer() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
