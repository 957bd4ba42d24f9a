"""The README's recipes for verify's ``data`` print the offline base string.

``webapp/README.md`` shows a Python line and a shell pair that turn the create
answer's ``offlineData`` into the ``data`` of ``/signature/offline/verify``;
both must agree with the protocol core on a real QR text.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from powerauth.payload import parse_offline_payload

ROOT = Path(__file__).resolve().parents[2]


def recipes() -> list[str]:
    text = (ROOT / "webapp" / "README.md").read_text(encoding="utf-8")
    section = text[text.index("verify's `data` is the offline signature base string") :]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    return [part.strip() for part in block.group(1).split("\n\n") if part.strip()]


def offline_data() -> str:
    cases = json.loads(
        (ROOT / "tests" / "vectors" / "qr-payload-cases.json").read_text("utf-8")
    )
    # A personalized example with a well-formed payload.
    for example in cases["examples"]:
        text = example["offlineData"]
        try:
            parse_offline_payload(text)
        except ValueError:
            continue
        return str(text)
    raise AssertionError("no well-formed example in the vectors")


@pytest.mark.parametrize("recipe", recipes(), ids=["python", "shell"])
def test_readme_recipe_prints_the_base_string(recipe: str) -> None:
    text = offline_data()
    result = subprocess.run(
        ["bash", "-c", recipe],
        cwd=ROOT,
        env={**os.environ, "OFFLINE": text},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == parse_offline_payload(text).base_string()
    assert result.stdout.startswith("POST&L29wZXJhdGlvbi9hdXRob3JpemUvb2ZmbGluZQ==&")
