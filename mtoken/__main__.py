"""``python -m mtoken``: the same as the ``mtoken`` command."""

from __future__ import annotations

from mtoken.cli import main

if __name__ == "__main__":
    main()
