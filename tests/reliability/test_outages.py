"""Item 3: the registry or the database gone, against a real Postgres stopped and started.

The predictor started while MLflow is unreachable serves its cached model:
tests/serving/test_app.py::test_registry_down_at_start_serves_the_cached_model.
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from dataclasses import replace

import pytest
import requests
import sqlalchemy as sa

from bankmarketing.database import engine_for, monitoring_column_drift, monitoring_drift, prediction_log
from tests.conftest import PG_BIN, REPO, Postgres, mage_run
from tests.serving.gunicorn_process import Gunicorn
from tests.serving.test_app import customer

pytestmark = pytest.mark.integration


class RestartablePostgres(Postgres):
    """The throwaway server, which can be stopped and started again on the same port."""

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.prefix, str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", *args],
            check=True,
            capture_output=True,
        )

    def halt(self) -> None:
        self._ctl("-m", "fast", "stop")

    def resume(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._ctl("-l", str(self.dir / "log"), "-o", options, "start")


@pytest.fixture(scope="module")
def pg_server():
    server = RestartablePostgres()
    yield server
    server.stop()


@pytest.fixture
def pg(pg_server):
    """The module's server, running again after each test (a failed test may leave it stopped)."""
    yield pg_server
    status = subprocess.run([*pg_server.prefix, str(PG_BIN / "pg_ctl"), "-D", str(pg_server.data), "status"])
    if status.returncode != 0:
        pg_server.resume()


