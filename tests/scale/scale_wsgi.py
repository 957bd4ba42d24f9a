"""The app for ``gunicorn --preload`` with a master that has used the token.

``create_app`` opens nothing, so a preloading master normally forks before
PKCS#11 is initialized. Here the master logs in and lists the token's keys
first: every worker inherits an initialized library and a logged-in session,
which it must leave alone and replace with its own.
"""

from __future__ import annotations

from webapp import create_app
from webapp.extensions import get_hsm

app = create_app()
MASTER_KEY_LABELS = get_hsm(app).key_labels()
