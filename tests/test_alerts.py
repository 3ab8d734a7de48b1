"""The alert receiver: Grafana-format payloads in, at most one Mage `retrain` run out.

Most tests use a small local HTTP server in place of Mage (`FakeMage`): it records every
trigger call and answers like Mage 0.9.80 does — `{"pipeline_run": {...}}` for the right
token, HTTP 200 with an error body for a wrong one, or (mode "empty") HTTP 200 with an empty
body. The last test starts a real `mage start` on a copy of the Mage project instead.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from bankmarketing.alerts import (
    AlertReceiverConfig,
    ConfigurationError,
    fingerprint,
    grafana_payload,
    mark_retraining,
    post_alert,
    sign,
)
from bankmarketing.alerts.app import create_app
from bankmarketing.alerts.schemas import GrafanaWebhook
from bankmarketing.database import alert_event, engine_for, retraining
from bankmarketing.web import BODY_SECONDS
from tests.conftest import FAKE_MAGE_TOKEN, REPO, free_port, settings_for
from tests.serving.http_clients import CLIENTS, assert_413, raw_request, read_answer

FIXTURES = REPO / "tests/fixtures/grafana"
TOKEN = "grafana-webhook-token-0123456789"
HMAC_SECRET = "grafana-hmac-secret-0123456789ab"
ADMIN = "receiver-admin-token-0123456789"
MAGE_TOKEN = FAKE_MAGE_TOKEN
SCHEDULE_ID = 7


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def receiver_config(mage_url: str, **overrides) -> AlertReceiverConfig:
    config = AlertReceiverConfig(
        token=TOKEN,
        hmac_secret=None,
        admin_token=ADMIN,
        max_body_bytes=64 * 1024,
        cooldown_s=3600,
        max_runtime_s=3600,
        mage_api_url=mage_url,
        mage_token=MAGE_TOKEN,
        mage_schedule_id=SCHEDULE_ID,
        trigger_attempts=3,
        trigger_backoff_s=0.01,
        trigger_timeout_s=5,
    )
    return replace(config, **overrides)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def database_settings(request, settings):
    """The platform database: the default SQLite file, or a fresh Postgres database."""
    if request.param == "sqlite":
        return settings
    url = request.getfixturevalue("postgres_url")(f"alerts_{uuid.uuid4().hex[:8]}")
    return replace(settings, database_url=url)


@pytest.fixture
def make_client(database_settings, mage):
    def make(**overrides):
        return create_app(database_settings, receiver_config(mage.url, **overrides)).test_client()

    return make


def post(client, payload, token: str | None = TOKEN, **headers):
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return client.post("/alerts", data=json.dumps(payload), content_type="application/json", headers=headers)


def rows(settings, table) -> list[dict]:
    with engine_for(settings.platform_database_url).connect() as connection:
        return [dict(r) for r in connection.execute(sa.select(table).order_by(table.c.id)).mappings()]


def firing(name: str = "a", starts_at: str = "2026-11-20T08:15:00Z", period: str = "jun") -> dict:
    return grafana_payload("Prediction drift", {"model_name": name, "period": period}, 0.25, starts_at)


# --- the payload ----------------------------------------------------------------------


def test_the_fixtures_are_grafana_payloads_and_grafana_payload_builds_the_same_shape():
    for name in ("firing", "resolved", "grouped"):
        GrafanaWebhook.model_validate(fixture(name))
    built = grafana_payload(
        "Prediction drift", {"model_name": "m", "period": "jun"}, 0.27, "2026-06-30T00:00:00"
    )
    real = fixture("firing")
    assert set(built) == set(real)
    assert set(built["alerts"][0]) == set(real["alerts"][0]) - {"orgId"}
    alert = GrafanaWebhook.model_validate(built).alerts[0]
    assert alert.status == "firing" and alert.value == 0.27 and alert.alertname == "Prediction drift"
    assert built["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z"
    assert alert.startsAt == dt.datetime(2026, 6, 30, tzinfo=dt.UTC)


def test_the_fingerprint_is_a_stable_hash_of_the_labels():
    labels = {"alertname": "Prediction drift", "model_name": "m", "period": "jun"}
    assert fingerprint(labels) == fingerprint(dict(reversed(labels.items())))
    assert fingerprint(labels) != fingerprint({**labels, "period": "jul"})
    assert len(fingerprint(labels)) == 16
    assert fingerprint({}) == "cbf29ce484222325"  # FNV-1a's offset: Prometheus's empty label set


# --- starting at all ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"token": None, "hmac_secret": None}, "no credential configured"),
        ({"token": "CHANGE_ME"}, "ALERT_RECEIVER_TOKEN is a placeholder"),
        ({"token": None, "hmac_secret": "change_me_to_a_long_secret"}, "placeholder"),
        ({"token": "short"}, "shorter than 16"),
        ({"mage_token": None}, "MAGE_RETRAIN_TRIGGER_TOKEN is not set"),
        ({"mage_token": "CHANGE_ME"}, "MAGE_RETRAIN_TRIGGER_TOKEN is a placeholder"),
    ],
)
def test_the_receiver_refuses_to_start_without_a_real_credential(settings, overrides, message):
    with pytest.raises(ConfigurationError, match=message):
        create_app(settings, receiver_config("http://127.0.0.1:9", **overrides))


# --- credentials ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"Authorization": TOKEN},
        {"Authorization": "Basic x"},
    ],
    ids=["missing", "wrong", "no-scheme", "basic"],
)
def test_missing_or_wrong_token_is_401_and_nothing_is_started(make_client, mage, database_settings, headers):
    client = make_client()
    response = post(client, fixture("firing"), token=None, **headers)
    assert response.status_code == 401
    assert "bearer token" in response.get_json()["error"]
    assert mage.calls == []
    assert rows(database_settings, retraining) == [] and rows(database_settings, alert_event) == []


def test_grafana_hmac_signature_with_timestamp(settings, mage):
    client = create_app(
        settings, receiver_config(mage.url, token=None, hmac_secret=HMAC_SECRET)
    ).test_client()
    body = json.dumps(fixture("firing")).encode()
    now = str(int(time.time()))

    def send(signature, timestamp, payload=body):
        headers = {"X-Grafana-Alerting-Signature": signature}
        if timestamp is not None:
            headers["X-Grafana-Alerting-Timestamp"] = timestamp
        return client.post("/alerts", data=payload, content_type="application/json", headers=headers)

    assert send(sign("another-secret-0123456789", body, now), now).status_code == 401
    tampered = body.replace(b"0.2731", b"0.9999")
    assert send(sign(HMAC_SECRET, body, now), now, tampered).status_code == 401
    assert send(sign(HMAC_SECRET, body), None).status_code == 401  # no timestamp: no replay protection
    old = str(int(time.time()) - 301)
    replayed = send(sign(HMAC_SECRET, body, old), old)
    assert replayed.status_code == 401 and "window" in replayed.get_json()["error"]
    assert mage.calls == [] and rows(settings, alert_event) == []
    accepted = send(sign(HMAC_SECRET, body, now), now)
    assert accepted.status_code == 200, accepted.get_json()
    assert accepted.get_json()["results"][0]["decision"] == "started"
    assert len(mage.calls) == 1


def test_token_and_hmac_together_need_both(settings, mage):
    client = create_app(settings, receiver_config(mage.url, hmac_secret=HMAC_SECRET)).test_client()
    body = json.dumps(fixture("firing")).encode()
    now = str(int(time.time()))
    signed = {
        "X-Grafana-Alerting-Signature": sign(HMAC_SECRET, body, now),
        "X-Grafana-Alerting-Timestamp": now,
    }
    only_signed = client.post("/alerts", data=body, content_type="application/json", headers=signed)
    assert only_signed.status_code == 401
    both = client.post(
        "/alerts",
        data=body,
        content_type="application/json",
        headers={**signed, "Authorization": f"Bearer {TOKEN}"},
    )
    assert both.status_code == 200


# --- malformed requests ----------------------------------------------------------------


def test_malformed_payloads_are_refused_naming_the_field(make_client, mage, database_settings):
    client = make_client()
    response = post(client, fixture("malformed"))
    assert response.status_code == 400
    fields = {d["field"] for d in response.get_json()["detail"]}
    assert {"alerts.0.status", "alerts.0.startsAt"} <= fields
    no_alerts = post(client, {**fixture("firing"), "alerts": []})
    assert no_alerts.status_code == 400 and no_alerts.get_json()["detail"][0]["field"] == "alerts"
    no_name = fixture("firing")
    del no_name["alerts"][0]["labels"]["alertname"]
    assert post(client, no_name).get_json()["detail"][0]["field"] == "alerts.0.labels"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    not_json = client.post("/alerts", data=b"{not json", content_type="application/json", headers=auth)
    assert not_json.status_code == 400 and not_json.get_json()["detail"][0]["field"] == "body"
    text = client.post("/alerts", data=b"alert", content_type="text/plain", headers=auth)
    assert text.status_code == 415
    huge = client.post("/alerts", data=b"x" * (65 * 1024), content_type="application/json", headers=auth)
    assert huge.status_code == 413 and "larger than" in huge.get_json()["error"]
    assert mage.calls == [] and rows(database_settings, alert_event) == []


# --- decisions -------------------------------------------------------------------------


def test_a_firing_alert_starts_retrain_with_the_alert_as_variables(make_client, mage, database_settings):
    response = post(make_client(), fixture("firing"))
    assert response.status_code == 200
    result = response.get_json()["results"][0]
    assert result["decision"] == "started"
    assert len(mage.calls) == 1
    call = mage.calls[0]
    assert call["path"] == f"/api/pipeline_schedules/{SCHEDULE_ID}/api_trigger"
    assert call["authorization"] == f"Bearer {MAGE_TOKEN}"
    assert list(json.loads(call["body"])) == ["pipeline_run"]
    assert mage.variables() == {
        "alertname": "Prediction drift above threshold",
        "fingerprint": "5d8c2a1f9b3e7c40",
        "starts_at": "2026-11-20T08:15:00+00:00",
        "value": 0.2731,
        "period": None,
        "retraining_id": result["retraining_id"],
        "triggered_by": "alert-receiver",
    }
    [row] = rows(database_settings, retraining)
    assert row["status"] == "triggered" and row["mage_pipeline_run_id"] == 1
    assert row["mage_schedule_id"] == SCHEDULE_ID
    [event] = rows(database_settings, alert_event)
    assert event["decision"] == "started" and event["retraining_id"] == row["id"]
    assert event["values"] == {"A": 0.2731, "C": 1.0} and event["labels"]["severity"] == "warning"
    assert "pipeline run 1" in event["detail"]


def test_resolved_alerts_are_recorded_and_start_nothing(make_client, mage, database_settings):
    response = post(make_client(), fixture("resolved"))
    assert response.get_json()["results"][0]["decision"] == "resolved"
    assert mage.calls == [] and rows(database_settings, retraining) == []
    [event] = rows(database_settings, alert_event)
    assert event["status"] == "resolved" and event["decision"] == "resolved"


def test_a_grouped_notification_starts_one_retraining_for_two_alerts(make_client, mage, database_settings):
    results = post(make_client(), fixture("grouped")).get_json()["results"]
    assert [r["decision"] for r in results] == ["started", "in_flight"]
    assert len(mage.calls) == 1 and len(rows(database_settings, retraining)) == 1
    assert [e["fingerprint"] for e in rows(database_settings, alert_event)] == [
        "5d8c2a1f9b3e7c40",
        "a0e4f3b2c1d09e87",
    ]


def test_the_same_alert_again_is_a_duplicate(make_client, mage, database_settings):
    client = make_client(cooldown_s=0)
    first = post(client, fixture("firing")).get_json()["results"][0]
    mark_retraining(database_settings, first["retraining_id"], "succeeded", "promoted v3")
    again = post(client, fixture("firing")).get_json()["results"][0]
    assert again["decision"] == "duplicate" and again["retraining_id"] == first["retraining_id"]
    assert len(mage.calls) == 1


def test_a_second_alert_while_a_retraining_runs_or_in_cooldown_is_recorded_not_started(
    make_client, mage, database_settings
):
    client = make_client(cooldown_s=3600)
    first = post(client, firing("a")).get_json()["results"][0]
    assert mark_retraining(database_settings, first["retraining_id"], "running")
    while_running = post(client, firing("b")).get_json()["results"][0]
    assert while_running["decision"] == "in_flight" and while_running["retraining_id"] is None
    assert mark_retraining(database_settings, first["retraining_id"], "succeeded", "promoted v3")
    in_cooldown = post(client, firing("c")).get_json()["results"][0]
    assert in_cooldown["decision"] == "cooldown"
    assert len(mage.calls) == 1 and len(rows(database_settings, retraining)) == 1
    decisions = [(e["fingerprint"], e["decision"]) for e in rows(database_settings, alert_event)]
    assert [d for _, d in decisions] == ["started", "in_flight", "cooldown"]
    [row] = rows(database_settings, retraining)
    assert row["status"] == "succeeded" and row["detail"] == "promoted v3" and row["finished_at"] is not None
    # after the cooldown, the next alert starts the next retraining
    after = post(make_client(cooldown_s=0), firing("d")).get_json()["results"][0]
    assert after["decision"] == "started" and len(mage.calls) == 2


def test_a_retraining_that_never_reports_becomes_stale(make_client, mage, database_settings):
    client = make_client(cooldown_s=0, max_runtime_s=60)
    first = post(client, firing("a")).get_json()["results"][0]
    assert post(client, firing("b")).get_json()["results"][0]["decision"] == "in_flight"
    with engine_for(database_settings.platform_database_url).begin() as connection:
        long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=61)
        connection.execute(retraining.update().values(requested_at=long_ago))
    assert post(client, firing("c")).get_json()["results"][0]["decision"] == "started"
    stale = next(r for r in rows(database_settings, retraining) if r["id"] == first["retraining_id"])
    assert stale["status"] == "failed" and stale["detail"].startswith("stale")


def test_mark_retraining_checks_its_status_and_ignores_runs_started_by_hand(database_settings):
    with pytest.raises(ValueError, match="status must be one of"):
        mark_retraining(database_settings, 1, "done")
    assert mark_retraining(database_settings, None, "running") is False
    assert mark_retraining(database_settings, 12345, "running") is False


# --- Mage failing ----------------------------------------------------------------------


def test_mage_answering_200_with_an_empty_body_is_retried_then_recorded_failed(
    make_client, mage, database_settings
):
    mage.mode = "empty"
    client = make_client()
    result = post(client, fixture("firing")).get_json()["results"][0]
    assert result["decision"] == "failed"
    assert len(mage.calls) == 3  # MAGE_TRIGGER_ATTEMPTS
    assert "empty body" in result["detail"]
    [event] = rows(database_settings, alert_event)
    assert event["decision"] == "failed" and "after 3 attempts" in event["detail"]
    assert rows(database_settings, retraining)[0]["status"] == "trigger_failed"
    # a failed trigger blocks nothing: neither another alert, nor the same alert sent again
    mage.mode = "ok"
    retried = post(client, fixture("firing")).get_json()["results"][0]
    assert retried["decision"] == "started" and retried["retraining_id"] == result["retraining_id"]
    [row] = rows(database_settings, retraining)
    assert row["status"] == "triggered" and row["attempts"] == 2


def test_a_wrong_mage_token_is_a_failure_with_mages_reason(make_client, mage, database_settings):
    mage.token = "the-token-mage-really-has-0123456789"
    result = post(make_client(), fixture("firing")).get_json()["results"][0]
    assert result["decision"] == "failed"
    assert "Invalid token for pipeline schedule ID 7" in result["detail"]


def test_the_schedule_id_is_read_from_mages_database(make_client, mage, tmp_path):
    mage_db = tmp_path / "mage-ai.db"
    with sqlite3.connect(mage_db) as connection:
        connection.execute(
            "CREATE TABLE pipeline_schedule (id INTEGER PRIMARY KEY, name TEXT, pipeline_uuid TEXT)"
        )
        connection.execute(
            "INSERT INTO pipeline_schedule VALUES "
            "(3, 'nightly', 'train'), (11, 'retrain_on_alert', 'retrain')"
        )
    client = make_client(mage_schedule_id=None, mage_database_url=f"sqlite:///{mage_db}")
    assert post(client, fixture("firing")).get_json()["results"][0]["decision"] == "started"
    assert mage.calls[0]["path"] == "/api/pipeline_schedules/11/api_trigger"


def test_no_schedule_in_mages_database_yet_is_a_failure_not_a_crash(make_client, mage, tmp_path):
    client = make_client(
        mage_schedule_id=None, mage_database_url=f"sqlite:///{tmp_path / 'missing' / 'mage.db'}"
    )
    result = post(client, fixture("firing")).get_json()["results"][0]
    assert result["decision"] == "failed" and "Mage's database" in result["detail"]
    assert mage.calls == []


# --- the other endpoints ---------------------------------------------------------------


def test_health_ready_listing_and_metrics(make_client, mage):
    client = make_client()
    post(client, fixture("grouped"))
    assert client.get("/health").get_json() == {"status": "alive"}
    assert client.get("/ready").get_json() == {"ready": True}
    assert client.get("/alerts").status_code == 401
    assert client.get("/alerts", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401
    listing = client.get("/alerts?limit=10", headers={"Authorization": f"Bearer {ADMIN}"}).get_json()
    assert [e["decision"] for e in listing["events"]] == ["in_flight", "started"]
    assert listing["retrainings"][0]["status"] == "triggered"
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'alert_receiver_events{decision="started"} 1' in metrics
    assert 'alert_receiver_retrainings{status="triggered"} 1' in metrics


# --- real gunicorn, concurrent requests -------------------------------------------------


class Receiver:
    """The receiver under real gunicorn (2 workers) with the project's config."""

    def __init__(self, env: dict[str, str], log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "wb")
        environment = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        environment |= {**env, "ALERT_RECEIVER_HOST": "127.0.0.1", "ALERT_RECEIVER_PORT": str(self.port)}
        self.process = subprocess.Popen(
            [
                str(REPO / ".venv/app/bin/gunicorn"),
                "-c",
                "python:bankmarketing.alerts.gunicorn_conf",
                "bankmarketing.alerts.app:create_app()",
            ],
            cwd=REPO,
            env=environment,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}")
            try:
                if requests.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return
            except requests.RequestException:  # workers still booting
                pass
            time.sleep(0.3)
        raise TimeoutError(f"{self.url}/ready")

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(30)
        self.log.close()


