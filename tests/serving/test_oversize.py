"""Oversize and slow bodies against the predictor under a real gunicorn (the project's config).

Every client kind (`tests/serving/http_clients.py`: `requests`, `urllib`, raw sockets; with a
Content-Length, chunked, with `Expect: 100-continue`) gets the JSON 413 naming the limit on
every endpoint, and the connection ends with a FIN, not a reset. A body slower than
PREDICTOR_BODY_TIMEOUT_SECONDS gets a JSON 408 at the bound; beyond the drain bounds the answer
still comes first and the connection is closed at the bound (docs/serving.md).
"""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests

from tests.conftest import ADMIN_TOKEN, REPO, migrated
from tests.serving.gunicorn_process import Gunicorn
from tests.serving.http_clients import CLIENTS, assert_413, raw_request, read_answer
from tests.serving.test_app import customer

pytestmark = pytest.mark.integration

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
LIMIT = 2 * 1024 * 1024  # PREDICTOR_MAX_BODY_BYTES's default
BODY_SECONDS = 2
DRAIN_BYTES = 8 * 1024 * 1024
#: Every route, whatever it does with a body, and one that does not exist.
ENDPOINTS = [
    ("POST", "/predict"),
    ("POST", "/predict/batch"),
    ("POST", "/outcomes"),
    ("POST", "/admin/reload"),
    ("GET", "/model"),
    ("GET", "/health"),
    ("POST", "/nowhere"),
]


@pytest.fixture(scope="module")
def live(served, tmp_path_factory):
    settings, _, _ = served
    folder = tmp_path_factory.mktemp("oversize")
    server = Gunicorn(
        REPO / ".venv/app/bin",
        folder,
        {
            "MODEL_NAME": settings.model_name,
            "MLFLOW_TRACKING_URI": settings.tracking_uri,
            "PREDICTOR_CACHE_DIR": str(folder / "cache"),
            "DATABASE_URL": migrated(f"sqlite:///{folder}/platform.db"),
            "PREDICTOR_WORKERS": "2",
            "PREDICTOR_ADMIN_TOKEN": ADMIN_TOKEN,
            "PREDICTOR_MAX_BODY_BYTES": str(LIMIT),
            "PREDICTOR_BODY_TIMEOUT_SECONDS": str(BODY_SECONDS),
            "PREDICTOR_DRAIN_MAX_BYTES": str(DRAIN_BYTES),
        },
        folder / "gunicorn.log",
    )
    server.wait_ready()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def good(served) -> dict:
    return customer(served[2])


@pytest.fixture(scope="module")
def batch_5mb(good) -> bytes:
    """A well-formed /predict/batch body of 5.4 MB (the size that got a reset)."""
    one = json.dumps(good)
    return ('{"customers": [' + ", ".join([one] * (5_400_000 // (len(one) + 2))) + "]}").encode()


@pytest.mark.parametrize("kind", CLIENTS)
def test_every_client_gets_the_json_413_on_every_endpoint(live, batch_5mb, good, kind):
    send = CLIENTS[kind]
    assert len(batch_5mb) > 5_000_000
    for method, path in ENDPOINTS:
        answer = send(f"{live.url}{path}", batch_5mb, method, headers=ADMIN)
        assert_413(answer, LIMIT, f"{kind} {method} {path}")
    assert requests.post(f"{live.url}/predict", json={"customer": good}, timeout=10).status_code == 200


def connect(live) -> socket.socket:
    return socket.create_connection(("127.0.0.1", live.port), timeout=30)


def assert_408(answer, elapsed: float) -> None:
    assert answer.status == 408 and answer.content_type.startswith("application/json"), answer
    assert json.loads(answer.body)["error"] == f"request body not received within {BODY_SECONDS} s"
    assert BODY_SECONDS - 0.1 < elapsed < BODY_SECONDS + 1.5, elapsed


def test_a_stalled_body_gets_a_json_408_at_the_bound(live, good):
    head, body = raw_request(f"{live.url}/predict", json.dumps({"customer": good}).encode())
    with connect(live) as connection:
        started = time.monotonic()
        connection.sendall(head + body[:10])  # and nothing more
        answer = read_answer(connection)
    assert_408(answer, time.monotonic() - started)


def test_a_trickled_body_gets_its_408_at_the_bound_too(live, good):
    """A byte every 0.1 s: every read gets data, yet the whole body has BODY_SECONDS."""
    head, body = raw_request(f"{live.url}/predict", json.dumps({"customer": good}).encode())
    with connect(live) as connection:
        started = time.monotonic()
        connection.sendall(head)
        received = b""
        for byte in body[: int(5 * BODY_SECONDS / 0.1)]:
            connection.sendall(bytes([byte]))
            time.sleep(0.1)
            connection.setblocking(False)
            try:
                received = connection.recv(65536)
            except BlockingIOError:
                continue
            finally:
                connection.setblocking(True)
            break
        elapsed = time.monotonic() - started
        assert received, f"no answer after {elapsed:.1f} s of trickling"
        connection.settimeout(30)
        answer = read_answer(connection, received, until_close=False)  # then reset or closed
    assert_408(answer, elapsed)


def test_beyond_the_drain_bytes_the_answer_comes_first_and_the_connection_closes_at_once(live, good):
    """A body declared larger than PREDICTOR_DRAIN_MAX_BYTES is not drained: a client that reads
    while it writes (curl, or one that sends Expect: 100-continue) gets the 413 at once; the worker
    closes at once, so a client that writes everything first is reset."""
    head, _ = raw_request(f"{live.url}/predict/batch", b"x" * (DRAIN_BYTES + 1))
    with connect(live) as connection:
        connection.sendall(head + b"x" * 65536)
        assert_413(read_answer(connection, until_close=False), LIMIT, "declared beyond the drain bound")
        started = time.monotonic()
        with pytest.raises(OSError):  # reset, or broken pipe
            while time.monotonic() - started < 10:
                connection.sendall(b"x" * 65536)
                time.sleep(0.05)  # 1.3 MB/s: draining the 8 MiB would last to the deadline
    assert time.monotonic() - started < 1
    assert requests.post(f"{live.url}/predict", json={"customer": good}, timeout=10).status_code == 200


def test_a_slow_oversize_body_is_drained_until_the_bound_then_closed(live, good):
    """After the 413 the rest is drained for what is left of PREDICTOR_BODY_TIMEOUT_SECONDS,
    never longer: a client still writing then is reset."""
    head, _ = raw_request(f"{live.url}/predict/batch", b"x" * (4 * LIMIT))
    with connect(live) as connection:
        started = time.monotonic()
        connection.sendall(head + b"x" * 65536)
        assert_413(read_answer(connection, until_close=False), LIMIT, "slow oversize")
        with pytest.raises(OSError):
            while time.monotonic() - started < 10:
                connection.sendall(b"x" * 1024)
                time.sleep(0.1)
    assert BODY_SECONDS - 0.1 < time.monotonic() - started < BODY_SECONDS + 1.5
    assert requests.post(f"{live.url}/predict", json={"customer": good}, timeout=10).status_code == 200
