"""The Flask application: the PowerAuth-style server API and the web pages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the application.

    :param test_config: settings that replace the defaults and the environment.
    """
    app = Flask(__name__, instance_relative_config=True)
    if test_config is not None:
        app.config.from_mapping(test_config)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "OK"}

    return app
