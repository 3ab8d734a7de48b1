"""A promotion while the predictor is under load: no request fails, the version changes once."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
import requests
from mlflow import MlflowClient

from tests.conftest import REPO
from tests.serving.gunicorn_process import Gunicorn
from tests.serving.test_app import customer

pytestmark = pytest.mark.integration


def test_swap_under_load_loses_no_request(served, tmp_path):
    settings, versions, test = served
    server = Gunicorn(
        REPO / ".venv/app/bin",
        tmp_path,
        {
            "MODEL_NAME": settings.model_name,
            "MLFLOW_TRACKING_URI": settings.tracking_uri,
            "PREDICTOR_CACHE_DIR": str(tmp_path / "cache"),
            "PREDICTOR_POLL_SECONDS": "0.5",
            "DATABASE_URL": f"sqlite:///{tmp_path}/platform.db",
            "PREDICTOR_WORKERS": "2",
        },
        tmp_path / "gunicorn.log",
    )
    registry = MlflowClient(settings.tracking_uri)
    results: list[tuple[float, int, str | None]] = []
    stop = threading.Event()

    def load(worker: int) -> None:
        session = requests.Session()
        body = {"customer": customer(test, worker)}
        while not stop.is_set():
            try:
                response = session.post(f"{server.url}/predict", json=body, timeout=10)
                version = response.json().get("model_version") if response.ok else None
                results.append((time.monotonic(), response.status_code, version))
            except requests.RequestException as exc:
                results.append((time.monotonic(), 0, repr(exc)))

    try:
        server.wait_ready()
        threads = [threading.Thread(target=load, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(3)
        swapped_at = time.monotonic()
        registry.set_registered_model_alias(settings.model_name, "production", versions["other"])
        time.sleep(6)
        stop.set()
        for thread in threads:
            thread.join()
    finally:
        registry.set_registered_model_alias(settings.model_name, "production", versions["production"])
        server.stop()

    with sqlite3.connect(tmp_path / "platform.db") as database:
        logged = database.execute("select count(*) from prediction_log").fetchone()[0]
    assert logged == len(results)  # every answered prediction was logged, none lost at shutdown
    assert len(results) > 200
    assert {status for _, status, _ in results} == {200}
    before = [v for t, _, v in results if t < swapped_at]
    settled = [v for t, _, v in results if t > swapped_at + 3]
    assert set(before) == {versions["production"]}
    assert settled and set(settled) == {versions["other"]}
    assert {v for _, _, v in results} == {versions["production"], versions["other"]}