def receiver_env(settings, mage_url: str) -> dict[str, str]:
    env = {
        "BANK_DATA_DIR": str(settings.data_dir),
        "ALERT_RECEIVER_TOKEN": TOKEN,
        "ALERT_RECEIVER_ADMIN_TOKEN": ADMIN,
        "ALERT_RECEIVER_WORKERS": "2",
        "MAGE_API_URL": mage_url,
        "MAGE_RETRAIN_TRIGGER_TOKEN": MAGE_TOKEN,
        "MAGE_RETRAIN_SCHEDULE_ID": str(SCHEDULE_ID),
        "MAGE_TRIGGER_BACKOFF_SECONDS": "0.05",
    }
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    return env


@pytest.mark.integration
def test_100_identical_alerts_at_once_under_gunicorn_start_exactly_one_retraining(
    database_settings, mage, tmp_path
):
    receiver = Receiver(receiver_env(database_settings, mage.url), tmp_path / "receiver.log")
    try:
        receiver.wait_ready()
        payload = fixture("firing")
        with ThreadPoolExecutor(max_workers=16) as pool:
            replies = list(
                pool.map(lambda _: post_alert(f"{receiver.url}/alerts", payload, TOKEN), range(100))
            )
    finally:
        receiver.stop()
    assert [r["status_code"] for r in replies] == [200] * 100, replies[:3]
    decisions = sorted(r["body"]["results"][0]["decision"] for r in replies)
    assert decisions.count("started") == 1 and decisions.count("duplicate") == 99
    assert len(mage.calls) == 1
    assert len(rows(database_settings, retraining)) == 1
    assert len(rows(database_settings, alert_event)) == 100


