"""Small helpers shared by several test folders."""

from __future__ import annotations

import os


def in_ci() -> bool:
    """Whether ``CI`` says this is a CI run (where optional tools are required)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
