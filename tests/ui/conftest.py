"""A real predictor over HTTP (the serving tests' app on a free port) for the UI and its client."""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import pytest
from werkzeug.serving import make_server

from bankmarketing.data.schema import FEATURES
from tests.conftest import free_port


@contextlib.contextmanager
def _serving(app, monkeypatch):
    """`app` on 127.0.0.1:<free port>; PREDICTOR_URL points at it."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setenv("PREDICTOR_URL", url)
    try:
        yield url
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


@pytest.fixture
def predictor_url(app_factory, monkeypatch):
    """The Flask predictor (max_batch=100) served over HTTP; PREDICTOR_URL points at it."""
    with _serving(app_factory(), monkeypatch) as url:
        yield url


@pytest.fixture
def keyed_predictor_url(app_factory, monkeypatch):
    """The same predictor requiring the API key KEY (PREDICTOR_API_KEY is not set here)."""
    monkeypatch.delenv("PREDICTOR_API_KEY", raising=False)
    with _serving(app_factory(api_key=KEY), monkeypatch) as url:
        yield url


KEY = "ui-test-api-key-0123456789"


@pytest.fixture
def down_url(monkeypatch) -> str:
    """PREDICTOR_URL at a port nothing listens on."""
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("PREDICTOR_URL", url)
    return url


def customer(test, i: int = 0) -> dict:
    row = test.iloc[i]
    return {f: (int(row[f]) if isinstance(row[f], (np.integer, int)) else row[f]) for f in FEATURES}
