"""Without Grafana, `monitor` evaluates the drift rule and posts Grafana's payload to the receiver."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from bankmarketing.alerts import AlertReceiverConfig
from bankmarketing.alerts.app import create_app
from bankmarketing.database import alert_event, engine_for, monitoring_drift
from bankmarketing.monitoring.alerting import drift_rule
from tests.conftest import FakeMage, mage_run

pytestmark = pytest.mark.integration
TOKEN = "receiver-token-for-monitor-0123456789"


@pytest.fixture
def receiver(monitored, postgres_url):
    """The real receiver app on a local port, its database a fresh Postgres one, Mage faked."""
    mage = FakeMage()
    settings = replace(monitored, database_url=postgres_url("receiver_for_monitor"))
    config = AlertReceiverConfig(
        token=TOKEN, mage_api_url=mage.url, mage_token=mage.token, mage_schedule_id=3, trigger_backoff_s=0.01
    )
    server = make_server("127.0.0.1", 0, create_app(settings, config), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield settings, f"http://127.0.0.1:{server.server_port}/alerts", mage
    server.shutdown()
    mage.stop()


def _drift(settings) -> dict[str, float]:
    with engine_for(settings.platform_database_url).connect() as connection:
        rows = connection.execute(
            sa.select(monitoring_drift.c.period, monitoring_drift.c.prediction_drift_score)
        )
        return dict(rows.all())


def test_the_rule_fires_on_the_newest_tested_period_only():
    rows = [
        {"period": "test", "period_start": "2007-12-01", "enough_rows": True, "prediction_drift_score": 0.3},
        {"period": "jun", "period_start": "2008-06-01", "enough_rows": True, "prediction_drift_score": 0.05},
        {"period": "jul", "period_start": "2008-07-01", "enough_rows": False, "prediction_drift_score": None},
    ]
    assert drift_rule(rows, 0.1) is None  # the newest tested period (jun) is stable
    rows[1]["prediction_drift_score"] = 0.2
    assert drift_rule(rows, 0.1)["period"] == "jun"
    assert drift_rule(rows, 0.25) is None


def test_monitor_posts_the_alert_once_and_the_receiver_starts_one_retrain(monitored, receiver):
    settings, url, mage = receiver
    scores = _drift(monitored)
    drifting = max((m for m in scores if m != "test"), key=scores.get)
    assert scores[drifting] > 0.1 >= scores["test"]
    env = {"ALERT_RECEIVER_URL": url, "ALERT_RECEIVER_TOKEN": TOKEN}

    stable = mage_run(settings, "monitor", {"periods": ["test"]}, **env)
    assert stable.returncode == 0, stable.stderr[-2000:]
    assert "below the threshold" in " ".join(stable.stdout.split()) and mage.calls == []

    for _ in range(2):  # the rerun posts the same alert: the receiver drops it as a duplicate
        drifted = mage_run(settings, "monitor", {"periods": ["test", drifting]}, **env)
        assert drifted.returncode == 0, drifted.stderr[-2000:]
    assert len(mage.calls) == 1
    variables = mage.variables()
    assert variables["period"] == drifting and variables["alertname"] == "Prediction drift"
    assert abs(variables["value"] - scores[drifting]) < 1e-9
    with engine_for(settings.platform_database_url).connect() as connection:
        decisions = connection.execute(sa.select(alert_event.c.decision).order_by(alert_event.c.id)).scalars()
        assert list(decisions) == ["started", "duplicate"]


def test_without_a_receiver_url_the_firing_rule_is_reported_not_posted(monitored):
    scores = _drift(monitored)
    drifting = max((m for m in scores if m != "test"), key=scores.get)
    result = mage_run(monitored, "monitor", {"periods": ["test", drifting]}, ALERT_RECEIVER_URL="")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ALERT_RECEIVER_URL is not set" in " ".join(result.stdout.split())


def test_an_unreachable_receiver_fails_the_run_clearly_and_keeps_the_metrics(monitored, postgres_url):
    settings = replace(monitored, database_url=postgres_url("monitoring_unreachable_receiver"))
    scores = _drift(monitored)
    drifting = max((m for m in scores if m != "test"), key=scores.get)
    result = mage_run(
        settings,
        "monitor",
        {"periods": ["test", drifting]},
        ALERT_RECEIVER_URL="http://127.0.0.1:9/alerts",
        ALERT_RECEIVER_TOKEN=TOKEN,
    )
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0
    assert f"the drift alert for period {drifting} could not reach the alert receiver" in output
    assert sorted(_drift(settings)) == sorted(["test", drifting])  # measured and stored before the alert
