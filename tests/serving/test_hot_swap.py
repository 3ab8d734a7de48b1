"""A promotion while the predictor is under load: no request fails, the version changes once.

Two gunicorn workers poll the alias on their own; they switch at the instant they agreed on
through the shared cache, so the clients see one switch, not one per worker.
"""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
import requests

from bankmarketing.registry import client_for
from tests.conftest import REPO, migrated
from tests.serving.gunicorn_process import Gunicorn
from tests.serving.test_app import customer

pytestmark = pytest.mark.integration


ADMIN_TOKEN = "hot-swap-admin-token-" + "7f3a9c1e5b2d4068"


@pytest.mark.parametrize("trigger", ["poll", "reload"])
def test_swap_under_load_loses_no_request(served, tmp_path, trigger):
    """`poll`: both workers poll the alias. `reload`: they never poll in the test's time, and
    POST /admin/reload reaches one of them: the other learns the switch from the shared cache."""
    settings, versions, test = served
    server = Gunicorn(
        REPO / ".venv/app/bin",
        tmp_path,
        {
            "MODEL_NAME": settings.model_name,
            "MLFLOW_TRACKING_URI": settings.tracking_uri,
            "PREDICTOR_CACHE_DIR": str(tmp_path / "cache"),
            "PREDICTOR_POLL_SECONDS": "0.5" if trigger == "poll" else "3600",
            "PREDICTOR_ADMIN_TOKEN": ADMIN_TOKEN,
            "DATABASE_URL": migrated(f"sqlite:///{tmp_path}/platform.db"),
            "PREDICTOR_WORKERS": "2",
            "PREDICTOR_SWITCH_DELAY_SECONDS": "3",
        },
        tmp_path / "gunicorn.log",
    )
    registry = client_for(settings.tracking_uri)
    results: list[tuple[float, float, int, str | None]] = []  # sent, received, status, version
    stop = threading.Event()

    def load(worker: int) -> None:
        session = requests.Session()
        body = {"customer": customer(test, worker)}
        while not stop.is_set():
            sent = time.monotonic()
            try:
                response = session.post(f"{server.url}/predict", json=body, timeout=10)
                version = response.json().get("model_version") if response.ok else None
                results.append((sent, time.monotonic(), response.status_code, version))
            except requests.RequestException as exc:
                results.append((sent, time.monotonic(), 0, repr(exc)))

    try:
        server.wait_ready()
        threads = [threading.Thread(target=load, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(3)
        swapped_at = time.monotonic()
        registry.set_registered_model_alias(settings.model_name, "production", versions["other"])
        if trigger == "reload":
            reload = requests.post(
                f"{server.url}/admin/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
            )
            assert reload.status_code == 200 and reload.json()["model_version"] == versions["other"]
        time.sleep(9)
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
    assert {status for _, _, status, _ in results} == {200}
    old, new = versions["production"], versions["other"]
    before = [v for _, received, _, v in results if received < swapped_at]
    settled = [v for sent, _, _, v in results if sent > swapped_at + 6]  # poll 0.5 s + delay 3 s
    assert set(before) == {old}
    assert settled and set(settled) == {new}
    assert {v for *_, v in results} == {old, new}
    # Once: no request sent after the first new answer arrived was scored by the old version
    # (with workers switching on their own, one worker answers old while the other answers new).
    first_new = min(received for _, received, _, v in results if v == new)
    late_old = [sent - first_new for sent, _, _, v in results if v == old and sent > first_new]
    assert not late_old, f"{len(late_old)} old answers to requests sent up to {max(late_old):.3f} s later"