@pytest.mark.integration
def test_gunicorn_refuses_to_start_without_credentials(settings, tmp_path):
    env = receiver_env(settings, "http://127.0.0.1:9") | {"ALERT_RECEIVER_TOKEN": "CHANGE_ME"}
    receiver = Receiver(env, tmp_path / "receiver.log")
    try:
        assert receiver.process.wait(60) != 0
    finally:
        receiver.log.close()
    assert "ALERT_RECEIVER_TOKEN is a placeholder" in (tmp_path / "receiver.log").read_text()


# --- oversize and slow bodies, real gunicorn ----------------------------------------------

RECEIVER_LIMIT = 1024 * 1024  # the default ALERT_RECEIVER_MAX_BODY_BYTES
RECEIVER_ENDPOINTS = [("POST", "/alerts"), ("GET", "/alerts"), ("GET", "/metrics"), ("POST", "/nowhere")]


@pytest.fixture(scope="module")
def live_receiver(tmp_path_factory, data_csv):
    root = tmp_path_factory.mktemp("receiver-bodies")
    env = receiver_env(settings_for(root, data_csv), "http://127.0.0.1:9")  # Mage never called
    env["ALERT_RECEIVER_MAX_BODY_BYTES"] = str(RECEIVER_LIMIT)
    receiver = Receiver(env, root / "receiver.log")
    receiver.wait_ready()
    yield receiver
    receiver.stop()


