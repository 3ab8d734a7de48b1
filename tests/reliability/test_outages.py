"""Item 3: the registry or the database gone, against a real Postgres stopped and started, or
behind a proxy that cuts its connections at a chosen point of `monitor`'s transaction.

The predictor started while MLflow is unreachable serves its cached model:
tests/serving/test_app.py::test_registry_down_at_start_serves_the_cached_model.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
import uuid
from collections import Counter
from dataclasses import replace

import pytest
import requests
import sqlalchemy as sa

from bankmarketing.database import engine_for, prediction_log
from tests.conftest import PG_BIN, REPO, Postgres, mage_env, migrated
from tests.reliability.monitor_outage import PERIOD_TABLES
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
    url = migrated(pg.create_database(f"outage_{uuid.uuid4().hex[:8]}"))
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
    url = migrated(pg.create_database(f"stop_{uuid.uuid4().hex[:8]}"))
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


# --- monitor: the database lost inside a period's transaction ------------------------------
#
# `monitor` runs in Mage's environment (it needs Evidently) through tests/reliability/
# monitor_outage.py, in-process there, its database behind a PgProxy. The outage is injected
# by a hook on `storage._upsert` at a chosen (period, table): no timing is involved.

MAGE_PYTHON = REPO / ".venv/mage/bin/python"
#: The retry's pause in these runs (storage.RETRY_PAUSE_S, 5 s in production).
PAUSE_S = 0.5
#: In the URL monitor is given; trust authentication ignores it, and nothing may print it.
PASSWORD = "pg-pass-" + uuid.uuid4().hex[:12]


def _monitor_through_proxy(settings, tmp_path, periods, cut_at: str = "", outage: str = "brief"):
    """Run monitor_outage.py; its report (dict) and everything it printed."""
    report = tmp_path / f"monitor-{uuid.uuid4().hex[:6]}.json"
    command = [str(MAGE_PYTHON), "-m", "tests.reliability.monitor_outage", str(report)]
    command += ["--periods", ",".join(periods), "--cut-at", cut_at, "--outage", outage]
    command += ["--pause", str(PAUSE_S)]
    done = subprocess.run(
        command, cwd=REPO, env=mage_env(settings), capture_output=True, text=True, timeout=1800
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    return json.loads(report.read_text()), output


def _stored(url: str, model_name: str) -> dict[str, dict[str, int]]:
    """Rows per table and period; asserts each period's rows come from one write (computed_at)."""
    written: dict[str, set] = {}
    stored = {}
    with engine_for(url).connect() as connection:
        for name in PERIOD_TABLES:
            table = sa.Table(name, sa.MetaData(), autoload_with=connection)
            rows = connection.execute(
                sa.select(table.c.period, table.c.computed_at).where(table.c.model_name == model_name)
            ).all()
            stored[name] = dict(Counter(period for period, _ in rows))
            for period, at in rows:
                written.setdefault(period, set()).add(at)
    assert all(len(moments) == 1 for moments in written.values()), written
    return stored


def _as_given(given: dict, periods: list[str]) -> dict[str, dict[str, int]]:
    """What the hook saw `store` give `_upsert`, as `_stored` reads it back (empty: no rows)."""
    return {
        name: {period: given[period][name] for period in periods if given[period][name]}
        for name in PERIOD_TABLES
    }


def _proxied_database(served, pg, prefix: str):
    """`served`'s settings on a new database, its URL with PASSWORD; the URL without."""
    url = migrated(pg.create_database(f"{prefix}_{uuid.uuid4().hex[:8]}"))
    with_password = sa.engine.make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)
    return replace(served[0], database_url=with_password), url


def _check_the_cut(report: dict, output: str) -> None:
    """The outage hit inside an open transaction holding the period's drift row; one retry."""
    fault = report["fault"]
    assert fault is not None, "the hook never ran: the chosen period or table was not written"
    assert fault["drift_rows_in_the_open_transaction"] == 1
    assert fault["connections_cut"] >= 1
    assert fault["failed_with"] == "OperationalError", fault  # what _transaction retries
    retries = output.count("retrying once")
    assert retries == 1, f"{retries} retries, then {report['outcome']}"
    assert PASSWORD not in output


