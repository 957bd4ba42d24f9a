"""The app for ``gunicorn --preload`` with a master that has used the token
and the database before it forks.

``create_app`` opens neither, so a preloading master normally forks before
PKCS#11 is initialized or a connection exists. Here the master logs in to the
token, lists its keys and checks the schema revision first: every worker
inherits an initialized library, a logged-in session and a pooled database
connection, all of which it must leave alone and replace with its own.
"""

from __future__ import annotations

from webapp import create_app
from webapp.db import get_engine, head_revision, schema_revision
from webapp.extensions import get_hsm

app = create_app()
MASTER_KEY_LABELS = get_hsm(app).key_labels()
if schema_revision(get_engine(app)) != head_revision():
    raise RuntimeError("the database schema is not at the code's revision")
