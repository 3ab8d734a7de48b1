"""What the platform's Flask services share: every error is JSON, never a page or a trace."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException


def json_error(status: int, message: str, detail: list | None = None):
    """The error body every service answers with: a message and the per-field details."""
    return jsonify({"error": message, "detail": detail or []}), status


def install_json_errors(
    app: Flask, max_body_bytes: int, unexpected_status: int, unexpected_message: str, log: logging.Logger
) -> None:
    """HTTP errors as JSON (413 names the limit); anything unexpected is logged, never echoed."""

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if exc.code == 413:
            return json_error(413, f"request body larger than {max_body_bytes} bytes")
        return json_error(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error")
        return json_error(unexpected_status, unexpected_message)  # no paths or stack traces