@pytest.mark.integration
@pytest.mark.parametrize("kind", CLIENTS)
def test_every_client_gets_the_receivers_json_413_on_every_endpoint(live_receiver, kind):
    """`requests`, `urllib` and raw sockets (tests/serving/http_clients.py), 5.4 MB: the JSON 413
    naming the limit, and the raw socket's connection ends with a FIN, not a reset."""
    body = json.dumps({**fixture("firing"), "padding": "x" * 5_400_000}).encode()
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    for method, path in RECEIVER_ENDPOINTS:
        answer = CLIENTS[kind](f"{live_receiver.url}{path}", body, method, headers=bearer)
        assert_413(answer, RECEIVER_LIMIT, f"{kind} {method} {path}")
    assert requests.get(f"{live_receiver.url}/health", timeout=5).status_code == 200


@pytest.mark.integration
def test_a_stalled_alert_body_gets_a_json_408_at_the_bound(live_receiver):
    head, body = raw_request(f"{live_receiver.url}/alerts", json.dumps(fixture("firing")).encode())
    with socket.create_connection(("127.0.0.1", live_receiver.port), timeout=30) as connection:
        started = time.monotonic()
        connection.sendall(head + body[:10])
        answer = read_answer(connection)
    elapsed = time.monotonic() - started
    assert answer.status == 408 and json.loads(answer.body)["error"] == (
        f"request body not received within {BODY_SECONDS:g} s"
    )
    assert BODY_SECONDS - 0.1 < elapsed < BODY_SECONDS + 1.5, elapsed


