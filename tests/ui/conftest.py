"""A real predictor over HTTP (the serving tests' app on a free port) for the UI and its client."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from werkzeug.serving import make_server

from bankmarketing.data.schema import FEATURES
from tests.conftest import free_port


@pytest.fixture
def predictor_url(app_factory, monkeypatch):
    """The Flask predictor (max_batch=100) served on 127.0.0.1:<free port>; PREDICTOR_URL points at it."""
    app = app_factory()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setenv("PREDICTOR_URL", url)
    yield url
    server.shutdown()
    thread.join(10)
    server.server_close()


@pytest.fixture
def down_url(monkeypatch) -> str:
    """PREDICTOR_URL at a port nothing listens on."""
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("PREDICTOR_URL", url)
    return url


def customer(test, i: int = 0) -> dict:
    row = test.iloc[i]
    return {f: (int(row[f]) if isinstance(row[f], (np.integer, int)) else row[f]) for f in FEATURES}
