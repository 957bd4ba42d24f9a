"""The protocol core stays pure: importing it loads no web, database or PKCS#11 code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULES = [
    "activation",
    "crypto",
    "errors",
    "escaping",
    "keys",
    "operation_data",
    "payload",
    "signature",
    "status",
    "totp",
]
FORBIDDEN = ("flask", "pkcs11", "sqlalchemy", "werkzeug", "hsm", "webapp", "mtoken")

CHECK = f"""
import sys
import powerauth
{"".join(f"import powerauth.{name}" + chr(10) for name in MODULES)}
bad = sorted(
    name for name in sys.modules
    if name.split(".")[0] in {FORBIDDEN!r}
)
print(",".join(bad))
"""


def test_importing_powerauth_loads_nothing_forbidden() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHECK],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == ""


def test_every_module_is_checked() -> None:
    package = ROOT / "powerauth"
    found = {p.stem for p in package.glob("*.py") if not p.stem.startswith("_")}
    assert found == set(MODULES)


BANNED = [
    r"^\s*(import|from) (os|time|random|secrets|logging|io|socket)\b",
    r"\bopen\(",
    r"\bprint\(",
    r"\.now\(",
    r"\.today\(",
    r"\burandom\(",
]


def test_no_io_or_clock_in_the_source() -> None:
    # A coarse guard: the package must not reach for files, time or randomness.
    for path in (ROOT / "powerauth").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        for pattern in BANNED:
            found = re.search(pattern, text, re.MULTILINE)
            assert found is None, f"{path.name} matches {pattern}"