# --- a real Mage server -------------------------------------------------------------------


def _wait_for_schedule(mage_db: Path, process: subprocess.Popen, timeout_s: float = 240) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mage exited with {process.returncode}")
        if mage_db.exists():
            try:
                with sqlite3.connect(mage_db) as connection:
                    row = connection.execute(
                        "SELECT id FROM pipeline_schedule "
                        "WHERE pipeline_uuid = 'retrain' AND name = 'retrain_on_alert'"
                    ).fetchone()
                if row:
                    return row[0]
            except sqlite3.Error:  # Mage is still creating its tables
                pass
        time.sleep(1)
    raise TimeoutError("Mage never synced the retrain trigger from triggers.yaml")


@pytest.mark.integration
def test_a_real_mage_server_creates_a_retrain_run_for_an_alert(settings, tmp_path, monkeypatch):
    """`mage start` on a copy of the project, the trigger token only in its environment."""
    mage_bin = REPO / ".venv/mage/bin/mage"
    if not (REPO / "mlops/pipelines/retrain/metadata.yaml").exists():
        pytest.fail(
            "mlops/pipelines/retrain/metadata.yaml is missing: the retrain pipeline is not in the tree"
        )
    project = tmp_path / "mlops"  # a copy: Mage writes into the project folder it serves
    shutil.copytree(REPO / "mlops", project, ignore=shutil.ignore_patterns(".file_versions", "__pycache__"))
    data_dir, port = tmp_path / "mage_data", free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env |= {
        "MAGE_DATA_DIR": str(data_dir),
        "MAGE_RETRAIN_TRIGGER_TOKEN": MAGE_TOKEN,
        # the run Mage starts must fail fast and touch nothing: no data, no MLflow
        "BANK_DATA_DIR": str(tmp_path / "data"),
        "BANK_DATA_PATH": str(tmp_path / "no-data.csv"),
        "BANK_DATA_URL": "http://127.0.0.1:9/unreachable.csv",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
    }
    with open(tmp_path / "mage.log", "wb") as log:
        process = subprocess.Popen(
            [str(mage_bin), "start", str(project), "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            mage_db = data_dir / "mlops" / "mage-ai.db"
            schedule_id = _wait_for_schedule(mage_db, process)
            monkeypatch.setenv("MAGE_DATA_DIR", str(data_dir))
            monkeypatch.delenv("MAGE_DATABASE_CONNECTION_URL", raising=False)
            config = replace(
                AlertReceiverConfig.from_env(),  # the schedule id comes from Mage's database
                token=TOKEN,
                hmac_secret=None,
                mage_api_url=f"http://127.0.0.1:{port}",
                mage_token=MAGE_TOKEN,
                mage_schedule_id=None,
                trigger_backoff_s=2,
                trigger_attempts=5,
            )
            client = create_app(settings, config).test_client()
            result = post(client, firing("real-mage", period="jul")).get_json()["results"][0]
            assert result["decision"] == "started", (result, (tmp_path / "mage.log").read_text()[-3000:])
            with sqlite3.connect(mage_db) as connection:
                runs = connection.execute(
                    "SELECT id, pipeline_uuid, pipeline_schedule_id, variables FROM pipeline_run "
                    "WHERE pipeline_uuid = 'retrain'"
                ).fetchall()
                monitor_schedules = connection.execute(
                    "SELECT schedule_type, schedule_interval, status, variables FROM pipeline_schedule "
                    "WHERE pipeline_uuid = 'monitor'"
                ).fetchall()
            # the run fails in its first block (no data here): the failure callback tells the receiver
            deadline = time.monotonic() + 180
            while rows(settings, retraining)[0]["status"] != "failed" and time.monotonic() < deadline:
                time.sleep(2)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(30)
    [(run_id, pipeline, run_schedule, variables)] = runs
    assert pipeline == "retrain" and run_schedule == schedule_id
    variables = json.loads(variables)
    assert variables["retraining_id"] == result["retraining_id"] and variables["period"] == "jul"
    # the daily monitor trigger of mlops/pipelines/monitor/triggers.yaml was synced as well
    [(kind, interval, status, monitor_variables)] = monitor_schedules
    assert (kind.lower(), interval, status.lower()) == ("time", "@daily", "active")
    assert json.loads(monitor_variables)["source"] == "log"
    [row] = rows(settings, retraining)
    assert row["mage_pipeline_run_id"] == run_id and row["mage_schedule_id"] == schedule_id
    assert row["status"] == "failed", (row, (tmp_path / "mage.log").read_text()[-3000:])
    assert "no-data.csv" in row["detail"]  # the error of the failed block