def test_monitor_retries_a_period_whose_connection_is_cut_mid_transaction(served, pg, tmp_path):
    """Postgres lost after monitoring_drift is written for jun, back at once: one retry, all stored."""
    settings, url = _proxied_database(served, pg, "retry")
    periods = ["test", "jun", "jul"]
    report, output = _monitor_through_proxy(
        settings, tmp_path, periods, cut_at="jun:monitoring_column_drift", outage="brief"
    )
    assert report["outcome"] == {"ok": periods}, report["outcome"]
    _check_the_cut(report, output)
    calls = report["calls"]
    attempts = {period: calls[period]["monitoring_drift"] for period in periods}
    assert attempts == {"test": 1, "jun": 2, "jul": 1}
    assert calls["jun"] == {name: 2 if name in PERIOD_TABLES[:2] else 1 for name in PERIOD_TABLES}
    version = int(served[1]["production"])
    assert f"storing period jun of v{version}: database connection failed" in output
    retry_connects = report["accepted_after_cut_s"]
    assert retry_connects and retry_connects[0] >= PAUSE_S  # the retry waited its pause
    # the first attempt's rows were never committed: the retry began on an empty period
    assert report["visible_when_the_retry_began"] == dict.fromkeys(PERIOD_TABLES, 0)
    stored = _stored(url, settings.model_name)
    assert stored == _as_given(report["given"], periods)  # each period once, all five tables
    assert all(stored[name] for name in ("monitoring_drift", "monitoring_column_drift"))
    print(f"\nmonitor, connection cut inside period jun: retried after {retry_connects[0]:.2f} s, {stored}")


def test_monitor_names_the_database_when_it_stays_down_and_keeps_the_periods_before(served, pg, tmp_path):
    """Postgres lost inside jun's transaction for good: DatabaseUnavailable naming it (password
    hidden) after one retry; test stays stored, jun is absent; a rerun afterwards stores both."""
    settings, url = _proxied_database(served, pg, "down")
    periods = ["test", "jun"]
    report, output = _monitor_through_proxy(
        settings, tmp_path, periods, cut_at="jun:monitoring_column_drift", outage="lasting"
    )
    _check_the_cut(report, output)
    version = int(served[1]["production"])
    message = report["outcome"]["DatabaseUnavailable"]
    database = f"postgresql://postgres:***@127.0.0.1:{report['proxy_port']}/{url.rsplit('/', 1)[1]}"
    assert f"the platform database {database} is unreachable" in message, message
    assert f"period jun of v{version} was not stored (the periods before it are)" in message
    assert PASSWORD not in message
    assert report["calls"]["jun"] == {"monitoring_drift": 1, "monitoring_column_drift": 1}
    refused = report["refused_after_cut_s"]
    assert refused and min(refused) >= PAUSE_S  # the retry, after its pause, found it down
    stored = _stored(url, settings.model_name)
    assert stored == _as_given(report["given"], ["test"])  # test whole, nothing of jun

    rerun, output = _monitor_through_proxy(settings, tmp_path, periods)  # the database is back
    assert rerun["outcome"] == {"ok": periods} and "retrying once" not in output
    assert _stored(url, settings.model_name) == _as_given(rerun["given"], periods)
    assert _as_given(rerun["given"], ["test"]) == stored


def test_a_period_whose_database_stays_down_fails_naming_the_database(monkeypatch, caplog):
    """Nothing listening: one retry, then DatabaseUnavailable with the password hidden."""
    from bankmarketing.monitoring import storage

    monkeypatch.setattr(storage, "RETRY_PAUSE_S", 0.0)
    url = "postgresql://postgres:secret@127.0.0.1:9/platform"
    with caplog.at_level(logging.WARNING, logger=storage.__name__):
        with pytest.raises(storage.DatabaseUnavailable) as error:
            storage._transaction(url, lambda connection: None, "period jun of v1")
    message = str(error.value)
    assert "platform database postgresql://postgres:***@127.0.0.1:9/platform is unreachable" in message
    assert "period jun of v1 was not stored" in message and "secret" not in message
    assert [record.getMessage().split(":")[0] for record in caplog.records] == ["storing period jun of v1"]
    assert "retrying once" in caplog.text and "secret" not in caplog.text
