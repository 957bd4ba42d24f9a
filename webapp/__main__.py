"""``python -m webapp``: the admin commands (what ``scripts/admin`` runs)."""

from __future__ import annotations

from webapp.cli import main

if __name__ == "__main__":
    main()
