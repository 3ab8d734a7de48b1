"""The floor of bench/serving.py: a Flask app that does nothing but answer, under the predictor's gunicorn.

gunicorn -c python:bankmarketing.serving.gunicorn_conf --chdir bench 'hello_app:create_app()'
"""

from __future__ import annotations

from flask import Flask, jsonify


def create_app() -> Flask:
    """POST / returns a small JSON document; the body sent is not read."""
    app = Flask(__name__)

    @app.post("/")
    def hello():
        return jsonify({"hello": "world"})

    return app
