"""Every dashboard panel's SQL and the alert rule's SQL, expanded as Grafana does, run on Postgres.

The monitoring database is filled by a real `monitor` run (the season scenario: the test
split, stable, then Jun–Nov, drifting), `model_evaluation` by the `test` stage's own code,
and Mage's database by Mage's own migrations and ORM models in Mage's environment. The same
queries also run on an empty stack: the platform's migrated tables and Mage's, no rows.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import textwrap
import uuid
from dataclasses import replace

import pytest
import sqlalchemy as sa

from bankmarketing.alerts import AlertReceiverConfig, grafana_payload
from bankmarketing.alerts.app import create_app
from bankmarketing.database import engine_for
from bankmarketing.holdout import TestOptions, evaluate_split
from tests.conftest import REPO, FakeMage, mage_run
from tests.grafana.grafana import (
    alert_query,
    alert_threshold,
    dashboard,
    default_time_range,
    expand,
    sql_targets,
)

pytestmark = pytest.mark.integration

MAGE_PYTHON = REPO / ".venv/mage/bin/python"
#: The range the dashboard opens on: the season scenario's periods must be in it.
OPENS_ON = default_time_range(dashboard())

#: Columns each panel must return (Grafana shows them by these names).
EXPECTED_COLUMNS = {
    "Prediction drift per period": ["time", "prediction drift", "PSI of the score"],
    "Drifted columns per period": ["time", "drifted columns", "dataset drift threshold"],
    "Share of missing values per period": ["time", "metric", "value"],
    "Rows per period": ["time", "rows", "too few rows (not tested)", "minimum rows"],
    "Live performance per period": ["time", "ROC-AUC", "PR-AUC", "precision", "recall", "F1"],
    "Fairness: gaps between groups per period": ["time", "metric", "value"],
    "Model performance by split": ["split", "ROC-AUC", "PR-AUC", "F1", "precision", "recall"],
    "Drift alert: what the rule sees now": ["model_name", "model_version", "period", "prediction_drift"],
    "Per-column drift (drifted = 1)": ["period", "column", "drifted"],
    "Per-column drift scores": ["period", "column", "test", "score", "threshold", "drift"],
    "Pipeline runs (Mage)": [
        "run",
        "pipeline",
        "status",
        "trigger",
        "execution date",
        "started",
        "completed",
        "duration",
    ],
    "Alerts received (alert receiver)": [
        "received",
        "status",
        "alert",
        "model",
        "version",
        "period",
        "decision",
        "retraining",
        "Mage run",
        "detail",
    ],
    "Challenger vs production: live ROC AUC per period": [
        "time",
        "production ROC AUC",
        "challenger ROC AUC",
        "difference",
        "p-value",
    ],
    "Challenger verdict per period": [
        "period",
        "production version",
        "challenger version",
        "labelled rows",
        "ROC AUC difference",
        "95 % interval low",
        "95 % interval high",
        "p-value",
        "p-value (Holm)",
        "PR AUC lift",
        "challenger served share",
        "verdict",
    ],
}
VERDICTS = {
    "challenger better",
    "production better",
    "no significant difference",
    "not comparable: subscribers and non-subscribers are both needed",
}
RECEIVER_TOKEN = "receiver-token-for-grafana-0123456789"

#: Runs Mage's own migrations on MAGE_DATABASE_CONNECTION_URL (all an empty stack has).
MAGE_MIGRATIONS = textwrap.dedent(
    """
    import datetime as dt, json, sys
    from mage_ai.orchestration.db.database_manager import database_manager
    database_manager.run_migrations(log_level=40)
    from mage_ai.orchestration.db.models.schedules import PipelineRun
    """
)
#: Then records runs through Mage's ORM.
MAGE_RUNS = textwrap.dedent(
    """
    from mage_ai.data_preparation.models.triggers import ScheduleType
    from mage_ai.orchestration.db.models.schedules import PipelineRun, PipelineSchedule

    now = dt.datetime.now(dt.timezone.utc)
    trigger = PipelineSchedule.create(
        name="retrain_on_alert", pipeline_uuid="retrain",
        schedule_type=ScheduleType.API,
    )
    status = PipelineRun.PipelineRunStatus
    runs = [
        ("monitor", None, status.COMPLETED, 40, 37),
        ("monitor", None, status.FAILED, 30, 29),
        ("retrain", trigger.id, status.RUNNING, 5, None),
    ]
    for pipeline, schedule, state, started, completed in runs:
        PipelineRun.create(
            create_block_runs=False, pipeline_uuid=pipeline, pipeline_schedule_id=schedule, status=state,
            execution_date=now - dt.timedelta(minutes=started),
            started_at=now - dt.timedelta(minutes=started),
            completed_at=None if completed is None else now - dt.timedelta(minutes=completed),
            variables={},
        )
    print(json.dumps({"runs": PipelineRun.query.count()}))
    """
)


@pytest.fixture(scope="module")
def monitoring(monitored):
    """The monitored database plus `test`-stage evaluations of the production version per split,
    and a drift alert received by the real receiver (Mage's trigger answered by FakeMage)."""
    for split in ("train", "validation", "test"):
        evaluate_split(monitored, TestOptions(split=split))
    mage = FakeMage()
    try:
        config = AlertReceiverConfig(
            token=RECEIVER_TOKEN, mage_api_url=mage.url, mage_token=mage.token, mage_schedule_id=1
        )
        labels = {"model_name": monitored.model_name, "model_version": "1", "period": "nov"}
        payload = grafana_payload("Prediction drift", labels, 0.3, dt.datetime(2008, 12, 1, tzinfo=dt.UTC))
        reply = (
            create_app(monitored, config)
            .test_client()
            .post("/alerts", json=payload, headers={"Authorization": f"Bearer {RECEIVER_TOKEN}"})
        )
        assert reply.get_json()["results"][0]["decision"] == "started"
    finally:
        mage.stop()
    return engine_for(monitored.platform_database_url), monitored.model_name


def _mage_database(postgres_url, tmp_path_factory, script: str) -> tuple[sa.Engine, int]:
    """A Mage database made by `script` in Mage's environment, and the runs it holds."""
    url = postgres_url(f"mage_{uuid.uuid4().hex[:8]}", migrate=False)  # Mage's, not the platform's
    home = tmp_path_factory.mktemp("mage")
    env = {**os.environ, "MAGE_DATABASE_CONNECTION_URL": url, "MAGE_DATA_DIR": str(home)}
    done = subprocess.run(
        [str(MAGE_PYTHON), "-c", script], cwd=home, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return sa.create_engine(url), json.loads(done.stdout.strip().splitlines()[-1])["runs"]


@pytest.fixture(scope="module")
def mage_engine(postgres_url, tmp_path_factory):
    """Mage's database: schema from Mage's own alembic migrations, runs from its ORM models."""
    engine, runs = _mage_database(postgres_url, tmp_path_factory, MAGE_MIGRATIONS + MAGE_RUNS)
    assert runs >= 3
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def empty_mage_engine(postgres_url, tmp_path_factory):
    """Mage's database as a fresh stack has it: migrated, no pipeline run."""
    engine, runs = _mage_database(
        postgres_url,
        tmp_path_factory,
        MAGE_MIGRATIONS + 'print(json.dumps({"runs": PipelineRun.query.count()}))',
    )
    assert runs == 0
    yield engine
    engine.dispose()


def _rows(engine: sa.Engine, sql: str) -> tuple[list[str], list[tuple]]:
    with engine.connect() as connection:
        result = connection.execute(sa.text(sql.replace(":", r"\:")))
        return list(result.keys()), [tuple(r) for r in result]


def _variables(engine: sa.Engine, model_name: str | None = None) -> dict:
    """The dashboard's variables as Grafana resolves them: the first option of their queries
    (versions newest first), or '' when a query finds nothing (Grafana's empty value)."""
    board = dashboard()
    queries = {v["name"]: v["query"] for v in board["templating"]["list"]}
    _, names = _rows(engine, expand(queries["model_name"], *OPENS_ON))
    if model_name is None:
        model_name = names[0][0] if names else ""
    assert model_name == "" or (model_name,) in names
    _, versions = _rows(engine, expand(queries["model_version"], *OPENS_ON, {"model_name": model_name}))
    return {"model_name": model_name, "model_version": versions[0][0] if versions else ""}


def _time_range(panel: dict) -> tuple[dt.datetime, dt.datetime]:
    """The range Grafana sends: a panel-level relative range replaces the dashboard's."""
    if not panel.get("timeFrom"):
        return OPENS_ON
    days = int(panel["timeFrom"].removesuffix("d"))
    # Grafana sends whole seconds: a row written this second is after `to`
    now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    return now - dt.timedelta(days=days), now


def test_every_panel_query_runs_and_returns_its_columns(monitoring, mage_engine):
    """On the range the dashboard opens on, every panel shows the monitored data."""
    engine, model_name = monitoring
    variables = _variables(engine, model_name)
    assert variables["model_version"] != ""
    seen = set()
    for panel, target in sql_targets(dashboard()):
        title = panel["title"]
        database = mage_engine if target["datasource"]["uid"] == "mage-postgres" else engine
        columns, rows = _rows(database, expand(target["rawSql"], *_time_range(panel), variables))
        assert columns == EXPECTED_COLUMNS[title], title
        assert rows, f"{title}: no rows"
        if target["format"] == "time_series":
            times = [r[0] for r in rows]
            assert times == sorted(times) and all(OPENS_ON[0] <= t <= OPENS_ON[1] for t in times), title
        seen.add(title)
    assert seen == set(EXPECTED_COLUMNS)


def test_on_an_empty_stack_every_panel_shows_no_data(postgres_url, empty_mage_engine):
    """Fresh stack: the platform's tables migrated (`bankmarketing migrate`, run by `make up`
    and compose), Mage's too, no rows. The variables find nothing (value ''); every query still
    runs and returns no rows, which Grafana shows as "No data", not as an SQL error."""
    engine = engine_for(postgres_url(f"empty_{uuid.uuid4().hex[:8]}"))
    variables = _variables(engine)
    assert variables == {"model_name": "", "model_version": ""}
    for panel, target in sql_targets(dashboard()):
        database = empty_mage_engine if target["datasource"]["uid"] == "mage-postgres" else engine
        columns, rows = _rows(database, expand(target["rawSql"], *_time_range(panel), variables))
        assert columns == EXPECTED_COLUMNS[panel["title"]] and rows == [], panel["title"]
    with engine.connect() as connection:
        assert _alert(connection) == []  # the rule's noDataState: OK


def test_panels_show_the_season_scenario(monitoring, mage_engine):
    engine, model_name = monitoring
    variables = _variables(engine, model_name)
    targets = {p["title"]: t for p, t in sql_targets(dashboard())}

    def run(title, database=engine, time_range=OPENS_ON):
        return _rows(database, expand(targets[title]["rawSql"], *time_range, variables))[1]

    drift = run("Prediction drift per period")
    assert len(drift) == 7  # test split + Jun..Nov
    assert drift[0][1] <= 0.1 < max(r[1] for r in drift[1:])  # stable test split, drifting months
    missing = run("Share of missing values per period")
    series = {}
    for _moment, name, share in missing:
        series.setdefault(name, []).append(share)
    # the data set's own marker `unknown`: these four inputs have it, the others never
    assert set(series) == {"all inputs", "job", "education", "contact", "poutcome"}
    assert all(len(shares) == 7 and all(0 < s < 1 for s in shares) for shares in series.values())
    gaps = run("Fairness: gaps between groups per period")
    assert len({r[0] for r in gaps}) == 7 and all(0 <= r[2] <= 1 for r in gaps)
    assert {r[1].split(":")[0] for r in gaps} == {"age band", "marital", "job group"}
    splits = [r[0] for r in run("Model performance by split")]
    assert splits == ["train", "validation", "test"]
    matrix = run("Per-column drift (drifted = 1)")
    assert {r[2] for r in matrix} <= {0, 1} and len({r[0] for r in matrix}) == 7
    now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    runs = run("Pipeline runs (Mage)", mage_engine, (now - dt.timedelta(days=7), now))
    expected = [("retrain", "running"), ("monitor", "failed"), ("monitor", "completed")]
    assert [(r[1], r[2]) for r in runs] == expected
    assert runs[0][3] == "retrain_on_alert" and runs[2][7] == pytest.approx(180, abs=1)
    # the registry's other version was the challenger: compared with production on every period
    roc = run("Challenger vs production: live ROC AUC per period")
    assert len(roc) == 7
    assert all(0.5 < auc <= 1 for r in roc for auc in r[1:3]), roc
    assert all(r[3] == pytest.approx(r[2] - r[1]) and 0 <= r[4] <= 1 for r in roc), roc
    verdicts = run("Challenger verdict per period")  # newest period first
    assert [r[0] for r in verdicts] == ["nov", "oct", "sep", "aug", "jul", "jun", "test"]
    (pair,) = {(r[1], r[2]) for r in verdicts}
    assert pair[0] == variables["model_version"] != pair[1]
    assert all(r[7] is None or 0 <= r[7] <= 1 for r in verdicts)
    assert all(r[4] is None or r[5] <= r[4] <= r[6] for r in verdicts)
    assert all(r[7] is None or r[7] <= r[8] <= 1 for r in verdicts)  # Holm never lowers a p-value
    assert all(r[11] != "challenger better" or r[8] < 0.05 for r in verdicts)  # verdicts use it
    assert all(r[10] is None for r in verdicts)  # batch periods: nobody was served
    assert {r[11] for r in verdicts} <= VERDICTS, verdicts


def _alert(connection: sa.Connection) -> list[dict]:
    now = dt.datetime.now(dt.UTC)
    sql = expand(alert_query()["model"]["rawSql"], now - dt.timedelta(minutes=10), now)
    return [dict(r._mapping) for r in connection.execute(sa.text(sql))]


def test_alert_query_fires_on_drifting_months_not_on_the_stable_test_split(monitoring):
    """Replay the season: with each period as the newest one written, what the rule evaluates."""
    engine, model_name = monitoring
    threshold = alert_threshold()
    with engine.connect() as connection:
        periods = connection.execute(
            sa.text(
                "SELECT period, period_start, prediction_drift_score FROM monitoring_drift "
                "WHERE model_name = :m ORDER BY period_start"
            ),
            {"m": model_name},
        ).all()
    assert [p.period for p in periods] == ["test", "jun", "jul", "aug", "sep", "oct", "nov"]
    fired = {}
    for period in periods:
        with engine.connect() as connection, connection.begin() as transaction:
            connection.execute(
                sa.text("DELETE FROM monitoring_drift WHERE model_name = :m AND period_start > :s"),
                {"m": model_name, "s": period.period_start},
            )
            (row,) = [r for r in _alert(connection) if r["model_name"] == model_name]
            transaction.rollback()
        assert row["period"] == period.period
        assert row["prediction_drift"] == pytest.approx(period.prediction_drift_score)
        assert isinstance(row["model_version"], str)  # a label, as Grafana reads string columns
        fired[period.period] = row["prediction_drift"] > threshold
    assert fired["test"] is False
    assert fired["nov"] and sum(fired.values()) >= 4, fired
    # without any replay: the newest period is what fires now
    with engine.connect() as connection:
        (now,) = [r for r in _alert(connection) if r["model_name"] == model_name]
    assert now["period"] == "nov" and now["prediction_drift"] > threshold


def test_a_period_without_enough_rows_never_fires(served, postgres_url):
    """A real monitor run where the newest period (Nov) has fewer rows than min_rows: skipped."""
    settings = replace(served[0], database_url=postgres_url(f"monitoring_{uuid.uuid4().hex[:8]}"))
    result = mage_run(settings, "monitor", {"periods": ["jul", "nov"], "min_rows": 5000, "alert": False})
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    with engine_for(settings.platform_database_url).connect() as connection:
        stored = {
            r.period: r
            for r in connection.execute(
                sa.text("SELECT period, rows, enough_rows, prediction_drift_score FROM monitoring_drift")
            )
        }
        alerts = _alert(connection)
    assert stored["nov"].enough_rows is False and stored["nov"].rows < 5000
    assert stored["jul"].enough_rows is True
    assert [a["period"] for a in alerts] == ["jul"]  # the newest period with enough rows, never nov