def _wait(condition, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert condition()


def _logged(url: str) -> tuple[int, int]:
    """Rows in prediction_log and distinct request ids among them."""
    query = sa.select(sa.func.count(), sa.func.count(sa.distinct(prediction_log.c.request_id)))
    try:
        with engine_for(url).connect() as connection:
            return tuple(connection.execute(query).one())
    except sa.exc.OperationalError:
        return -1, -1


def test_predictions_during_a_database_outage_are_spilled_and_logged_once(served, app_factory, pg, tmp_path):
    test = served[2]
    url = pg.create_database(f"outage_{uuid.uuid4().hex[:8]}")
    app = app_factory(settings={"database_url": url}, log_memory_rows=400)
    log, client = app.extensions["bankmarketing"]["predictions"], app.test_client()

    def predict(i: int) -> int:
        return client.post("/predict", json={"customer": customer(test, i)}).status_code

    assert [predict(i) for i in range(20)] == [200] * 20
    _wait(lambda: _logged(url) == (20, 20))
    pg.halt()
    n = 1500  # more than the 400 rows held in memory
    answered = 20
    for i in range(n):
        answered += predict(i) == 200
        if i % 50 == 49:  # one test-client thread outruns any writer sharing its GIL: pace it
            _wait(lambda: len(log._rows) < 200, timeout_s=10)
    assert answered == 20 + n
    _wait(lambda: log.spilled > 0)
    spill = tmp_path / "cache/prediction-log-spill"
    assert list(spill.glob("*/*.jsonl")) and log.dropped == 0 and len(log._rows) <= 400
    pg.resume()
    _wait(lambda: _logged(url) == (answered, answered))
    _wait(lambda: not list(spill.glob("*/*.jsonl")))
    time.sleep(1.0)  # nothing else arrives late
    assert _logged(url) == (answered, answered) and log.dropped == 0
    published = _gauges(client.get("/metrics").get_data(as_text=True))
    assert published["predictor_prediction_log_spilled"] == log.spilled > 0
    assert published["predictor_prediction_log_replayed"] == log.spilled  # every spilled row came back
    assert published["predictor_prediction_log_written"] == answered
    assert published["predictor_prediction_log_dropped"] == 0


def _gauges(text: str) -> dict[str, float]:
    """The unlabelled samples of a Prometheus text exposition."""
    return {
        name: float(value)
        for name, value in (line.split() for line in text.splitlines() if line and not line.startswith("#"))
        if "{" not in name
    }


def test_a_predictor_stopped_during_an_outage_spills_and_the_next_start_writes(served, pg, tmp_path):
    settings, _, test = served
    url = pg.create_database(f"stop_{uuid.uuid4().hex[:8]}")
    env = {
        "MODEL_NAME": settings.model_name,
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        "PREDICTOR_CACHE_DIR": str(tmp_path / "cache"),
        "PREDICTOR_LOG_SPILL_DIR": str(tmp_path / "spill"),
        "DATABASE_URL": url,
        "PREDICTOR_WORKERS": "2",
    }
    server = Gunicorn(REPO / ".venv/app/bin", tmp_path, env, tmp_path / "gunicorn-1.log")
    try:
        server.wait_ready()
        pg.halt()
        session = requests.Session()
        n = 400
        codes = [
            session.post(f"{server.url}/predict", json={"customer": customer(test, i)}).status_code
            for i in range(n)
        ]
        assert codes == [200] * n
    finally:
        server.stop()  # the workers cannot reach the database: they spill what they hold
    spilled = sum(len(path.read_bytes().splitlines()) for path in (tmp_path / "spill").glob("*/*.jsonl"))
    assert spilled == n
    pg.resume()
    assert _logged(url) == (0, 0)
    server = Gunicorn(REPO / ".venv/app/bin", tmp_path, env, tmp_path / "gunicorn-2.log")
    try:
        server.wait_ready()
        _wait(lambda: _logged(url) == (n, n))
        _wait(lambda: not list((tmp_path / "spill").glob("*/*.jsonl")))
    finally:
        server.stop()
    assert _logged(url) == (n, n)


def _monitoring_rows(url: str) -> tuple[list, list]:
    """(period, version, rows) of monitoring_drift; (period, version, columns) of column drift."""
    with engine_for(url).connect() as connection:
        drift = connection.execute(
            sa.select(monitoring_drift.c.period, monitoring_drift.c.model_version, sa.func.count())
            .group_by(monitoring_drift.c.period, monitoring_drift.c.model_version)
            .order_by(monitoring_drift.c.period)
        ).all()
        columns = connection.execute(
            sa.select(
                monitoring_column_drift.c.period,
                monitoring_column_drift.c.model_version,
                sa.func.count(),
                sa.func.count(sa.distinct(monitoring_column_drift.c.column_name)),
            )
            .group_by(monitoring_column_drift.c.period, monitoring_column_drift.c.model_version)
            .order_by(monitoring_column_drift.c.period)
        ).all()
    return [tuple(row) for row in drift], [tuple(row) for row in columns]


def _drift_count(url: str) -> int:
    try:
        with engine_for(url).connect() as connection:
            return connection.execute(sa.select(sa.func.count()).select_from(monitoring_drift)).scalar()
    except sa.exc.OperationalError:
        return -1


def test_monitor_with_postgres_restarted_mid_run_completes_or_names_the_database(served, pg):
    settings = replace(served[0], database_url=pg.create_database(f"monitor_{uuid.uuid4().hex[:8]}"))
    periods = ["test", "jun", "jul"]
    variables = {"periods": periods, "alert": False}
    engine_for(settings.database_url)  # the tables exist before the run
    result = {}
    run = threading.Thread(target=lambda: result.update(run=mage_run(settings, "monitor", variables)))
    run.start()
    deadline = time.monotonic() + 600
    while _drift_count(settings.database_url) < 1 and run.is_alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _drift_count(settings.database_url) >= 1, "monitor stored no period"
    pg.halt()  # after the first period is stored, while the next ones are measured
    time.sleep(2.0)
    pg.resume()
    run.join(900)
    first = result["run"]
    output = " ".join((first.stdout + first.stderr).split())
    if first.returncode != 0:  # a failure must name the database, not a bare traceback
        assert "platform database postgresql://postgres@127.0.0.1" in output, output[-3000:]
    second = mage_run(settings, "monitor", variables)
    assert second.returncode == 0, " ".join((second.stdout + second.stderr).split())[-3000:]
    version = int(served[1]["production"])
    drift, columns = _monitoring_rows(settings.database_url)
    assert drift == [(period, version, 1) for period in sorted(periods)]
    assert columns == [(period, version, 15, 15) for period in sorted(periods)]
    retried = "retrying once" in output
    print(
        f"\nmonitor, Postgres restarted mid-run: exit {first.returncode} (retried: {retried}); rerun exit 0"
    )


def test_a_period_whose_database_stays_down_fails_naming_the_database(monkeypatch):
    from bankmarketing.monitoring import monitor

    monkeypatch.setattr(monitor, "RETRY_PAUSE_S", 0.0)
    url = "postgresql://postgres:secret@127.0.0.1:9/platform"
    with pytest.raises(monitor.DatabaseUnavailable) as error:
        monitor._transaction(url, lambda connection: None, "period jun of v1")
    message = str(error.value)
    assert "platform database postgresql://postgres:***@127.0.0.1:9/platform is unreachable" in message
    assert "period jun of v1 was not stored" in message and "secret" not in message
