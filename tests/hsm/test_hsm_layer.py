"""The layer rule: ``hsm/`` is the only product code that imports ``pkcs11``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PRODUCT_PACKAGES = ["powerauth", "webapp", "mtoken"]


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", PRODUCT_PACKAGES)
def test_no_pkcs11_import_outside_hsm(package: str) -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / package).rglob("*.py"))
        if any(
            name == "pkcs11" or name.startswith("pkcs11.")
            for name in _imported_modules(path)
        )
    ]

    assert offenders == []


def test_hsm_does_import_pkcs11() -> None:
    # The scan above would pass vacuously if it could not see imports at all.
    assert "pkcs11" in _imported_modules(ROOT / "hsm" / "adapter.py")
